"""Fakes and fixtures of the tagger unit tests (no Ray)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from percept.tagger.aggregate import Detection


class FakeClassifier:
    """Labels an image by its dominant colour: red → "fire engine", blue → "lakeside"."""

    def __init__(self) -> None:
        self.calls = 0

    def classify(self, image: np.ndarray, k: int) -> list[tuple[str, float]]:
        self.calls += 1
        r, g, b = (float(c) for c in np.asarray(image).reshape(-1, 3).mean(axis=0))
        scores = {"fire engine": r, "lakeside": b, "lawn": g, "other": 20.0}
        total = sum(scores.values())
        ranked = sorted(((label, s / total) for label, s in scores.items()), key=lambda x: -x[1])
        return ranked[:k]

    def usage(self) -> dict[str, float]:
        return {"ram_gib": 0.5, "gpu_gib": 0.0}


class FakeDetector:
    """Finds one "car" per 40 px of red-channel mean and two "person"s everywhere."""

    def __init__(self, available: bool = True) -> None:
        self.available = available

    def unavailable_reason(self) -> str | None:
        return None if self.available else "unavailable: weights for tagger object detector not found in /m"

    def detect(self, images: list[np.ndarray], threshold: float) -> list[list[Detection]]:
        out = []
        for image in images:
            cars = int(np.asarray(image)[..., 0].mean() // 40)
            found: list[Detection] = [{"label": "car", "score": 0.9, "box": [0, 0, 1, 1]}] * cars
            found += [{"label": "person", "score": 0.8, "box": [0, 0, 2, 2]}] * 2
            out.append([d for d in found if d["score"] >= threshold])
        return out

    def usage(self) -> dict[str, float]:
        return {"ram_gib": 0.25, "gpu_gib": 0.0}


@pytest.fixture
def fake_classifier() -> FakeClassifier:
    return FakeClassifier()


def solid(colour: tuple[int, int, int], size: tuple[int, int] = (48, 64)) -> np.ndarray:
    image = np.empty((*size, 3), np.uint8)
    image[:] = colour
    return image


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    path = tmp_path / "models"
    path.mkdir()
    return path
