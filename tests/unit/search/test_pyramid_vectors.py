"""Laplacian pyramids and blending; exact and HNSW vector search."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage import data

from percept.search import pyramid
from percept.search.vectors import BruteForceIndex, HnswIndex, make_index, normalise


@settings(max_examples=25, deadline=None)
@given(st.integers(8, 90), st.integers(8, 90), st.integers(0, 5), st.integers(0, 2**31 - 1))
def test_pyramid_round_trip_is_exact(h: int, w: int, levels: int, seed: int) -> None:
    image = np.random.default_rng(seed).integers(0, 256, (h, w, 3)).astype(np.float32)
    levels = min(levels, pyramid.max_levels(image.shape, 1))
    bands = pyramid.laplacian_pyramid(image, levels)
    assert len(bands) == levels + 1
    np.testing.assert_allclose(pyramid.reconstruct(bands), image, atol=1e-3)


def test_round_trip_on_a_photo() -> None:
    photo = data.astronaut()
    bands = pyramid.laplacian_pyramid(photo, 6)
    assert np.array_equal(np.rint(pyramid.reconstruct(bands)).astype(np.uint8), photo)


def test_blend_keeps_each_side_away_from_the_seam() -> None:
    a = data.astronaut()[:256, :256]
    b = data.coffee()[:256, :256]
    out = pyramid.blend(a, b, levels=5)
    assert out.shape == a.shape and out.dtype == np.uint8
    left = np.abs(out[:, :64].astype(int) - a[:, :64]).mean()
    right = np.abs(out[:, -64:].astype(int) - b[:, -64:]).mean()
    assert left < 6 and right < 6
    # The seam is smooth: no column jump bigger than inside either image.
    jump = np.abs(np.diff(out[:, 120:136].astype(int), axis=1)).mean()
    hard = np.abs(a[:, 127].astype(int) - b[:, 128].astype(int)).mean()
    assert jump < hard


def test_blend_of_an_image_with_itself_is_the_image() -> None:
    a = data.chelsea()
    assert np.abs(pyramid.blend(a, a).astype(int) - a).max() <= 1


def test_blend_refuses_different_shapes() -> None:
    with pytest.raises(ValueError):
        pyramid.blend(np.zeros((10, 10, 3)), np.zeros((12, 10, 3)))


def _vectors(n: int, d: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def test_exact_top_k_equals_brute_force_sort() -> None:
    vectors, queries = _vectors(500, 32), _vectors(20, 32, 1)
    index = BruteForceIndex(32)
    index.add([f"id{i}" for i in range(500)], vectors)
    found = index.search(queries, 10)
    truth = normalise(queries) @ normalise(vectors).T
    for row, hits in zip(truth, found, strict=True):
        expected = [f"id{i}" for i in np.argsort(-row)[:10]]
        assert [h[0] for h in hits] == expected
        np.testing.assert_allclose([h[1] for h in hits], np.sort(row)[::-1][:10], rtol=1e-5)


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_each_vector_is_its_own_nearest_neighbour(kind: str) -> None:
    vectors = _vectors(300, 16)
    ids = [str(i) for i in range(300)]
    index = make_index(ids, vectors, ann_threshold=1 if kind == "hnsw" else 10_000)
    assert index.kind == kind
    hits = index.search(vectors, 1)
    assert [h[0][0] for h in hits] == ids
    assert all(h[0][1] == pytest.approx(1.0, abs=1e-4) for h in hits)


def test_hnsw_recall_at_10_is_high_and_grows_past_capacity() -> None:
    vectors, queries = _vectors(3000, 32), _vectors(50, 32, 2)
    index = HnswIndex(32, capacity=100)
    index.add([str(i) for i in range(1500)], vectors[:1500])
    index.add([str(i) for i in range(1500, 3000)], vectors[1500:])
    exact = BruteForceIndex(32)
    exact.add([str(i) for i in range(3000)], vectors)
    recall = np.mean([
        len({h[0] for h in a} & {h[0] for h in b}) / 10
        for a, b in zip(index.search(queries, 10), exact.search(queries, 10), strict=True)
    ])
    assert recall >= 0.95


def test_empty_index_and_k_larger_than_collection() -> None:
    empty = make_index([], np.zeros((0, 8)), dim=8)
    assert empty.search(_vectors(2, 8), 5) == [[], []]
    small = make_index(["a", "b"], _vectors(2, 8))
    assert len(small.search(_vectors(1, 8), 5)[0]) == 2
