"""Chunkers: fixed size with overlap, recursive by separators, Markdown sections (headings
kept as metadata), sentences, and semantic (by embedding similarity). Each keeps every
chunk's source, position, offsets and metadata."""

from __future__ import annotations

from .base import Chunker
from .markdown import MarkdownChunker
from .recursive import FixedSizeChunker, RecursiveChunker
from .sentences import SemanticChunker, SentenceChunker

__all__ = [
    "Chunker",
    "FixedSizeChunker",
    "MarkdownChunker",
    "RecursiveChunker",
    "SemanticChunker",
    "SentenceChunker",
]
