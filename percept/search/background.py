"""Background removal: masks and RGBA cut-outs.

Three methods behind one function signature ``(rgb) -> mask`` (bool HxW, True = foreground):

* ``grabcut`` (default, no weights): OpenCV GrabCut seeded with the image border as
  certain background and everything else as probable foreground.
* ``border``: a fast baseline — pixels far (CIEDE2000) from the median border colour.
* ``u2net``: the U²-Net salient-object model as ONNX (``<models>/u2net.onnx``, the file
  rembg distributes) on onnxruntime.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from percept.errors import WeightsMissing
from percept.search.colour import ciede2000, rgb_to_lab

logger = logging.getLogger(__name__)

U2NET_FILE = "u2net.onnx"
U2NET_SIZE = 320
_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
Masker = Callable[[np.ndarray], np.ndarray]


def _work_copy(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    h, w = rgb.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        rgb = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return rgb, scale


def _to_size(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if mask.shape[:2] == shape[:2]:
        return mask
    up = cv2.resize(mask.astype(np.uint8) * 255, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return up >= 128


def _border_band(shape: tuple[int, ...], fraction: float) -> np.ndarray:
    h, w = shape[:2]
    b = max(1, round(min(h, w) * fraction))
    band = np.zeros((h, w), dtype=bool)
    band[:b], band[-b:], band[:, :b], band[:, -b:] = True, True, True, True
    return band


def _largest_components(mask: np.ndarray, keep_fraction: float = 0.05) -> np.ndarray:
    """Drop specks: keep connected components of at least ``keep_fraction`` of the largest."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 2:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= keep_fraction * areas.max()) + 1
    return np.isin(labels, keep)


def border_mask(rgb: np.ndarray, threshold: float = 12.0, band: float = 0.04, max_side: int = 320) -> np.ndarray:
    """Foreground = pixels whose CIEDE2000 to the median border colour exceeds ``threshold``."""
    small, _ = _work_copy(rgb, max_side)
    lab = rgb_to_lab(small)
    ring = _border_band(small.shape, band)
    reference = np.median(lab[ring], axis=0)
    mask = ciede2000(lab, reference) > threshold
    mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)
    return _to_size(_largest_components(mask), rgb.shape)


def grabcut_mask(rgb: np.ndarray, iterations: int = 4, band: float = 0.04, max_side: int = 320) -> np.ndarray:
    """GrabCut seeded from the border: the band is certain background, the rest probable foreground."""
    small, _ = _work_copy(rgb, max_side)
    h, w = small.shape[:2]
    if min(h, w) < 8:
        return np.ones(rgb.shape[:2], dtype=bool)
    seed = np.full((h, w), cv2.GC_PR_FGD, dtype=np.uint8)
    seed[_border_band(small.shape, band)] = cv2.GC_BGD
    # Pixels that look exactly like the border are probably background too: a better start.
    lab = rgb_to_lab(small)
    reference = np.median(lab[seed == cv2.GC_BGD], axis=0)
    seed[(seed == cv2.GC_PR_FGD) & (ciede2000(lab, reference) < 3.0)] = cv2.GC_PR_BGD
    bgd = np.zeros((1, 65), np.float64)
    fgd = np.zeros((1, 65), np.float64)
    bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
    try:
        cv2.grabCut(bgr, seed, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)  # type: ignore[call-overload]
    except cv2.error:  # one colour everywhere: GrabCut cannot fit its models
        logger.debug("grabcut failed; falling back to the border mask", exc_info=True)
        return border_mask(rgb, max_side=max_side)
    mask = (seed == cv2.GC_FGD) | (seed == cv2.GC_PR_FGD)
    return _to_size(_largest_components(mask), rgb.shape)


class U2NetMasker:
    """U²-Net saliency as ONNX on onnxruntime (``u2net.onnx`` from the models directory)."""

    name = "u2net"

    def __init__(self, models_path: str | Path, session: Any = None, threshold: float = 0.5) -> None:
        self.path = Path(models_path) / U2NET_FILE
        self.threshold = threshold
        if session is None:
            if not self.path.is_file():
                raise WeightsMissing(
                    "U2-Net", str(models_path), hint=f"put {U2NET_FILE} (rembg's U²-Net ONNX export) there"
                )
            import onnxruntime as ort

            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
            session = ort.InferenceSession(str(self.path), providers=providers)
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self._lock = threading.Lock()

    def saliency(self, rgb: np.ndarray) -> np.ndarray:
        """The model's saliency map in [0, 1] at the image's size."""
        small = cv2.resize(rgb, (U2NET_SIZE, U2NET_SIZE), interpolation=cv2.INTER_AREA).astype(np.float32)
        x = small / max(float(small.max()), 1e-6)
        x = ((x - _MEAN) / _STD).transpose(2, 0, 1)[None].astype(np.float32)
        with self._lock:
            outputs = self.session.run(None, {self.input_name: x})
        pred = np.asarray(outputs[0])[0, 0]
        lo, hi = float(pred.min()), float(pred.max())
        pred = (pred - lo) / (hi - lo) if hi > lo else np.zeros_like(pred)
        return cv2.resize(pred.astype(np.float32), (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        return self.saliency(rgb) >= self.threshold


def cutout(rgb: np.ndarray, mask: np.ndarray, feather: int = 1) -> np.ndarray:
    """RGBA image: the input with alpha 255 on the foreground, 0 elsewhere (edges softened)."""
    alpha: np.ndarray = mask.astype(np.uint8) * 255
    if feather > 0:
        alpha = cv2.GaussianBlur(alpha, (2 * feather + 1, 2 * feather + 1), 0)
    return np.dstack([rgb, alpha])


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


METHODS: dict[str, Masker] = {"grabcut": grabcut_mask, "border": border_mask}
