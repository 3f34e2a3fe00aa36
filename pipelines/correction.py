"""Ray Data executor of the correction job: decode, measure and embed in ``map_batches``.

The featurizer is a callable class (one model load per actor) run with the job's
``batch_size``, ``concurrency`` (actor pool size) and ``num_cpus`` per actor. Results stream
back to the caller batch by batch, so progress is reported as images are done.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from percept.correction.features import Featurizer, rows_of
from percept.correction.request import JobConfig

logger = logging.getLogger(__name__)


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
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.verbose_progress = False
    # Small blocks so several actors share even a small dataset, and progress is smooth.
    blocks = max(1, min(len(items) // max(config.batch_size, 1), 200))
    dataset = ray.data.from_items(items, override_num_blocks=blocks)
    featurized = dataset.map_batches(
        Featurizer,
        fn_constructor_kwargs={"kind": kind, "models_path": config.models_path, "allowed_roots": allowed_roots},
        batch_size=config.batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=config.concurrency),
        num_cpus=config.num_cpus,
        num_gpus=config.num_gpus if kind == "imagenet" else 0,
        zero_copy_batch=False,
    )
    rows: list[dict[str, Any]] = []
    for batch in featurized.iter_batches(batch_size=None, batch_format="numpy"):
        rows += rows_of(batch)
        progress(len(rows), len(items))
    logger.info("featurized %d images with %s features on Ray Data", len(rows), kind)
    return rows
