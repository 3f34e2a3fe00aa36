"""Labelled image datasets with known faults, for the correction tests and benchmarks.

Nothing here is used by the service. Two generators:

* :func:`make_digits_dataset` — scikit-learn's ``load_digits`` as 32x32 RGB PNGs with flipped
  labels, one merged class and a few blurred, darkened or washed-out images (the unit and
  integration tests' small, fixed faults).
* :func:`make_kind_dataset` — one of four *kinds* of dataset (``digits``: small grey images
  with dark backgrounds; ``photos``: crops and augmentations of scikit-image's bundled
  photos; ``textures``; ``glyphs``: letters and icons rendered with Pillow on light paper)
  with corruptions of widely spread strength (blur σ 0.8–3 px; gamma 1.5–3.5 both ways;
  gains; offsets; crushed shadows and blown highlights), 5–15 % label noise of two kinds
  (uniform, and confusion with one fixed look-alike class) and one class merged into
  another. The clean image of every corrupted one is kept, so restorations can be scored.
  A fifth kind, ``shapes`` (line shapes drawn by code: light strokes of graded tone on black,
  small grey images), is a tuning kind only (issue 13, round 8), never a report kind.

Clean images vary naturally (each gets a gain in [0.9, 1], a black level in [0, 0.03] and a
gamma in [0.95, 1.05]), so a detector has to tell a corruption from ordinary variation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

KINDS = ("digits", "photos", "textures", "glyphs", "shapes")

# name -> (direction, low, high): the strength is drawn uniformly in [low, high].
LIGHTING = {
    "gamma_dark": ("dark", 1.5, 3.5),      # x ** g
    "gamma_bright": ("bright", 1.5, 3.5),  # x ** (1 / g)
    "gain_dark": ("dark", 0.2, 0.6),       # x * g
    "gain_bright": ("bright", 1.6, 3.0),   # x * g, clipped
    "offset_dark": ("dark", 0.15, 0.4),    # x - o, clipped
    "offset_bright": ("bright", 0.15, 0.4),  # x + o, clipped
    "crush_dark": ("dark", 0.25, 0.6),     # (x - c) / (1 - c), shadows clipped to black
    "blow_bright": ("bright", 0.25, 0.6),  # x / (1 - c), highlights clipped to white
}
BLUR = ("blur", 0.8, 3.0)  # Gaussian sigma in pixels of the stored image


@dataclass
class SyntheticDataset:
    """The request's ``dataset`` section plus what was injected (by image uuid)."""

    dataset: dict[str, Any]
    true_class: dict[str, str]
    given_class: dict[str, str]
    flipped: set[str] = field(default_factory=set)
    blurred: set[str] = field(default_factory=set)
    dark: set[str] = field(default_factory=set)
    bright: set[str] = field(default_factory=set)
    merged: tuple[str, str] | None = None
    paths: dict[str, str] = field(default_factory=dict)
    kind: str = "digits"
    # uuid -> (corruption name, strength); uuid -> "uniform" | "confusion"
    corruption: dict[str, tuple[str, float]] = field(default_factory=dict)
    noise: dict[str, str] = field(default_factory=dict)
    clean: dict[str, np.ndarray] = field(default_factory=dict)  # float [0,1] HxWxC, corrupted ones only

    def request(self, tasks: list[str], **config: Any) -> dict[str, Any]:
        return {"config_params": dict(config), "dataset": self.dataset,
                "tasks": [{"name": t} for t in tasks]}


def make_digits_dataset(
    root: Path,
    *,
    seed: int = 0,
    per_class: int | None = None,
    classes: list[int] | None = None,
    side: int = 32,
    flip_fraction: float = 0.1,
    merge: tuple[int, int] | None = (7, 1),
    n_blur: int = 6,
    n_dark: int = 4,
    n_bright: int = 4,
) -> SyntheticDataset:
    """Write the digits as ``side``x``side`` RGB PNGs under ``root``; returns the request data.

    ``merge=(a, b)`` files every ``a`` image under class ``b`` (``a`` is not a class then).
    Flipped labels go to another (remaining) class; blur is a Gaussian of sigma ``side/16``;
    dark images are scaled by 0.25; bright ones are washed out toward white.
    """
    import cv2
    from PIL import Image
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    digits = load_digits()
    images, targets = digits.images, digits.target
    keep = classes if classes is not None else list(range(10))
    index = [i for i in range(len(targets)) if targets[i] in keep]
    if per_class is not None:
        chosen: list[int] = []
        for c in keep:
            members = [i for i in index if targets[i] == c]
            chosen += list(rng.choice(members, size=min(per_class, len(members)), replace=False))
        index = sorted(chosen)
    root.mkdir(parents=True, exist_ok=True)
    true = {f"img{i:05d}": str(int(targets[i])) for i in index}
    given = dict(true)
    merged = None
    if merge is not None and merge[0] in keep and merge[1] in keep:
        merged = (str(merge[0]), str(merge[1]))
        given = {k: (merged[1] if v == merged[0] else v) for k, v in given.items()}
    names = sorted(set(given.values()), key=int)
    ids = list(given)
    flipped = set(rng.choice(ids, size=int(round(flip_fraction * len(ids))), replace=False).tolist())
    for uid in sorted(flipped):
        others = [c for c in names if c != given[uid]]
        given[uid] = str(rng.choice(others))
    rest = [u for u in ids if u not in flipped]
    picks = rng.choice(rest, size=n_blur + n_dark + n_bright, replace=False).tolist()
    blurred, dark, bright = set(picks[:n_blur]), set(picks[n_blur:n_blur + n_dark]), set(picks[n_blur + n_dark:])
    class_files: dict[str, dict[str, Any]] = {c: {} for c in names}
    paths: dict[str, str] = {}
    for i in index:
        uid = f"img{i:05d}"
        array = cv2.resize((images[i] / 16.0).astype(np.float32), (side, side), interpolation=cv2.INTER_CUBIC)
        array = np.clip(array, 0, 1) * 0.85 + 0.05
        if uid in blurred:
            array = cv2.GaussianBlur(array, (0, 0), side / 16.0)
        if uid in dark:
            array = array * 0.25
        if uid in bright:
            array = 0.75 + array * 0.25
        rgb = np.stack([array, array * 0.9 + 0.05, array * 0.8 + 0.1], axis=-1)
        path = root / given[uid] / f"{uid}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)).save(path)
        paths[uid] = str(path)
        class_files[given[uid]][str(path)] = {"uuid": uid}
    dataset = {"uuid": f"digits-seed{seed}", "classes": names, "class_files": class_files}
    return SyntheticDataset(dataset=dataset, true_class=true, given_class=given, flipped=flipped,
                            blurred=blurred, dark=dark, bright=bright, merged=merged, paths=paths)


# ---------------------------------------------------------------------------------------------
# Clean images per kind: (images float [0,1] HxWx{1,3}, class names)


def _digits(rng: np.random.Generator, per_class: int | None, augment: bool = False,
            count: int | None = None) -> tuple[list[np.ndarray], list[str]]:
    """load_digits at 32x32, grey, dark background.

    The 8x8 digits are enlarged 4x by pixel replication and then anti-aliased (Gaussian
    σ 0.5 px), as scikit-learn displays them (nearest) seen through a good lens, so the clean
    images have crisp edges that blur can be measured against.
    """
    import cv2
    from sklearn.datasets import load_digits

    digits = load_digits()
    index = np.arange(len(digits.target))
    if per_class is not None:
        index = np.concatenate([rng.permutation(np.flatnonzero(digits.target == c))[:per_class]
                                for c in range(10)])
    if count is not None:
        index = rng.choice(index, size=count, replace=count > len(index))
    images, labels = [], []
    for i in index:
        small = (digits.images[i] / 16.0).astype(np.float32)
        big = cv2.resize(small, (32, 32), interpolation=cv2.INTER_NEAREST)
        if augment:  # a small shift, rotation and scale
            angle, scale = rng.uniform(-12, 12), rng.uniform(0.9, 1.1)
            m = np.asarray(cv2.getRotationMatrix2D((16, 16), angle, scale), np.float64)
            m[:, 2] = m[:, 2] + rng.uniform(-2, 2, 2)
            big = cv2.warpAffine(big, m, (32, 32), flags=cv2.INTER_LINEAR, borderValue=0.0)
        big = cv2.GaussianBlur(big, (0, 0), 0.5)
        images.append(np.clip(big, 0, 1)[..., None])
        labels.append(str(int(digits.target[i])))
    return images, labels


PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "rocket", "coins", "retina", "immunohistochemistry")


def _crop(rng: np.random.Generator, source: np.ndarray, side: int, lo: float, hi: float) -> np.ndarray:
    """A random square crop (``lo``–``hi`` of the short side), flipped half the time, at ``side`` px."""
    import cv2

    h, w = source.shape[:2]
    size = int(min(h, w) * rng.uniform(lo, hi))
    y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    crop = source[y:y + size, x:x + size]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    out = cv2.resize(np.ascontiguousarray(crop), (side, side), interpolation=cv2.INTER_AREA)
    return out if out.ndim == 3 else out[..., None]


def _photos(rng: np.random.Generator, per_class: int) -> tuple[list[np.ndarray], list[str]]:
    """Crops (35–80 % of the short side) of scikit-image's bundled photos at 48x48, in colour."""
    from skimage import data

    images, labels = [], []
    for name in PHOTOS:
        source = np.asarray(getattr(data, name)(), dtype=np.float32) / 255.0
        if source.ndim == 2:
            source = np.repeat(source[..., None], 3, axis=-1)
        for _ in range(per_class):
            images.append(_crop(rng, source, 48, 0.35, 0.8))
            labels.append(name)
    return images, labels


def _texture_sources(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Grey 512x512 texture sources: three scikit-image photos and four drawn patterns."""
    import cv2
    from skimage import data

    yy, xx = np.mgrid[0:512, 0:512].astype(np.float32)
    stripes = 0.5 + 0.4 * np.sin(2 * np.pi * (xx * 0.8 + yy * 0.6) / 14.0)
    weave = 0.5 + 0.4 * np.sign(np.sin(2 * np.pi * xx / 16.0)) * np.sign(np.sin(2 * np.pi * yy / 16.0))
    dots = np.full((512, 512), 0.85, np.float32)
    for _ in range(700):
        cx, cy, r = int(rng.integers(0, 512)), int(rng.integers(0, 512)), int(rng.integers(3, 7))
        cv2.circle(dots, (cx, cy), r, float(rng.uniform(0.1, 0.35)), -1, lineType=cv2.LINE_AA)
    noise = cv2.GaussianBlur(rng.normal(0, 1, (512, 512)).astype(np.float32), (0, 0), 4.0)
    blobs = np.clip(0.5 + noise / (4 * noise.std()), 0, 1)
    out = {name: np.asarray(getattr(data, name)(), dtype=np.float32) / 255.0
           for name in ("brick", "grass", "gravel")}
    out.update(stripes=stripes, weave=weave, dots=dots, blobs=blobs.astype(np.float32))
    return out


def _textures(rng: np.random.Generator, per_class: int) -> tuple[list[np.ndarray], list[str]]:
    """Crops (10–25 % of 512 px) of seven textures at 48x48, grey."""
    images, labels = [], []
    for name, source in _texture_sources(rng).items():
        for _ in range(per_class):
            images.append(_crop(rng, source, 48, 0.1, 0.25))
            labels.append(name)
    return images, labels


GLYPHS = ("A", "E", "K", "R", "S", "x", "circle", "square", "triangle", "cross")


def _glyph(rng: np.random.Generator, name: str) -> np.ndarray:
    """One letter or icon, dark ink on light paper, drawn at 128 px and shrunk to 32x32."""
    import cv2
    from PIL import Image, ImageDraw, ImageFont

    big = 128
    paper = float(rng.uniform(0.82, 0.95))
    ink = float(rng.uniform(0.05, 0.25))
    canvas = Image.new("L", (big, big), int(paper * 255))
    draw = ImageDraw.Draw(canvas)
    cx, cy = big / 2 + rng.uniform(-10, 10), big / 2 + rng.uniform(-10, 10)
    size = rng.uniform(60, 92)
    width = int(rng.integers(6, 14))
    colour = int(ink * 255)
    if len(name) == 1:
        font = ImageFont.load_default(size=int(size))
        draw.text((cx, cy), name, fill=colour, font=font, anchor="mm", stroke_width=int(width // 4),
                  stroke_fill=colour)
    else:
        r = size / 2
        if name == "circle":
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=colour, width=width)
        elif name == "square":
            draw.rectangle((cx - r * 0.85, cy - r * 0.85, cx + r * 0.85, cy + r * 0.85), outline=colour, width=width)
        elif name == "triangle":
            pts = [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
            draw.polygon(pts, outline=colour, width=width)
        else:
            draw.line((cx - r, cy - r, cx + r, cy + r), fill=colour, width=width)
            draw.line((cx - r, cy + r, cx + r, cy - r), fill=colour, width=width)
    canvas = canvas.rotate(float(rng.uniform(-15, 15)), resample=Image.Resampling.BILINEAR,
                           fillcolor=int(paper * 255))
    array = np.asarray(canvas, dtype=np.float32) / 255.0
    array = array + rng.normal(0, 0.015, array.shape).astype(np.float32)  # paper grain
    return np.clip(cv2.resize(array, (32, 32), interpolation=cv2.INTER_AREA), 0, 1)[..., None]


def _glyphs(rng: np.random.Generator, per_class: int) -> tuple[list[np.ndarray], list[str]]:
    images, labels = [], []
    for name in GLYPHS:
        for _ in range(per_class):
            images.append(_glyph(rng, name))
            labels.append(name)
    return images, labels


SHAPES = ("bar", "slash", "ring", "box", "plus", "ell", "tee", "zigzag", "arc", "wedge")


def _shape_strokes(name: str, r: float) -> list[list[tuple[float, float]]]:
    """The polylines of one line shape, centred on 0, in units of its half-size ``r``."""
    if name == "bar":
        return [[(0, -r), (0, r)]]
    if name == "slash":
        return [[(-0.6 * r, r), (0.6 * r, -r)]]
    if name == "ring":
        return [[(r * 0.8 * math.cos(a), r * math.sin(a)) for a in np.linspace(0, 2 * math.pi, 25)]]
    if name == "box":
        s = 0.75 * r
        return [[(-s, -s), (s, -s), (s, s), (-s, s), (-s, -s)]]
    if name == "plus":
        return [[(-r, 0), (r, 0)], [(0, -r), (0, r)]]
    if name == "ell":
        return [[(-0.5 * r, -r), (-0.5 * r, r), (0.6 * r, r)]]
    if name == "tee":
        return [[(-0.7 * r, -r), (0.7 * r, -r)], [(0, -r), (0, r)]]
    if name == "zigzag":
        return [[(-0.7 * r, -r), (0.7 * r, -0.35 * r), (-0.7 * r, 0.35 * r), (0.7 * r, r)]]
    if name == "arc":
        return [[(r * 0.8 * math.cos(a), r * math.sin(a)) for a in np.linspace(0.25 * math.pi, 1.75 * math.pi, 19)]]
    return [[(-0.7 * r, r), (0, -r), (0.7 * r, r)]]  # wedge


def _shape(rng: np.random.Generator, name: str) -> np.ndarray:
    """One line shape, light strokes of graded tone on black, 32x32 grey (HxWx1).

    Made by code, not from any report kind: the shape's strokes are drawn segment by segment,
    each segment at its own level (0.6–1 of the image's peak, the peak 0.9–1), either on a
    coarse grid (8–16 px, enlarged by pixel replication, as low-resolution scans) or finely
    (128 px, anti-aliased, shrunk), then softened a little. Sizes, stroke widths, positions and
    rotations vary, so a class's images differ in how many pixels are lit (stroke share) as
    well as in shape.
    """
    import cv2

    fine = rng.random() < 0.5
    side = 128 if fine else int(rng.choice([8, 10, 12, 16]))
    canvas = np.zeros((side, side), np.float32)
    unit = side / 32.0
    r = rng.uniform(8, 13) * unit
    cx, cy = side / 2 + rng.uniform(-3, 3) * unit, side / 2 + rng.uniform(-3, 3) * unit
    angle = math.radians(rng.uniform(-20, 20))
    ca, sa = math.cos(angle), math.sin(angle)
    width = max(1, int(round(rng.uniform(1.5, 7.0) * unit)))
    peak = float(rng.uniform(0.9, 1.0))
    graded = rng.random() < 0.5
    segments = [((cx + ca * x0 - sa * y0, cy + sa * x0 + ca * y0), (cx + ca * x1 - sa * y1, cy + sa * x1 + ca * y1))
                for line in _shape_strokes(name, r) for (x0, y0), (x1, y1) in zip(line[:-1], line[1:], strict=True)]
    # Graded: each segment at its own level, one of them (at least) at the peak, as a scan's
    # brightest stroke saturates.
    levels = rng.uniform(0.6, 1.0, len(segments)) if graded else np.ones(len(segments))
    levels[int(rng.integers(len(segments)))] = 1.0
    for ((x0, y0), (x1, y1)), share in zip(segments, levels.tolist(), strict=True):
        seg = np.zeros_like(canvas)
        if fine:  # sub-pixel end points (4 fractional bits), anti-aliased
            cv2.line(seg, (int(round(x0 * 16)), int(round(y0 * 16))), (int(round(x1 * 16)), int(round(y1 * 16))),
                     1.0, width, lineType=cv2.LINE_AA, shift=4)
        else:
            cv2.line(seg, (int(round(x0)), int(round(y0))), (int(round(x1)), int(round(y1))), 1.0, width)
        canvas = np.maximum(canvas, seg * (peak * share))
    if fine:
        out = cv2.resize(canvas, (32, 32), interpolation=cv2.INTER_AREA)
    else:
        out = cv2.resize(canvas, (32, 32), interpolation=cv2.INTER_NEAREST)
    out = cv2.GaussianBlur(out, (0, 0), float(rng.uniform(0.4, 0.7)))
    return np.clip(out, 0, 1)[..., None]


def _shapes(rng: np.random.Generator, per_class: int) -> tuple[list[np.ndarray], list[str]]:
    """Line shapes drawn by code (a tuning kind: small grey images on a black background)."""
    images, labels = [], []
    for name in SHAPES:
        for _ in range(per_class):
            images.append(_shape(rng, name))
            labels.append(name)
    return images, labels


MAKERS: dict[str, Callable[[np.random.Generator, int], tuple[list[np.ndarray], list[str]]]] = {
    "digits": lambda rng, n: _digits(rng, n),
    "photos": _photos,
    "textures": _textures,
    "glyphs": _glyphs,
    "shapes": _shapes,
}
DEFAULT_PER_CLASS = {"digits": 180, "photos": 120, "textures": 130, "glyphs": 130, "shapes": 120}


def two_tone_of(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """``image`` redrawn as ink and paper (see ``make_kind_dataset(two_tone=True)``), grey HxWx1."""
    import cv2

    g = image.mean(axis=-1) if image.ndim == 3 else image
    g = cv2.GaussianBlur(g.astype(np.float32), (0, 0), 0.8)
    cut = float(np.quantile(g, rng.uniform(0.15, 0.4)))
    spread = max(float(g.std()) * 0.15, 1e-3)
    ink_share = 1.0 / (1.0 + np.exp((g - cut) / spread))
    # Levels reach pure black and white: some twins clip their ink or paper naturally.
    ink, paper = rng.uniform(0.0, 0.3), rng.uniform(0.7, 1.0)
    out = paper + (ink - paper) * ink_share + rng.normal(0, 0.006, g.shape)
    return np.clip(out, 0, 1).astype(np.float32)[..., None]


def natural_variation(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Ordinary exposure differences between clean images of one dataset."""
    gain, black, gamma = rng.uniform(0.9, 1.0), rng.uniform(0.0, 0.03), rng.uniform(0.95, 1.05)
    return np.clip(black + (1 - black) * gain * np.power(np.clip(image, 0, 1), gamma), 0, 1).astype(np.float32)


def corrupt(image: np.ndarray, name: str, strength: float) -> np.ndarray:
    """``image`` (float [0,1] HxWxC) with one corruption of the given strength."""
    import cv2

    x = image.astype(np.float32)
    if name == "blur":
        out = cv2.GaussianBlur(x, (0, 0), strength)
        out = out if out.ndim == 3 else out[..., None]
    elif name == "gamma_dark":
        out = np.power(x, strength)
    elif name == "gamma_bright":
        out = np.power(x, 1.0 / strength)
    elif name in ("gain_dark", "gain_bright"):
        out = x * strength
    elif name == "offset_dark":
        out = x - strength
    elif name == "offset_bright":
        out = x + strength
    elif name == "crush_dark":
        out = (x - strength) / (1.0 - strength)
    elif name == "blow_bright":
        out = x / (1.0 - strength)
    else:
        raise ValueError(f"unknown corruption {name!r}")
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def to_uint8(image: np.ndarray) -> np.ndarray:
    data = (np.clip(image, 0, 1) * 255.0 + 0.5).astype(np.uint8)
    return data[..., 0] if data.shape[-1] == 1 else data


def confusion_partners(images: list[np.ndarray], labels: list[str], names: list[str]) -> dict[str, str]:
    """Each class's look-alike: the class whose mean thumbnail is nearest to its own."""
    import cv2

    def thumb(a: np.ndarray) -> np.ndarray:
        g = a.mean(axis=-1) if a.ndim == 3 else a
        t = cv2.resize(g.astype(np.float32), (12, 12), interpolation=cv2.INTER_AREA).ravel()
        return (t - t.mean()) / max(float(t.std()), 1e-3)

    means = {c: np.mean([thumb(a) for a, lab in zip(images, labels, strict=True) if lab == c], axis=0)
             for c in names}
    return {c: min((o for o in names if o != c), key=lambda o: float(np.sum((means[c] - means[o]) ** 2)))
            for c in names}


def make_kind_dataset(
    kind: str,
    root: Path,
    *,
    seed: int = 0,
    per_class: int | None = None,
    noise_rate: float | None = None,
    merge: bool = True,
    blur_fraction: float = 0.06,
    lighting_fraction: float = 0.08,
    invert: bool = False,
    two_tone: bool = False,
) -> SyntheticDataset:
    """Write one dataset of ``kind`` under ``root`` (PNG per image, a folder per given class).

    Label noise: ``noise_rate`` (default: drawn in [0.05, 0.15]) of the images get a wrong
    label, half of them a uniformly drawn other class, half their class's look-alike. One
    drawn class is filed under another drawn class, so that class is really two. ``blur_fraction`` of the rest are blurred and ``lighting_fraction``
    get a lighting corruption (the eight kinds in turn, strengths drawn in their ranges).
    ``invert`` turns the clean images' tones over (1 − x) before anything else: a kind's
    light-background twin (its lighting faults then behave as on paper: brightening narrows
    the tonal range), used to tune the detectors on more than one tonal layout.
    ``two_tone`` redraws each clean image as two tones (before ``invert``): its darkest
    15–40 % (by its own smoothed luma) become "ink" at a level drawn in [0, 0.3], the rest
    "paper" in [0.7, 1] (so some clip black or white before any fault), with soft edges and a little grain — a kind's near-binary twin
    (documents, icons, line art), another tonal layout to tune on.
    """
    from PIL import Image

    if kind not in MAKERS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    rng = np.random.default_rng(seed)
    images, true_labels = MAKERS[kind](rng, per_class or DEFAULT_PER_CLASS[kind])
    if two_tone:
        images = [two_tone_of(rng, a) for a in images]
    if invert:
        images = [1.0 - a for a in images]
    images = [natural_variation(rng, a) for a in images]
    order = rng.permutation(len(images))
    images = [images[i] for i in order]
    true_labels = [true_labels[i] for i in order]
    names = sorted(set(true_labels))
    uids = [f"{kind}{i:05d}" for i in range(len(images))]
    true = dict(zip(uids, true_labels, strict=True))
    given = dict(true)
    merged = None
    if merge:
        a, b = (str(v) for v in rng.choice(names, size=2, replace=False))
        merged = (a, b)
        given = {u: (b if c == a else c) for u, c in given.items()}
    given_names = sorted(set(given.values()))
    partners = confusion_partners(images, [given[u] for u in uids], given_names)
    rate = float(rng.uniform(0.05, 0.15)) if noise_rate is None else noise_rate
    flipped = rng.choice(uids, size=int(round(rate * len(uids))), replace=False).tolist()
    noise: dict[str, str] = {}
    for n, uid in enumerate(flipped):
        if n % 2 == 0:
            given[uid] = str(rng.choice([c for c in given_names if c != given[uid]]))
            noise[uid] = "uniform"
        else:
            given[uid] = partners[given[uid]]
            noise[uid] = "confusion"
    rest = [u for u in uids if u not in noise]
    n_blur, n_light = int(round(blur_fraction * len(uids))), int(round(lighting_fraction * len(uids)))
    picks = rng.choice(rest, size=n_blur + n_light, replace=False).tolist()
    corruption: dict[str, tuple[str, float]] = {}
    for uid in picks[:n_blur]:
        corruption[uid] = ("blur", float(rng.uniform(BLUR[1], BLUR[2])))
    light_names = list(LIGHTING)
    for n, uid in enumerate(picks[n_blur:]):
        name = light_names[n % len(light_names)]
        _, lo, hi = LIGHTING[name]
        corruption[uid] = (name, float(rng.uniform(lo, hi)))
    root.mkdir(parents=True, exist_ok=True)
    class_files: dict[str, dict[str, Any]] = {c: {} for c in given_names}
    paths: dict[str, str] = {}
    clean: dict[str, np.ndarray] = {}
    for uid, image in zip(uids, images, strict=True):
        stored = image
        if uid in corruption:
            clean[uid] = to_uint8(image).astype(np.float32).reshape(image.shape) / 255.0
            stored = corrupt(image, *corruption[uid])
        folder = root / given[uid]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{uid}.png"
        Image.fromarray(to_uint8(stored)).save(path)
        paths[uid] = str(path)
        class_files[given[uid]][str(path)] = {"uuid": uid}
    direction = {u: (LIGHTING[c][0] if c in LIGHTING else "blur") for u, (c, _) in corruption.items()}
    dataset = {"uuid": f"{kind}-seed{seed}", "classes": given_names, "class_files": class_files}
    return SyntheticDataset(
        dataset=dataset, true_class=true, given_class=given, flipped=set(noise),
        blurred={u for u, d in direction.items() if d == "blur"},
        dark={u for u, d in direction.items() if d == "dark"},
        bright={u for u, d in direction.items() if d == "bright"},
        merged=merged, paths=paths, kind=kind, corruption=corruption, noise=noise, clean=clean)


def make_speed_dataset(root: Path, count: int = 20000, seed: int = 0) -> SyntheticDataset:
    """``count`` 32x32 grey digits with augmentations (shift, rotation, scale), clean, true labels."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    images, labels = _digits(rng, None, augment=True, count=count)
    class_files: dict[str, dict[str, Any]] = {str(c): {} for c in range(10)}
    paths: dict[str, str] = {}
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        uid = f"aug{i:06d}"
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{uid}.png"
        Image.fromarray(to_uint8(natural_variation(rng, image))).save(path)
        paths[uid] = str(path)
        class_files[label][str(path)] = {"uuid": uid}
    true = {u: Path(p).parent.name for u, p in paths.items()}
    dataset = {"uuid": f"speed-{count}", "classes": [str(c) for c in range(10)], "class_files": class_files}
    return SyntheticDataset(dataset=dataset, true_class=true, given_class=dict(true), paths=paths)
