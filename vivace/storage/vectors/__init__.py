"""The vector index memory's semantic recall and the knowledge stores share.

Every vector is stored as float32 (:func:`pack`) and compared by cosine similarity; a search
takes a query, ``k``, filters pushed down to where the vectors are, a threshold and
exclusions, and returns ids (or rows) with their similarity, best first, ties by id.

Per backend, one implementation each:

- **In process** - :class:`ExactIndex`: exact, one numpy matrix product (a pure-Python scan
  without numpy). In-memory storage and the in-memory knowledge store keep their vectors in
  one; the SQLite backends build one from rows when sqlite-vec is not available, and the
  SQLite knowledge store keeps one per large knowledge base (reloaded when it changes).
- **SQLite** - :mod:`.sqlite`: sqlite-vec (exact, in C) on the connection that opens the
  file: a vec0 table per knowledge base (apsw), and for memory's message table
  ``vec_distance_cosine`` over its BLOB column when Python's ``sqlite3`` can load
  extensions.
- **PostgreSQL** - :class:`PgVectorIndex`: pgvector, one partial HNSW index per collection
  (a knowledge base; for messages, an embedding size), searched with the index or, for a
  selective filter, exactly through the filter's own index.
"""

from __future__ import annotations

from .codec import (
    check_vector,
    cosine,
    norm,
    pack,
    pg_decode,
    pg_encode,
    to_floats,
    unpack,
    vector_literal,
)
from .exact import ExactIndex, numpy_or_none
from .pgvector import PgVectorIndex, quote_ident, register_vector_codec

__all__ = [
    "ExactIndex",
    "PgVectorIndex",
    "check_vector",
    "cosine",
    "norm",
    "numpy_or_none",
    "pack",
    "pg_decode",
    "pg_encode",
    "quote_ident",
    "register_vector_codec",
    "to_floats",
    "unpack",
    "vector_literal",
]
