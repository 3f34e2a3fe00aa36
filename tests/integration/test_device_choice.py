"""Which device a model picks inside Ray: only a GPU that Ray lent the worker counts.

Ray leaves a machine's GPUs visible to a worker that asked for none, so on a GPU machine with
``accelerator: cpu`` a replica's model went to the GPU anyway (seen on an H200: the
ingress-hosted classifier held 754 MiB the scheduler never reserved). These tests stand a
visible GPU in for the real one by making ``torch.cuda.is_available`` answer True.
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.integration


def _pick_with_a_visible_gpu(prefer: str) -> str:
    import torch

    from percept.models.weights import pick_device

    # Restored afterwards: Ray reuses a task's worker process for later tasks of the session.
    real = torch.cuda.is_available
    torch.cuda.is_available = lambda: True  # type: ignore[method-assign]
    try:
        return pick_device(prefer)
    finally:
        torch.cuda.is_available = real  # type: ignore[method-assign]


def test_a_ray_worker_lent_no_gpu_runs_on_the_cpu(ray_session: None) -> None:
    import ray

    @ray.remote(num_cpus=0, num_gpus=0)
    class Replica:
        def pick(self, prefer: str) -> str:
            return _pick_with_a_visible_gpu(prefer)

    replica = Replica.remote()  # type: ignore[attr-defined]
    assert ray.get(replica.pick.remote("auto")) == "cpu"
    assert ray.get(replica.pick.remote("cuda")) == "cpu"
    assert ray.get(replica.pick.remote("cpu")) == "cpu"

    @ray.remote(num_cpus=0, num_gpus=0)
    def task(prefer: str) -> str:
        return _pick_with_a_visible_gpu(prefer)

    assert ray.get(task.remote("auto")) == "cpu"
    ray.kill(replica)


def test_the_driver_and_a_worker_lent_a_gpu_use_it(ray_session: None, monkeypatch: Any) -> None:
    import ray
    import torch

    from percept.models.weights import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device() == "cuda"  # the driver (a test, `serve run`'s process) is not a worker

    class LentContext:
        worker = type("Worker", (), {"mode": ray.WORKER_MODE})()

        @staticmethod
        def get_accelerator_ids() -> dict[str, list[str]]:
            return {"GPU": ["0"]}

    monkeypatch.setattr(ray, "get_runtime_context", lambda: LentContext())
    assert pick_device() == "cuda"
    monkeypatch.setattr(LentContext, "get_accelerator_ids", staticmethod(lambda: {"GPU": []}))
    assert pick_device() == "cpu"
