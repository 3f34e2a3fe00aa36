"""Generated test images: coloured shapes on backgrounds with known masks."""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image


def composite(
    shape: str = "ellipse",
    fg: tuple[int, int, int] = (220, 40, 40),
    bg: tuple[int, int, int] = (235, 235, 225),
    size: tuple[int, int] = (160, 200),
    seed: int = 0,
    noise: float = 6.0,
    gradient: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 image, bool foreground mask): a shape on a slightly textured background."""
    rng = np.random.default_rng(seed)
    h, w = size
    image = np.empty((h, w, 3), dtype=np.float32)
    image[:] = bg
    if gradient:
        ramp = np.linspace(-12, 12, w, dtype=np.float32)[None, :, None]
        image += ramp
    mask = np.zeros((h, w), dtype=np.uint8)
    cy, cx = h // 2 + int(rng.integers(-10, 10)), w // 2 + int(rng.integers(-10, 10))
    if shape == "ellipse":
        cv2.ellipse(mask, (cx, cy), (w // 4, h // 3), float(rng.integers(0, 180)), 0, 360, 1, -1)
    elif shape == "rectangle":
        cv2.rectangle(mask, (cx - w // 5, cy - h // 4), (cx + w // 5, cy + h // 4), 1, -1)
    else:
        pts = np.array([[cx, cy - h // 3], [cx - w // 4, cy + h // 4], [cx + w // 4, cy + h // 4]], np.int32)
        cv2.fillPoly(mask, [pts], 1)
    fg_arr = np.array(fg, dtype=np.float32)
    image[mask.astype(bool)] = fg_arr
    shade = np.linspace(0.85, 1.1, h, dtype=np.float32)[:, None, None]
    image = np.where(mask[..., None].astype(bool), image * shade, image)
    image += rng.normal(0, noise, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8), mask.astype(bool)


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def rgba_cutout(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.dstack([rgb, mask.astype(np.uint8) * 255])


def textured_composite(seed: int = 0, size: int = 192) -> tuple[np.ndarray, np.ndarray]:
    """A photo patch (the astronaut, cat or coffee) in an ellipse on a grass/brick/gravel texture."""
    from skimage import data

    rng = np.random.default_rng(seed)
    textures = [data.grass(), data.brick(), data.gravel()]
    photos = [data.astronaut(), data.chelsea(), data.coffee()]
    tex = textures[seed % 3]
    y, x = (int(rng.integers(0, s - size)) for s in tex.shape[:2])
    gray = tex[y : y + size, x : x + size].astype(np.float32)
    tint = rng.uniform(0.6, 1.0, 3).astype(np.float32)
    background = np.clip(gray[..., None] * tint, 0, 255)
    photo = photos[(seed // 3) % 3]
    patch = cv2.resize(photo, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    mask = np.zeros((size, size), dtype=np.uint8)
    cv2.ellipse(mask, (size // 2, size // 2), (size // 3, int(size / 2.6)), float(rng.integers(0, 180)), 0, 360, 1, -1)
    image = np.where(mask[..., None].astype(bool), patch, background)
    return image.astype(np.uint8), mask.astype(bool)
