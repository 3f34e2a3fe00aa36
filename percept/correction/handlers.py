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
from percept.correction.images import fix_exposure, gray_of, sharpen, to_rgb
from percept.correction.state import JobState

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
        corrected, removed = [], []
        for m in found:
            record = good[m.index]
            if m.confidence >= state.config.relabel_confidence:
                record.current_class = state.classes[m.suggested]
                corrected.append(record.item.uuid)
            else:
                record.removed_by = record.removed_by or "correct_mislabeled_images"
                removed.append(record.item.uuid)
        result.update(removed=removed, corrected=corrected,
                      relabelled={u: good_by(state, u).current_class for u in corrected})
    return result


def good_by(state: JobState, uid: str) -> Any:
    return next(r for r in state.good if r.item.uuid == uid)


def class_splitting(state: JobState, action: str, cache: dict[str, Any]) -> dict[str, Any]:
    """Classes made of several groups; correct renames members to ``<class>_split_<k>``."""
    good = state.good
    if "splits" not in cache:
        if len(good) >= 2:
            labels = _labels(state)
            probs = np.array([r.probs for r in good])
            trusted = probs.argmax(axis=1) == labels if probs.size else None
            cache["splits"] = analysis.find_splits(
                _features(state), labels, len(state.classes),
                ratio=state.config.split_ratio, min_gain=state.config.split_min_gain,
                min_fraction=state.config.split_min_fraction,
                seed=state.config.seed, trusted=trusted)
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


def image_blur(state: JobState, action: str, cache: dict[str, Any]) -> dict[str, Any]:
    """Blurred images: hopeless ones removed, the others sharpened (unsharp mask)."""
    good = state.good
    if "blur" not in cache:
        scores = np.array([float(r.row["sharpness"]) for r in good])
        cache["blur"] = (analysis.find_blurred(scores, state.config.blur_z, state.config.blur_hopeless_z)
                         if len(good) >= 3 else (np.zeros(len(good), bool), np.zeros(len(good), bool)))
    blurred, hopeless = cache["blur"]
    result: dict[str, Any] = {
        "outliers": [r.item.uuid for r, b in zip(good, blurred, strict=True) if b],
        "hopeless": [r.item.uuid for r, h in zip(good, hopeless, strict=True) if h],
    }
    if action == "correct":
        removed, corrected = [], []
        typical = float(np.median([float(r.row["sharpness"]) for r in good])) if good else 0.0
        for r, b, h in zip(good, blurred, hopeless, strict=True):
            if not b:
                continue
            if h:
                r.removed_by = r.removed_by or "correct_image_blur"
                removed.append(r.item.uuid)
                continue
            ratio = typical / max(float(r.row["sharpness"]), 1e-6)
            r_array = state.pixels(r)
            state.save_corrected(r, sharpen(r_array, amount=float(np.clip(ratio, 1.0, 6.0))), "sharpened")
            corrected.append(r.item.uuid)
        result.update(removed=removed, corrected=corrected)
    return result


def lighting_conditions(state: JobState, action: str, cache: dict[str, Any]) -> dict[str, Any]:
    """Dark or washed-out images: hopeless ones removed, the others re-exposed."""
    good = state.good
    low = np.array([float(r.row["low"]) for r in good])
    high = np.array([float(r.row["high"]) for r in good])
    if "lighting" not in cache:
        bright_of = np.array([float(r.row["brightness"]) for r in good])
        cache["lighting"] = (analysis.find_badly_lit(low, high, bright_of, state.config.lighting_fraction)
                             if len(good) >= 3 else tuple(np.zeros(len(good), bool) for _ in range(3)))
    dark, bright, hopeless = cache["lighting"]
    result: dict[str, Any] = {
        "outliers": [r.item.uuid for r, d, b in zip(good, dark, bright, strict=True) if d or b],
        "dark": [r.item.uuid for r, d in zip(good, dark, strict=True) if d],
        "bright": [r.item.uuid for r, b in zip(good, bright, strict=True) if b],
        "hopeless": [r.item.uuid for r, h, d, b in zip(good, hopeless, dark, bright, strict=True)
                     if h and (d or b)],
    }
    if action == "correct":
        removed, corrected = [], []
        ok = ~(dark | bright)
        ref_low = float(np.median(low[ok])) if ok.any() else 0.02
        ref_high = float(np.median(high[ok])) if ok.any() else 0.98
        ref_mean = float(np.median([float(r.row["brightness"]) for r, k in zip(good, ok, strict=True) if k])
                         ) if ok.any() else 0.5
        for i, r in enumerate(good):
            if not (dark[i] or bright[i]):
                continue
            if hopeless[i]:
                r.removed_by = r.removed_by or "correct_lighting_conditions"
                removed.append(r.item.uuid)
                continue
            array = state.pixels(r)
            lum = gray_of(to_rgb(array))
            lo, hi = (float(v) for v in np.percentile(lum, [2, 98]))
            fixed = fix_exposure(array, lo, hi, ref_low, ref_high, ref_mean)
            state.save_corrected(r, fixed, "exposure")
            corrected.append(r.item.uuid)
        result.update(removed=removed, corrected=corrected)
    return result


HANDLERS = {
    "mislabeled_images": mislabeled,
    "class_splitting": class_splitting,
    "image_blur": image_blur,
    "lighting_conditions": lighting_conditions,
}
