"""The correction job's Ray Data path: tasks run side by side from the job's first second."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from pipelines.correction import map_pixels, without_cold_budget  # noqa: E402


def test_only_this_context_loses_the_budget_and_the_cap_is_kept_when_asked() -> None:
    from ray.data._internal.execution.backpressure_policy import (
        ENABLED_BACKPRESSURE_POLICIES,
        ENABLED_BACKPRESSURE_POLICIES_CONFIG_KEY,
        ConcurrencyCapBackpressurePolicy,
        ResourceBudgetBackpressurePolicy,
    )

    capped = ray.data.DataContext.get_current().copy()
    without_cold_budget(capped, keep_cap=True)
    assert capped.get_config(ENABLED_BACKPRESSURE_POLICIES_CONFIG_KEY) == [ConcurrencyCapBackpressurePolicy]
    uncapped = ray.data.DataContext.get_current().copy()
    without_cold_budget(uncapped, keep_cap=False)
    assert uncapped.get_config(ENABLED_BACKPRESSURE_POLICIES_CONFIG_KEY) == []
    assert ResourceBudgetBackpressurePolicy in ray.data.DataContext.get_current().get_config(
        ENABLED_BACKPRESSURE_POLICIES_CONFIG_KEY, ENABLED_BACKPRESSURE_POLICIES)


@pytest.fixture(scope="module")
def two_cpus() -> Iterator[None]:
    """Two free CPUs: a session of its own, or (in the full suite, where the integration tier's
    session is up until the end) that session when it has two CPUs free."""
    if ray.is_initialized():
        free = float(ray.available_resources().get("CPU", 0.0))
        assert free >= 2, f"the running Ray session has {free} CPUs free; these tests need 2"
        yield
        return
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def _spans(workers: int, tasks: int = 6, seconds: float = 0.15) -> list[tuple[float, float]]:
    """Start and end of each task of a pixel-style map, relative to the job's start."""
    import os

    import pyarrow as pa

    def work(batch: dict[str, Any]) -> dict[str, Any]:
        start = time.time()
        time.sleep(seconds)
        n = len(batch["uuid"])
        return {"uuid": batch["uuid"], "t0": np.full(n, start), "t1": np.full(n, time.time()),
                "pid": np.full(n, os.getpid())}

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    dataset = ray.data.from_arrow([pa.table({"uuid": [f"{t}-{i}" for i in range(4)]}) for t in range(tasks)])
    began = time.time()
    spans = set()
    for out in map_pixels(dataset, work, {}, workers, 1.0, keep_cap=True).iter_batches(batch_size=None, batch_format="numpy"):
        spans |= {(float(a) - began, float(b) - began) for a, b in zip(out["t0"], out["t1"], strict=True)}
    return sorted(spans)


def _most_at_once(spans: list[tuple[float, float]]) -> int:
    return max(sum(1 for a, b in spans if a <= t < b) for t, _ in spans)


def test_two_workers_run_two_tasks_at_once_from_the_start(two_cpus: None) -> None:
    _spans(2)  # warm: worker processes start and import
    # Ray Data's default budget is zero until its first resource refresh (~1 s): before the
    # fix the first tasks ran one after another in every job, so none of the first two
    # overlapped. In the full suite the shared session's other actors can delay the second
    # worker once (seen in CI: it started 33 ms after the first task ended), so the job runs
    # up to three times and one overlap of the first two tasks is required; without the fix
    # no attempt overlaps.
    attempts = []
    for _ in range(3):
        spans = _spans(2)
        assert len(spans) == 6
        assert _most_at_once(spans) <= 2, spans
        attempts.append(spans)
        first, second = spans[0], spans[1]
        if second[0] < first[1]:
            break
    else:
        raise AssertionError(f"the first two tasks never ran at once: {attempts}")
    assert _most_at_once(spans) == 2, spans


def test_one_worker_still_runs_one_task_at_a_time(two_cpus: None) -> None:
    spans = _spans(1, tasks=4)
    assert _most_at_once(spans) == 1, spans
