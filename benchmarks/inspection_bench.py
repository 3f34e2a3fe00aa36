"""Inspection benchmark: our two algorithms against an IsolationForest baseline, same data.

Data (generated, nothing downloaded): for each texture of scikit-image (brick, grass,
gravel), 20 good 256×256 crops to train on, 10 held-out good crops and 12 defective crops
(3 each of scratch, blob, colour stain, pasted patch) with their pixel masks.

Figures per algorithm (averaged over textures): image-level AUROC, pixel-level AUROC, box
precision / recall at IoU ≥ 0.3, false-positive rate on the held-out good images, training
time from 20 good images, predict latency per 256×256 image.

    python benchmarks/inspection_bench.py [--textures brick,grass] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from percept.inspection import engine, synthetic
from percept.inspection.algorithms import ALGORITHMS

ALGOS = [("hacarus-dictionary-learning", "ours"), ("OC", "ours"), ("isolation-forest", "baseline")]


def iou(a: dict[str, int], b: dict[str, int]) -> float:
    ix = max(0, min(a["x_max"], b["x_max"]) - max(a["x_min"], b["x_min"]) + 1)
    iy = max(0, min(a["y_max"], b["y_max"]) - max(a["y_min"], b["y_min"]) + 1)
    inter = ix * iy
    area = lambda r: (r["x_max"] - r["x_min"] + 1) * (r["y_max"] - r["y_min"] + 1)  # noqa: E731
    return inter / float(area(a) + area(b) - inter)


def mask_box(mask: np.ndarray) -> dict[str, int]:
    ys, xs = mask.nonzero()
    return {"x_min": int(xs.min()), "x_max": int(xs.max()), "y_min": int(ys.min()), "y_max": int(ys.max())}


def run_texture(name: str, seed: int) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(seed)
    train = synthetic.good_crops(name, 20, 256, rng)
    held_good = synthetic.good_crops(name, 10, 256, rng)
    defects = [synthetic.add_defect(img, kind, rng)
               for img, kind in zip(synthetic.good_crops(name, 12, 256, rng), synthetic.DEFECTS * 3, strict=True)]
    out: dict[str, dict[str, float]] = {}
    for algorithm_id, _ in ALGOS:
        params = ALGORITHMS[algorithm_id].resolve(None)
        started = time.perf_counter()
        model = engine.train(algorithm_id, params, train)
        train_s = time.perf_counter() - started
        labels, scores, pix_true, pix_score = [], [], [], []
        matched_pred = total_pred = matched_gt = 0
        fp = 0
        latency = []
        for img, mask in [(g, np.zeros(g.shape[:2], bool)) for g in held_good] + defects:
            t0 = time.perf_counter()
            pred = engine.predict(model, img)
            latency.append(time.perf_counter() - t0)
            is_defect = bool(mask.any())
            labels.append(int(is_defect))
            scores.append(pred.score)
            pix_true.append(mask.ravel())
            pix_score.append(pred.norm_map.ravel())
            total_pred += len(pred.boxes)
            if not is_defect:
                fp += int(not pred.good)
                continue
            gt = mask_box(mask)
            hits = [b for b in pred.boxes if iou(b, gt) >= 0.3]
            matched_pred += len(hits)
            matched_gt += int(bool(hits))
        out[algorithm_id] = {
            "image_auroc": roc_auc_score(labels, scores),
            "pixel_auroc": roc_auc_score(np.concatenate(pix_true), np.concatenate(pix_score)),
            "box_precision": matched_pred / total_pred if total_pred else 0.0,
            "box_recall": matched_gt / len(defects),
            "fpr_good": fp / len(held_good),
            "train_s": train_s,
            "predict_ms": 1000 * float(np.mean(latency)),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--textures", default=",".join(synthetic.TEXTURES))
    parser.add_argument("--seed", type=int, default=0)
    ns = parser.parse_args()
    textures = [t for t in ns.textures.split(",") if t]
    results = {t: run_texture(t, ns.seed) for t in textures}
    keys = ["image_auroc", "pixel_auroc", "box_precision", "box_recall", "fpr_good", "train_s", "predict_ms"]
    header = f"{'algorithm':30s} {'role':9s} " + " ".join(f"{k:>13s}" for k in keys)
    for texture in textures:
        print(f"\n== {texture}: 20 good to train, 10 held-out good, 12 defective (256x256)")
        print(header)
        for algorithm_id, role in ALGOS:
            row = results[texture][algorithm_id]
            print(f"{algorithm_id:30s} {role:9s} " + " ".join(f"{row[k]:13.3f}" for k in keys))
    print(f"\n== mean over {len(textures)} textures")
    print(header)
    for algorithm_id, role in ALGOS:
        mean = {k: float(np.mean([results[t][algorithm_id][k] for t in textures])) for k in keys}
        print(f"{algorithm_id:30s} {role:9s} " + " ".join(f"{mean[k]:13.3f}" for k in keys))


if __name__ == "__main__":
    main()
