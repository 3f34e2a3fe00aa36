"""Training and prediction, Ray-free: what the trainer and predictor deployments wrap.

A trained model is the fitted detector plus its calibration: the median and the high
quantile of the pixel anomaly maps of the good training images. Maps are normalised so that
``0`` is a typical good pixel and ``1`` the calibrated threshold; a region above
``sensitivity`` of at least ``min_defect_area`` pixels is a defect.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from percept.inspection.algorithms import ALGORITHMS, PatchDetector
from percept.inspection.imaging import find_boxes, heatmap_png, scores_to_map, to_working

logger = logging.getLogger(__name__)
FORMAT_VERSION = 1
Progress = Callable[[float, str], None]


@dataclass
class TrainedModel:
    """A fitted detector with its calibration, serialisable to bytes for the blob store."""

    algorithm_id: str
    params: dict[str, Any]
    detector: PatchDetector
    work_size: int
    median: float = 0.0
    threshold: float = 1.0
    info: dict[str, Any] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        return pickle.dumps({"format": FORMAT_VERSION, "model": self}, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def from_bytes(data: bytes) -> TrainedModel:
        # Only bytes this service wrote into its own blob store are ever unpickled.
        payload = pickle.loads(data)  # noqa: S301
        if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
            raise ValueError("unsupported model file")
        model = payload["model"]
        assert isinstance(model, TrainedModel)
        return model


@dataclass
class Prediction:
    """The verdict on one image."""

    good: bool
    score: float
    boxes: list[dict[str, Any]]
    norm_map: np.ndarray
    level: float

    @property
    def detected_objects(self) -> int:
        return len(self.boxes)

    @property
    def detection_accuracy(self) -> float:
        """Confidence (50–100 %) in the OK/NG verdict: 50 at the threshold, 100 at twice or zero."""
        distance = abs(self.score - self.level) / max(self.level, 1e-6)
        return round(50.0 + 50.0 * min(1.0, distance), 1)

    def heatmap_png(self) -> bytes:
        return heatmap_png(self.norm_map, self.level)

    def summary(self) -> dict[str, Any]:
        return {
            "good": self.good,
            "score": round(float(self.score), 4),
            "detected_objects": self.detected_objects,
            "detection_accuracy": self.detection_accuracy,
            "boxes": self.boxes,
        }


def _raw_map(detector: PatchDetector, work: np.ndarray) -> np.ndarray:
    scores, grid = detector.score_image(work)
    raw = scores_to_map(scores, grid, work.shape[:2])
    sigma = max(1.0, min(detector.patch) / 4.0)
    return cv2.GaussianBlur(raw, (0, 0), sigma)


def split_for_calibration(works: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Fit on about 70 % of the good images, calibrate on the rest (all of them if only one).

    Calibrating on images the detector has not seen keeps the threshold honest: in-sample
    errors are optimistic and made the first version flag good images.
    """
    if len(works) < 2:
        return works, works
    held = max(1, round(0.3 * len(works)))
    return works[:-held], works[-held:]


def train(
    algorithm_id: str,
    params: dict[str, Any],
    images: Sequence[np.ndarray],
    *,
    work_size: int = 256,
    progress: Progress | None = None,
    seed: int = 0,
) -> TrainedModel:
    """Fit ``algorithm_id`` on good RGB images and calibrate its threshold on them."""
    if not images:
        raise ValueError("no good images to train on")
    report = progress or (lambda _p, _m: None)
    started = time.perf_counter()
    algorithm = ALGORITHMS[algorithm_id]
    detector = algorithm.detector(params)
    works = [to_working(img, work_size)[0] for img in images]
    fit_set, held_out = split_for_calibration(works)
    report(10, f"fitting {algorithm_id} on {len(fit_set)} images")
    detector.fit(fit_set, np.random.default_rng(seed))
    report(60, f"calibrating the threshold on {len(held_out)} held-out good images")
    maps = []
    for i, work in enumerate(held_out):
        maps.append(_raw_map(detector, work))
        report(60 + 35 * (i + 1) / len(held_out), f"calibrated {i + 1} of {len(held_out)}")
    values = np.concatenate([m.ravel() for m in maps])
    median = float(np.median(values))
    # The threshold is the highest pixel of any held-out good image: the good images set the bar.
    high = max(float(m.max()) for m in maps)
    threshold = high if high > median else median + 1e-6
    model = TrainedModel(algorithm_id, dict(params), detector, work_size, median, threshold)
    model.info = {"train_seconds": round(time.perf_counter() - started, 3), "images": len(works), "calibration_images": len(held_out)}
    report(100, "trained")
    return model


def predict(model: TrainedModel, image: np.ndarray) -> Prediction:
    """OK/NG, the normalised anomaly map and the defect boxes of one RGB image."""
    work, scale = to_working(image, model.work_size)
    raw = _raw_map(model.detector, work)
    norm = (raw - model.median) / (model.threshold - model.median)
    level = float(model.params.get("sensitivity", 1.0))
    min_area = int(model.params.get("min_defect_area", 12))
    boxes = find_boxes(norm, level, min_area, scale, image.shape[:2])
    return Prediction(good=not boxes, score=float(norm.max()), boxes=boxes, norm_map=norm, level=level)
