"""Image upload conversion (Pillow → PNG) and the highlighted page view of a report."""

from __future__ import annotations

import io
import logging
from typing import Any

from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

from percept.errors import Unprocessable

logger = logging.getLogger(__name__)

COLOURS = {
    "substitution": (220, 40, 40),
    "omission": (240, 140, 0),
    "repetition": (40, 90, 220),
    "self_correction": (150, 60, 200),
}


def convert_to_png(data: bytes, max_pixels: int) -> tuple[bytes, int, int]:
    """Decode an image Pillow knows (first frame), return PNG bytes, width and height."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > max_pixels:
                raise Unprocessable(
                    f"The image is too large: {img.width}x{img.height} pixels, the limit is {max_pixels} pixels"
                )
            img.seek(0)
            frame = ImageOps.exif_transpose(img)
            if frame.mode not in ("RGB", "RGBA", "L", "LA"):
                frame = frame.convert("RGBA" if "transparency" in frame.info or frame.mode == "P" else "RGB")
            out = io.BytesIO()
            frame.save(out, format="PNG")
            return out.getvalue(), frame.width, frame.height
    except Unprocessable:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        logger.info("image decode failed: %s", exc)
        raise Unprocessable("Could not decode the image file") from None


def render_view(png: bytes, boxes: list[dict[str, Any]], verdicts: list[str | None]) -> bytes:
    """The page with each OCR box outlined in the colour of its word's verdict (PNG).

    ``verdicts[i]`` is the status of box ``i`` (``None`` or ``"correct"``: drawn green, thin).
    """
    with Image.open(io.BytesIO(png)) as img:
        page = img.convert("RGB")
    overlay = Image.new("RGBA", page.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    for box, verdict in zip(boxes, verdicts, strict=False):
        c = box["coordinates"]
        polygon = [(c[k]["x"], c[k]["y"]) for k in ("left_top", "right_top", "right_bottom", "left_bottom")]
        colour = COLOURS.get(verdict or "", None)
        if colour is None:
            draw.polygon(polygon, outline=(40, 160, 60, 255), width=1)
        else:
            draw.polygon(polygon, fill=(*colour, 70), outline=(*colour, 255), width=3)
    page = Image.alpha_composite(page.convert("RGBA"), overlay).convert("RGB")
    out = io.BytesIO()
    page.save(out, format="PNG")
    return out.getvalue()
