"""Where model weights live, and which device runs them.

One models directory (``models_path``) holds every model's weights in its library's own
layout, so a machine with internet fills it by itself and an offline machine reads it:

* Hugging Face models: ``<models>/huggingface`` is the hub cache (``HF_HOME``); a plain
  ``save_pretrained`` folder ``<models>/<name>`` is accepted too.
* CTranslate2 / faster-whisper models: ``<models>/whisper/<size>`` folders.
* torch files: ``<models>/<name>.pt``.

:func:`use_models_dir` points the libraries' caches into the directory before any model
library is imported by a replica.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from percept.errors import WeightsMissing

logger = logging.getLogger(__name__)


def use_models_dir(models_path: str | Path) -> Path:
    """Point the model libraries' caches at the models directory; returns it."""
    root = Path(models_path).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    # Plugins' load() gets no app args: they find the directory here.
    os.environ.setdefault("PERCEPT_MODELS_PATH", str(root))
    os.environ.setdefault("HF_HOME", str(root / "huggingface"))
    os.environ.setdefault("TORCH_HOME", str(root / "torch"))
    os.environ.setdefault("XDG_CACHE_HOME", str(root / "cache"))
    return root


def find_hf_model(models_path: str | Path, name: str, repo_id: str, model_label: str) -> str:
    """A loadable Hugging Face model reference, or :class:`WeightsMissing`.

    Looks for a ``save_pretrained`` folder ``<models>/<name>`` first, then the hub cache of
    ``repo_id`` under ``<models>/huggingface``. Never downloads when the weights are not
    there: the caller reports the deployment unavailable instead.
    """
    root = Path(models_path)
    folder = root / name
    if (folder / "config.json").is_file():
        return str(folder)
    cache = root / "huggingface" / "hub" / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    if cache.is_dir():
        snapshots = sorted(p for p in cache.iterdir() if (p / "config.json").is_file())
        if snapshots:
            return str(snapshots[-1])
    raise WeightsMissing(
        model_label,
        str(root),
        hint=f"save_pretrained() it to {folder} or fill the hub cache {root / 'huggingface'} with {repo_id}",
    )


def _ray_lent_no_gpu() -> bool:
    """True inside a Ray worker (a Serve replica, a Ray Data task) that was lent no GPU.

    Ray leaves a machine's GPUs visible to a worker that asked for none (``num_gpus: 0``), so
    ``torch.cuda.is_available()`` alone would put a CPU replica's model on a GPU the scheduler
    never reserved for it (seen on an H200 with ``accelerator: cpu``: the ingress-hosted
    classifier took 754 MiB of GPU memory). A driver or a plain process is not affected.
    """
    ray = sys.modules.get("ray")  # a Ray worker has imported Ray; a plain process need not pay for it
    if ray is None or not ray.is_initialized():
        return False
    context = ray.get_runtime_context()
    if context.worker.mode != ray.WORKER_MODE:
        return False
    return not context.get_accelerator_ids().get("GPU")


def pick_device(prefer: str = "auto") -> str:
    """``cuda`` when a GPU is visible to this process (and not refused), else ``cpu``.

    Inside a Ray worker only a GPU that Ray lent it counts (:func:`_ray_lent_no_gpu`).
    """
    if prefer == "cpu":
        return "cpu"
    if _ray_lent_no_gpu():
        if prefer == "cuda":
            logger.warning("a GPU was asked for but Ray lent this worker none: running on the CPU")
        return "cpu"
    try:
        import torch

        if torch.cuda.is_available():
            return "cuda"
    except ImportError:
        pass
    if prefer == "cuda":
        logger.warning("a GPU was asked for but none is visible: running on the CPU")
    return "cpu"
