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


def pick_device(prefer: str = "auto") -> str:
    """``cuda`` when a GPU is visible to this process (and not refused), else ``cpu``."""
    if prefer == "cpu":
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
