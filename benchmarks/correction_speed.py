"""Dataset correction throughput: the whole job on 20,000 32x32 images, Ray Data vs one process.

Data: scikit-learn's digits at 32x32 with augmentations (shift, rotation, scale, exposure
variation), 20,000 grey PNGs (``tests/synthetic/correction.py:make_speed_dataset``), cached
under the system temp folder between runs. The job runs all eight tasks (diagnose and
correct × mislabeled images, class splitting, blur, lighting), writes its report and its
corrected images.

* baseline: the same job with the per-image step in this one process (``local_executor``:
  the same featurizer over the same batches);
* Ray Data: the job's executor (``pipelines.correction.ray_data_executor``) on a local Ray
  started once before the runs (its start-up is reported apart: a cluster is up already);
  the first job is reported apart too (Ray starts its worker processes then);
* scaling: the per-image stage alone on Ray Data with 1, 2, … workers.

Each figure is the median of ``--repeat`` runs, with the machine's load average beside it:
on a shared machine wall-clock figures move with the other work.

Run from the repository root, under the shared Ray lock:
``flock /tmp/percept-ray.lock .venv/bin/python -m benchmarks.correction_speed``
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from percept.correction.features import batch_size_for
from percept.correction.job import local_executor, run_job
from percept.correction.request import TASK_KINDS, JobConfig
from percept.correction.sinks import DirSink
from tests.synthetic.correction import SyntheticDataset, make_speed_dataset

TASKS = [f"{a}_{k}" for k in TASK_KINDS for a in ("diagnose", "correct")]


def dataset(count: int) -> SyntheticDataset:
    root = Path(tempfile.gettempdir()) / f"percept-correction-speed-{count}"
    marker = root / "dataset.pkl"
    if marker.exists():
        data: SyntheticDataset = pickle.loads(marker.read_bytes())
        if all(Path(p).exists() for p in list(data.paths.values())[:50]):
            return data
    data = make_speed_dataset(root / "images", count=count)
    marker.write_bytes(pickle.dumps(data))
    return data


def load() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def whole_job(data: SyntheticDataset, executor: Any, out: Path, **config: Any) -> dict[str, Any]:
    start = time.perf_counter()
    result = run_job(data.request(TASKS, **config), job_id="speed", sink=DirSink(out), executor=executor)
    return {"seconds": time.perf_counter() - start, "stages": result["job"]["stages"], "load": load()}


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    import ray

    from pipelines.correction import ray_data_executor

    data = dataset(args.images)
    n = len(data.paths)
    items = [{"path": p, "uuid": u} for u, p in data.paths.items()]
    print(f"{n} images of 32x32; {args.cpus} CPUs; load average at start {load()}")
    base: list[dict[str, Any]] = []
    warm: list[dict[str, Any]] = []
    stage_times: dict[str, list[float]] = {"one process": []}
    cpu_per_image: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - start
        try:
            cold = whole_job(data, ray_data_executor, Path(tmp) / "cold")
            # Interleaved, so that both see the same load from the machine's other work.
            for i in range(args.repeat):
                base.append(whole_job(data, local_executor, Path(tmp) / f"base{i}"))
                warm.append(whole_job(data, ray_data_executor, Path(tmp) / f"rd{i}"))
                start, cpu = time.perf_counter(), time.process_time()
                local_executor(items, "pixels", JobConfig(), None, lambda d, t: None)
                stage_times["one process"].append(time.perf_counter() - start)
                cpu_per_image.append((time.process_time() - cpu) / n)
                for workers in sorted({1, 2, args.cpus}):
                    start = time.perf_counter()
                    ray_data_executor(items, "pixels", JobConfig(concurrency=workers), None, lambda d, t: None)
                    stage_times.setdefault(f"Ray Data, {workers} worker(s)", []).append(time.perf_counter() - start)
        finally:
            ray.shutdown()
    b, w = median_run(base), median_run(warm)
    print(f"\nRay start-up (once per cluster, not in the job): {ray_start:.1f} s; "
          f"first Ray Data job (workers starting): {cold['seconds']:.1f} s = {n / cold['seconds']:.0f} images/s")
    print(f"batch size {batch_size_for('pixels', 0)} (auto), Ray Data workers = free CPUs ({args.cpus})\n")
    print(f"| whole job, {n} images (median of {args.repeat}) | one process (baseline) | Ray Data |")
    print("|---|---|---|")
    print(f"| seconds | {b['seconds']:.2f} | {w['seconds']:.2f} |")
    print(f"| images/s | {n / b['seconds']:.0f} | {n / w['seconds']:.0f} |")
    print(f"| load average (1/5/15 min) after the run | {b['load']} | {w['load']} |")
    for stage in b["stages"]:
        print(f"| stage: {stage} | {b['stages'][stage]:.2f} s | {w['stages'].get(stage, 0.0):.2f} s |")
    print(f"\n| per-image stage alone ({n} images, median of {args.repeat}) | seconds | images/s |")
    print("|---|---|---|")
    for name, times in stage_times.items():
        seconds = statistics.median(times)
        print(f"| {name} | {seconds:.2f} | {n / seconds:.0f} |")
    print(f"\nCPU time of the per-image work in one process: {1e6 * statistics.median(cpu_per_image):.0f} µs an image "
          f"(= {1 / statistics.median(cpu_per_image):.0f} images/s per core when the core is free)")
    print(f"\nload average at the end {load()}")


if __name__ == "__main__":
    main()
