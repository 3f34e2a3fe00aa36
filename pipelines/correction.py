"""Ray Data executor of the correction job: decode, measure and embed in ``map_batches``.

Pixel features (tiny images) run as stateless Ray tasks over large batches: a batch of 512
32x32 images costs ~50 ms of numpy, so the per-task and per-block overheads vanish, and no
actor has to start. EfficientNet features run on an actor pool (one model load per actor,
``num_gpus`` each when given). Both read the job's ``batch_size`` and ``concurrency``; 0 means
"by feature kind" and "as many as the cluster's free CPUs (or GPUs) allow". Results stream back
to the caller batch by batch, so progress is reported as images are done; what comes back is
small (measures, a 580-d float32 vector per image), so the driver is not the bottleneck.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from percept.correction.features import Featurizer, batch_size_for, rows_of
from percept.correction.request import JobConfig

logger = logging.getLogger(__name__)


def featurize_pixels(batch: dict[str, Any], allowed_roots: list[str] | None) -> dict[str, Any]:
    """One Ray task's batch: the pixel featurizer holds no model, so a task needs no actor."""
    return Featurizer("pixels", allowed_roots=allowed_roots)(batch)


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
    started = time.perf_counter()
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.verbose_progress = False
    batch = batch_size_for(kind, config.batch_size)
    workers = choose_concurrency(kind, config)
    # One block per batch: a block is the unit a worker takes, and each must be a full batch.
    blocks = max(1, min(-(-len(items) // batch), 1000))
    dataset = ray.data.from_items(items, override_num_blocks=blocks)
    if kind == "pixels":
        featurized = dataset.map_batches(
            featurize_pixels,  # type: ignore[arg-type]  # Ray's stubs do not model fn_kwargs
            fn_kwargs={"allowed_roots": allowed_roots}, batch_size=batch,
            batch_format="numpy", num_cpus=config.num_cpus, compute=ray.data.TaskPoolStrategy(size=workers),
            zero_copy_batch=True)
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
    logger.info("featurized %d images (%s) on Ray Data: batch %d, %d workers, %.2f s",
                len(rows), kind, batch, workers, time.perf_counter() - started)
    return rows
