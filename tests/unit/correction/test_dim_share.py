"""The foreground's dim share (issue 13, round 7): the measure, and the second opinion it gives
on images the lighting trees nearly flag."""

from __future__ import annotations

import numpy as np
import pytest

from percept.correction import analysis
from percept.correction.images import MEASURES, quality_measures


def _soft_strokes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Light strokes on black with a linear anti-aliased fringe, (n, 32, 32)."""
    yy, xx = np.mgrid[0:32, 0:32]
    out = []
    for _ in range(n):
        cx, cy = rng.uniform(12, 20, 2)
        d = np.abs(np.hypot(xx - cx, yy - cy) - 8.0)
        out.append(np.clip(1.0 - (d - 1.0) / 5.0, 0, 1).astype(np.float32))
    return np.stack(out)


def test_dim_share_counts_the_foreground_below_30_percent_of_the_range() -> None:
    img = np.zeros((1, 10, 10), np.float32)
    img[0, 0, :5] = 0.2   # foreground, dim
    img[0, 1, :5] = 0.8   # foreground, bright
    img[0, 2, :5] = 0.02  # under 5 % of the range: background
    img[0, 3, 0] = 1.0
    assert quality_measures(img)[0, MEASURES.index("fg_dim")] == pytest.approx(5 / 11)


def test_gamma_darkening_raises_the_dim_share() -> None:
    clean = _soft_strokes(np.random.default_rng(0), 1)
    col = MEASURES.index("fg_dim")
    assert quality_measures(clean ** 2.0)[0, col] > quality_measures(clean)[0, col] + 0.1


def test_a_near_miss_with_an_unusual_dim_share_is_flagged_dark(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    images = _soft_strokes(rng, 40)
    images[5] = images[5] ** 2.5
    measures = quality_measures(images)
    labels = np.zeros(40, int)
    # The trees' verdict pinned between the threshold and FG_DIM_P_OK for every image: only the
    # second opinion can flag, and only where the dim share and the tone direction agree.
    monkeypatch.setattr(analysis, "lighting_bad_probability", lambda x: np.full(len(x), 0.4))
    found = analysis.find_badly_lit(measures, labels)
    assert np.flatnonzero(found["dark"]).tolist() == [5]
    assert not found["bright"].any()
    # P(ok) above FG_DIM_P_OK: the dim share alone flags nothing.
    monkeypatch.setattr(analysis, "lighting_bad_probability", lambda x: np.full(len(x), 0.2))
    assert not analysis.find_badly_lit(measures, labels)["dark"].any()
