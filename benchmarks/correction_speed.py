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
* scaling: the per-image stage alone on Ray Data with 1, 2, … workers, beside the same work
  in as many plain processes (a process pool started before Ray: what this machine gives to
  n processes at its current load, the ceiling for Ray Data's scaling), with its profile: the
  batch (= block) size, the number of tasks, the tasks' own wall and CPU seconds (Ray Data's
  per-operator statistics), the bytes each output block moves through the object store and
  the driver's CPU seconds (building the input blocks, running the streaming executor,
  turning the output blocks into rows).

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
import re
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


def map_stats(stats: str) -> dict[str, float]:
    """Tasks, their summed remote wall and CPU seconds and mean output block bytes of the
    map operator, read from Ray Data's ``Dataset.stats()`` text."""
    section = stats[stats.find("MapBatches"):]
    out: dict[str, float] = {}
    tasks = re.search(r"(\d+) tasks executed", section)
    out["tasks"] = float(tasks.group(1)) if tasks else float("nan")

    def seconds(text: str) -> float:
        value, unit = re.match(r"([\d.]+)\s*(\w+)", text).groups()  # type: ignore[union-attr]
        return float(value) * {"s": 1.0, "ms": 1e-3, "us": 1e-6}.get(unit, 1.0)

    for key, label in (("task_wall", "Remote wall time"), ("task_cpu", "Remote cpu time")):
        m = re.search(label + r":.*?, ([\d.]+\s*\w+) total", section)
        out[key] = seconds(m.group(1)) if m else float("nan")
    m = re.search(r"Output size bytes per block: .*?, ([\d.]+) mean", section)
    out["block_bytes"] = float(m.group(1)) if m else float("nan")
    return out


def _featurize_chunk(chunk: list[dict[str, Any]]) -> dict[str, Any]:
    """One plain process's share of the per-image work: the job's featurizer, column output."""
    from percept.correction.features import Featurizer

    return Featurizer("pixels")({"path": [i["path"] for i in chunk], "uuid": [i["uuid"] for i in chunk]})


def plain_processes(items: list[dict[str, Any]], pool: Any, workers: int) -> float:
    """Seconds for ``workers`` plain Python processes (already started) to do the per-image
    work, in about 4 chunks per process as Ray Data's tasks, columns sent back by pickle: the
    scaling a machine gives to processes without Ray, the ceiling for Ray Data's."""
    from pipelines.correction import ray_batch_size

    size = ray_batch_size("pixels", 0, len(items), workers)
    chunks = [items[s:s + size] for s in range(0, len(items), size)]
    start = time.perf_counter()
    list(pool.map(_featurize_chunk, chunks))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--worker-niceness", type=int, default=0,
                        help="niceness of Ray's worker processes (Ray's own default is 15)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # Ray starts its workers at niceness 15 unless told otherwise: on a busy machine they then
    # lose the CPU to every ordinary process, the one-process baseline included (profiled: a
    # 1-worker run got 3.8 s of CPU in 23 s of wall time at load 17, the baseline 3.1 s in 4).
    # Both sides run at the same priority here, as on a machine that runs only the job.
    os.environ["RAY_worker_niceness"] = str(args.worker_niceness)
    import ray

    from pipelines.correction import LAST_RUN, ray_data_executor

    data = dataset(args.images)
    n = len(data.paths)
    items = [{"path": p, "uuid": u} for u, p in data.paths.items()]
    print(f"{n} images of 32x32; {args.cpus} CPUs; load average at start {load()}")
    base: list[dict[str, Any]] = []
    warm: list[dict[str, Any]] = []
    stage_times: dict[str, list[float]] = {"one process": []}
    profiles: dict[str, list[dict[str, float]]] = {}
    cpu_per_image: list[float] = []
    ceiling: dict[int, list[float]] = {}
    worker_counts = sorted({1, 2, args.cpus})
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # Started before Ray (spawned, so nothing of Ray's is inherited) and warmed up once.
    pools = {w: ProcessPoolExecutor(w, mp_context=multiprocessing.get_context("spawn")) for w in worker_counts}
    for w, pool in pools.items():
        list(pool.map(_featurize_chunk, [items[:8]] * w))
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - start
        niceness = ray.get(ray.remote(lambda: os.nice(0)).remote())
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
                for workers in worker_counts:
                    ceiling.setdefault(workers, []).append(plain_processes(items, pools[workers], workers))
                    start = time.perf_counter()
                    ray_data_executor(items, "pixels", JobConfig(concurrency=workers), None, lambda d, t: None)
                    name = f"Ray Data, {workers} worker(s)"
                    stage_times.setdefault(name, []).append(time.perf_counter() - start)
                    profiles.setdefault(name, []).append(
                        {"batch": LAST_RUN["batch"], "driver_cpu": LAST_RUN["driver_cpu"], **map_stats(LAST_RUN["stats"])})
        finally:
            ray.shutdown()
            for pool in pools.values():
                pool.shutdown()
    b, w = median_run(base), median_run(warm)
    print(f"\nRay start-up (once per cluster, not in the job): {ray_start:.1f} s; "
          f"first Ray Data job (workers starting): {cold['seconds']:.1f} s = {n / cold['seconds']:.0f} images/s")
    print(f"Ray worker niceness {niceness} (this process {os.nice(0)})")
    print(f"batch size (auto): {batch_size_for('pixels', 0)} in one process, about 4 tasks per worker on Ray Data; "
          f"Ray Data workers = free CPUs ({args.cpus})\n")
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
    print(f"\n| scaling of the per-image stage ({n} images, median of {args.repeat}) | plain processes, s "
          "| plain ×1→n | Ray Data, s | Ray Data ×1→n | Ray Data / plain |")
    print("|---|---|---|---|---|---|")
    plain_1 = statistics.median(ceiling[1])
    ray_1 = statistics.median(stage_times["Ray Data, 1 worker(s)"])
    for workers in worker_counts:
        p_s = statistics.median(ceiling[workers])
        r_s = statistics.median(stage_times[f"Ray Data, {workers} worker(s)"])
        print(f"| {workers} worker(s) | {p_s:.2f} | ×{plain_1 / p_s:.2f} | {r_s:.2f} | ×{ray_1 / r_s:.2f} | {r_s / p_s:.2f} |")
    print(f"\n| Ray Data profile of the per-image stage (median of {args.repeat}) | batch = block rows | tasks "
          "| task wall s (sum) | task CPU s (sum) | output MB per block | driver CPU s |")
    print("|---|---|---|---|---|---|---|")
    for name, runs in profiles.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"| {name} | {med['batch']:.0f} | {med['tasks']:.0f} | {med['task_wall']:.2f} | {med['task_cpu']:.2f} "
              f"| {med['block_bytes'] / 1e6:.1f} | {med['driver_cpu']:.2f} |")
    print(f"\nCPU time of the per-image work in one process: {1e6 * statistics.median(cpu_per_image):.0f} µs an image "
          f"(= {1 / statistics.median(cpu_per_image):.0f} images/s per core when the core is free)")
    print(f"\nload average at the end {load()}")


if __name__ == "__main__":
    main()
