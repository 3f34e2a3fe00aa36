"""Image and text embedders for similarity search: ResNet34, CLIP, and EfficientNet-Lite0.

ResNet34 and CLIP are transformers models read from the models directory
(``<models>/resnet-34`` / ``<models>/clip`` as ``save_pretrained`` folders, or the hub cache
of ``microsoft/resnet-34`` / ``openai/clip-vit-base-patch32``); they are never downloaded.
EfficientNet-Lite0 (offline, from its PyPI wheel) can stand in for ResNet34 when
``resnet_fallback: efficientnet`` is configured.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from percept.models.imagenet import to_rgb_array
from percept.models.weights import find_hf_model, pick_device
from percept.search.vectors import normalise

logger = logging.getLogger(__name__)

RESNET_DIR, RESNET_REPO = "resnet-34", "microsoft/resnet-34"
CLIP_DIR, CLIP_REPO = "clip", "openai/clip-vit-base-patch32"


def _features(output: Any) -> Any:
    """transformers ≥5 returns a model output from ``get_*_features``; older ones a tensor."""
    return output if hasattr(output, "shape") else output.pooler_output


def _pil(images: list[Any]) -> list[Any]:
    from PIL import Image

    return [Image.fromarray(to_rgb_array(img)) for img in images]


class ResNetEmbedder:
    """ResNet34 (``ResNetModel``): the pooled 512-d feature, L2-normalised."""

    kind = "resnet"

    def __init__(self, models_path: str | Path, device: str = "auto") -> None:
        import torch
        from transformers import AutoImageProcessor, ResNetModel

        ref = find_hf_model(models_path, RESNET_DIR, RESNET_REPO, "ResNet34")
        self._torch = torch
        self.device = pick_device(device)
        self.processor = AutoImageProcessor.from_pretrained(ref)
        self.model = ResNetModel.from_pretrained(ref).eval().to(self.device)
        self.name = f"resnet:{Path(ref).name}"
        self.dim = int(self.model.config.hidden_sizes[-1])
        self._lock = threading.Lock()
        logger.info("loaded ResNet from %s on %s (%d-d)", ref, self.device, self.dim)

    def embed_images(self, images: list[Any]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        torch = self._torch
        with self._lock, torch.inference_mode():
            batch = self.processor(images=_pil(images), return_tensors="pt")["pixel_values"].to(self.device)
            pooled = self.model(pixel_values=batch).pooler_output.flatten(1)
        return normalise(pooled.float().cpu().numpy())


class ClipEmbedder:
    """CLIP (``CLIPModel`` + its processor): images and texts in one projected space."""

    kind = "clip"

    def __init__(self, models_path: str | Path, device: str = "auto") -> None:
        import torch
        from transformers import AutoProcessor, CLIPModel

        ref = find_hf_model(models_path, CLIP_DIR, CLIP_REPO, "CLIP")
        self._torch = torch
        self.device = pick_device(device)
        self.processor = AutoProcessor.from_pretrained(ref)
        self.model = CLIPModel.from_pretrained(ref).eval().to(self.device)
        self.name = f"clip:{Path(ref).name}"
        self.dim = int(self.model.config.projection_dim)
        self.max_tokens = int(self.model.config.text_config.max_position_embeddings)
        self._lock = threading.Lock()
        logger.info("loaded CLIP from %s on %s (%d-d)", ref, self.device, self.dim)

    def embed_images(self, images: list[Any]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        torch = self._torch
        with self._lock, torch.inference_mode():
            pixels = self.processor(images=_pil(images), return_tensors="pt")["pixel_values"].to(self.device)
            feats = _features(self.model.get_image_features(pixel_values=pixels))
        return normalise(feats.float().cpu().numpy())

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        torch = self._torch
        with self._lock, torch.inference_mode():
            tokens = self.processor(
                text=texts, return_tensors="pt", padding=True, truncation=True, max_length=self.max_tokens
            )
            tokens = {k: v.to(self.device) for k, v in tokens.items() if k in ("input_ids", "attention_mask")}
            feats = _features(self.model.get_text_features(**tokens))
        return normalise(feats.float().cpu().numpy())


class EfficientNetEmbedder:
    """EfficientNet-Lite0 (offline default visual embedder), 1280-d."""

    kind = "resnet"

    def __init__(self, models_path: str | Path, device: str = "auto") -> None:
        from percept.models.imagenet import ImageNetModel

        self.model = ImageNetModel(models_path, device)
        self.device = self.model.device
        self.name = "efficientnet-lite0"
        self.dim = self.model.dim

    def embed_images(self, images: list[Any]) -> np.ndarray:
        return self.model.embed(images)


def model_name(models_path: str | Path, kind: str) -> str:
    """The name an embedder of ``kind`` will record, found without loading the model."""
    if kind == "resnet":
        return f"resnet:{Path(find_hf_model(models_path, RESNET_DIR, RESNET_REPO, 'ResNet34')).name}"
    return f"clip:{Path(find_hf_model(models_path, CLIP_DIR, CLIP_REPO, 'CLIP')).name}"
