"""Synthetic inspection data: crops of scikit-image's bundled textures with known defects.

Used by the tests and the benchmark (no downloads): good items are random crops of one
texture; defective items carry a scratch, a blob, a colour stain or a pasted patch whose
pixel mask is returned with the image.
"""

from __future__ import annotations

import cv2
import numpy as np

TEXTURES = ("brick", "grass", "gravel")
DEFECTS = ("scratch", "blob", "stain", "patch")


def texture(name: str) -> np.ndarray:
    """A bundled texture as RGB uint8."""
    import skimage.data

    img = getattr(skimage.data, name)()
    return np.stack([img] * 3, axis=-1) if img.ndim == 2 else img[:, :, :3]


def good_crops(name: str, count: int, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``count`` random ``size×size`` crops of a texture with a little lighting jitter."""
    src = texture(name)
    h, w = src.shape[:2]
    out = []
    for _ in range(count):
        y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        crop = src[y : y + size, x : x + size].astype(np.float32)
        crop = crop * rng.uniform(0.95, 1.05) + rng.uniform(-5, 5)
        out.append(np.clip(crop, 0, 255).astype(np.uint8))
    return out


def add_defect(img: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A copy of ``img`` with one defect of ``kind`` and the defect's boolean mask."""
    h, w = img.shape[:2]
    out = img.copy()
    mask = np.zeros((h, w), np.uint8)
    cy, cx = int(rng.integers(h // 5, 4 * h // 5)), int(rng.integers(w // 5, 4 * w // 5))
    if kind == "scratch":
        angle = rng.uniform(0, np.pi)
        length = rng.uniform(0.2, 0.35) * min(h, w)
        dx, dy = np.cos(angle) * length / 2, np.sin(angle) * length / 2
        p1, p2 = (int(cx - dx), int(cy - dy)), (int(cx + dx), int(cy + dy))
        thickness = int(rng.integers(2, 4))
        cv2.line(mask, p1, p2, 1, thickness)
        value = 250 if rng.random() < 0.5 else 10
        out[mask.astype(bool)] = value
    elif kind == "blob":
        axes = (int(rng.integers(6, 14)), int(rng.integers(6, 14)))
        cv2.ellipse(mask, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        value = 235 if rng.random() < 0.5 else 20
        sel = mask.astype(bool)
        out[sel] = (0.25 * out[sel] + 0.75 * value).astype(np.uint8)
    elif kind == "stain":
        axes = (int(rng.integers(10, 20)), int(rng.integers(10, 20)))
        cv2.ellipse(mask, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        tint = np.array([200, 90, 30], np.float32) if rng.random() < 0.5 else np.array([40, 110, 200], np.float32)
        sel = mask.astype(bool)
        out[sel] = (0.45 * out[sel] + 0.55 * tint).astype(np.uint8)
    elif kind == "patch":
        other = texture("camera" if rng.random() < 0.5 else "moon")
        size = int(rng.integers(16, 28))
        y0, x0 = max(0, cy - size // 2), max(0, cx - size // 2)
        y1, x1 = min(h, y0 + size), min(w, x0 + size)
        sy, sx = int(rng.integers(0, other.shape[0] - size)), int(rng.integers(0, other.shape[1] - size))
        out[y0:y1, x0:x1] = other[sy : sy + (y1 - y0), sx : sx + (x1 - x0)]
        mask[y0:y1, x0:x1] = 1
    else:
        raise ValueError(f"unknown defect kind {kind!r}")
    return out, mask.astype(bool)
