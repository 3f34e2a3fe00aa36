"""Generated test and benchmark media: Detect documents, encoded images, videos whose
content changes at known times (written with PyAV). Nothing is downloaded."""

from __future__ import annotations

import base64
import io
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def encode_image(rgb: np.ndarray, fmt: str = "PNG") -> bytes:
    """An image file's bytes (PNG, JPEG, WEBP, ...) from RGB pixels."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format=fmt)
    return buffer.getvalue()


def make_video(
    segments: Sequence[tuple[np.ndarray | tuple[int, int, int], float]],
    *,
    fps: int = 10,
    size: tuple[int, int] = (128, 96),
    container: str = "mp4",
    codec: str = "mpeg4",
) -> bytes:
    """A video of consecutive segments ``(image or RGB colour, seconds)``, ``size`` = (w, h)."""
    import av
    import cv2

    width, height = size
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as out:
        stream: Any = out.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        for content, seconds in segments:
            if isinstance(content, np.ndarray):
                frame_rgb = cv2.resize(content, (width, height), interpolation=cv2.INTER_AREA)
            else:
                frame_rgb = np.empty((height, width, 3), np.uint8)
                frame_rgb[:] = content
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame_rgb, dtype=np.uint8), format="rgb24")
            for _ in range(round(seconds * fps)):
                for packet in stream.encode(frame):
                    out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buffer.getvalue()


def document(data: bytes, file_type: str, doc_id: str | None = None, **source: Any) -> dict[str, Any]:
    """A Detect document carrying ``data`` as base64."""
    name = source.pop("file_name", f"file.{file_type}")
    return {
        "id": doc_id or str(uuid.uuid4()),
        "index": "test-doc",
        "source": {
            "content": base64.b64encode(data).decode("ascii"),
            "file_type": file_type,
            "file_name": name,
            "fs": {"uri": f"file:///tmp/{name}"},
            "embedded_depth": 0,
            **source,
        },
    }


def tiny_yolos(folder: Path, labels: dict[int, str] | None = None, detection_tokens: int = 5) -> Path:
    """Save a tiny random YOLOS detector (and its PIL processor) with ``save_pretrained``."""
    from transformers import YolosConfig, YolosForObjectDetection, YolosImageProcessorPil

    labels = labels or {0: "car", 1: "person"}
    config = YolosConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
        image_size=[64, 64], patch_size=16, num_detection_tokens=detection_tokens,
        id2label=labels, label2id={v: k for k, v in labels.items()},
    )
    YolosForObjectDetection(config).save_pretrained(folder)
    YolosImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 64}).save_pretrained(folder)
    return folder
