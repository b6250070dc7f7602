"""Chunkers: sizes, overlap, offsets that point into the document, metadata kept."""

from __future__ import annotations

import itertools

import pytest

from vivace.errors import UserError
from vivace.knowledge import (
    Document,
    FixedSizeChunker,
    MarkdownChunker,
    RecursiveChunker,
    SemanticChunker,
    SentenceChunker,
)

TEXT = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(200))


def _check(doc: Document, chunks: list, size: int) -> None:
    assert chunks, "no chunks"
    assert [c.position for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert c.source == doc.source
        assert c.text == doc.text[c.start : c.end]
        assert 0 < len(c.text) <= size
    # the chunks cover the whole text (no gaps beyond whitespace)
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    missing = [i for i in range(len(doc.text)) if i not in covered and not doc.text[i].isspace()]
    assert not missing


@pytest.mark.parametrize("size,overlap", [(200, 0), (200, 50), (1000, 100), (37, 5)])
def test_fixed_size_windows_cover_the_text_with_overlap(size: int, overlap: int) -> None:
    doc = Document("t.txt", TEXT, {"lang": "en"})
    chunks = FixedSizeChunker(size, overlap).chunk(doc)
    _check(doc, chunks, size)
    assert all(c.metadata == {"lang": "en"} for c in chunks)
    if overlap:
        shared = [a.end - b.start for a, b in itertools.pairwise(chunks)]
        assert all(0 < s <= overlap for s in shared)
    else:
        assert all(a.end <= b.start for a, b in itertools.pairwise(chunks))


def test_fixed_size_cuts_a_word_longer_than_the_size() -> None:
    doc = Document("w", "x" * 95 + " tail")
    chunks = FixedSizeChunker(20, 0).chunk(doc)
    _check(doc, chunks, 20)


def test_recursive_prefers_paragraphs_then_sentences() -> None:
    paras = ["First paragraph. It has two sentences.", "Second one is here.", "Third " * 60]
    doc = Document("r.txt", "\n\n".join(paras))
    chunks = RecursiveChunker(size=120, overlap=0).chunk(doc)
    _check(doc, chunks, 120)
    assert chunks[0].text == "First paragraph. It has two sentences.\n\nSecond one is here."


def test_markdown_sections_keep_their_heading_path() -> None:
    text = (
        "Intro text before any heading.\n\n# Guide\n\nWelcome.\n\n## Install\n\nRun pip.\n\n"
        "```\n# not a heading inside code\n```\n\n### Linux\n\nUse apt.\n\n## Usage\n\nCall it."
    )
    doc = Document("g.md", text, {"kind": "guide"}, markdown=True)
    chunks = MarkdownChunker(size=200, overlap=0).chunk(doc)
    _check(doc, chunks, 200)
    heads = {c.text.splitlines()[0]: c.metadata.get("headings") for c in chunks}
    assert heads["Intro text before any heading."] is None
    assert heads["# Guide"] == ["Guide"]
    assert heads["## Install"] == ["Guide", "Install"]
    assert heads["### Linux"] == ["Guide", "Install", "Linux"]
    assert heads["## Usage"] == ["Guide", "Usage"]
    assert all(c.metadata["kind"] == "guide" for c in chunks)


def test_markdown_long_section_is_split_and_keeps_headings() -> None:
    doc = Document("l.md", "# Big\n\n" + TEXT, markdown=True)
    chunks = MarkdownChunker(size=300, overlap=30).chunk(doc)
    _check(doc, chunks, 300)
    assert len(chunks) > 5
    assert all(c.metadata["headings"] == ["Big"] for c in chunks)


def test_sentences_are_never_cut_and_overlap_by_sentence() -> None:
    doc = Document("s.txt", TEXT)
    chunks = SentenceChunker(size=200, overlap=1).chunk(doc)
    _check(doc, chunks, 200)
    for c in chunks:
        assert c.text.startswith("Sentence") and c.text.endswith(".")
    last_of_first = chunks[0].text.split(". ")[-1]
    assert chunks[1].text.startswith(last_of_first.rstrip(".")) or last_of_first in chunks[1].text


async def test_semantic_chunker_breaks_where_the_topic_changes(embedder) -> None:
    cats = (
        "Cats are small furry pets. A cat purrs when it is happy. Kittens love to play with yarn."
    )
    tax = "Income tax returns are due in April. Deductions lower the taxable income. File the forms online."
    doc = Document("mix.txt", f"{cats} {tax}")
    chunks = await SemanticChunker(embedder, size=1000, percentile=25).chunk(doc)
    assert [c.text for c in chunks] == [cats, tax]
    assert chunks[1].start == doc.text.index("Income")


@pytest.mark.parametrize(
    "make",
    [lambda: FixedSizeChunker(10, 10), lambda: RecursiveChunker(0), lambda: MarkdownChunker(5, -1)],
)
def test_bad_sizes_are_user_errors(make) -> None:
    with pytest.raises(UserError):
        make()
