"""Colour science for the colour searches: sRGB → CIELAB, CIEDE2000, HSV hue complements.

Everything is vectorised over numpy arrays of any leading shape (``(..., 3)``), so one call
scores a query against every stored image.
"""

from __future__ import annotations

import numpy as np

# D65 reference white of sRGB, in XYZ scaled to Y = 1.
_WHITE = np.array([0.95047, 1.0, 1.08883])
_RGB_TO_XYZ = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ]
)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65, 2°) of sRGB colours; uint8 (0–255) or float (0–1) input, shape (..., 3)."""
    arr = np.asarray(rgb)
    x = arr.astype(np.float64) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float64)
    linear = np.where(x > 0.04045, ((x + 0.055) / 1.055) ** 2.4, x / 12.92)
    xyz = linear @ _RGB_TO_XYZ.T / _WHITE
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    lab = np.empty_like(f)
    lab[..., 0] = 116 * f[..., 1] - 16
    lab[..., 1] = 500 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200 * (f[..., 1] - f[..., 2])
    return lab


def ciede2000(
    lab1: np.ndarray, lab2: np.ndarray, k_l: float = 1.0, k_c: float = 1.0, k_h: float = 1.0
) -> np.ndarray:
    """CIEDE2000 colour difference (Sharma, Wu & Dalal 2005), broadcasting over (..., 3).

    Follows the paper's equations, including its conventions for hue when a chroma is zero
    and for the mean hue when the hues are more than 180° apart.
    """
    lab1 = np.asarray(lab1, dtype=np.float64)
    lab2 = np.asarray(lab2, dtype=np.float64)
    l1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    l2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]

    c1 = np.hypot(a1, b1)
    c2 = np.hypot(a2, b2)
    c_bar7 = ((c1 + c2) / 2) ** 7
    g = 0.5 * (1 - np.sqrt(c_bar7 / (c_bar7 + 25.0**7)))
    a1p = (1 + g) * a1
    a2p = (1 + g) * a2
    c1p = np.hypot(a1p, b1)
    c2p = np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    zero = (c1p * c2p) == 0

    dlp = l2 - l1
    dcp = c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(zero, 0.0, dh)
    dhp = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh) / 2)

    lbp = (l1 + l2) / 2
    cbp = (c1p + c2p) / 2
    hsum = h1p + h2p
    hbp = np.where(
        np.abs(h1p - h2p) > 180,
        np.where(hsum < 360, (hsum + 360) / 2, (hsum - 360) / 2),
        hsum / 2,
    )
    hbp = np.where(zero, hsum, hbp)

    t = (
        1
        - 0.17 * np.cos(np.radians(hbp - 30))
        + 0.24 * np.cos(np.radians(2 * hbp))
        + 0.32 * np.cos(np.radians(3 * hbp + 6))
        - 0.20 * np.cos(np.radians(4 * hbp - 63))
    )
    d_theta = 30 * np.exp(-(((hbp - 275) / 25) ** 2))
    cbp7 = cbp**7
    r_c = 2 * np.sqrt(cbp7 / (cbp7 + 25.0**7))
    s_l = 1 + 0.015 * (lbp - 50) ** 2 / np.sqrt(20 + (lbp - 50) ** 2)
    s_c = 1 + 0.045 * cbp
    s_h = 1 + 0.015 * cbp * t
    r_t = -np.sin(np.radians(2 * d_theta)) * r_c

    tl = dlp / (k_l * s_l)
    tc = dcp / (k_c * s_c)
    th = dhp / (k_h * s_h)
    return np.sqrt(tl**2 + tc**2 + th**2 + r_t * tc * th)


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """Hue in degrees [0, 360), saturation and value in [0, 1], shape (..., 3)."""
    arr = np.asarray(rgb)
    x = arr.astype(np.float64) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float64)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    v = x.max(axis=-1)
    c = v - x.min(axis=-1)
    safe = np.where(c == 0, 1.0, c)
    h = np.where(
        v == r, ((g - b) / safe) % 6, np.where(v == g, (b - r) / safe + 2, (r - g) / safe + 4)
    )
    h = np.where(c == 0, 0.0, h * 60.0) % 360
    s = np.where(v == 0, 0.0, c / np.where(v == 0, 1.0, v))
    return np.stack([h, s, v], axis=-1)


def hue_distance(h1: np.ndarray | float, h2: np.ndarray | float) -> np.ndarray:
    """Shortest angular distance between hues in degrees (0–180)."""
    d = np.abs(np.asarray(h1, dtype=np.float64) - np.asarray(h2, dtype=np.float64)) % 360
    return np.minimum(d, 360 - d)


def chromatic_mask(hsv: np.ndarray, min_saturation: float = 0.2, min_value: float = 0.2) -> np.ndarray:
    """Pixels with a meaningful hue (grey, black and white have none)."""
    return (hsv[..., 1] >= min_saturation) & (hsv[..., 2] >= min_value)


def dominant_hue(hsv: np.ndarray, mask: np.ndarray, bins: int = 36) -> float | None:
    """The peak of the hue histogram of the masked chromatic pixels (None when there are none)."""
    keep = mask & chromatic_mask(hsv)
    hues = hsv[..., 0][keep]
    if hues.size == 0:
        return None
    hist, edges = np.histogram(hues, bins=bins, range=(0, 360))
    # Smooth circularly so a peak split over two bins still wins.
    smooth = hist + 0.5 * (np.roll(hist, 1) + np.roll(hist, -1))
    peak = int(np.argmax(smooth))
    in_peak = hues[hue_distance(hues, (edges[peak] + edges[peak + 1]) / 2) <= 360 / bins * 1.5]
    angles = np.radians(in_peak)
    return float(np.degrees(np.arctan2(np.sin(angles).mean(), np.cos(angles).mean())) % 360)


def complement_fraction(
    hsv: np.ndarray, mask: np.ndarray, target_hue: float, tolerance: float
) -> np.ndarray:
    """Per image, the fraction of its masked chromatic pixels within ``tolerance`` of a hue.

    ``hsv`` has shape (n, p, 3) and ``mask`` (n, p); returns shape (n,).
    """
    keep = mask & chromatic_mask(hsv)
    near = hue_distance(hsv[..., 0], target_hue) <= tolerance
    counted = keep.sum(axis=-1)
    return np.where(counted > 0, (near & keep).sum(axis=-1) / np.maximum(counted, 1), 0.0)


def dominant_colours(rgb: np.ndarray, mask: np.ndarray | None = None, k: int = 3) -> list[dict[str, object]]:
    """The ``k`` most common colours (coarse 4-bit-per-channel bins) with their shares."""
    pixels = rgb.reshape(-1, 3)
    if mask is not None and mask.any():
        pixels = pixels[mask.reshape(-1)]
    if pixels.size == 0:
        return []
    bins = (pixels // 16).astype(np.int64)
    codes = bins[:, 0] * 256 + bins[:, 1] * 16 + bins[:, 2]
    values, counts = np.unique(codes, return_counts=True)
    order = np.argsort(counts)[::-1][:k]
    out: list[dict[str, object]] = []
    for i in order:
        sel = pixels[codes == values[i]].mean(axis=0)
        hex_ = "#" + "".join(f"{int(round(c)):02x}" for c in sel)
        out.append({"hex": hex_, "share": round(float(counts[i] / len(codes)), 4)})
    return out
