"""Image helpers of the inspection service: decoding, patch grids, anomaly maps and boxes.

Everything here is Ray-free numpy/OpenCV/SciPy, shared by every algorithm.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image
from scipy import ndimage

from percept.errors import BadRequest
from percept.imaging import UnreadableImage
from percept.imaging import decode_image as pixels_of

Image.MAX_IMAGE_PIXELS = 80_000_000


def decode_image(data: bytes) -> np.ndarray:
    """RGB uint8 array from encoded bytes (any format Pillow reads); 400 when unreadable."""
    try:
        return pixels_of(data)
    except UnreadableImage as exc:
        raise BadRequest(f"not a readable image: {exc}") from None


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) without decoding the pixels."""
    with Image.open(io.BytesIO(data)) as img:
        return int(img.width), int(img.height)


def to_working(img: np.ndarray, work_size: int) -> tuple[np.ndarray, float]:
    """Float32 RGB in [0, 1], downscaled so the longer side is at most ``work_size``.

    Returns the image and the factor that maps working coordinates back to the original.
    """
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    h, w = img.shape[:2]
    scale = max(h, w) / float(work_size)
    if scale > 1.0:
        size = (max(1, round(w / scale)), max(1, round(h / scale)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    else:
        scale = 1.0
    return img.astype(np.float32) / 255.0, scale


def grid_positions(length: int, patch: int, stride: int) -> np.ndarray:
    """Start offsets of patches along one axis, the last one flush with the border."""
    if length <= patch:
        return np.array([0])
    starts = list(range(0, length - patch + 1, stride))
    if starts[-1] != length - patch:
        starts.append(length - patch)
    return np.array(starts)


@dataclass
class PatchGrid:
    """Patches of one image on a regular grid (``rows × cols`` positions)."""

    ys: np.ndarray
    xs: np.ndarray
    ph: int
    pw: int
    shape: tuple[int, int]

    @property
    def count(self) -> int:
        return int(len(self.ys) * len(self.xs))


def extract_patches(img: np.ndarray, patch: tuple[int, int], stride: int) -> tuple[np.ndarray, PatchGrid]:
    """Patches as rows ``(n, ph*pw*c)`` and the grid they came from (padding tiny images)."""
    ph, pw = patch
    stride = max(1, min(stride, ph, pw))  # a stride past the patch would leave pixels unscored
    h, w = img.shape[:2]
    if h < ph or w < pw:
        img = np.pad(img, ((0, max(0, ph - h)), (0, max(0, pw - w)), (0, 0)), mode="reflect")
        h, w = img.shape[:2]
    ys, xs = grid_positions(h, ph, stride), grid_positions(w, pw, stride)
    windows = sliding_window_view(img, (ph, pw), axis=(0, 1))  # (H', W', C, ph, pw)
    picked = windows[ys][:, xs]  # (rows, cols, C, ph, pw)
    rows = picked.reshape(len(ys) * len(xs), -1)
    return np.ascontiguousarray(rows, dtype=np.float32), PatchGrid(ys, xs, ph, pw, (h, w))


def scores_to_map(scores: np.ndarray, grid: PatchGrid, out_shape: tuple[int, int]) -> np.ndarray:
    """Per-pixel mean of the scores of every patch covering the pixel."""
    h, w = grid.shape
    acc = np.zeros((h, w), np.float64)
    cnt = np.zeros((h, w), np.float64)
    values = scores.reshape(len(grid.ys), len(grid.xs))
    for i, y in enumerate(grid.ys):
        for j, x in enumerate(grid.xs):
            acc[y : y + grid.ph, x : x + grid.pw] += values[i, j]
            cnt[y : y + grid.ph, x : x + grid.pw] += 1
    out = (acc / np.maximum(cnt, 1)).astype(np.float32)
    return out[: out_shape[0], : out_shape[1]]


def find_boxes(
    norm_map: np.ndarray, level: float, min_area: int, scale: float, original: tuple[int, int],
    *, grow: float | None = None, merge: int = 0, relative: float = 0.0,
) -> list[dict[str, Any]]:
    """Defect regions of a normalised map, as boxes in original-image pixels (inclusive).

    A region starts where ``norm_map > level`` and extends over the connected pixels above
    ``grow`` (hysteresis; ``grow = level`` keeps only the pixels above the threshold) and
    above ``relative`` × the region's peak; regions whose gap is at most ``merge`` working pixels are one defect. Regions of fewer
    than ``min_area`` working pixels are ignored. Largest score first.
    """
    low = level if grow is None else min(grow, level)
    seeds = norm_map > level
    if not seeds.any():
        return []
    # A closing joins the fragments of one thin defect (a scratch) into one region.
    region = norm_map > low
    region |= ndimage.binary_closing(region, structure=np.ones((3, 3), bool), iterations=3)
    labels, count = ndimage.label(region)
    keep = np.unique(labels[seeds & (labels > 0)])
    region = np.isin(labels, keep[keep > 0])
    if relative > 0:  # a strong defect's halo is not the defect: cut each region at a share of its peak
        peaks = ndimage.maximum(norm_map, labels, index=np.arange(count + 1))
        cut = np.maximum(low, relative * np.asarray(peaks)[labels])
        region &= norm_map > cut
    if merge > 0:
        joined = ndimage.binary_dilation(region, structure=np.ones((3, 3), bool), iterations=max(1, merge // 2))
        labels, count = ndimage.label(joined)
        labels = labels * region
    else:
        labels, count = ndimage.label(region)
    boxes: list[dict[str, Any]] = []
    oh, ow = original
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        mask = labels[box] == index
        area = int(mask.sum())
        if area < min_area:
            continue
        ys, xs = box
        boxes.append(
            {
                "x_min": int(min(ow - 1, np.floor(xs.start * scale))),
                "y_min": int(min(oh - 1, np.floor(ys.start * scale))),
                "x_max": int(min(ow - 1, np.ceil(xs.stop * scale) - 1)),
                "y_max": int(min(oh - 1, np.ceil(ys.stop * scale) - 1)),
                "score": round(float(norm_map[box][mask].max(initial=low)), 4),
                "area": int(round(area * scale * scale)),
            }
        )
    boxes.sort(key=lambda b: -b["score"])
    return boxes


def heatmap_png(norm_map: np.ndarray, level: float) -> bytes:
    """The normalised anomaly map as a colour PNG (threshold at the middle of the scale)."""
    scaled = np.clip(norm_map / (2.0 * max(level, 1e-6)), 0.0, 1.0)
    gray = (scaled * 255).astype(np.uint8)
    colour = cv2.applyColorMap(gray, cv2.COLORMAP_JET)[:, :, ::-1]
    buf = io.BytesIO()
    Image.fromarray(colour).save(buf, format="PNG")
    return buf.getvalue()
