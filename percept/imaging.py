"""Small image helpers shared by the services."""

from __future__ import annotations

import numpy as np


def shrink_to(image: np.ndarray, short_side: int) -> np.ndarray:
    """Downscale so the short side is at most ``short_side`` (never upscale; area filter)."""
    import cv2

    h, w = image.shape[:2]
    scale = short_side / min(h, w)
    if scale >= 1:
        return image
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
