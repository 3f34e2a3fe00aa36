"""Training and prediction, Ray-free: what the trainer and predictor deployments wrap.

A trained model is the fitted detector plus its calibration: ``median``, a typical pixel of
a good image's anomaly map, and ``threshold``, the image score above which an image is
defective. Maps are normalised so that ``0`` is a typical good pixel and ``1`` the
threshold.

* ``patchcore`` calibrates by leave-one-out: every training image is scored against a
  memory bank without its own patches; the threshold sits ``threshold_sigmas`` standard
  deviations above the mean of those image scores, on a log scale (:func:`good_threshold`). Labelled defect images, when given, move the threshold to
  where it best separates them from the good ones (never below what lets 5 % of the good
  images through).
* the weight-free detectors are fitted on ~70 % of the good images and take the highest
  pixel of the other ~30 % as the threshold.

A defect is a connected region of the map: it starts where the map exceeds
``sensitivity`` (the threshold) and extends over the neighbouring pixels above
``box_level``; regions closer than ``merge_distance`` pixels are one defect; regions under
``min_defect_area`` pixels are ignored. An image is NG when it has a defect.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from percept.inspection.algorithms import ALGORITHMS, Algorithm, PatchDetector
from percept.inspection.imaging import find_boxes, heatmap_png, to_working
from percept.inspection.patchcore import FeatureBackbone, PatchCoreDetector

logger = logging.getLogger(__name__)
FORMAT_VERSION = 1
Progress = Callable[[float, str], None]


@dataclass
class TrainedModel:
    """A fitted detector with its calibration, serialisable to bytes for the blob store."""

    algorithm_id: str
    params: dict[str, Any]
    detector: PatchDetector | PatchCoreDetector
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


def split_for_calibration(works: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Fit on about 70 % of the good images, calibrate on the rest (all of them if only one).

    Calibrating on images the detector has not seen keeps the threshold honest: in-sample
    errors are optimistic and made the first version flag good images.
    """
    if len(works) < 2:
        return works, works
    held = max(1, round(0.3 * len(works)))
    return works[:-held], works[-held:]


# How far below the others (robust standard deviations of the log excess) a good image's score
# is taken for a near-duplicate and left out of the threshold's fit.
LOW_OUTLIER = 6.0

# The most good images a threshold chosen with labelled defects may let through.
MAX_GOOD_FLAGGED = 0.05


def good_threshold(scores: Sequence[float], median: float, sigmas: float) -> float:
    """The threshold from the good images' (leave-one-out) image scores alone.

    The scores' excess over a typical good pixel (``score − median``) is positive and
    right-skewed (an image score is a maximum), so the rule works on its logarithm: the
    threshold sits ``sigmas`` standard deviations above the mean of ``log(score − median)``
    (a log-normal tail). On 20 scores a plain mean + k·sd rule let through 4–8 % of the good
    images of a category at k = 2 and needed k ≈ 3.5 to hold 1 %; at equal false positives
    the log rule catches more defects. With fewer than five images, where a spread means
    little, the threshold is a quarter of the way above the highest again.
    """
    values = np.asarray(scores, dtype=float)
    high = float(values.max())
    if len(values) < 5:
        return high + 0.25 * max(high - median, 1e-6)
    above = values - median
    # A duplicated or near-duplicated good image scores at or just above the typical pixel
    # (its twin is in the bank). Such a score says nothing about the tail and lies below any
    # threshold, but its logarithm sits far below the rest and would blow up the spread, and
    # with it the threshold (one duplicate: x250). Scores at or under the median, and log
    # excesses more than LOW_OUTLIER robust deviations below the others, are left out of the
    # fit; on ordinary scores nothing is.
    positive = above[above > 0]
    excess = np.log(positive) if len(positive) else positive
    if len(excess) >= 5:
        centre = float(np.median(excess))
        spread = 1.4826 * float(np.median(np.abs(excess - centre)))
        excess = excess[excess >= centre - LOW_OUTLIER * spread]
    if len(excess) < 5:
        return high + 0.25 * max(high - median, 1e-6)
    return float(median + np.exp(excess.mean() + sigmas * excess.std()))


def labelled_threshold(good: Sequence[float], defective: Sequence[float], base: float) -> float:
    """The threshold that best separates labelled defect images from the good ones.

    Candidates lie between consecutive scores; the best maximises caught defects minus
    flagged good images, and must flag at most :data:`MAX_GOOD_FLAGGED` of the good images;
    among equals, the one nearest ``base`` (the good-only threshold) wins.
    """
    if not defective or not good:
        return base
    values = np.sort(np.concatenate([np.asarray(good, float), np.asarray(defective, float), [base]]))
    candidates = np.unique(np.concatenate([(values[:-1] + values[1:]) / 2, [base]]))
    g, d = np.asarray(good, float), np.asarray(defective, float)
    floor = float(np.quantile(g, 1.0 - MAX_GOOD_FLAGGED))
    best, best_key = base, (-np.inf, 0.0)
    for t in candidates:
        if t < floor:
            continue
        key = (float((d > t).mean() - (g > t).mean()), -abs(float(t) - base))
        if key > best_key:
            best, best_key = float(t), key
    return best


def _works(images: Sequence[np.ndarray], work_size: int) -> list[np.ndarray]:
    return [to_working(img, work_size)[0] for img in images]


def train(
    algorithm_id: str | Algorithm,
    params: dict[str, Any],
    images: Sequence[np.ndarray],
    *,
    work_size: int = 256,
    progress: Progress | None = None,
    seed: int = 0,
    backbone: FeatureBackbone | None = None,
    defects: Sequence[np.ndarray] = (),
) -> TrainedModel:
    """Fit ``algorithm_id`` on good RGB images and calibrate its threshold on them.

    ``defects``: images labelled defective, used only to place the threshold.
    ``algorithm_id`` may also be an :class:`Algorithm` not listed in ``ALGORITHMS`` (baselines).
    """
    if not images:
        raise ValueError("no good images to train on")
    report = progress or (lambda _p, _m: None)
    started = time.perf_counter()
    algorithm = algorithm_id if isinstance(algorithm_id, Algorithm) else ALGORITHMS[algorithm_id]
    works = _works(images, work_size)
    detector: PatchDetector | PatchCoreDetector
    if algorithm.needs_backbone:
        detector = PatchCoreDetector(params)
        detector.attach(backbone or default_backbone())
        report(10, f"building the memory bank from {len(works)} images")
        maps = detector.fit(works, seed)
        median = float(np.median(np.concatenate([m.ravel() for m in maps])))
        scores = [detector.image_score(m) for m in maps]
        threshold = good_threshold(scores, median, float(params.get("threshold_sigmas", 3.0)))
        calibration = len(maps)
    else:
        patch_detector = algorithm.detector(params)
        assert isinstance(patch_detector, PatchDetector)
        detector = patch_detector
        fit_set, held_out = split_for_calibration(works)
        report(10, f"fitting {algorithm.algorithm_id} on {len(fit_set)} images")
        patch_detector.fit(fit_set, np.random.default_rng(seed))
        report(60, f"calibrating the threshold on {len(held_out)} held-out good images")
        maps = patch_detector.anomaly_maps(held_out)
        median = float(np.median(np.concatenate([m.ravel() for m in maps])))
        scores = [float(m.max()) for m in maps]
        # The highest pixel of any held-out good image: the good images set the bar.
        threshold = max(scores)
        calibration = len(held_out)
    threshold = threshold if threshold > median else median + 1e-6
    info: dict[str, Any] = {"images": len(works), "calibration_images": calibration}
    if defects:
        report(90, f"placing the threshold with {len(defects)} labelled defect images")
        defect_maps = detector.anomaly_maps(_works(defects, work_size))
        defect_scores = [image_score(detector, m) for m in defect_maps]
        chosen = labelled_threshold(scores, defect_scores, threshold)
        info.update(defect_images=len(defects), good_only_threshold=round(threshold, 4),
                    defects_caught=round(float(np.mean([d > chosen for d in defect_scores])), 3))
        threshold = chosen if chosen > median else threshold
    if isinstance(detector, PatchCoreDetector):
        info.update(detector.info_)
    model = TrainedModel(algorithm.algorithm_id, dict(params), detector, work_size, median, threshold)
    info["train_seconds"] = round(time.perf_counter() - started, 3)
    model.info = info
    report(100, "trained")
    return model


def image_score(detector: PatchDetector | PatchCoreDetector, score_map: np.ndarray) -> float:
    """An image's score from its map: PatchCore's own rule, else the map's maximum."""
    if isinstance(detector, PatchCoreDetector):
        return detector.image_score(score_map)
    return float(score_map.max())


_DEFAULT_BACKBONE: list[FeatureBackbone] = []


def default_backbone() -> FeatureBackbone:
    """The in-process EfficientNet-Lite0 (loaded once per process)."""
    if not _DEFAULT_BACKBONE:
        from percept.inspection.patchcore import LocalBackbone

        _DEFAULT_BACKBONE.append(LocalBackbone())
    return _DEFAULT_BACKBONE[0]


def predict_many(
    model: TrainedModel, images: Sequence[np.ndarray], backbone: FeatureBackbone | None = None
) -> list[Prediction]:
    """OK/NG, the normalised anomaly map and the defect boxes of each RGB image."""
    if not images:
        return []
    detector = model.detector
    if isinstance(detector, PatchCoreDetector) and (backbone is not None or detector._backbone is None):
        detector.attach(backbone or default_backbone())
    prepared = [to_working(img, model.work_size) for img in images]
    raws = detector.anomaly_maps([work for work, _ in prepared])
    return [judge(model, raw, scale, image.shape[:2]) for image, (_, scale), raw in zip(images, prepared, raws, strict=True)]


def judge(model: TrainedModel, raw: np.ndarray, scale: float, original: tuple[int, int]) -> Prediction:
    """The verdict on one image from its raw anomaly map (``scale``: original pixels per
    working pixel; ``original``: the image's height and width)."""
    level = float(model.params.get("sensitivity", 1.0))
    grow = float(model.params.get("box_level", level))
    min_area = int(model.params.get("min_defect_area", 12))
    merge = int(model.params.get("merge_distance", 0))
    relative = float(model.params.get("box_relative", 0.0))
    norm = (raw - model.median) / (model.threshold - model.median)
    score = image_score(model.detector, norm)
    # NG needs the image score over the level and a defect region; with PatchCore's
    # top-share score a single hot pixel over the level is not yet a defect
    boxes = find_boxes(norm, level, min_area, scale, original, grow=min(grow, level), merge=merge,
                       relative=relative) if score > level else []
    return Prediction(good=not boxes, score=score, boxes=boxes, norm_map=norm, level=level)


def predict(model: TrainedModel, image: np.ndarray, backbone: FeatureBackbone | None = None) -> Prediction:
    """OK/NG, the normalised anomaly map and the defect boxes of one RGB image."""
    return predict_many(model, [image], backbone)[0]
