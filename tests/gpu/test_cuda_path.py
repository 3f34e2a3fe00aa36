"""The GPU tier: runs only where CUDA is visible (skipped on CPU machines and in CI)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_device_is_picked_at_run_time() -> None:
    from percept.models.weights import pick_device

    assert pick_device() == "cuda"
    assert pick_device("cpu") == "cpu"


def test_imagenet_model_runs_on_cuda_and_matches_cpu() -> None:
    from skimage import data

    from percept.models.imagenet import ImageNetModel

    gpu = ImageNetModel(device="auto")
    cpu = ImageNetModel(device="cpu")
    assert gpu.device == "cuda"
    image = data.chelsea()
    assert gpu.classify([image], 1)[0][0][0] == cpu.classify([image], 1)[0][0][0]
    assert np.allclose(gpu.embed([image]), cpu.embed([image]), atol=1e-3)


def test_fractional_gpu_shares_are_kept_on_a_gpu_cluster() -> None:
    from percept.config import DeploymentOptions

    options = DeploymentOptions(num_gpus=0.25).serve_options(use_gpu=True)
    assert options["ray_actor_options"]["num_gpus"] == 0.25
