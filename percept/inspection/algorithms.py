"""The anomaly detectors, trained from good images only, and their typed parameters.

Each detector turns an image into a pixel anomaly map; :mod:`percept.inspection.engine`
calibrates a threshold on the good images and finds boxes. Algorithms (the default first):

* ``patchcore`` (default): PatchCore on mid-level features of the offline ImageNet
  backbone (:mod:`percept.inspection.patchcore`): coreset memory bank, nearest-neighbour
  patch distances, leave-one-out threshold, optional position-aware scoring.

The weight-free ones, for machines that configure no backbone:

* ``hacarus-dictionary-learning``: a patch dictionary (MiniBatchDictionaryLearning), OMP
  sparse codes, score = reconstruction error of the patch.
* ``OC``: a one-class SVM on hand-made patch features (colour mean/std, gradients, DCT).
* ``isolation-forest``: the simple baseline, an IsolationForest on patch mean/std.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from percept.inspection.imaging import extract_patches, scores_to_map
from percept.inspection.patchcore import PatchCoreDetector

CREATED_AT = "2026-11-23T00:00:00Z"


@dataclass(frozen=True)
class ParamSpec:
    """One typed algorithm parameter as ``/api/v1/algorithms`` lists it."""

    id: int
    name: str
    data_type: str  # int | float | tuple
    default: str
    low: float
    high: float
    model_parameter: bool = True
    lengths: tuple[int, int] = (2, 2)  # a tuple's fewest and most items

    def parse(self, value: Any) -> Any:
        """The typed value; ValueError with a readable reason when invalid."""
        if self.data_type == "tuple":
            items = _parse_tuple(value)
            fewest, most = self.lengths
            if not fewest <= len(items) <= most or any(not self.low <= v <= self.high for v in items):
                count = "two" if (fewest, most) == (2, 2) else f"{fewest} to {most}"
                raise ValueError(f"{self.name} must be {count} integers in [{self.low:g}, {self.high:g}]")
            return tuple(items)
        try:
            number = int(str(value)) if self.data_type == "int" else float(str(value))
        except ValueError:
            raise ValueError(f"{self.name} must be of type {self.data_type}") from None
        if not self.low <= number <= self.high:
            raise ValueError(f"{self.name} must be in [{self.low:g}, {self.high:g}]")
        return number

    def describe(self) -> dict[str, Any]:
        return {
            "algorithm_parameter_id": self.id,
            "created_at": CREATED_AT,
            "data_type": self.data_type,
            "model_parameter": self.model_parameter,
            "name": self.name,
            "updated_at": CREATED_AT,
            "value": self.default,
        }


def _parse_tuple(value: Any) -> list[int]:
    if isinstance(value, (list, tuple)):
        raw = list(value)
    else:
        text = str(value).strip().replace("(", "[").replace(")", "]")
        if not text.startswith("["):
            text = f"[{text}]"
        try:
            raw = json.loads(text)
        except json.JSONDecodeError:
            raise ValueError("expected a pair such as [8, 8]") from None
    if isinstance(raw, int):
        raw = [raw, raw]
    try:
        return [int(v) for v in raw]
    except (TypeError, ValueError):
        raise ValueError("expected a pair of integers such as [8, 8]") from None


# Shared knobs of every algorithm (ids are stable: clients send them back when training).
def _common(base: int, patch: str, stride: str) -> list[ParamSpec]:
    return [
        ParamSpec(base + 1, "patch_size", "tuple", patch, 2, 64),
        ParamSpec(base + 2, "stride", "int", stride, 1, 64),
        ParamSpec(base + 3, "sensitivity", "float", "1.0", 0.1, 10.0, False),
        ParamSpec(base + 4, "min_defect_area", "int", "24", 1, 100000, False),
        ParamSpec(base + 5, "max_training_patches", "int", "5000", 200, 50000, False),
    ]


class PatchDetector:
    """Base: fit on patches of good images, score patches (higher = more anomalous)."""

    algorithm_id = ""
    name = ""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params
        self.patch: tuple[int, int] = tuple(params["patch_size"])  # type: ignore[assignment]
        self.stride = int(params["stride"])

    def features(self, patches: np.ndarray) -> np.ndarray:
        return patches

    def fit(self, images: list[np.ndarray], rng: np.random.Generator) -> None:
        per_image = max(1, int(self.params["max_training_patches"]) // max(1, len(images)))
        rows = []
        for img in images:
            patches, _ = extract_patches(img, self.patch, self.stride)
            pick = rng.choice(len(patches), size=min(per_image, len(patches)), replace=False)
            rows.append(self.features(patches[pick]))
        self.fit_features(np.concatenate(rows))

    def fit_features(self, feats: np.ndarray) -> None:
        raise NotImplementedError

    def score_image(self, img: np.ndarray) -> tuple[np.ndarray, Any]:
        patches, grid = extract_patches(img, self.patch, self.stride)
        return self.score_features(self.features(patches)), grid

    def score_features(self, feats: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def anomaly_maps(self, works: list[np.ndarray]) -> list[np.ndarray]:
        """Smoothed pixel maps: patch scores averaged over the pixels each patch covers."""
        maps = []
        for work in works:
            scores, grid = self.score_image(work)
            raw = scores_to_map(scores, grid, work.shape[:2])
            maps.append(cv2.GaussianBlur(raw, (0, 0), max(1.0, min(self.patch) / 4.0)))
        return maps


class DictionaryDetector(PatchDetector):
    """Sparse coding: patches a small dictionary cannot rebuild with few atoms are defects."""

    algorithm_id = "hacarus-dictionary-learning"
    name = "Dictionary learning (sparse coding)"

    def fit_features(self, feats: np.ndarray) -> None:
        from sklearn.decomposition import MiniBatchDictionaryLearning

        self.mean_ = feats.mean(axis=0)
        learner = MiniBatchDictionaryLearning(
            n_components=int(self.params["n_components"]),
            alpha=float(self.params["alpha"]),
            batch_size=256,
            max_iter=1,
            fit_algorithm="cd",
            random_state=0,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            learner.fit(feats - self.mean_)
        self.components_ = learner.components_.astype(np.float32)
        # Scales of the two terms on the training patches, so they add up in z units.
        errors = self._errors(feats)
        self.err_mu_, self.err_sigma_ = float(errors.mean()), float(errors.std() + 1e-9)
        stats = colour_statistics(feats, self.patch)
        self.stat_mu_, self.stat_sigma_ = stats.mean(axis=0), np.maximum(stats.std(axis=0), MIN_SPREAD)

    def _errors(self, feats: np.ndarray) -> np.ndarray:
        centred = feats - self.mean_
        residual = omp_residual(centred, self.components_, int(self.params["n_nonzero_coefs"]))
        return np.asarray((residual**2).mean(axis=1), dtype=np.float32)

    def score_features(self, feats: np.ndarray) -> np.ndarray:
        """Reconstruction error in z units, plus (``stats_weight``) how far the patch's colour
        mean/std lie from the good patches': smooth defects (flat blobs, stains) are easy to
        rebuild from a dictionary, so the reconstruction error alone misses them."""
        err = (self._errors(feats) - self.err_mu_) / self.err_sigma_
        weight = float(self.params.get("stats_weight", 0.0))
        if weight <= 0:
            return np.asarray(err, dtype=np.float32)
        z = np.abs((colour_statistics(feats, self.patch) - self.stat_mu_) / self.stat_sigma_)
        return np.asarray(err + weight * z.max(axis=1), dtype=np.float32)


def omp_residual(signals: np.ndarray, atoms: np.ndarray, n_nonzero: int) -> np.ndarray:
    """Residuals of orthogonal matching pursuit, batched over all signals at once.

    Same greedy rule as scikit-learn's OMP (pick the atom most correlated with the residual,
    re-fit the selected atoms by least squares), vectorised because every image has
    thousands of patches and only a handful of atoms are selected per patch.
    """
    norms = np.linalg.norm(atoms, axis=1, keepdims=True)
    dictionary = atoms / np.maximum(norms, 1e-12)
    n = len(signals)
    residual = signals.astype(np.float64)
    chosen = np.zeros((n, 0), dtype=np.int64)
    rows = np.arange(n)
    for _ in range(min(n_nonzero, len(dictionary))):
        corr = np.abs(residual @ dictionary.T)
        if chosen.shape[1]:
            corr[rows[:, None], chosen] = -1.0
        chosen = np.concatenate([chosen, corr.argmax(axis=1)[:, None]], axis=1)
        sel = dictionary[chosen]  # (n, s, dim)
        gram = sel @ sel.transpose(0, 2, 1) + 1e-9 * np.eye(chosen.shape[1])
        rhs = np.einsum("nsd,nd->ns", sel, signals)
        coef = np.linalg.solve(gram, rhs[..., None])[..., 0]
        residual = signals - np.einsum("ns,nsd->nd", coef, sel)
    return residual


def patch_statistics(patches: np.ndarray, patch: tuple[int, int]) -> np.ndarray:
    """Per-channel mean and std of each patch (rows are channel-major ``C×ph×pw``)."""
    ph, pw = patch
    cube = patches.reshape(len(patches), -1, ph * pw)
    return np.concatenate([cube.mean(axis=2), cube.std(axis=2)], axis=1)


def colour_statistics(patches: np.ndarray, patch: tuple[int, int]) -> np.ndarray:
    """Per-channel mean/std plus the mean chroma (R−G, B−G): a colour stain on a gray or
    uniformly coloured product moves the chroma even where brightness looks normal."""
    ph, pw = patch
    cube = patches.reshape(len(patches), -1, ph * pw)
    stats = patch_statistics(patches, patch)
    if cube.shape[1] < 3:
        return stats
    chroma = np.stack([(cube[:, 0] - cube[:, 1]).mean(axis=1), (cube[:, 2] - cube[:, 1]).mean(axis=1)], axis=1)
    return np.concatenate([stats, chroma], axis=1)


# Feature spreads below this (in [0, 1] intensity units) are treated as this: a gray product's
# chroma has no spread at all, and dividing by ~0 would turn noise into defects.
MIN_SPREAD = 0.01


def texture_features(patches: np.ndarray, patch: tuple[int, int]) -> np.ndarray:
    """Colour statistics plus gradient energy and low-frequency DCT terms of the gray patch."""
    ph, pw = patch
    cube = patches.reshape(len(patches), -1, ph, pw)
    gray = cube.mean(axis=1)
    gy = np.diff(gray, axis=1)
    gx = np.diff(gray, axis=2)
    grad = np.concatenate(
        [np.abs(gx).mean(axis=(1, 2))[:, None], np.abs(gy).mean(axis=(1, 2))[:, None],
         np.abs(gx).max(axis=(1, 2))[:, None], np.abs(gy).max(axis=(1, 2))[:, None]], axis=1
    )
    dct = np.stack([cv2.dct(g.astype(np.float32))[:3, :3].ravel()[1:] for g in gray]) if ph % 2 == 0 and pw % 2 == 0 \
        else np.zeros((len(patches), 8), np.float32)
    return np.concatenate([colour_statistics(patches, patch), grad, np.abs(dct)], axis=1).astype(np.float32)


class OneClassDetector(PatchDetector):
    """A one-class SVM (``nu`` up to ``nu_max``) on patch texture features."""

    algorithm_id = "OC"
    name = "OC"

    def features(self, patches: np.ndarray) -> np.ndarray:
        return texture_features(patches, self.patch)

    def fit_features(self, feats: np.ndarray) -> None:
        from sklearn.svm import OneClassSVM

        self.mu_, self.sigma_ = feats.mean(axis=0), np.maximum(feats.std(axis=0), MIN_SPREAD)
        self.model_ = OneClassSVM(nu=float(self.params["nu_max"]), gamma="scale").fit((feats - self.mu_) / self.sigma_)

    def score_features(self, feats: np.ndarray) -> np.ndarray:
        return np.asarray(-self.model_.decision_function((feats - self.mu_) / self.sigma_), dtype=np.float32)


class IsolationForestDetector(PatchDetector):
    """The baseline: an IsolationForest on patch mean and standard deviation."""

    algorithm_id = "isolation-forest"
    name = "Isolation forest on patch statistics (baseline)"

    def features(self, patches: np.ndarray) -> np.ndarray:
        return patch_statistics(patches, self.patch)

    def fit_features(self, feats: np.ndarray) -> None:
        from sklearn.ensemble import IsolationForest

        self.model_ = IsolationForest(
            n_estimators=int(self.params["n_estimators"]), random_state=0
        ).fit(feats)

    def score_features(self, feats: np.ndarray) -> np.ndarray:
        return np.asarray(-self.model_.score_samples(feats), dtype=np.float32)


@dataclass(frozen=True)
class Algorithm:
    """An algorithm as the API lists it, with the detector class that implements it."""

    algorithm_id: str
    name: str
    detector: type[PatchDetector] | type[PatchCoreDetector]
    params: tuple[ParamSpec, ...]

    @property
    def needs_backbone(self) -> bool:
        return bool(getattr(self.detector, "needs_backbone", False))

    def describe(self) -> dict[str, Any]:
        return {
            "algorithm_id": self.algorithm_id,
            "name": self.name,
            "parameters": [p.describe() for p in self.params],
        }

    def resolve(self, overrides: list[tuple[int, Any]] | None) -> dict[str, Any]:
        """Defaults with the overrides applied; ValueError naming every bad override."""
        by_id = {p.id: p for p in self.params}
        values = {p.name: p.parse(p.default) for p in self.params}
        problems: list[str] = []
        for param_id, value in overrides or []:
            spec = by_id.get(param_id)
            if spec is None:
                problems.append(f"Unknown algorithm_parameter_id {param_id} for {self.algorithm_id}")
                continue
            try:
                values[spec.name] = spec.parse(value)
            except ValueError as exc:
                problems.append(str(exc))
        if problems:
            raise ValueError(problems)
        return values


DEFAULT_ALGORITHM = "patchcore"

ALGORITHMS: dict[str, Algorithm] = {
    a.algorithm_id: a
    for a in (
        Algorithm(
            "patchcore", PatchCoreDetector.name, PatchCoreDetector,
            (ParamSpec(403, "sensitivity", "float", "1.0", 0.1, 10.0, False),
             ParamSpec(404, "min_defect_area", "int", "24", 1, 100000, False),
             ParamSpec(411, "feature_blocks", "tuple", "[2, 4, 10]", 0, 15, lengths=(1, 4)),
             ParamSpec(412, "input_size", "int", "256", 64, 640),
             ParamSpec(413, "coreset_ratio", "float", "0.25", 0.005, 1.0),
             ParamSpec(414, "position_aware", "int", "-1", -1, 1),
             ParamSpec(415, "position_weight", "float", "0.15", 0.0, 10.0),
             ParamSpec(416, "smoothing_sigma", "float", "2.0", 0.0, 32.0),
             ParamSpec(417, "box_level", "float", "0.5", 0.05, 1.0, False),
             ParamSpec(418, "merge_distance", "int", "48", 0, 128, False),
             ParamSpec(419, "threshold_sigmas", "float", "3.0", 0.0, 10.0, False),
             ParamSpec(420, "border_pad", "int", "32", 0, 128),
             ParamSpec(421, "box_relative", "float", "0.5", 0.0, 1.0, False),
             ParamSpec(422, "neighbourhood", "int", "3", 1, 9),
             ParamSpec(423, "neighbours", "int", "1", 1, 16),
             ParamSpec(424, "score_top", "float", "0.003", 0.0, 0.5),
             ParamSpec(425, "augment", "int", "0", 0, 7),
             ParamSpec(426, "image_relative", "float", "1.0", 0.0, 1.0),
             ParamSpec(427, "colour_weight", "float", "1.0", 0.0, 10.0),
             ParamSpec(428, "luminance_weight", "float", "1.0", 0.0, 10.0),
             ParamSpec(429, "fine_weight", "float", "0.5", 0.0, 10.0),
             ParamSpec(430, "fine_coreset_ratio", "float", "0.05", 0.005, 1.0)),
        ),
        Algorithm(
            "hacarus-dictionary-learning", DictionaryDetector.name, DictionaryDetector,
            (*_common(100, "[8, 8]", "4"),
             ParamSpec(111, "n_components", "int", "32", 2, 256),
             ParamSpec(112, "n_nonzero_coefs", "int", "3", 1, 32),
             ParamSpec(113, "alpha", "float", "0.1", 0.0001, 100.0),
             ParamSpec(114, "stats_weight", "float", "1.0", 0.0, 10.0)),
        ),
        Algorithm(
            "OC", OneClassDetector.name, OneClassDetector,
            (*_common(200, "[16, 16]", "4"),
             ParamSpec(252, "nu_max", "float", "0.1", 0.001, 0.5)),
        ),
        Algorithm(
            "isolation-forest", IsolationForestDetector.name, IsolationForestDetector,
            (*_common(300, "[16, 16]", "4"),
             ParamSpec(311, "n_estimators", "int", "100", 10, 1000)),
        ),
    )
}
