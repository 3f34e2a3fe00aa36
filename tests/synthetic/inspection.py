"""Synthetic inspection data: good and defective 256² views of scikit-image's bundled images.

Nothing is downloaded. A *category* is one product line:

* ``texture`` categories (brick, grass, gravel, ihc): every good image is a crop taken
  anywhere in a large texture, as a camera over a web of material sees it;
* ``aligned`` categories (coins, clock, logo, astronaut, coffee, camera, page, motorcycle):
  the same object photographed in the same place, as on a production line; good images
  vary by a few pixels of shift, ±1.5° of rotation, ±2 % of scale.

Every good image also gets its own illumination (gain, offset, white balance), sensor
noise and sometimes a slight blur, so no two good images are alike.

:func:`add_defect` puts one defect of a family into a good image and returns its pixel mask.
Families, each covering 1–10 % of the image (scratches 1–2.5 %: they are thin):
``scratch``, ``blob``, ``stain``, ``cutpaste`` (a piece of the same image, turned and
re-lit, pasted elsewhere), ``missing`` (a part filled in from its surroundings),
``colour`` (a hue / tint shift) and ``warp`` (a local swirl). A placement that changes too
few pixels to be visible (a warp on a flat wall) is drawn again: every defect is one a
person could see.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

SIZE = 256
FAMILIES = ("scratch", "blob", "stain", "cutpaste", "missing", "colour", "warp")
# Mean absolute change (0–255, on the channel that changes most) a defect must cause inside
# its mask to count as visible.
VISIBLE = 12.0


@dataclass(frozen=True)
class Category:
    """A product line: a source image and how good images are taken from it."""

    name: str
    source: str  # scikit-image data function
    kind: str  # "texture" | "aligned"
    description: str
    scale: float = 1.0  # resize of the source before cropping
    centre: tuple[float, float] = (0.5, 0.5)  # crop centre for aligned categories (fractions)


CATEGORIES: dict[str, Category] = {
    c.name: c
    for c in (
        Category("brick", "brick", "texture", "brick wall (texture)"),
        Category("grass", "grass", "texture", "grass (texture)"),
        Category("gravel", "gravel", "texture", "gravel (texture)"),
        Category("ihc", "immunohistochemistry", "texture", "stained tissue (colour texture)"),
        Category("coins", "coins", "aligned", "coins on a tray"),
        Category("clock", "clock", "aligned", "a clock (centred object)", 1.0, (0.5, 0.5)),
        Category("logo", "logo", "aligned", "a printed logo (printed part)", 0.56),
        Category("astronaut", "astronaut", "aligned", "a portrait (photo)", 0.56),
        Category("coffee", "coffee", "aligned", "a coffee cup (centred object)", 0.68, (0.5, 0.5)),
        Category("camera", "camera", "aligned", "a man with a camera on a tripod (tool, photo)", 0.56),
        Category("page", "page", "aligned", "a printed page (printed part)", 1.45),
        Category("motorcycle", "motorcycle", "aligned", "a motorcycle (machine, photo)", 0.56),
    )
}
# Parameters are chosen on TUNE only; HELD_OUT is reported, never tuned on. Each half has
# textures, centred objects, printed parts and photos.
TUNE = ("brick", "grass", "coins", "clock", "logo", "astronaut")
HELD_OUT = ("gravel", "ihc", "coffee", "camera", "page", "motorcycle")


@lru_cache(maxsize=32)
def source_image(name: str) -> np.ndarray:
    """A bundled scikit-image picture as RGB uint8 (logo composited on white)."""
    import skimage.data

    if name == "motorcycle":
        img = skimage.data.stereo_motorcycle()[0]
    else:
        img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    if img.shape[2] == 4:
        alpha = img[:, :, 3:4].astype(np.float32) / 255.0
        img = (img[:, :, :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return np.ascontiguousarray(img[:, :, :3])


@lru_cache(maxsize=32)
def _scaled(category: str) -> np.ndarray:
    cat = CATEGORIES[category]
    img = source_image(cat.source)
    if cat.scale != 1.0:
        h, w = img.shape[:2]
        size = (round(w * cat.scale), round(h * cat.scale))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA if cat.scale < 1 else cv2.INTER_CUBIC)
    return img


def _photometric(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Illumination, white balance, slight blur and sensor noise."""
    out: np.ndarray = img.astype(np.float32)
    if rng.random() < 0.3:
        out = cv2.GaussianBlur(out, (0, 0), float(rng.uniform(0.4, 0.8)))
    gain = rng.uniform(0.9, 1.1) * rng.uniform(0.97, 1.03, size=3)
    out = out * gain.astype(np.float32) + float(rng.uniform(-8, 8))
    out += rng.normal(0.0, rng.uniform(1.0, 3.0), size=out.shape).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def good_image(category: str, rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """One good ``size×size`` RGB image of a category."""
    cat = CATEGORIES[category]
    src = _scaled(category)
    h, w = src.shape[:2]
    if cat.kind == "texture":
        half = size / 2 + 4
        cy, cx = rng.uniform(half, h - half), rng.uniform(half, w - half)
        angle, scale = rng.uniform(-3, 3), rng.uniform(0.97, 1.03)
    else:
        cy = cat.centre[0] * h + rng.uniform(-6, 6)
        cx = cat.centre[1] * w + rng.uniform(-6, 6)
        angle, scale = rng.uniform(-1.5, 1.5), rng.uniform(0.98, 1.02)
    matrix = cv2.getRotationMatrix2D((float(cx), float(cy)), float(angle), float(scale))
    matrix[:, 2] += (size / 2 - cx, size / 2 - cy)
    view = cv2.warpAffine(src, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    return _photometric(view, rng)


def good_images(category: str, count: int, rng: np.random.Generator, size: int = SIZE) -> list[np.ndarray]:
    return [good_image(category, rng, size) for _ in range(count)]


def good_crops(name: str, count: int, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``count`` good ``size×size`` views of a category (the tests' small images)."""
    return good_images(name, count, rng, size)


# Defects -------------------------------------------------------------------------------------

def _irregular_mask(shape: tuple[int, int], centre: tuple[int, int], area: float, rng: np.random.Generator) -> np.ndarray:
    """A blobby region of about ``area`` pixels: an ellipse roughened by smooth noise."""
    h, w = shape
    ratio = rng.uniform(0.5, 1.0)
    a = np.sqrt(area / (np.pi * ratio))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = rng.uniform(0, np.pi)
    dy, dx = yy - centre[0], xx - centre[1]
    u = dx * np.cos(theta) + dy * np.sin(theta)
    v = -dx * np.sin(theta) + dy * np.cos(theta)
    radius = np.sqrt((u / a) ** 2 + (v / (a * ratio)) ** 2)
    noise: np.ndarray = cv2.GaussianBlur(rng.normal(size=(h, w)).astype(np.float32), (0, 0), max(2.0, a / 3))
    noise = noise / max(1e-6, float(np.abs(noise).max()))
    return np.asarray(radius + 0.35 * noise < 1.0)


def _feather(mask: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    soft = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigma)
    return np.maximum(soft, mask.astype(np.float32) * 0.999)[:, :, None]


def _centre(shape: tuple[int, int], radius: float, rng: np.random.Generator) -> tuple[int, int]:
    h, w = shape
    margin = int(min(h, w) * 0.08 + radius)
    margin = min(margin, min(h, w) // 2 - 1)
    return int(rng.integers(margin, h - margin)), int(rng.integers(margin, w - margin))


def _scratch(img: np.ndarray, frac: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    h, w = img.shape[:2]
    thickness = int(rng.integers(3, 6))
    length = min(0.9 * min(h, w), frac * h * w / thickness)
    cy, cx = _centre((h, w), length / 3, rng)
    angle = rng.uniform(0, np.pi)
    d = np.array([np.cos(angle), np.sin(angle)]) * length / 2
    bend = np.array([-d[1], d[0]]) * rng.uniform(-0.3, 0.3)
    t = np.linspace(0, 1, 40)[:, None]
    p0, p2 = np.array([cx, cy]) - d, np.array([cx, cy]) + d
    p1 = np.array([cx, cy]) + bend
    pts = ((1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2).round().astype(np.int32)
    mask = np.zeros((h, w), np.uint8)
    cv2.polylines(mask, [pts], False, 1, thickness)
    value = rng.uniform(215, 255) if rng.random() < 0.5 else rng.uniform(0, 40)
    alpha = _feather(mask.astype(bool), 0.7) * rng.uniform(0.75, 1.0)
    out = img * (1 - alpha) + value * alpha
    return out, mask.astype(bool)


def _blob(img: np.ndarray, frac: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    h, w = img.shape[:2]
    area = frac * h * w
    centre = _centre((h, w), np.sqrt(area / np.pi), rng)
    mask = _irregular_mask((h, w), centre, area, rng)
    value = rng.uniform(200, 250) if rng.random() < 0.5 else rng.uniform(10, 50)
    alpha = _feather(mask, 2.0) * rng.uniform(0.6, 0.9)
    return img * (1 - alpha) + value * alpha, mask


def _stain(img: np.ndarray, frac: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    h, w = img.shape[:2]
    area = frac * h * w
    mask = _irregular_mask((h, w), _centre((h, w), np.sqrt(area / np.pi), rng), area, rng)
    tint = np.array([rng.uniform(120, 220), rng.uniform(60, 140), rng.uniform(20, 90)], np.float32)
    if rng.random() < 0.5:
        tint = tint[::-1].copy()
    alpha = _feather(mask, 3.0) * rng.uniform(0.35, 0.6)
    return img * (1 - alpha) + tint * alpha, mask


def _cutpaste(img: np.ndarray, frac: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    h, w = img.shape[:2]
    area = frac * h * w
    aspect = rng.uniform(0.6, 1.6)
    ph = int(np.clip(np.sqrt(area * aspect), 8, h // 2))
    pw = int(np.clip(area / ph, 8, w // 2))
    for _ in range(20):
        sy, sx = int(rng.integers(0, h - ph)), int(rng.integers(0, w - pw))
        ty, tx = int(rng.integers(int(0.05 * h), h - ph - int(0.05 * h))), int(rng.integers(int(0.05 * w), w - pw - int(0.05 * w)))
        if abs(sy - ty) > ph or abs(sx - tx) > pw:
            break
    piece = img[sy : sy + ph, sx : sx + pw].copy()
    piece = piece[::-1] if rng.random() < 0.5 else piece[:, ::-1]
    piece = piece * rng.uniform(0.8, 1.2) + rng.uniform(-15, 15)
    out = img.copy()
    out[ty : ty + ph, tx : tx + pw] = piece
    mask = np.zeros((h, w), bool)
    mask[ty : ty + ph, tx : tx + pw] = True
    return out, mask


def _missing(img: np.ndarray, frac: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    h, w = img.shape[:2]
    area = frac * h * w
    mask = _irregular_mask((h, w), _centre((h, w), np.sqrt(area / np.pi), rng), area, rng)
    filled = cv2.inpaint(np.clip(img, 0, 255).astype(np.uint8), mask.astype(np.uint8), 5, cv2.INPAINT_TELEA)
    return filled.astype(np.float32), mask


def _colour(img: np.ndarray, frac: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    h, w = img.shape[:2]
    area = frac * h * w
    mask = _irregular_mask((h, w), _centre((h, w), np.sqrt(area / np.pi), rng), area, rng)
    src = np.clip(img, 0, 255).astype(np.uint8)
    if float(np.abs(src[:, :, 0].astype(int) - src[:, :, 2].astype(int)).mean()) > 8:
        hsv = cv2.cvtColor(src, cv2.COLOR_RGB2HSV).astype(np.float32)
        hsv[:, :, 0] = (hsv[:, :, 0] + rng.uniform(20, 45) * rng.choice([-1, 1])) % 180
        hsv[:, :, 1] = np.clip(hsv[:, :, 1] * rng.uniform(1.2, 1.6), 0, 255)
        shifted = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    else:  # a gray product: a tint
        gains = np.ones(3, np.float32)
        gains[int(rng.integers(0, 3))] += rng.uniform(0.25, 0.45)
        gains[int(rng.integers(0, 3))] -= rng.uniform(0.15, 0.3)
        shifted = img * gains
    alpha = _feather(mask, 2.0)
    return img * (1 - alpha) + shifted * alpha, mask


def _warp(img: np.ndarray, frac: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    h, w = img.shape[:2]
    radius = np.sqrt(frac * h * w / np.pi)
    cy, cx = _centre((h, w), radius, rng)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    rho = np.sqrt(dx**2 + dy**2)
    strength = rng.uniform(1.5, 3.0) * rng.choice([-1, 1])
    theta = strength * np.exp(-rho / (radius / 3)) * (rho < radius)
    cos, sin = np.cos(theta), np.sin(theta)
    map_x = (cx + dx * cos - dy * sin).astype(np.float32)
    map_y = (cy + dx * sin + dy * cos).astype(np.float32)
    out = cv2.remap(img.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    return out, np.asarray(rho < radius)


_MAKERS = {
    "scratch": _scratch, "blob": _blob, "stain": _stain, "cutpaste": _cutpaste,
    "missing": _missing, "colour": _colour, "warp": _warp,
}


def add_defect(
    img: np.ndarray, family: str, rng: np.random.Generator, fraction: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A copy of ``img`` with one visible defect of ``family`` and its boolean pixel mask.

    ``fraction`` is the share of the image the defect covers (default: log-uniform in
    1–10 %, 1–2.5 % for scratches).
    """
    if family not in _MAKERS:
        raise ValueError(f"unknown defect family {family!r}")
    low, high = (0.01, 0.025) if family == "scratch" else (0.01, 0.10)
    base = img.astype(np.float32)
    out, mask = base, np.zeros(img.shape[:2], bool)
    for _ in range(30):
        frac = fraction if fraction is not None else float(np.exp(rng.uniform(np.log(low), np.log(high))))
        out, mask = _MAKERS[family](base, frac, rng)
        if mask.sum() and np.abs(out - base)[mask].mean(axis=0).max() >= VISIBLE:
            break
    return np.clip(out, 0, 255).astype(np.uint8), mask


def mask_box(mask: np.ndarray) -> dict[str, int]:
    """The inclusive bounding box of a mask, in the contract's keys."""
    ys, xs = mask.nonzero()
    return {"x_min": int(xs.min()), "x_max": int(xs.max()), "y_min": int(ys.min()), "y_max": int(ys.max())}
