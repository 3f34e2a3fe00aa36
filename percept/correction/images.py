"""Per-image measures and repairs: decode, metadata, sharpness, exposure, pixel features.

Everything here is Ray-free and works on one image at a time, so the same functions run in
Ray Data ``map_batches`` workers, in unit tests and in the Python API.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

PIXEL_SIDE = 16


class ImageDecodeError(ValueError):
    """The file is missing, not allowed, or not a decodable image."""


@dataclass
class ImageInfo:
    """What the pipeline measures on one image (all JSON-able but ``features``)."""

    channels: int
    height: int
    width: int
    mean: list[float]
    std_dev: list[float]
    rgb_sum: list[float]
    rgb_sq_sum: list[float]
    pixels: int
    sharpness: float
    brightness: float
    low: float
    high: float
    features: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, np.float32))


def decode(data: bytes | str | Path) -> Any:
    """A PIL image from bytes or a path; :class:`ImageDecodeError` when it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    name = "<bytes>" if isinstance(data, bytes) else str(data)
    try:
        source: Any = io.BytesIO(data) if isinstance(data, bytes) else str(data)
        image = Image.open(source)
        image.load()
        return image
    except FileNotFoundError:
        raise ImageDecodeError(f"file not found: {name}") from None
    except IsADirectoryError:
        raise ImageDecodeError(f"not a file: {name}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageDecodeError(f"undecodable image: {exc}") from None


def native_array(image: Any) -> np.ndarray:
    """HxWxC float array in [0, 1] with the image's own channel count (1, 3 or 4)."""
    mode = image.mode
    if mode in ("1", "L", "I", "I;16", "F"):
        gray = np.asarray(image.convert("F"), dtype=np.float32)
        scale = 255.0 if mode != "I;16" and mode != "I" else 65535.0
        return np.clip(gray / scale, 0, 1)[..., None]
    if mode == "LA":
        image = image.convert("RGBA")
    elif mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in mode or "transparency" in image.info else "RGB")
    return np.asarray(image, dtype=np.float32) / 255.0


def to_rgb(array: np.ndarray) -> np.ndarray:
    """Float [0,1] HxWx3 from HxWx{1,3,4}."""
    if array.shape[-1] == 1:
        return np.repeat(array, 3, axis=-1)
    return array[..., :3]


def gray_of(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 luma, float [0, 1]."""
    return (rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114).astype(np.float32)


def resize_gray(gray: np.ndarray, side: int) -> np.ndarray:
    import cv2

    interp = cv2.INTER_AREA if min(gray.shape) > side else cv2.INTER_CUBIC
    return cv2.resize(gray, (side, side), interpolation=interp)


def sharpness_of(gray: np.ndarray) -> float:
    """Edge steepness: 99th percentile of the gradient magnitude over the tonal range.

    Blur widens edges, so their steepest gradients drop; dividing by the 2–98 % luma range
    makes a dark or washed-out image no "blurrier" than the same image well exposed. Large
    images are measured with their short side brought down to 256 px.
    """
    import cv2

    small: Any = gray.astype(np.float32)
    short = min(small.shape)
    if short > 256:
        scale = 256.0 / short
        small = cv2.resize(small, (round(small.shape[1] * scale), round(small.shape[0] * scale)),
                           interpolation=cv2.INTER_AREA)
    low, high = np.percentile(small, [2, 98])
    span = float(high - low)
    if span < 1e-4:
        return 0.0
    gx = cv2.Sobel(small, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(small, cv2.CV_32F, 0, 1, ksize=3)
    return float(np.percentile(np.hypot(gx, gy), 99) / span)


def pixel_features(gray: np.ndarray) -> np.ndarray:
    """Classical features for tiny images: standardised 16x16 pixels plus a HOG.

    Per-image standardisation makes them blind to exposure, so lighting faults do not
    look like label faults.
    """
    from skimage.feature import hog

    small = resize_gray(gray, PIXEL_SIDE).astype(np.float32)
    small = (small - small.mean()) / max(float(small.std()), 1e-3)
    mid = resize_gray(gray, 32).astype(np.float32)
    mid = (mid - mid.min()) / max(float(mid.max() - mid.min()), 1e-3)
    h = hog(mid, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2), feature_vector=True)
    return np.concatenate([small.ravel() / PIXEL_SIDE, h.astype(np.float32)]).astype(np.float32)


def measure(image: Any, with_pixels: bool = True) -> ImageInfo:
    """Metadata, statistics, sharpness, exposure and (optionally) pixel features of an image."""
    array = native_array(image)
    rgb = to_rgb(array)
    gray = gray_of(rgb)
    flat = array.reshape(-1, array.shape[-1]).astype(np.float64)
    rgb_flat = rgb.reshape(-1, 3).astype(np.float64)
    low, high = np.percentile(gray, [2, 98])
    return ImageInfo(
        channels=int(array.shape[-1]),
        height=int(array.shape[0]),
        width=int(array.shape[1]),
        mean=[round(float(v), 6) for v in flat.mean(axis=0)],
        std_dev=[round(float(v), 6) for v in flat.std(axis=0)],
        rgb_sum=[float(v) for v in rgb_flat.sum(axis=0)],
        rgb_sq_sum=[float(v) for v in (rgb_flat**2).sum(axis=0)],
        pixels=int(rgb_flat.shape[0]),
        sharpness=sharpness_of(gray),
        brightness=float(gray.mean()),
        low=float(low),
        high=float(high),
        features=pixel_features(gray) if with_pixels else np.zeros(0, np.float32),
    )


def metadata(path: str | Path) -> dict[str, Any]:
    """``get_image_metadata``'s answer: channels, height, width, mean and std_dev in [0, 1]."""
    info = measure(decode(path), with_pixels=False)
    return {
        "channels": info.channels,
        "height": info.height,
        "width": info.width,
        "mean": info.mean,
        "std_dev": info.std_dev,
    }


def pooled_stats(infos: Sequence[Any]) -> tuple[list[float], list[float]]:
    """Dataset mean and std_dev per RGB channel over every pixel of every image."""
    total = sum(i.pixels for i in infos)
    if total == 0:
        return [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]
    s = np.sum([i.rgb_sum for i in infos], axis=0)
    sq = np.sum([i.rgb_sq_sum for i in infos], axis=0)
    mean = s / total
    std = np.sqrt(np.maximum(sq / total - mean**2, 0.0))
    return [round(float(v), 6) for v in mean], [round(float(v), 6) for v in std]


def sharpen(array: np.ndarray, amount: float) -> np.ndarray:
    """Unsharp mask on a float [0,1] HxWxC image (``amount`` ≈ 1–4 for mild blur)."""
    import cv2

    h, w = array.shape[:2]
    sigma = max(1.0, min(h, w) / 24.0)
    blurred = cv2.GaussianBlur(array, (0, 0), sigma)
    if blurred.ndim == 2:
        blurred = blurred[..., None]
    return np.clip(array + amount * (array - blurred), 0.0, 1.0)


def fix_exposure(array: np.ndarray, low: float, high: float, target_low: float,
                 target_high: float, target_mean: float) -> np.ndarray:
    """Stretch [low, high] onto the dataset's typical range, then a gamma toward its mean."""
    span = max(high - low, 1e-3)
    out = (array - low) / span * (target_high - target_low) + target_low
    out = np.clip(out, 0.0, 1.0)
    mean = float(gray_of(to_rgb(out)).mean())
    if 0.02 < mean < 0.98 and 0.02 < target_mean < 0.98:
        gamma = float(np.clip(np.log(target_mean) / np.log(mean), 0.3, 3.0))
        out = np.power(out, gamma)
    return np.clip(out, 0.0, 1.0)


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of a float [0,1] HxWx{1,3,4} image."""
    from PIL import Image

    data = (np.clip(array, 0, 1) * 255.0 + 0.5).astype(np.uint8)
    if data.shape[-1] == 1:
        data = data[..., 0]
    buffer = io.BytesIO()
    Image.fromarray(data).save(buffer, format="PNG")
    return buffer.getvalue()
