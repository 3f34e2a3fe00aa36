"""CIEDE2000 against Sharma, Wu & Dalal's published pairs; LAB/HSV against references."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.color import deltaE_ciede2000, rgb2lab

from percept.search.colour import (
    ciede2000,
    complement_fraction,
    dominant_hue,
    hue_distance,
    rgb_to_hsv,
    rgb_to_lab,
)

# Sharma, Wu & Dalal (2005), "The CIEDE2000 color-difference formula: implementation notes,
# supplementary test data, and mathematical observations", Table 1: L1 a1 b1 L2 a2 b2 ΔE00.
SHARMA = [
    (50.0000, 2.6772, -79.7751, 50.0000, 0.0000, -82.7485, 2.0425),
    (50.0000, 3.1571, -77.2803, 50.0000, 0.0000, -82.7485, 2.8615),
    (50.0000, 2.8361, -74.0200, 50.0000, 0.0000, -82.7485, 3.4412),
    (50.0000, -1.3802, -84.2814, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -1.1848, -84.8006, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -0.9009, -85.5211, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, 0.0000, 0.0000, 50.0000, -1.0000, 2.0000, 2.3669),
    (50.0000, -1.0000, 2.0000, 50.0000, 0.0000, 0.0000, 2.3669),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0009, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0010, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0011, 7.2195),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0012, 7.2195),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0009, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0010, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0011, -2.4900, 4.7461),
    (50.0000, 2.5000, 0.0000, 50.0000, 0.0000, -2.5000, 4.3065),
    (50.0000, 2.5000, 0.0000, 73.0000, 25.0000, -18.0000, 27.1492),
    (50.0000, 2.5000, 0.0000, 61.0000, -5.0000, 29.0000, 22.8977),
    (50.0000, 2.5000, 0.0000, 56.0000, -27.0000, -3.0000, 31.9030),
    (50.0000, 2.5000, 0.0000, 58.0000, 24.0000, 15.0000, 19.4535),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.1736, 0.5854, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2972, 0.0000, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 1.8634, 0.5757, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2592, 0.3350, 1.0000),
    (60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644),
    (63.0109, -31.0961, -5.8663, 62.8187, -29.7946, -4.0864, 1.2630),
    (61.2901, 3.7196, -5.3901, 61.4292, 2.2480, -4.9620, 1.8731),
    (35.0831, -44.1164, 3.7933, 35.0232, -40.0716, 1.5901, 1.8645),
    (22.7233, 20.0904, -46.6940, 23.0331, 14.9730, -42.5619, 2.0373),
    (36.4612, 47.8580, 18.3852, 36.2715, 50.5065, 21.2231, 1.4146),
    (90.8027, -2.0831, 1.4410, 91.1528, -1.6435, 0.0447, 1.4441),
    (90.9257, -0.5406, -0.9208, 88.6381, -0.8985, -0.7239, 1.5381),
    (6.7747, -0.2908, -2.4247, 5.8714, -0.0985, -2.2286, 0.6377),
    (2.0776, 0.0795, -1.1350, 0.9033, -0.0636, -0.5514, 0.9082),
]


def test_sharma_pairs_to_1e4_in_one_vectorised_call() -> None:
    table = np.array(SHARMA)
    assert table.shape == (34, 7)
    got = ciede2000(table[:, :3], table[:, 3:6])
    assert got.shape == (34,)
    np.testing.assert_allclose(got, table[:, 6], atol=1e-4)


def test_sharma_pairs_are_symmetric() -> None:
    table = np.array(SHARMA)
    np.testing.assert_allclose(ciede2000(table[:, 3:6], table[:, :3]), table[:, 6], atol=1e-4)


def test_agrees_with_scikit_image_on_random_colours() -> None:
    rng = np.random.default_rng(0)
    a = np.column_stack([rng.uniform(0, 100, 5000), rng.uniform(-110, 110, 5000), rng.uniform(-110, 110, 5000)])
    b = np.column_stack([rng.uniform(0, 100, 5000), rng.uniform(-110, 110, 5000), rng.uniform(-110, 110, 5000)])
    np.testing.assert_allclose(ciede2000(a, b), deltaE_ciede2000(a, b), atol=1e-6)


def test_broadcasts_one_query_against_many_images() -> None:
    rng = np.random.default_rng(1)
    images = rgb_to_lab(rng.integers(0, 256, (7, 64, 3), dtype=np.uint8))
    query = rgb_to_lab(rng.integers(0, 256, (64, 3), dtype=np.uint8))
    out = ciede2000(images, query[None])
    assert out.shape == (7, 64)
    np.testing.assert_allclose(out[3], ciede2000(images[3], query))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 1, allow_nan=False), min_size=6, max_size=6))
def test_distance_is_symmetric_zero_on_identity(values: list[float]) -> None:
    a = rgb_to_lab(np.array(values[:3]))
    b = rgb_to_lab(np.array(values[3:]))
    assert ciede2000(a, a) == pytest.approx(0.0, abs=1e-9)
    assert ciede2000(a, b) == pytest.approx(float(ciede2000(b, a)), abs=1e-9)
    assert ciede2000(a, b) >= 0


def test_lab_matches_scikit_image() -> None:
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (50, 50, 3), dtype=np.uint8)
    np.testing.assert_allclose(rgb_to_lab(rgb), rgb2lab(rgb), atol=1e-3)


def test_hsv_matches_colorsys() -> None:
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (200, 3), dtype=np.uint8)
    ours = rgb_to_hsv(rgb)
    for pixel, (h, s, v) in zip(rgb, ours, strict=True):
        rh, rs, rv = colorsys.rgb_to_hsv(*(pixel / 255.0))
        assert hue_distance(h, rh * 360) < 1e-6 and s == pytest.approx(rs) and v == pytest.approx(rv)


def test_dominant_hue_and_complement_band() -> None:
    red = np.tile(np.array([[230, 20, 20]], dtype=np.uint8), (100, 1))
    hsv = rgb_to_hsv(red)
    hue = dominant_hue(hsv, np.ones(100, dtype=bool))
    assert hue is not None and hue_distance(hue, 0.0) < 1.0
    cyan = rgb_to_hsv(np.tile(np.array([[20, 220, 220]], dtype=np.uint8), (2, 50, 1)))
    cyan[1, :25] = rgb_to_hsv(np.array([230, 20, 20], dtype=np.uint8))
    fractions = complement_fraction(cyan, np.ones((2, 50), dtype=bool), (hue + 180) % 360, 30)
    np.testing.assert_allclose(fractions, [1.0, 0.5])
    grey = rgb_to_hsv(np.full((10, 3), 128, dtype=np.uint8))
    assert dominant_hue(grey, np.ones(10, dtype=bool)) is None
