"""Dataset-level findings from per-image features and measures (Ray-free, numpy/sklearn).

* ``out_of_sample_probabilities``: cross-validated class probabilities (the spec's
  ``confidence_vectors``): logistic regression blended with nearest-neighbour labels.
* ``find_mislabeled``: another class beats the given one in those probabilities.
* ``find_splits``: classes that are really several (Gaussian mixtures, BIC, relative rule).
* ``find_blurred`` / ``find_badly_lit``: robust z-scores against the dataset itself.
* ``project_2d``: the scatter-plot coordinates (PCA).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

def robust_z(values: np.ndarray) -> np.ndarray:
    """(v - median) / (1.4826 · MAD); a flat sample gives zeros."""
    med = float(np.median(values))
    mad = float(np.median(np.abs(values - med))) * 1.4826
    if mad < 1e-9:
        return np.zeros_like(values, dtype=np.float64)
    return (values - med) / mad

def reduce_features(features: np.ndarray, dims: int = 50, seed: int = 0) -> np.ndarray:
    """Standardised features reduced by PCA to at most ``dims`` dimensions."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    scaled = StandardScaler().fit_transform(features.astype(np.float64))
    n_comp = int(min(dims, scaled.shape[0] - 1, scaled.shape[1]))
    if n_comp < 1:
        return scaled
    return PCA(n_components=n_comp, random_state=seed).fit_transform(scaled)

def out_of_sample_probabilities(
    features: np.ndarray, labels: np.ndarray, n_classes: int, folds: int = 5, seed: int = 0,
    knn_weight: float = 0.7,
) -> tuple[np.ndarray, list[int]]:
    """Out-of-sample P(class | image), shape (n, n_classes), and the classes left out.

    A blend: ``(1 - knn_weight)`` × a cross-validated logistic regression plus ``knn_weight`` ×
    the label histogram of the image's 10 nearest neighbours (never itself). The neighbours
    catch local structure the linear model misses (e.g. a class made of two digits).

    Classes with fewer than two images cannot be cross-validated: they are left out of
    training (their column stays 0) and returned so the caller can report them.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    counts = np.bincount(labels, minlength=n_classes)
    small = [int(c) for c in np.flatnonzero((counts > 0) & (counts < 2))]
    train_mask = counts[labels] >= 2
    probs = np.zeros((len(labels), n_classes), dtype=np.float64)
    usable = sorted(set(labels[train_mask].tolist()))
    if len(usable) < 2:
        probs[np.arange(len(labels)), labels] = 1.0
        return probs, small
    x = reduce_features(features, seed=seed)
    idx = np.flatnonzero(train_mask)
    knn = knn_label_distribution(features[idx], labels[idx], n_classes, seed=seed) if knn_weight > 0 else None
    k = int(max(2, min(folds, counts[usable].min())))
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)

    def model() -> LogisticRegression:
        return LogisticRegression(C=0.05, max_iter=300)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for train, test in splitter.split(idx, labels[idx]):
            fitted = model().fit(x[idx[train]], labels[idx[train]])
            probs[np.ix_(idx[test], fitted.classes_)] = fitted.predict_proba(x[idx[test]])
        if knn is not None:
            # Neighbours' labels are out-of-sample too (an image is never its own neighbour).
            probs[idx] = (1.0 - knn_weight) * probs[idx] + knn_weight * knn
        rest = np.flatnonzero(~train_mask)
        if len(rest):
            fitted = model().fit(x[idx], labels[idx])
            probs[np.ix_(rest, fitted.classes_)] = fitted.predict_proba(x[rest])
    return probs, small

@dataclass
class Mislabel:
    index: int
    suggested: int
    confidence: float

def knn_label_distribution(features: np.ndarray, labels: np.ndarray, n_classes: int, k: int = 10,
                           seed: int = 0) -> np.ndarray:
    """Per image, the label histogram of its ``k`` nearest other images (out-of-sample)."""
    from sklearn.neighbors import NearestNeighbors

    n = len(labels)
    k = int(min(k, n - 1))
    out = np.zeros((n, n_classes))
    if k < 1:
        return out
    reduced = reduce_features(features, dims=30, seed=seed)
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(reduced).kneighbors(reduced)
    for i in range(n):
        neighbours = [j for j in idx[i] if j != i][:k]
        out[i] = np.bincount(labels[neighbours], minlength=n_classes) / len(neighbours)
    return out


def find_mislabeled(probs: np.ndarray, labels: np.ndarray, skip: set[int] | None = None,
                    margin: float = 0.0) -> list[Mislabel]:
    """An image is mislabeled when another class beats its own by more than ``margin`` in the
    out-of-sample probabilities (a blend of the cross-validated classifier and its
    neighbours' labels, see :func:`blend_knn`)."""
    found: list[Mislabel] = []
    for i, given in enumerate(labels):
        if skip and int(given) in skip:
            continue
        row = probs[i].copy()
        own = row[given]
        row[given] = -1.0
        best = int(np.argmax(row))
        if row[best] - own > margin:
            found.append(Mislabel(index=i, suggested=best, confidence=float(row[best])))
    return found


@dataclass
class SplitFinding:
    cls: int
    n_subclasses: int
    score: float
    assignment: np.ndarray  # sub-class per member, in member order

def find_splits(
    features: np.ndarray, labels: np.ndarray, n_classes: int, *, ratio: float = 2.0, min_gain: float = 0.75,
    min_fraction: float = 0.2,
    min_size: int = 10, max_k: int = 3, seed: int = 0, trusted: np.ndarray | None = None,
) -> tuple[list[SplitFinding], dict[int, float]]:
    """Classes whose members form several well-separated groups.

    Per class, Gaussian mixtures with 1..max_k components are fitted in a 2-d PCA of its
    members; the score is the BIC gain per image of the best k over k = 1 (affine-invariant,
    in nats per image). A class is split when its score is at least ``min_gain`` and at
    least ``ratio`` times the median score of all classes (the dataset's own yardstick), and
    every sub-class holds at least ``min_fraction`` of the members (a few strays are no class). Only ``trusted`` images
    (e.g. those whose out-of-sample prediction agrees with their label) fit the mixtures, so
    mislabeled strays do not pass for a sub-class; every member is then assigned.
    """
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    reduced = reduce_features(features, dims=30, seed=seed)
    scores: dict[int, float] = {}
    fits: dict[int, tuple[int, np.ndarray]] = {}
    for c in range(n_classes):
        members = np.flatnonzero(labels == c)
        fit_on = members if trusted is None else members[trusted[members]]
        if len(fit_on) < min_size:
            continue
        dims = int(min(2, len(fit_on) - 1, reduced.shape[1]))
        pca = PCA(n_components=dims, random_state=seed).fit(reduced[fit_on])
        z = pca.transform(reduced[fit_on])
        bics, models = [], []
        for k in range(1, max_k + 1):
            if len(members) < k * 5:
                break
            try:
                gm = GaussianMixture(k, random_state=seed, n_init=2, reg_covar=1e-3).fit(z)
            except ValueError:
                break
            bics.append(gm.bic(z))
            models.append(gm)
        # Only mixtures whose every component holds min_fraction of the images count.
        valid = [k for k, gm in enumerate(models)
                 if np.bincount(gm.predict(z), minlength=k + 1).min() >= min_fraction * len(fit_on)]
        gains = bics[0] - np.array(bics)
        top = max(gains[k] for k in valid)
        # The fewest sub-classes that reach 90 % of the best valid BIC gain (no needless splits).
        best = min(k for k in valid if gains[k] >= 0.9 * top) if top > 0 else 0
        scores[c] = float(gains[best] / len(fit_on))
        fits[c] = (best + 1, models[best].predict(pca.transform(reduced[members])))
    if not scores:
        return [], scores
    median = float(np.median([max(v, 0.0) for v in scores.values()]))
    found = [
        SplitFinding(cls=c, n_subclasses=fits[c][0], score=s, assignment=fits[c][1])
        for c, s in scores.items()
        if fits[c][0] > 1 and s >= min_gain and s >= ratio * median
    ]
    return found, scores

def find_blurred(edge_scores: np.ndarray, z_threshold: float = -4.5,
                 hopeless_z: float = -12.0) -> tuple[np.ndarray, np.ndarray]:
    """(blurred, hopeless) masks: edge steepness far below the dataset's own."""
    z = robust_z(np.log(np.maximum(edge_scores, 1e-9)))
    return z <= z_threshold, z <= hopeless_z

def find_badly_lit(low: np.ndarray, high: np.ndarray, brightness: np.ndarray,
                   fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dark, bright, hopeless) masks against the dataset's typical tonal range.

    With L and H the median 2nd and 98th luma percentiles, an image is dark when its 98th
    percentile is below L + fraction·(H − L) (or its mean below 0.08), bright when its 2nd
    percentile is above that (or its mean above 0.92). Hopeless: almost no tonal range left.
    """
    typical_low, typical_high = float(np.median(low)), float(np.median(high))
    cut = typical_low + fraction * (typical_high - typical_low)
    dark = (high < cut) | (brightness < 0.08)
    bright = ((low > cut) | (brightness > 0.92)) & ~dark
    hopeless = (high - low) < 0.02
    return dark, bright, hopeless

def project_2d(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """(n, 2) PCA coordinates of the standardised features."""
    if features.shape[0] == 0:
        return np.zeros((0, 2))
    if features.shape[0] < 3:
        return np.zeros((features.shape[0], 2))
    reduced = reduce_features(features, dims=2, seed=seed)
    if reduced.shape[1] < 2:
        reduced = np.hstack([reduced, np.zeros((reduced.shape[0], 2 - reduced.shape[1]))])
    return reduced[:, :2]
