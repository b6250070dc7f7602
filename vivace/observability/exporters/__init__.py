"""Where spans go: OTLP over HTTP, the console, storage (for the Studio) or memory (tests)."""

from __future__ import annotations

from .base import Exporter, InMemoryExporter
from .console import ConsoleExporter
from .otlp import OTLPExporter
from .storage import StorageExporter

__all__ = ["ConsoleExporter", "Exporter", "InMemoryExporter", "OTLPExporter", "StorageExporter"]
