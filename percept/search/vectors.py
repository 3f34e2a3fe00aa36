"""Vector search behind one interface: exact brute force (numpy) or HNSW (hnswlib).

Vectors are L2-normalised on the way in, so inner product is cosine similarity. ``make_index``
picks brute force for small collections and HNSW from ``ann_threshold`` vectors on.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_ANN_THRESHOLD = 20_000


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32."""
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim == 1:
        v = v[None, :]
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.maximum(norms, 1e-12)


class VectorIndex(ABC):
    """Ids with unit vectors; ``search`` returns the top-k by cosine similarity."""

    kind: str = "index"

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.ids: list[str] = []

    def __len__(self) -> int:
        return len(self.ids)

    @abstractmethod
    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Append vectors (rows) under ids."""

    @abstractmethod
    def search(self, query: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        """For each query row, up to ``k`` ``(id, cosine)`` pairs, best first."""


class BruteForceIndex(VectorIndex):
    """Exact search: one matrix product and a partial sort."""

    kind = "exact"

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self._matrix = np.zeros((0, dim), dtype=np.float32)

    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        v = normalise(vectors)
        if v.shape[1] != self.dim:
            raise ValueError(f"vectors have {v.shape[1]} dimensions, the index {self.dim}")
        self._matrix = np.concatenate([self._matrix, v]) if len(self.ids) else v
        self.ids.extend(ids)

    def search(self, query: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        q = normalise(query)
        n = len(self.ids)
        if n == 0 or k <= 0:
            return [[] for _ in range(len(q))]
        k = min(k, n)
        scores = q @ self._matrix.T
        out = []
        for row in scores:
            top = np.argpartition(-row, k - 1)[:k] if k < n else np.arange(n)
            top = top[np.argsort(-row[top], kind="stable")]
            out.append([(self.ids[i], float(row[i])) for i in top])
        return out


class HnswIndex(VectorIndex):
    """Approximate search with hnswlib (cosine space); ``ef`` trades recall for speed."""

    kind = "hnsw"

    def __init__(self, dim: int, capacity: int = 1024, m: int = 16, ef_construction: int = 200, ef: int = 128) -> None:
        import hnswlib

        super().__init__(dim)
        self._index = hnswlib.Index(space="ip", dim=dim)
        self._index.init_index(max_elements=max(capacity, 16), M=m, ef_construction=ef_construction)
        self.ef = ef
        self._index.set_ef(ef)

    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        v = normalise(vectors)
        need = len(self.ids) + len(v)
        if need > self._index.get_max_elements():
            self._index.resize_index(max(need, 2 * self._index.get_max_elements()))
        labels = np.arange(len(self.ids), need)
        self._index.add_items(v, labels)
        self.ids.extend(ids)

    def search(self, query: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        q = normalise(query)
        n = len(self.ids)
        if n == 0 or k <= 0:
            return [[] for _ in range(len(q))]
        k = min(k, n)
        self._index.set_ef(max(self.ef, k))
        labels, distances = self._index.knn_query(q, k=k)
        return [
            [(self.ids[int(i)], float(1.0 - d)) for i, d in zip(row_l, row_d, strict=True)]
            for row_l, row_d in zip(labels, distances, strict=True)
        ]


def make_index(
    ids: Sequence[str], vectors: np.ndarray, dim: int | None = None, ann_threshold: int = DEFAULT_ANN_THRESHOLD
) -> VectorIndex:
    """An index over the given vectors: exact below ``ann_threshold``, HNSW from there on."""
    arr = np.asarray(vectors, dtype=np.float32)
    d = dim or (arr.shape[1] if arr.ndim == 2 and arr.shape[0] else 0)
    index: VectorIndex
    if len(ids) >= ann_threshold:
        index = HnswIndex(d, capacity=len(ids))
    else:
        index = BruteForceIndex(d)
    if len(ids):
        index.add(ids, arr)
    return index
