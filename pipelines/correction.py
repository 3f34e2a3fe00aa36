"""Ray Data executor of the correction job: decode, measure and embed in ``map_batches``.

Pixel features (tiny images) run as stateless Ray tasks: no actor has to start, and the
featurizer costs ~0.1 ms of CPU an image, so what matters is how many tasks a job has.
Profiling (``benchmarks/correction_speed.py --profile``) showed that Ray Data's fixed cost
is small (~0.1 s for a 200-image job, warm) and that each task costs more than its own work
when the machine is busy (it waits for the raylet, the worker and the driver to be
scheduled), so a pixel job gets about ``TASKS_PER_WORKER`` tasks per worker: batches of
``n / (workers × 4)`` images, between 512 and 4,096. The input is built as one Arrow block
per batch (no per-row Python dicts on the driver), and each task takes its block whole
(``batch_size=None``: no re-batching in the worker). Ray Data's resource-budget backpressure
is dropped for pixel jobs (:func:`without_cold_budget`): its budget is zero until its first
resource refresh, about a second into every job, so the first tasks ran one at a time; so is
its concurrency cap when the job takes every free CPU (concurrency 0: Ray's scheduler caps it then).
EfficientNet features run on an actor pool (one model load per actor, ``num_gpus`` each when
given) over batches of 32.

Both read the job's ``batch_size`` and ``concurrency``; 0 means "as above" and "as many as
the cluster's free CPUs (or GPUs) allow". Results stream back to the caller block by block,
so progress is reported as images are done. :data:`LAST_RUN` keeps the last job's profile
(seconds, driver CPU, batch, workers and Ray Data's own per-operator statistics).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from percept.correction.features import Featurizer, batch_size_for, rows_of
from percept.correction.request import JobConfig

logger = logging.getLogger(__name__)

TASKS_PER_WORKER = 4
PIXEL_BATCH_RANGE = (512, 4096)
LAST_RUN: dict[str, Any] = {}


def ray_batch_size(kind: str, configured: int, images: int, workers: int) -> int:
    """The configured batch size, or (0) about ``TASKS_PER_WORKER`` pixel tasks per worker."""
    if configured > 0 or kind != "pixels":
        return batch_size_for(kind, configured)
    lo, hi = PIXEL_BATCH_RANGE
    return int(min(max(-(-images // (max(workers, 1) * TASKS_PER_WORKER)), lo), hi))


def featurize_pixels(batch: dict[str, Any], allowed_roots: list[str] | None) -> dict[str, Any]:
    """One Ray task's batch: the pixel featurizer holds no model, so a task needs no actor."""
    return Featurizer("pixels", allowed_roots=allowed_roots)(batch)


def without_cold_budget(ctx: Any, keep_cap: bool = True) -> None:
    """Drop Ray Data's backpressure policies that cost a pixel job time, from one dataset's
    context (not the process's).

    * Resource budget, always: Ray Data (2.60) reads the cluster's resources from its
      autoscaling coordinator actor asynchronously and refreshes them once a second, so for
      about the first second of every execution its global limits are zero, every
      operator's budget is zero, and the budget policy lets an idle operator run one task at
      a time. Profiled with 2 workers on 20,000 images: the first 4-5 of 8 tasks ran one
      after another on one worker (~1.0 s of the 2.0 s stage); plain Ray tasks ran two at a
      time from the start.
    * The concurrency cap and the downstream-capacity policy, unless ``keep_cap``: with the
      cap Ray Data submits a task only when one has finished and its scheduling loop comes
      round (~0.4 s of a 1.6 s stage with 2 workers); without, all tasks are submitted at
      once and Ray's scheduler runs as many as there are CPUs, as plain Ray tasks do. The
      caller keeps the cap when the job sets its own concurrency.

    A pixel job's output is small (~2.6 KB an image, 20,000 images ~53 MB) and consumed block
    by block as it arrives, so it needs no object-store budget.
    """
    try:  # Ray Data's own module (pinned Ray); another release keeps its defaults, just slower
        from ray.data._internal.execution.backpressure_policy import (
            ENABLED_BACKPRESSURE_POLICIES,
            ENABLED_BACKPRESSURE_POLICIES_CONFIG_KEY,
            ConcurrencyCapBackpressurePolicy,
        )
    except ImportError:
        logger.warning("Ray Data's backpressure policies moved: the correction job keeps their defaults")
        return

    policies = ctx.get_config(ENABLED_BACKPRESSURE_POLICIES_CONFIG_KEY, ENABLED_BACKPRESSURE_POLICIES)
    ctx.set_config(ENABLED_BACKPRESSURE_POLICIES_CONFIG_KEY,
                   [p for p in policies if keep_cap and p is ConcurrencyCapBackpressurePolicy])


def map_pixels(dataset: Any, fn: Callable[..., dict[str, Any]], fn_kwargs: dict[str, Any], workers: int,
               num_cpus: float, keep_cap: bool) -> Any:
    """``fn`` over each input block whole, as stateless tasks, at most ``workers`` at a time,
    numpy batches without copies, the costly backpressure off (:func:`without_cold_budget`).
    Without ``keep_cap`` (the job takes every free CPU: its concurrency is 0) Ray's scheduler
    is the cap, by the CPUs each task asks for. Decided from the job's setting, not from a
    fresh look at the free CPUs, which lag behind tasks that just ended."""
    import ray

    without_cold_budget(dataset.context, keep_cap=keep_cap)
    return dataset.map_batches(
        fn, fn_kwargs=fn_kwargs, batch_size=None, batch_format="numpy", num_cpus=num_cpus,
        compute=ray.data.TaskPoolStrategy(size=workers), zero_copy_batch=True)


def choose_concurrency(kind: str, config: JobConfig) -> int:
    """The configured worker count, or (0) what the cluster's free resources allow."""
    if config.concurrency > 0:
        return config.concurrency
    import ray

    free = ray.available_resources()
    if kind == "imagenet" and config.num_gpus > 0:
        return max(1, int(free.get("GPU", 0.0) // config.num_gpus))
    return max(1, int(free.get("CPU", 1.0) // max(config.num_cpus, 0.01)))


def ray_data_executor(
    items: list[dict[str, Any]],
    kind: str,
    config: JobConfig,
    allowed_roots: list[str] | None,
    progress: Callable[[int, int], None],
) -> list[dict[str, Any]]:
    """Featurize ``items`` (``path``, ``uuid``) on Ray Data; one row dict per item."""
    import ray

    if not ray.is_initialized():
        ray.init(ignore_reinit_error=True, log_to_driver=False)
    if not items:
        return []
    started, cpu = time.perf_counter(), time.process_time()
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.verbose_progress = False
    ctx.print_on_execution_start = False
    workers = choose_concurrency(kind, config)
    batch = ray_batch_size(kind, config.batch_size, len(items), workers)
    # Arrow blocks built column-wise: one per pixel batch (a block is the unit a task takes);
    # actors take batches of ``batch`` from blocks of at most 1/200 of the job.
    rows_per_block = batch if kind == "pixels" else max(batch, -(-len(items) // 200))
    dataset = ray.data.from_arrow([
        pa.table({"path": [i["path"] for i in items[s:s + rows_per_block]],
                  "uuid": [i["uuid"] for i in items[s:s + rows_per_block]]})
        for s in range(0, len(items), rows_per_block)])
    if kind == "pixels":
        featurized = map_pixels(dataset, featurize_pixels, {"allowed_roots": allowed_roots}, workers, config.num_cpus,
                                keep_cap=config.concurrency > 0)
    else:
        featurized = dataset.map_batches(
            Featurizer,
            fn_constructor_kwargs={"kind": kind, "models_path": config.models_path, "allowed_roots": allowed_roots},
            batch_size=batch, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=config.num_cpus, num_gpus=config.num_gpus, zero_copy_batch=True)
    rows: list[dict[str, Any]] = []
    for out in featurized.iter_batches(batch_size=None, batch_format="numpy"):
        rows += rows_of(out)
        progress(len(rows), len(items))
    seconds = time.perf_counter() - started
    LAST_RUN.clear()
    LAST_RUN.update(seconds=seconds, driver_cpu=time.process_time() - cpu, batch=batch, workers=workers,
                    images=len(rows), stats=featurized.stats())
    logger.info("featurized %d images (%s) on Ray Data: batch %d, %d workers, %.2f s",
                len(rows), kind, batch, workers, seconds)
    return rows
