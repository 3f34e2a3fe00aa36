"""Laplacian-pyramid blending (Burt & Adelson) on OpenCV pyramids.

``laplacian_pyramid`` / ``reconstruct`` are exact inverses on float images (the round trip
is tested); ``blend`` mixes two images band by band under a Gaussian pyramid of the mask, so
the seam is smooth at every scale.
"""

from __future__ import annotations

import cv2
import numpy as np


def max_levels(shape: tuple[int, ...], min_size: int = 8) -> int:
    """How many times an image can be halved before its short side drops under ``min_size``."""
    short = min(shape[:2])
    levels = 0
    while short // 2 >= min_size:
        short //= 2
        levels += 1
    return levels


def gaussian_pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    """``levels + 1`` images, each a blurred half of the previous one (float32)."""
    pyramid: list[np.ndarray] = [image.astype(np.float32)]
    for _ in range(levels):
        pyramid.append(cv2.pyrDown(pyramid[-1]))
    return pyramid


def laplacian_pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    """Band-pass images plus the coarsest Gaussian level (``levels + 1`` entries)."""
    gauss = gaussian_pyramid(image, levels)
    bands = []
    for fine, coarse in zip(gauss[:-1], gauss[1:], strict=True):
        up = cv2.pyrUp(coarse, dstsize=(fine.shape[1], fine.shape[0]))
        bands.append(fine - up)
    bands.append(gauss[-1])
    return bands


def reconstruct(pyramid: list[np.ndarray]) -> np.ndarray:
    """The image a Laplacian pyramid came from (float32)."""
    image = pyramid[-1]
    for band in reversed(pyramid[:-1]):
        image = cv2.pyrUp(image, dstsize=(band.shape[1], band.shape[0])) + band
    return image


def seam_mask(shape: tuple[int, ...], direction: str = "vertical") -> np.ndarray:
    """A hard 0/1 mask: the left (vertical) or top (horizontal) half is 1."""
    h, w = shape[:2]
    mask = np.zeros((h, w), dtype=np.float32)
    if direction == "horizontal":
        mask[: h // 2] = 1.0
    else:
        mask[:, : w // 2] = 1.0
    return mask


def blend(
    first: np.ndarray, second: np.ndarray, mask: np.ndarray | None = None, levels: int | None = None
) -> np.ndarray:
    """Blend two same-size images: ``first`` where ``mask`` is 1, ``second`` where it is 0.

    Images are HxWxC uint8 (or float); the result is uint8. ``mask`` defaults to the left
    half; ``levels`` defaults to as many as the size allows (at most 6).
    """
    if first.shape != second.shape:
        raise ValueError(f"images differ in shape: {first.shape} vs {second.shape}")
    if mask is None:
        mask = seam_mask(first.shape)
    n = min(6, max_levels(first.shape)) if levels is None else max(0, min(levels, max_levels(first.shape, 1)))
    lap_a = laplacian_pyramid(first, n)
    lap_b = laplacian_pyramid(second, n)
    masks = gaussian_pyramid(mask.astype(np.float32), n)
    mixed = []
    for a, b, m in zip(lap_a, lap_b, masks, strict=True):
        if a.ndim == 3:
            m = m[..., None]
        mixed.append(a * m + b * (1.0 - m))
    return np.clip(np.rint(reconstruct(mixed)), 0, 255).astype(np.uint8)


def fit_pair(first: np.ndarray, second: np.ndarray, max_side: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Both images at the first one's size (capped at ``max_side``), the second resized to it."""
    h, w = first.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    a = cv2.resize(first, size, interpolation=cv2.INTER_AREA) if scale < 1 else first
    b = cv2.resize(second, size, interpolation=cv2.INTER_AREA)
    return a, b
