"""Exact cosine search over vectors held in this process: one matrix product with numpy when
it is importable, a pure-Python scan otherwise (same hits, float32 vs float64 scores)."""

from __future__ import annotations

import math
import operator
import threading
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from .codec import to_floats

__all__ = ["ExactIndex", "numpy_or_none"]

_NP: list[Any] = []


def numpy_or_none() -> Any:
    """The numpy module, or None when it is not installed (looked up once)."""
    if not _NP:
        try:
            import numpy
        except ImportError:
            _NP.append(None)
        else:
            _NP.append(numpy)
    return _NP[0]


def _normalized(vec: Sequence[float] | bytes) -> list[float]:
    v = to_floats(vec)
    n = math.sqrt(math.fsum(x * x for x in v))
    return [x / n for x in v] if n > 0.0 else v


class ExactIndex:
    """Vectors of one size, keyed by int ids, searched exactly by cosine similarity.

    ``add_many`` and ``remove`` change it; ``search`` ranks the vectors (or only
    ``candidates``) against a query and returns ``(id, score)`` best first, ties by id.
    Vectors are normalized when added; a zero vector scores 0.0 against everything.
    ``use_numpy=False`` forces the pure-Python scan. Safe to use from several threads.
    """

    __slots__ = ("_ids", "_lock", "_matrix", "_order", "_pending", "_rows", "dims", "use_numpy")

    def __init__(self, dims: int, *, use_numpy: bool | None = None) -> None:
        self.dims = dims
        self.use_numpy = numpy_or_none() is not None if use_numpy is None else use_numpy
        self._rows: dict[int, list[float]] = {}  # pure Python: id -> unit vector
        self._ids: Any = None  # numpy: int64 ids, row i of _matrix
        self._matrix: Any = None
        self._order: Any = None  # numpy: argsort of _ids, and the sorted ids
        self._pending: list[tuple[int, Any]] = []
        self._lock = threading.Lock()

    @classmethod
    def from_blobs(
        cls, dims: int, rows: Iterable[tuple[int, bytes]], *, use_numpy: bool | None = None
    ) -> ExactIndex:
        """An index of ``(id, float32 bytes)`` rows (as SQL stores them)."""
        index = cls(dims, use_numpy=use_numpy)
        np = numpy_or_none() if index.use_numpy else None
        if np is None:
            index.add_many(rows)
            return index
        rows = rows if isinstance(rows, list) else list(rows)
        ids = np.empty(len(rows), dtype=np.int64)
        mat = np.empty((len(rows), dims), dtype=np.float32)  # filled row by row: one copy
        for i, (rid, blob) in enumerate(rows):
            ids[i] = rid
            mat[i] = np.frombuffer(blob, dtype="<f4")
        index._set_matrix(np, ids, mat)
        return index

    def __len__(self) -> int:
        if not self.use_numpy:
            return len(self._rows)
        return len(self._snapshot()[0])

    def add_many(self, rows: Iterable[tuple[int, Sequence[float] | bytes]]) -> None:
        """Add (or replace) vectors by id."""
        if self.use_numpy:  # stacked into the matrix by the next search
            new = [(int(vid), vec) for vid, vec in rows]
            with self._lock:
                self._pending += new
            return
        normalized = {int(vid): _normalized(vec) for vid, vec in rows}
        with self._lock:
            self._rows.update(normalized)

    def remove(self, ids: Iterable[int]) -> None:
        gone = {int(i) for i in ids}
        if not gone:
            return
        with self._lock:
            if not self.use_numpy:
                for i in gone:
                    self._rows.pop(i, None)
                return
            self._pending = [p for p in self._pending if p[0] not in gone]
            if self._ids is not None and len(self._ids):
                np = numpy_or_none()
                keep = ~np.isin(self._ids, np.fromiter(gone, dtype=np.int64, count=len(gone)))
                if not keep.all():
                    self._set_matrix(np, self._ids[keep], self._matrix[keep], normalized=True)

    # -- numpy ----------------------------------------------------------------------------------

    def _set_matrix(self, np: Any, ids: Any, mat: Any, *, normalized: bool = False) -> None:
        if not normalized and len(mat):
            mat /= np.maximum(np.linalg.norm(mat, axis=1, keepdims=True), 1e-30)
        self._ids, self._matrix = ids, mat
        self._order = None

    def _snapshot(self, with_order: bool = False) -> tuple[Any, Any, Any]:
        """``(ids, matrix, order)`` with every added vector in (numpy); ``order`` (the ids'
        argsort and the sorted ids) only when asked for."""
        with self._lock:
            self._flush()
            if with_order and self._order is None:
                np = numpy_or_none()
                order = np.argsort(self._ids, kind="stable")
                self._order = (order, self._ids[order])
            return self._ids, self._matrix, self._order

    def _flush(self) -> None:
        np = numpy_or_none()
        if self._ids is None:
            self._set_matrix(np, np.empty(0, dtype=np.int64), np.empty((0, self.dims), np.float32))
        if not self._pending:
            return
        latest = dict(self._pending)  # the last vector given for an id wins
        self._pending = []
        new_ids = np.fromiter(latest, dtype=np.int64, count=len(latest))
        new = np.array(
            [
                np.frombuffer(v, dtype="<f4") if isinstance(v, bytes | bytearray) else v
                for v in latest.values()
            ],
            dtype=np.float32,
        ).reshape(len(latest), self.dims)
        new /= np.maximum(np.linalg.norm(new, axis=1, keepdims=True), 1e-30)
        keep = ~np.isin(self._ids, new_ids)
        self._set_matrix(
            np,
            np.concatenate([self._ids[keep], new_ids]),
            np.concatenate([self._matrix[keep], new]),
            normalized=True,
        )

    @staticmethod
    def _positions(np: Any, order: Any, candidates: Collection[int]) -> Any:
        """Row numbers of the candidate ids that are in the index."""
        order, sorted_ids = order
        cand = (
            candidates
            if isinstance(candidates, np.ndarray)
            else np.fromiter(candidates, dtype=np.int64, count=len(candidates))
        )
        if not len(sorted_ids) or not len(cand):
            return np.empty(0, dtype=np.int64)
        at = np.searchsorted(sorted_ids, cand)
        found = (at < len(sorted_ids)) & (sorted_ids[np.minimum(at, len(sorted_ids) - 1)] == cand)
        return np.unique(order[at[found]])

    # -- search ---------------------------------------------------------------------------------

    def search(
        self,
        query: Sequence[float] | bytes,
        k: int,
        *,
        candidates: Collection[int] | None = None,
        threshold: float | None = None,
    ) -> list[tuple[int, float]]:
        """The ``k`` most similar vectors (of ``candidates`` when given): ``(id, cosine)``,
        best first, ties by id; below ``threshold`` left out."""
        if k <= 0:
            return []
        if not self.use_numpy:
            return self._search_python(query, k, candidates, threshold)
        all_ids, matrix, order = self._snapshot(with_order=candidates is not None)
        np = numpy_or_none()
        q = np.asarray(to_floats(query), dtype=np.float32)
        q /= max(float(np.linalg.norm(q)), 1e-30)
        if candidates is None:
            ids, sims = all_ids, matrix @ q
        else:
            pos = self._positions(np, order, candidates)
            ids, sims = all_ids[pos], matrix[pos] @ q
        if threshold is not None:
            ok = sims >= threshold
            ids, sims = ids[ok], sims[ok]
        n = min(k, len(sims))
        if n == 0:
            return []
        if n < len(sims):
            # the k-th best score; every id at or above it takes part (ties by id)
            kth = np.partition(-sims, n - 1)[n - 1]
            pick = np.nonzero(-sims <= kth)[0]
            ids, sims = ids[pick], sims[pick]
        top = np.lexsort((ids, -sims))[:n]
        return [(int(ids[i]), float(sims[i])) for i in top]

    def _search_python(
        self,
        query: Sequence[float] | bytes,
        k: int,
        candidates: Collection[int] | None,
        threshold: float | None,
    ) -> list[tuple[int, float]]:
        q = _normalized(query)
        with self._lock:
            rows = self._rows
            if candidates is None:
                items = list(rows.items())
            else:
                items = [(i, rows[i]) for i in {int(c) for c in candidates} if i in rows]
        mul = operator.mul
        scored = []
        for vid, vec in items:
            s = sum(map(mul, q, vec))
            if threshold is None or s >= threshold:
                scored.append((-s, vid))
        scored.sort()
        return [(vid, -s) for s, vid in scored[:k]]
