"""Image helpers shared by the services: the one decoder, and shrinking.

Every service decodes uploads with :func:`decode_image` (or :func:`open_image` for a Pillow
image) and turns :class:`UnreadableImage` into its own contract's error.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np


class UnreadableImage(ValueError):
    """Bytes (or a file) that Pillow cannot decode as an image."""


class ImageTooLarge(UnreadableImage):
    """An image with more pixels than the caller allows (found before decoding the pixels)."""


def open_image(source: bytes | str | Path, *, max_pixels: int | None = None, orient: bool = False) -> Any:
    """The image's first frame as a loaded Pillow image.

    ``max_pixels``: refuse larger images before decoding them (:class:`ImageTooLarge`);
    ``orient``: apply the EXIF orientation (photos from phones).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        image: Image.Image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        if max_pixels is not None and image.width * image.height > max_pixels:
            raise ImageTooLarge(f"Image too large: more than {max_pixels} pixels")
        image.seek(0)
        if orient:
            image = ImageOps.exif_transpose(image)
        image.load()
        return image
    except (UnreadableImage, FileNotFoundError, IsADirectoryError):
        raise  # a missing path is the caller's to report
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise UnreadableImage(str(exc)) from None


def decode_image(data: bytes, *, max_pixels: int | None = None, orient: bool = False,
                 keep_alpha: bool = False) -> np.ndarray:
    """RGB uint8 pixels of an encoded image (RGBA when ``keep_alpha`` and it has transparency)."""
    image = open_image(data, max_pixels=max_pixels, orient=orient)
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    return np.asarray(image.convert("RGBA" if keep_alpha and has_alpha else "RGB"), dtype=np.uint8)


def shrink_to(image: np.ndarray, short_side: int) -> np.ndarray:
    """Downscale so the short side is at most ``short_side`` (never upscale; area filter)."""
    import cv2

    h, w = image.shape[:2]
    scale = short_side / min(h, w)
    if scale >= 1:
        return image
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
