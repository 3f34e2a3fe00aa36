"""Dataset correction: our findings vs cleanlab and CleanVision on the same data, and throughput.

Data: scikit-learn's ``load_digits`` (1797 images) upsampled to 32x32 PNGs, with 10 % of
labels flipped, one class merged into another, 6 blurred, 4 darkened, 4 washed-out images.
For each seed:

* mislabeled: precision / recall / F1 of our rule vs ``cleanlab.filter.find_label_issues``
  on the *same* out-of-sample probabilities (the job's ``confidence_vectors``);
* blur and lighting: F1 of our diagnosis vs CleanVision's ``blurry`` / ``dark`` + ``light``;
* class splitting: was the merged class found, and how many false splits;
* throughput: images/s of the Ray Data featurize stage (decode, stats, measures, features)
  and of the whole job, plus the same stage in-process for reference.

Run: ``python benchmarks/correction_quality.py`` (about 3–5 minutes on 2 cores).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from percept.correction.job import local_executor, run_job  # noqa: E402
from percept.correction.request import TASK_KINDS  # noqa: E402
from percept.correction.state import DirSink  # noqa: E402
from percept.correction.synthetic import make_digits_dataset  # noqa: E402

SEEDS = [(0, (7, 1)), (1, (5, 6))]


def prf(pred: set[str], truth: set[str]) -> tuple[float, float, float]:
    tp = len(pred & truth)
    p = tp / len(pred) if pred else 0.0
    r = tp / len(truth) if truth else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def fmt(values: tuple[float, float, float]) -> str:
    return "/".join(f"{v:.3f}" for v in values)


def cleanvision_flags(paths: dict[str, str]) -> dict[str, set[str]]:
    from cleanvision import Imagelab

    uids = list(paths)
    lab = Imagelab(filepaths=[paths[u] for u in uids])
    lab.find_issues({"blurry": {}, "dark": {}, "light": {}}, verbose=False)
    issues = lab.issues.reindex([paths[u] for u in uids])
    pick = lambda col: {u for u, flag in zip(uids, issues[col].to_numpy(), strict=True) if flag}  # noqa: E731
    return {"blur": pick("is_blurry_issue"), "light": pick("is_dark_issue") | pick("is_light_issue")}


def main() -> None:
    import ray
    from cleanlab.filter import find_label_issues

    from pipelines.correction import ray_data_executor

    logging.basicConfig(level=logging.WARNING)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    tasks = [f"diagnose_{k}" for k in TASK_KINDS]
    print(f"{'seed':>4} {'metric':<28} {'ours':>22} {'baseline':>22}")
    for seed, merge in SEEDS:
        with tempfile.TemporaryDirectory() as tmp:
            data = make_digits_dataset(Path(tmp) / "digits", seed=seed, merge=merge)
            stage: dict[str, float] = {}

            def timed(items: list[dict[str, Any]], *args: Any, _stage: dict[str, float] = stage) -> Any:
                start = time.perf_counter()
                rows = ray_data_executor(items, *args)
                _stage["ray"] = time.perf_counter() - start
                return rows

            start = time.perf_counter()
            out = run_job(data.request(tasks, batch_size=64, concurrency=2), job_id=f"bench{seed}",
                          sink=DirSink(Path(tmp) / "out"), executor=timed)
            total = time.perf_counter() - start
            start = time.perf_counter()
            local_executor([{"path": p, "uuid": u} for u, p in data.paths.items()], "pixels",
                           out_config(), None, lambda d, t: None)
            local_s = time.perf_counter() - start

            entries = {e["uuid"]: e for f in out["dataset"]["class_files"].values() for e in f.values()}
            classes = out["dataset"]["classes"]
            uids = list(entries)
            probs = np.array([entries[u]["confidence_vectors"][0] for u in uids])
            labels = np.array([classes.index(entries[u]["original_class"]) for u in uids])
            by = {t["name"].split("_", 1)[1]: t for t in out["tasks"]}
            ours_mis = set(by["mislabeled_images"]["outliers"])
            cl_mask = find_label_issues(labels, probs)
            cl_mis = {u for u, f in zip(uids, cl_mask, strict=True) if f}
            cv = cleanvision_flags(data.paths)
            rows = [
                ("mislabeled P/R/F1", prf(ours_mis, data.flipped), prf(cl_mis, data.flipped)),
                ("blur P/R/F1", prf(set(by["image_blur"]["outliers"]), data.blurred), prf(cv["blur"], data.blurred)),
                ("lighting P/R/F1", prf(set(by["lighting_conditions"]["outliers"]), data.dark | data.bright),
                 prf(cv["light"], data.dark | data.bright)),
            ]
            for name, ours, base in rows:
                print(f"{seed:>4} {name:<28} {fmt(ours):>22} {fmt(base):>22}")
            split = by["class_splitting"]
            merged_into = data.merged[1] if data.merged else None
            found = merged_into in split["outliers"]
            false = [c for c in split["outliers"] if c != merged_into]
            k = split["subclasses"].get(merged_into, 0)
            verdict = f"found k={k}, {len(false)} false" if found else f"missed, {len(false)} false"
            label = f"class split (merged {merge[0]}->{merge[1]})"
            print(f"{seed:>4} {label:<28} {verdict:>22} {'(no baseline)':>22}")
            n = len(data.paths)
            print(f"{seed:>4} {'featurize images/s':<28} {n / stage['ray']:>18.1f} RD  {n / local_s:>15.1f} 1-proc")
            print(f"{seed:>4} {'whole job images/s':<28} {n / total:>22.1f} {'':>22}")
            sys.stdout.flush()
    ray.shutdown()


def out_config() -> Any:
    from percept.correction.request import JobConfig

    return JobConfig(batch_size=64)


if __name__ == "__main__":
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    main()
