"""Feature choice and the EfficientNet path of the featurizer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from percept.correction.features import Featurizer, choose_kind, rows_of


def _write(path: Path, side: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(path)
    return str(path)


def test_auto_picks_pixels_for_tiny_images_and_imagenet_for_photos(tmp_path: Path) -> None:
    tiny = [_write(tmp_path / f"t{i}.png", 16, i) for i in range(3)]
    big = [_write(tmp_path / f"b{i}.png", 96, i) for i in range(3)]
    assert choose_kind("auto", tiny) == "pixels"
    assert choose_kind("auto", big) == "imagenet"
    assert choose_kind("pixels", big) == "pixels"
    assert choose_kind("auto", [str(tmp_path / "missing.png")]) == "pixels"


def test_imagenet_featurizer_gives_unit_embeddings(tmp_path: Path) -> None:
    paths = [_write(tmp_path / f"b{i}.png", 80, i) for i in range(2)] + [str(tmp_path / "gone.png")]
    rows = rows_of(Featurizer("imagenet")({"path": paths, "uuid": ["a", "b", "c"]}))
    assert rows[0]["features"].shape == (1280,)
    assert abs(float(np.linalg.norm(rows[0]["features"])) - 1.0) < 1e-4
    assert not np.allclose(rows[0]["features"], rows[1]["features"])
    assert rows[2]["error"] and not rows[2]["features"].any()
