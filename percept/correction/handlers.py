"""The eight tasks: ``diagnose`` reports findings, ``correct`` applies them.

Every task answers ``{"name", "outliers", ...}``; correct tasks add ``removed`` and
``corrected`` (image uuids), as the spec's output shows. Findings are computed once per kind
and shared by its diagnose and correct tasks.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from percept.correction import analysis
from percept.correction.images import MEASURES, QUANTILES, apply_tone_curve, deblur, fit_tone_curve
from percept.correction.job_state import JobState

logger = logging.getLogger(__name__)


def _labels(state: JobState) -> np.ndarray:
    return np.array([state.class_index(r.item.cls) for r in state.good], dtype=np.int64)


def _features(state: JobState) -> np.ndarray:
    return np.stack([r.features for r in state.good]) if state.good else np.zeros((0, 1))


def mislabeled(state: JobState, action: str, cache: dict[str, Any]) -> dict[str, Any]:
    """Relabel (confident suggestion) or remove (unsure) images whose label looks wrong."""
    good = state.good
    if "mislabeled" not in cache:
        labels = _labels(state)
        probs = np.array([r.probs for r in good]) if good else np.zeros((0, len(state.classes)))
        skip = set(cache.get("untrainable", []))
        cache["mislabeled"] = (analysis.find_mislabeled(probs, labels, skip, state.config.mislabel_margin)
                               if len(good) else [])
    found: list[analysis.Mislabel] = cache["mislabeled"]
    flagged = {good[m.index].item.uuid: m for m in found}
    per_class: dict[str, dict[str, list[str]]] = {c: {"mislabeled": [], "correct": []} for c in state.classes}
    for r in good:
        per_class[r.item.cls]["mislabeled" if r.item.uuid in flagged else "correct"].append(r.item.uuid)
    result: dict[str, Any] = {
        "outliers": list(flagged),
        "per_class": per_class,
        "suggested": {u: state.classes[m.suggested] for u, m in flagged.items()},
    }
    if action == "correct":
        corrected, removed, relabelled = [], [], {}
        for m in found:
            record = good[m.index]
            if m.confidence >= state.config.relabel_confidence:
                record.current_class = state.classes[m.suggested]
                corrected.append(record.item.uuid)
                relabelled[record.item.uuid] = record
            else:
                record.removed_by = record.removed_by or "correct_mislabeled_images"
                removed.append(record.item.uuid)
        result.update(removed=removed, corrected=corrected,
                      relabelled={u: r.current_class for u, r in relabelled.items()})
    return result


def class_splitting(state: JobState, action: str, cache: dict[str, Any]) -> dict[str, Any]:
    """Classes made of several groups; correct renames members to ``<class>_split_<k>``."""
    good = state.good
    if "splits" not in cache:
        if len(good) >= 2:
            labels = _labels(state)
            probs = np.array([r.probs for r in good])
            trusted = probs.argmax(axis=1) == labels if probs.size else None
            if state.config.split_method == "mixture":
                cache["splits"] = analysis.find_splits(
                    _features(state), labels, len(state.classes),
                    ratio=state.config.split_ratio, min_gain=state.config.split_min_gain,
                    min_fraction=state.config.split_min_fraction,
                    seed=state.config.seed, trusted=trusted, reduced=cache.get("reduced"))
            else:
                cache["splits"] = analysis.find_graph_splits(
                    _features(state), labels, len(state.classes), max_cross=state.config.split_max_cross,
                    min_fraction=state.config.split_min_fraction, seed=state.config.seed, trusted=trusted,
                    reduced=cache.get("reduced"))
        else:
            cache["splits"] = ([], {})
    found, scores = cache["splits"]
    too_small = [c for c in state.classes
                 if state.class_index(c) not in scores and any(r.item.cls == c for r in good)]
    result: dict[str, Any] = {
        # Reading chosen: a splitting task's outliers are the class names to split.
        "outliers": [state.classes[f.cls] for f in found],
        "subclasses": {c: 1 for c in state.classes if state.class_index(c) in scores}
        | {state.classes[f.cls]: f.n_subclasses for f in found},
        "scores": {state.classes[c]: round(s, 3) for c, s in scores.items()},
    }
    if too_small:
        result["skipped"] = {c: "too few images to look for sub-classes" for c in too_small}
    if action == "correct":
        corrected: list[str] = []
        new_classes: dict[str, list[str]] = {}
        for f in found:
            name = state.classes[f.cls]
            names = [f"{name}_split_{k}" for k in range(f.n_subclasses)]
            new_classes[name] = names
            members = [r for r in good if r.item.cls == name]
            for record, sub in zip(members, f.assignment, strict=True):
                if record.current_class == name:
                    record.current_class = names[int(sub)]
                    corrected.append(record.item.uuid)
            for n in names:
                if n not in state.classes:
                    state.classes.append(n)
        result.update(removed=[], corrected=corrected, new_classes=new_classes)
    return result


QUANTILE_COLUMNS = [MEASURES.index(f"p{q}") for q in QUANTILES]


def _quality(state: JobState, cache: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(measures (n, M), reference class per image, short side per image) of the good images."""
    if "quality" not in cache:
        good = state.good
        measures = (np.stack([np.asarray(r.row["measures"], np.float64) for r in good])
                    if good else np.zeros((0, len(MEASURES))))
        labels = _labels(state)
        probs = np.array([r.probs for r in good]) if good and all(r.probs for r in good) else None
        reference = cache.get("reference_probs")
        groups = analysis.reference_groups(labels, reference if reference is not None else probs)
        short = np.array([min(int(r.row["width"]), int(r.row["height"])) for r in good])
        cache["quality"] = (measures, groups, short)
    result: tuple[np.ndarray, np.ndarray, np.ndarray] = cache["quality"]
    return result


def image_blur(state: JobState, action: str, cache: dict[str, Any]) -> dict[str, Any]:
    """Blurred images (against their own class): hopeless ones removed, the others deconvolved."""
    good = state.good
    if "blur" not in cache:
        measures, groups, short = _quality(state, cache)
        if len(good) >= 3:
            cache["blur"] = analysis.find_blurred(measures, groups, short, state.config.blur_threshold,
                                                  state.config.blur_hopeless_sigma)
        else:
            cache["blur"] = {k: np.zeros(len(good), bool) for k in ("blurred", "hopeless")} | {
                "score": np.zeros(len(good)), "sigma": np.zeros(len(good))}
    found = cache["blur"]
    blurred, hopeless, sigma = found["blurred"], found["hopeless"], found["sigma"]
    result: dict[str, Any] = {
        "outliers": [r.item.uuid for r, b in zip(good, blurred, strict=True) if b],
        "hopeless": [r.item.uuid for r, h in zip(good, hopeless, strict=True) if h],
        "scores": {r.item.uuid: round(float(v), 2) for r, v, b in zip(good, found["score"], blurred, strict=True)
                   if b},
    }
    if action == "correct":
        removed, corrected, reasons = [], [], {}
        short = _quality(state, cache)[2]
        for i, r in enumerate(good):
            if not blurred[i]:
                continue
            if hopeless[i]:
                r.removed_by = r.removed_by or "correct_image_blur"
                reasons[r.item.uuid] = (f"blur too strong to restore: about {sigma[i]:.1f} px of blur on a "
                                        f"{int(short[i])} px image")
                removed.append(r.item.uuid)
                continue
            fixed = deblur(state.pixels(r), float(sigma[i]))
            state.save_corrected(r, fixed, "deblurred")
            corrected.append(r.item.uuid)
        result.update(removed=removed, corrected=corrected, removed_reasons=reasons)
    return result


def lighting_conditions(state: JobState, action: str, cache: dict[str, Any]) -> dict[str, Any]:
    """Under- or over-exposed images (against their own class): hopeless ones removed, the
    others given back their class's tonal range by a fitted gain/offset/gamma curve."""
    good = state.good
    measures, groups, _ = _quality(state, cache)
    if "lighting" not in cache:
        if len(good) >= 3:
            cache["lighting"] = analysis.find_badly_lit(measures, groups, state.config.lighting_threshold)
        else:
            cache["lighting"] = {k: np.zeros(len(good), bool) for k in ("dark", "bright", "hopeless")} | {
                "p_ok": np.ones(len(good))}
    found = cache["lighting"]
    dark, bright, hopeless = found["dark"], found["bright"], found["hopeless"]
    bad = dark | bright
    result: dict[str, Any] = {
        "outliers": [r.item.uuid for r, b in zip(good, bad, strict=True) if b],
        "dark": [r.item.uuid for r, d in zip(good, dark, strict=True) if d],
        "bright": [r.item.uuid for r, b in zip(good, bright, strict=True) if b],
        "hopeless": [r.item.uuid for r, h in zip(good, hopeless, strict=True) if h],
        "scores": {r.item.uuid: round(1.0 - float(p), 3) for r, p, b in zip(good, found["p_ok"], bad, strict=True)
                   if b},
    }
    if action == "correct":
        removed, corrected, reasons = [], [], {}
        quantiles = measures[:, QUANTILE_COLUMNS] if len(good) else np.zeros((0, len(QUANTILES)))
        everyone = np.median(quantiles[~bad], axis=0) if (~bad).any() else np.array(QUANTILES) / 100.0
        for i, r in enumerate(good):
            if not bad[i]:
                continue
            if hopeless[i]:
                r.removed_by = r.removed_by or "correct_lighting_conditions"
                row = measures[i]
                clipped = row[MEASURES.index("clip_lo")] + row[MEASURES.index("clip_hi")]
                reasons[r.item.uuid] = (f"no tonal range left to restore: 1-99 % range "
                                        f"{row[MEASURES.index('range')]:.3f}, {100 * clipped:.0f} % of pixels clipped")
                removed.append(r.item.uuid)
                continue
            peers = (groups == groups[i]) & ~bad
            reference = np.median(quantiles[peers], axis=0) if peers.sum() >= 3 else everyone
            curve = fit_tone_curve(quantiles[i], reference)
            state.save_corrected(r, apply_tone_curve(state.pixels(r), *curve), "exposure")
            corrected.append(r.item.uuid)
        result.update(removed=removed, corrected=corrected, removed_reasons=reasons)
    return result


HANDLERS = {
    "mislabeled_images": mislabeled,
    "class_splitting": class_splitting,
    "image_blur": image_blur,
    "lighting_conditions": lighting_conditions,
}
