"""Decoding, encoding and small derived forms of images (thumbnails, colour features, collages)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image, ImageDraw

from percept.errors import Unprocessable
from percept.imaging import ImageTooLarge, UnreadableImage
from percept.imaging import decode_image as pixels_of

MAX_PIXELS = 40_000_000
FEATURE_SIDE = 32
QUERY_FRAME = (220, 30, 30)


def decode_image(data: bytes, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """RGB or RGBA uint8 array from encoded bytes (EXIF orientation applied); 422 when it is
    not a readable image or has more than ``max_pixels`` pixels."""
    try:
        return pixels_of(data, max_pixels=max_pixels, orient=True, keep_alpha=True)
    except ImageTooLarge as exc:
        raise Unprocessable(str(exc)) from None
    except UnreadableImage:
        raise Unprocessable("The file is not a readable image") from None


def image_format(data: bytes) -> str | None:
    """``png``, ``jpeg``, ``gif``, ``webp``, ``bmp`` … from the bytes, or None."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return (image.format or "").lower() or None
    except Exception:
        return None


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of an RGB/RGBA/gray uint8 array."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def split_alpha(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(RGB, alpha-mask or None)."""
    if image.ndim == 3 and image.shape[2] == 4:
        return image[..., :3], image[..., 3] >= 128
    if image.ndim == 2:
        return np.stack([image] * 3, axis=-1), None
    return image[..., :3], None


def flatten_on_white(image: np.ndarray) -> np.ndarray:
    """RGB: an RGBA image composited onto white (RGB passes through)."""
    if image.ndim == 3 and image.shape[2] == 4:
        a = image[..., 3:4].astype(np.float32) / 255.0
        return np.rint(image[..., :3] * a + 255.0 * (1 - a)).astype(np.uint8)
    return split_alpha(image)[0]


def feature_thumb(image: np.ndarray, mask: np.ndarray | None, side: int = FEATURE_SIDE) -> np.ndarray:
    """A ``side``×``side`` RGBA thumbnail: colours plus a foreground mask in alpha (0 / 255)."""
    rgb, alpha = split_alpha(image)
    if mask is None:
        mask = alpha if alpha is not None else np.ones(rgb.shape[:2], dtype=bool)
    small = cv2.resize(rgb, (side, side), interpolation=cv2.INTER_AREA)
    small_mask = cv2.resize(mask.astype(np.uint8) * 255, (side, side), interpolation=cv2.INTER_AREA) >= 128
    return np.dstack([small, small_mask.astype(np.uint8) * 255])


def _fit(image: np.ndarray, cell: int) -> Image.Image:
    pil = Image.fromarray(flatten_on_white(image))
    pil.thumbnail((cell, cell))
    canvas = Image.new("RGB", (cell, cell), (255, 255, 255))
    canvas.paste(pil, ((cell - pil.width) // 2, (cell - pil.height) // 2))
    return canvas


def collage(
    query: np.ndarray | None,
    results: Sequence[tuple[np.ndarray, str]],
    *,
    cell: int = 160,
    columns: int = 5,
    frame: int = 6,
    footer: str | None = None,
) -> bytes:
    """A PNG grid: the query first inside a coloured frame, then each result with its caption;
    ``footer`` (e.g. which model answered) is written under the grid."""
    tiles: list[tuple[Image.Image, str, bool]] = []
    if query is not None:
        tiles.append((_fit(query, cell), "query", True))
    tiles.extend((_fit(img, cell), caption, False) for img, caption in results)
    if not tiles:
        tiles.append((Image.new("RGB", (cell, cell), (255, 255, 255)), "no results", False))
    caption_h = 16
    rows = -(-len(tiles) // columns)
    cols = min(columns, len(tiles))
    pad = frame + 2
    width, height = cols * (cell + 2 * pad), rows * (cell + 2 * pad + caption_h)
    sheet = Image.new("RGB", (width, height), (245, 245, 245))
    draw = ImageDraw.Draw(sheet)
    for i, (tile, caption, framed) in enumerate(tiles):
        x = (i % columns) * (cell + 2 * pad) + pad
        y = (i // columns) * (cell + 2 * pad + caption_h) + pad
        if framed:
            draw.rectangle([x - frame, y - frame, x + cell + frame - 1, y + cell + frame - 1], fill=QUERY_FRAME)
        sheet.paste(tile, (x, y))
        draw.text((x + 2, y + cell + 2), caption[:28], fill=(20, 20, 20))
    if footer:
        sheet = _with_footer(sheet, footer)
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    return buf.getvalue()


def _with_footer(sheet: Image.Image, text: str, line_h: int = 14) -> Image.Image:
    """``sheet`` with ``text`` wrapped into lines under it (the default bitmap font, ~6 px a char)."""
    import textwrap

    lines = textwrap.wrap(text, max(20, sheet.width // 6 - 2))
    out = Image.new("RGB", (sheet.width, sheet.height + line_h * len(lines) + 8), (255, 248, 220))
    out.paste(sheet, (0, 0))
    draw = ImageDraw.Draw(out)
    for n, line in enumerate(lines):
        draw.text((6, sheet.height + 4 + n * line_h), line, fill=(90, 60, 0))
    return out
