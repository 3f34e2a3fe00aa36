"""Dataset correction quality on four kinds of dataset, beside cleanlab and CleanVision.

Kinds (``tests/synthetic/correction.py``): ``digits`` (small grey images, dark background),
``photos`` (crops of scikit-image's photos), ``textures`` and ``glyphs`` (letters and icons
rendered with Pillow, dark ink on light paper). Each dataset carries label noise (5–15 %,
half uniform, half confusion with a look-alike class), one class merged into another, 6 %
blurred images (σ 0.8–3 px) and 8 % badly lit ones (gamma 1.5–3.5 both ways, gains,
offsets, crushed shadows, blown highlights). A fifth kind, ``shapes`` (line shapes drawn by code,
light graded strokes on black), is a tuning kind only: ``--kinds shapes`` scores it at seeds
200-201, ``--tune --lighting-kinds photos,textures,shapes`` fits the lighting model with it.

Every threshold and weight of the blur and lighting detectors is chosen on the TUNING kinds
(photos, textures; ``--tune`` refits them and prints the constants that
``percept/correction/analysis.py`` holds); the figures that count are those of the REPORT
kinds (digits, glyphs), never looked at while tuning. The tuning kinds' figures are printed
too, marked as such.

Per kind: blur F1; lighting F1 with dark and bright recall (direction must be right);
mislabel F1 beside cleanlab's ``find_label_issues`` on (a) the job's own out-of-sample
probabilities, (b) cleanlab's usual recipe (5-fold logistic regression on the pixels) and (c)
the same recipe on the pixel+HOG features the job computes (the fair baseline: same images,
same features, a reasonable classifier; the goal is judged against the better of b and c);
merged-class ARI after ``correct_class_splitting``; restoration PSNR/SSIM of the corrected
images against the clean originals, beside the corrupted ones. Per corruption: recall of
ours and of CleanVision.

Run from the repository root: ``.venv/bin/python -m benchmarks.correction_quality``
(about 2–4 minutes on 2 cores); ``--tune`` first to refit the lighting model.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from percept.correction import analysis
from percept.correction.features import Featurizer, run_local
from percept.correction.images import MEASURES, native_array
from percept.correction.job import run_job
from percept.correction.sinks import DirSink
from tests.synthetic.correction import LIGHTING, SyntheticDataset, make_kind_dataset

TUNE_KINDS = ("photos", "textures")
REPORT_KINDS = ("digits", "glyphs")
TUNE_SEEDS = (100, 101)
# A third tuning kind (issue 13, round 8): "shapes", line shapes drawn by code
# (tests/synthetic/correction.py), light strokes of graded tone on black - small grey images like
# the report kinds in general terms, never their generators. Its seeds are the tuning seeds +
# SEED_OFFSET (200-203 in a lighting fit, 204-207 looked at only as never-fitted checks). The
# shipped lighting model is fitted on photos and textures alone (LIGHTING_TUNE_KINDS);
# `--tune --lighting-kinds photos,textures,shapes` refits it with shapes too, which round 8 tried
# and did not ship (docs/correction.md, round 8).
LIGHTING_TUNE_KINDS: tuple[str, ...] = TUNE_KINDS
SEED_OFFSET = {"shapes": 100}
# Default --report-seeds. Every report seed used so far is burned: 0-5, 17, 23, 31, 37, 41, 43,
# 47, 53, 59, 61, 67, 71, 73, 79; looked at (not held-out): 0-5, 23, 31, 37, 41, 43 (docs/correction.md, "Seeds used
# for reporting"). A new report needs a seed outside that list.
REPORT_SEEDS = (2, 3)
TASKS = ["diagnose_mislabeled_images", "correct_class_splitting", "correct_image_blur",
         "correct_lighting_conditions"]


def prf(pred: set[str], truth: set[str]) -> tuple[float, float, float]:
    tp = len(pred & truth)
    p = tp / len(pred) if pred else (1.0 if not truth else 0.0)
    r = tp / len(truth) if truth else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def cleanvision_flags(paths: dict[str, str]) -> dict[str, set[str]]:
    from cleanvision import Imagelab

    uids = list(paths)
    lab = Imagelab(filepaths=[paths[u] for u in uids])
    lab.find_issues({"blurry": {}, "dark": {}, "light": {}}, verbose=False)
    issues = lab.issues.reindex([paths[u] for u in uids])

    def pick(col: str) -> set[str]:
        return {u for u, flag in zip(uids, issues[col].to_numpy(), strict=True) if flag}

    return {"blur": pick("is_blurry_issue"), "dark": pick("is_dark_issue"), "bright": pick("is_light_issue")}


def cleanlab_own_recipe(data: SyntheticDataset, uids: list[str], labels: np.ndarray, seed: int) -> set[str]:
    """cleanlab's documented recipe: out-of-sample probabilities from a 5-fold logistic
    regression on the (16x16 grey) pixels, then ``find_label_issues``."""
    import cv2
    from cleanlab.filter import find_label_issues
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from percept.correction.images import decode

    x = []
    for u in uids:
        a = native_array(decode(data.paths[u]))
        g = a[..., :3].mean(axis=-1) if a.shape[-1] >= 3 else a[..., 0]
        x.append(cv2.resize(g, (16, 16), interpolation=cv2.INTER_AREA).ravel())
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=500))
    probs = cross_val_predict(model, np.array(x), labels, cv=5, method="predict_proba")
    mask = find_label_issues(labels, probs)
    return {u for u, f in zip(uids, mask, strict=True) if f}


def cleanlab_on_features(data: SyntheticDataset, uids: list[str], labels: np.ndarray) -> set[str]:
    """cleanlab with a stronger classifier: out-of-sample probabilities from a 5-fold logistic
    regression on the features the job itself computes for small images (16x16 standardised
    pixels + HOG), then ``find_label_issues`` - the fair baseline: same images, same
    features, a reasonable classifier, cleanlab's rule."""
    from cleanlab.filter import find_label_issues
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rows = {r["uuid"]: r["features"] for r in run_local([{"path": data.paths[u], "uuid": u} for u in uids],
                                                         Featurizer("pixels"))}
    x = np.stack([rows[u] for u in uids])
    # C chosen for the baseline on the tuning kinds (mean cleanlab F1 there 0.230 at C 1e-5,
    # 0.254 at 3e-5, 0.355 at 1e-4, 0.402 at 3e-4, 0.442 at 0.001, 0.437 at 0.003, 0.414 at
    # 0.01, 0.371 at 0.05, 0.328 at 1): the best of the grid, inside it (issue 13 extended the
    # grid downward to check that 0.001 was not its edge).
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.001, max_iter=500))
    probs = cross_val_predict(model, x, labels, cv=5, method="predict_proba")
    mask = find_label_issues(labels, probs)
    return {u for u, f in zip(uids, mask, strict=True) if f}


def restoration(data: SyntheticDataset, entries: dict[str, Any], uids: list[str]) -> dict[str, float]:
    """Mean PSNR and SSIM against the clean original: the corrupted file vs the corrected one."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from percept.correction.images import decode

    before_p, after_p, before_s, after_s = [], [], [], []
    for u in uids:
        path = entries[u].get("corrected_path")
        if not path:
            continue
        clean = data.clean[u]
        corrupted = native_array(decode(data.paths[u]))
        fixed = native_array(decode(path))
        axis = -1 if clean.shape[-1] > 1 else None
        c2, b2, f2 = (clean, corrupted, fixed) if axis is not None else (clean[..., 0], corrupted[..., 0], fixed[..., 0])
        before_p.append(peak_signal_noise_ratio(c2, b2, data_range=1.0))
        after_p.append(peak_signal_noise_ratio(c2, f2, data_range=1.0))
        before_s.append(structural_similarity(c2, b2, data_range=1.0, channel_axis=axis))
        after_s.append(structural_similarity(c2, f2, data_range=1.0, channel_axis=axis))
    if not before_p:
        return {"n": 0}
    finite = lambda v: float(np.mean(np.minimum(v, 60.0)))  # noqa: E731  (identical images: inf dB)
    return {"n": len(before_p), "psnr_before": finite(before_p), "psnr_after": finite(after_p),
            "ssim_before": float(np.mean(before_s)), "ssim_after": float(np.mean(after_s))}


def evaluate(kind: str, seed: int, workdir: Path) -> dict[str, Any]:
    """One dataset through the whole job, scored against the truth and the baselines."""
    from cleanlab.filter import find_label_issues
    from sklearn.metrics import adjusted_rand_score

    data = make_kind_dataset(kind, workdir / f"{kind}{seed}", seed=seed)
    started = time.perf_counter()
    out = run_job(data.request(TASKS), job_id=f"{kind}{seed}", sink=DirSink(workdir / f"out-{kind}{seed}"))
    seconds = time.perf_counter() - started
    entries = {e["uuid"]: e for files in out["dataset"]["class_files"].values() for e in files.values()}
    by = {t["name"]: t for t in out["tasks"]}
    classes = data.dataset["classes"]
    uids = list(entries)
    labels = np.array([classes.index(entries[u]["original_class"]) for u in uids])
    probs = np.array([entries[u]["confidence_vectors"][0] for u in uids])
    ours_mis = set(by["diagnose_mislabeled_images"]["outliers"])
    same_probs = {u for u, f in zip(uids, find_label_issues(labels, probs), strict=True) if f}
    own_recipe = cleanlab_own_recipe(data, uids, labels, seed)
    on_features = cleanlab_on_features(data, uids, labels)
    cv = cleanvision_flags(data.paths)
    blur = by["correct_image_blur"]
    light = by["correct_lighting_conditions"]
    dark, bright = set(light["dark"]), set(light["bright"])
    res: dict[str, Any] = {"kind": kind, "seed": seed, "images": len(uids), "seconds": seconds}
    res["blur"] = prf(set(blur["outliers"]), data.blurred)
    res["blur_cv"] = prf(cv["blur"], data.blurred)
    res["light"] = prf(dark | bright, data.dark | data.bright)
    res["light_cv"] = prf(cv["dark"] | cv["bright"], data.dark | data.bright)
    res["dark_recall"] = len(dark & data.dark) / max(len(data.dark), 1)
    res["bright_recall"] = len(bright & data.bright) / max(len(data.bright), 1)
    res["dark_recall_cv"] = len(cv["dark"] & data.dark) / max(len(data.dark), 1)
    res["bright_recall_cv"] = len(cv["bright"] & data.bright) / max(len(data.bright), 1)
    res["mis"] = prf(ours_mis, data.flipped)
    res["mis_cl_same"] = prf(same_probs, data.flipped)
    res["mis_cl_own"] = prf(own_recipe, data.flipped)
    res["mis_cl_feat"] = prf(on_features, data.flipped)
    res["mis_recall_by_noise"] = {
        n: len(ours_mis & {u for u, k in data.noise.items() if k == n}) / max(1, sum(k == n for k in data.noise.values()))
        for n in ("uniform", "confusion")}
    merged_from, merged_to = data.merged or ("", "")
    members = [u for u in uids if entries[u]["original_class"] == merged_to and u not in data.flipped]
    res["ari"] = float(adjusted_rand_score([data.true_class[u] for u in members],
                                           [entries[u]["current_class"] for u in members])) if members else 0.0
    res["split_classes"] = by["correct_class_splitting"]["outliers"]
    res["merged"] = data.merged
    res["restore_blur"] = restoration(data, entries, [u for u in blur["corrected"] if u in data.blurred])
    res["restore_light"] = restoration(data, entries, [u for u in light["corrected"]
                                                       if u in data.dark | data.bright])
    res["removed_blur"] = len(blur["removed"])
    # True added σ of the images removed as hopeless, and of those kept and deconvolved.
    res["removed_blur_sigma"] = sorted(round(data.corruption[u][1], 2) for u in blur["removed"] if u in data.blurred)
    res["kept_blur_sigma_max"] = max((data.corruption[u][1] for u in blur["corrected"] if u in data.blurred), default=0.0)
    res["removed_light"] = len(light["removed"])
    per: dict[str, dict[str, Any]] = defaultdict(lambda: {"n": 0, "ours": 0, "cv": 0, "missed": []})
    for u, (name, strength) in data.corruption.items():
        row = per[name]
        row["n"] += 1
        if name == "blur":
            hit, hit_cv = u in set(blur["outliers"]), u in cv["blur"]
        else:
            direction = LIGHTING[name][0]
            hit = u in (dark if direction == "dark" else bright)
            hit_cv = u in (cv["dark"] if direction == "dark" else cv["bright"])
        row["ours"] += hit
        row["cv"] += hit_cv
        if not hit:
            row["missed"].append(round(strength, 2))
    res["per_corruption"] = dict(per)
    return res


def fmt(v: tuple[float, float, float]) -> str:
    return f"{v[2]:.3f} ({v[0]:.2f}/{v[1]:.2f})"


def print_tables(results: list[dict[str, Any]], title: str) -> None:
    print(f"\n## {title}\n")
    print("| kind | seed | images | blur F1 (P/R) | CleanVision blur F1 | lighting F1 (P/R) | dark / bright recall "
          "| CleanVision lighting F1, dark / bright recall | mislabel F1 (P/R) | cleanlab same probs F1 "
          "| cleanlab pixels-LR F1 | cleanlab features-LR F1 | merged ARI | job s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['kind']} | {r['seed']} | {r['images']} | {fmt(r['blur'])} | {r['blur_cv'][2]:.3f} "
              f"| {fmt(r['light'])} | {r['dark_recall']:.2f} / {r['bright_recall']:.2f} "
              f"| {r['light_cv'][2]:.3f}, {r['dark_recall_cv']:.2f} / {r['bright_recall_cv']:.2f} "
              f"| {fmt(r['mis'])} | {r['mis_cl_same'][2]:.3f} | {r['mis_cl_own'][2]:.3f} | {r['mis_cl_feat'][2]:.3f} "
              f"| {r['ari']:.2f} | {r['seconds']:.1f} |")
    print("\nRestoration against the clean original (mean over corrected images; hopeless ones removed):\n")
    print("| kind | seed | blur: n, PSNR before → after, SSIM before → after, removed "
          "| lighting: n, PSNR before → after, SSIM before → after, removed |")
    print("|---|---|---|---|")
    for r in results:
        cells = []
        for key, removed in (("restore_blur", r["removed_blur"]), ("restore_light", r["removed_light"])):
            x = r[key]
            cells.append(f"{x['n']}, {x['psnr_before']:.1f} → {x['psnr_after']:.1f} dB, "
                         f"{x['ssim_before']:.3f} → {x['ssim_after']:.3f}, {removed}" if x["n"] else f"0, {removed}")
        print(f"| {r['kind']} | {r['seed']} | {cells[0]} | {cells[1]} |")
    print("\nBlur removed as hopeless (true added σ of each, px) and the largest true σ kept and deconvolved: " + "; ".join(
        f"{r['kind']}/{r['seed']}: {r['removed_blur_sigma']}, kept ≤ {r['kept_blur_sigma_max']:.2f}" for r in results))
    print("\nRecall per corruption (all seeds of the kind; strengths of our misses):\n")
    print("| kind | corruption | n | ours | CleanVision | missed strengths |")
    print("|---|---|---|---|---|---|")
    kinds = sorted({r["kind"] for r in results}, key=[r["kind"] for r in results].index)
    for kind in kinds:
        merged: dict[str, dict[str, Any]] = defaultdict(lambda: {"n": 0, "ours": 0, "cv": 0, "missed": []})
        for r in results:
            if r["kind"] != kind:
                continue
            for name, row in r["per_corruption"].items():
                for k in ("n", "ours", "cv"):
                    merged[name][k] += row[k]
                merged[name]["missed"] += row["missed"]
        for name in sorted(merged):
            row = merged[name]
            print(f"| {kind} | {name} | {row['n']} | {row['ours'] / row['n']:.2f} | {row['cv'] / row['n']:.2f} "
                  f"| {sorted(row['missed'])[:8]} |")
    print("\nMislabel recall by kind of noise (ours): " + "; ".join(
        f"{r['kind']}/{r['seed']}: uniform {r['mis_recall_by_noise']['uniform']:.2f}, "
        f"confusion {r['mis_recall_by_noise']['confusion']:.2f}" for r in results))
    print("Classes split (merged pair): " + "; ".join(
        f"{r['kind']}/{r['seed']}: {r['split_classes']} ({r['merged'][0]}→{r['merged'][1]})" for r in results))


def summary(results: list[dict[str, Any]]) -> dict[str, float]:
    mean = lambda key, i=2: float(np.mean([r[key][i] for r in results]))  # noqa: E731
    return {"blur_f1": mean("blur"), "light_f1": mean("light"),
            "dark_recall": float(np.mean([r["dark_recall"] for r in results])),
            "bright_recall": float(np.mean([r["bright_recall"] for r in results])),
            "mis_f1": mean("mis"), "cl_same_f1": mean("mis_cl_same"), "cl_own_f1": mean("mis_cl_own"),
            "cl_feat_f1": mean("mis_cl_feat"),
            "mis_margin_min": float(min(r["mis"][2] - max(r["mis_cl_own"][2], r["mis_cl_feat"][2]) for r in results)),
            "ari_min": float(min(r["ari"] for r in results))}


# ------------------------------------------------------------------------------------------
# --tune: refit the lighting model and choose the thresholds on the tuning kinds only


LIGHTING_TUNE_SEEDS = (100, 101, 102, 103)
# The tonal layouts the lighting model is fitted on: each tuning kind as it is, with its tones
# turned over, and redrawn as two tones (dark on light, light on dark) - see make_kind_dataset.
LAYOUTS = {"plain": {}, "inverted": {"invert": True}, "two-tone": {"two_tone": True},
           "two-tone inverted": {"two_tone": True, "invert": True}}


# Two more tonal layouts of the tuning kinds, NOT fitted on: `--check-layouts` scores the shipped
# lighting model on them, out of sample (issue 13, round 4). "graded": each clean image redrawn as
# light strokes with graded tones on black (its brightest 15-40 %, a soft edge 0.4-0.8 x its luma's
# spread wide, peak 0.85-1, background 0: a digits-like layout no fitted layout has); "graded
# inverted": the same turned over (grey strokes on white).
CHECK_LAYOUTS = {"graded": {"two_tone": True}, "graded inverted": {"two_tone": True, "invert": True}}


def graded_strokes_of(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """``image`` redrawn as light strokes with graded tones on black, grey HxWx1 (see CHECK_LAYOUTS)."""
    import cv2

    g = image.mean(axis=-1) if image.ndim == 3 else image
    g = cv2.GaussianBlur(g.astype(np.float32), (0, 0), 0.8)
    cut = float(np.quantile(g, rng.uniform(0.6, 0.85)))
    spread = max(float(g.std()) * rng.uniform(0.4, 0.8), 1e-3)
    share = np.clip((1.0 / (1.0 + np.exp(-(g - cut) / spread)) - 0.05) / 0.95, 0, 1)
    out = rng.uniform(0.85, 1.0) * share + rng.normal(0, 0.004, g.shape)
    return np.clip(out, 0, 1).astype(np.float32)[..., None]


def make_layout_dataset(kind: str, root: Path, seed: int, layout: str) -> SyntheticDataset:
    """A tuning kind's dataset in one of LAYOUTS or CHECK_LAYOUTS."""
    if layout in CHECK_LAYOUTS:
        from unittest import mock

        import tests.synthetic.correction as synthetic

        # The graded redraw takes the two-tone redraw's place inside make_kind_dataset (same
        # random draws before and after it, so the labels, noise and faults are the two-tone twin's).
        with mock.patch.object(synthetic, "two_tone_of", graded_strokes_of):
            return make_kind_dataset(kind, root, seed=seed, **CHECK_LAYOUTS[layout])
    return make_kind_dataset(kind, root, seed=seed, **LAYOUTS[layout])


def tuning_table(workdir: Path, seeds: tuple[int, ...] = TUNE_SEEDS, layout: str = "plain",
                 names: list[np.ndarray] | None = None, kinds: tuple[str, ...] = TUNE_KINDS) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[Any], list[int]]:
    """Per image the lighting model's inputs, the blur score, blur truth and lighting truth
    (0 ok / 1 dark / 2 bright); per dataset (probabilities, labels, flipped mask). ``names``, when
    given, receives each dataset's corruption name per image ("clean" for none)."""
    zs, blur_scores, blur_truth, light_truth, label_sets, sizes = [], [], [], [], [], []
    corruption_names: list[np.ndarray] = []
    for kind in kinds:
        for seed in (s + SEED_OFFSET.get(kind, 0) for s in seeds):
            data = make_layout_dataset(kind, workdir / f"tune-{kind}{seed}-{layout.replace(' ', '-')}", seed, layout)
            classes = data.dataset["classes"]
            items = [{"path": p, "uuid": u} for u, p in data.paths.items()]
            rows = run_local(items, Featurizer("pixels"))
            labels = np.array([classes.index(data.given_class[r["uuid"]]) for r in rows])
            feats = np.stack([r["features"] for r in rows])
            parts: dict[str, np.ndarray] = {}
            probs, _ = analysis.out_of_sample_probabilities(feats, labels, len(classes), parts=parts)
            if layout == "plain":  # the job's probabilities (two passes) for the mislabel margin
                probs = analysis.relabelled_probabilities(feats, labels, len(classes), probs, analysis.MISLABEL_MARGIN)
            groups = analysis.reference_groups(labels, parts["without_lda"])
            measures = np.stack([r["measures"] for r in rows])
            floors = np.array([analysis.MEASURE_FLOORS[m] for m in MEASURES])
            z = analysis.group_robust_z(measures, groups, floors)
            zs.append(analysis.lighting_inputs(z, analysis.blur_scores(z), measures, groups))
            blur_scores.append(analysis.blur_scores(z))
            corruption = [data.corruption.get(r["uuid"], ("clean", 0.0)) for r in rows]
            blur_truth.append(np.array([c == "blur" for c, _ in corruption]))
            light_truth.append(np.array([0 if c in ("clean", "blur") else (1 if LIGHTING[c][0] == "dark" else 2)
                                         for c, _ in corruption]))
            corruption_names.append(np.array([c for c, _ in corruption]))
            label_sets.append((probs, labels, np.array([r["uuid"] in data.flipped for r in rows])))
            sizes.append(len(rows))
            print(f"# tuning table: {kind}/{seed} ({layout})", file=sys.stderr, flush=True)
    if names is not None:
        names.extend(corruption_names)
    return (np.vstack(zs), np.concatenate(blur_scores), np.concatenate(blur_truth), np.concatenate(light_truth),
            label_sets, sizes)


def fit_lighting_model(x: np.ndarray, bad: np.ndarray) -> analysis.TreeModel:
    """Gradient-boosted trees over the direction-blind inputs (settings fixed beforehand, not searched)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=40,
                                           early_stopping=True, random_state=0)
    return analysis.TreeModel.from_sklearn(model.fit(analysis.lighting_design(x), bad))


def light_f1(xs: np.ndarray, truth: np.ndarray, t: float) -> tuple[float, float, float]:
    """Lighting F1 (a hit needs the right direction) and dark / bright recall at P(ok) < t."""
    bad = 1.0 - analysis.lighting_bad_probability(xs) < t
    direction = analysis.lighting_direction(xs)
    hit = bad & (((direction < 0) & (truth == 1)) | ((direction > 0) & (truth == 2)))
    return (2 * float(hit.sum()) / max(float(bad.sum() + (truth > 0).sum()), 1.0),
            float((hit & (truth == 1)).sum()) / max(float((truth == 1).sum()), 1.0),
            float((hit & (truth == 2)).sum()) / max(float((truth == 2).sum()), 1.0))


def tune(workdir: Path, write: bool = True, lighting_kinds: tuple[str, ...] | None = None) -> None:
    """Refit the lighting model (on ``lighting_kinds``, default LIGHTING_TUNE_KINDS) and print the
    blur threshold, the lighting threshold and the mislabel margin the tuning kinds choose."""
    kinds = lighting_kinds or LIGHTING_TUNE_KINDS
    x, score, blur_truth, light_truth, label_sets, sizes = tuning_table(workdir)
    bounds = np.cumsum([0, *sizes])
    parts = [slice(bounds[i], bounds[i + 1]) for i in range(len(sizes))]

    def mean_f1(pred: np.ndarray, truth: np.ndarray) -> float:
        out = []
        for part in parts:
            tp = float((pred[part] & truth[part]).sum())
            out.append(2 * tp / max(float(pred[part].sum() + truth[part].sum()), 1.0))
        return float(np.mean(out))

    grid = np.round(np.arange(1.0, 8.01, 0.25), 2)
    f1s = [mean_f1(score >= t, blur_truth) for t in grid]
    best_blur = float(grid[int(np.argmax(f1s))])
    print(f"blur threshold {best_blur} (mean tuning F1 {max(f1s):.3f}); F1 by threshold:",
          dict(zip(grid.tolist(), np.round(f1s, 3).tolist(), strict=True)))
    # Lighting: every layout of the tuning kinds, seeds 100-103, one dataset per (kind, seed).
    sets: dict[tuple[str, int], list[tuple[np.ndarray, np.ndarray]]] = {}
    for layout in LAYOUTS:
        xl, _, _, truth_l, _, sizes_l = tuning_table(workdir, LIGHTING_TUNE_SEEDS, layout, kinds=kinds)
        b = np.cumsum([0, *sizes_l])
        seeds = [s for _ in kinds for s in LIGHTING_TUNE_SEEDS]
        for i, seed in enumerate(seeds):
            sets.setdefault((layout, seed), []).append((xl[b[i]:b[i + 1]], truth_l[b[i]:b[i + 1]]))
    halves = (LIGHTING_TUNE_SEEDS[:2], LIGHTING_TUNE_SEEDS[2:])
    grid_l = np.round(np.arange(0.2, 0.91, 0.05), 2)
    by_t: dict[float, list[float]] = {float(t): [] for t in grid_l}  # mean F1 over the datasets of the half not fitted on
    by_layout: dict[float, dict[str, list[tuple[float, float, float]]]] = {float(t): {} for t in grid_l}
    for fit_seeds, test_seeds in (halves, halves[::-1]):
        train = [d for (layout, seed), ds in sets.items() if seed in fit_seeds for d in ds]
        analysis.set_lighting_model(fit_lighting_model(np.vstack([a for a, _ in train]),
                                                       np.concatenate([b for _, b in train]) > 0))
        for (layout, seed), ds in sets.items():
            if seed not in test_seeds:
                continue
            for kind, (xs, truth) in zip(kinds, ds, strict=True):
                group = f"{layout}, {'shapes' if kind == 'shapes' else 'photos+textures'}"
                for t in grid_l:
                    f = light_f1(xs, truth, float(t))
                    by_t[float(t)].append(f[0])
                    by_layout[float(t)].setdefault(group, []).append(f)
    best_light = max(by_t, key=lambda t: float(np.mean(by_t[t])))
    print(f"lighting threshold {best_light} (P(ok) below it; mean F1 on the seeds not fitted on, all layouts, "
          f"direction right {np.mean(by_t[best_light]):.3f}); by threshold:",
          {t: round(float(np.mean(v)), 3) for t, v in by_t.items()})
    for layout, fs in by_layout[best_light].items():
        f = np.mean(fs, axis=0)
        print(f"  {layout}: F1 {f[0]:.3f}, dark recall {f[1]:.2f}, bright recall {f[2]:.2f}")
    everything = [d for ds in sets.values() for d in ds]
    final = fit_lighting_model(np.vstack([a for a, _ in everything]), np.concatenate([b for _, b in everything]) > 0)
    if write:
        final.save(analysis.LIGHTING_MODEL_FILE)
        print(f"wrote {analysis.LIGHTING_MODEL_FILE} ({len(final.trees)} trees); LIGHTING_THRESHOLD = {best_light}")
    analysis.set_lighting_model(None)
    margins = np.round(np.arange(0.0, 0.61, 0.05), 2)
    mis_f1 = []
    for margin in margins:
        f1s = []
        for probs, labels, flipped in label_sets:
            found = np.zeros(len(labels), bool)
            found[[m.index for m in analysis.find_mislabeled(probs, labels, margin=float(margin))]] = True
            tp = float((found & flipped).sum())
            f1s.append(2 * tp / max(float(found.sum() + flipped.sum()), 1.0))
        mis_f1.append(float(np.mean(f1s)))
    print(f"mislabel margin {margins[int(np.argmax(mis_f1))]} (mean tuning F1 {max(mis_f1):.3f}); by margin:",
          dict(zip(margins.tolist(), np.round(mis_f1, 3).tolist(), strict=True)))


def check_layouts(workdir: Path, seeds: tuple[int, ...] = LIGHTING_TUNE_SEEDS) -> None:
    """The shipped lighting model on CHECK_LAYOUTS (never fitted on): lighting F1, dark / bright
    recall, the share of clean images flagged and recall per corruption at LIGHTING_THRESHOLD, and
    what a separate, higher threshold for images judged darker would trade (issue 13, round 4)."""
    for layout in CHECK_LAYOUTS:
        names: list[np.ndarray] = []
        x, _, _, truth, _, sizes = tuning_table(workdir, seeds, layout, names)
        bounds = np.cumsum([0, *sizes])
        parts = [slice(bounds[i], bounds[i + 1]) for i in range(len(sizes))]
        p_ok = 1.0 - analysis.lighting_bad_probability(x)
        direction = analysis.lighting_direction(x)
        corruption = np.concatenate(names)
        print(f"\n## {layout} (tuning kinds, seeds {seeds}; not fitted on)\n")
        print("| P(ok) threshold, darker / brighter | lighting F1 | dark recall | bright recall | clean flagged |")
        print("|---|---|---|---|---|")
        for t_dark in np.round(np.arange(analysis.LIGHTING_THRESHOLD, 0.91, 0.05), 2):
            bad = np.where(direction < 0, p_ok < t_dark, p_ok < analysis.LIGHTING_THRESHOLD)
            hit = bad & (((direction < 0) & (truth == 1)) | ((direction > 0) & (truth == 2)))
            f = np.mean([[2 * hit[s].sum() / max(bad[s].sum() + (truth[s] > 0).sum(), 1),
                          (hit[s] & (truth[s] == 1)).sum() / max((truth[s] == 1).sum(), 1),
                          (hit[s] & (truth[s] == 2)).sum() / max((truth[s] == 2).sum(), 1),
                          bad[s][corruption[s] == "clean"].mean()] for s in parts], axis=0)
            print(f"| {t_dark} / {analysis.LIGHTING_THRESHOLD} | {f[0]:.3f} | {f[1]:.3f} | {f[2]:.3f} | {100 * f[3]:.1f} % |")
        bad = p_ok < analysis.LIGHTING_THRESHOLD
        print("\n| corruption | n | recall (direction right) |\n|---|---|---|")
        for name in sorted(LIGHTING):
            rows = corruption == name
            want = -1 if LIGHTING[name][0] == "dark" else 1
            print(f"| {name} | {rows.sum()} | {(bad & (direction == want))[rows].mean():.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tune", action="store_true", help="refit the detectors on the tuning kinds")
    parser.add_argument("--kinds", default=",".join(TUNE_KINDS + REPORT_KINDS),
                        help="kinds to score (tuning kinds, 'shapes' included, at their tuning seeds)")
    parser.add_argument("--lighting-kinds", default=",".join(LIGHTING_TUNE_KINDS),
                        help="with --tune: the kinds the lighting model is fitted on (e.g. photos,textures,shapes)")
    parser.add_argument("--report-seeds", default=",".join(map(str, REPORT_SEEDS)),
                        help="seeds of the report kinds (fresh ones give figures nobody has looked at)")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--check-layouts", action="store_true",
                        help="score the shipped lighting model on the tuning kinds' graded-stroke layouts (not fitted on)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        if args.check_layouts:
            check_layouts(Path(tmp))
            return
        if args.tune:
            tune(Path(tmp), lighting_kinds=tuple(args.lighting_kinds.split(",")))
            return
        kinds = args.kinds.split(",")
        results: dict[str, list[dict[str, Any]]] = {"tune": [], "report": []}
        for kind in kinds:
            if kind in TUNE_KINDS or kind in SEED_OFFSET:
                seeds = tuple(s + SEED_OFFSET.get(kind, 0) for s in TUNE_SEEDS)
            else:
                seeds = tuple(int(v) for v in args.report_seeds.split(","))
            for seed in seeds:
                res = evaluate(kind, seed, Path(tmp))
                results["tune" if kind in TUNE_KINDS or kind in SEED_OFFSET else "report"].append(res)
                print(f"# done {kind}/{seed} in {res['seconds']:.1f} s", file=sys.stderr, flush=True)
    if results["report"]:
        print_tables(results["report"], f"REPORT kinds {REPORT_KINDS} (held out, never tuned on)")
        s = summary(results["report"])
        print(f"\nReport kinds, mean: blur F1 {s['blur_f1']:.3f}; lighting F1 {s['light_f1']:.3f} (dark recall "
              f"{s['dark_recall']:.2f}, bright recall {s['bright_recall']:.2f}); mislabel F1 {s['mis_f1']:.3f} vs "
              f"cleanlab {s['cl_feat_f1']:.3f} (logistic regression on the job's features) / {s['cl_own_f1']:.3f} "
              f"(on 16x16 pixels) / {s['cl_same_f1']:.3f} (on our own probabilities); smallest margin over the "
              f"better cleanlab recipe {s['mis_margin_min']:+.3f}; merged-class ARI ≥ {s['ari_min']:.2f}")
        print("The issue's mislabel goal (≥ cleanlab + 0.08) is judged per dataset against the better of the two "
              "cleanlab recipes a user can run without Percept (cross-validated logistic regression on the "
              "pixels, or on the same pixel+HOG features the job computes); cleanlab on our probabilities "
              "compares only the flagging rule, the probabilities being ours.")
    if results["tune"]:
        tuned = tuple(dict.fromkeys(r["kind"] for r in results["tune"]))
        print_tables(results["tune"], f"TUNING kinds {tuned} (thresholds and weights chosen here)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, default=str, indent=1))


if __name__ == "__main__":
    main()
