"""serve_config.yaml's serving knobs, per device: what a replica gets from its user_config."""

from __future__ import annotations

from pathlib import Path

import yaml

from deployments.base import BatchKnobs

CONFIG = Path(__file__).resolve().parents[3] / "serve_config.yaml"


def _user_config(name: str) -> dict:
    app = yaml.safe_load(CONFIG.read_text())["applications"][0]
    return app["args"]["deployments"][name]["user_config"]


def test_the_classifier_batches_on_a_gpu_only() -> None:
    """CPU: one forward pass per request (batching lost to it at c=16 in three A/B runs of
    benchmarks/serving.py, tied at c=1: docs/performance.md finding 31); CUDA: batches of up to 32."""
    knobs = BatchKnobs.model_validate(_user_config("tagger_classifier"))
    assert knobs.for_device("cpu").batching is False
    cuda = knobs.for_device("cuda:0")
    assert cuda.batching is True and cuda.max_batch_size == 32 and cuda.concurrent_batches == 2


def test_a_device_override_leaves_batching_alone_unless_it_names_it() -> None:
    knobs = BatchKnobs.model_validate({"batching": True, "devices": {"cuda": {"max_batch_size": 8}}})
    assert knobs.for_device("cuda").batching is True and knobs.for_device("cuda").max_batch_size == 8
    knobs = BatchKnobs.model_validate({"batching": True, "devices": {"cpu": {"batching": False}}})
    assert knobs.for_device("cpu").batching is False and knobs.for_device("cuda").batching is True
