"""Turning a document's base64 content into images or sampled video frames.

Images are decoded with Pillow; videos with PyAV. Frames are shrunk on decode (the
classifier crops 224 px) so a request never holds full-resolution video in memory.
Video sampling is scene-change aware: frames are probed at ``probe_fps``, a cut is a
probe whose 32x32 colour thumbnail differs from the previous one by more than
``scene_threshold`` (mean absolute difference in [0, 1]); the sample is the first frame,
the strongest cuts, then evenly spaced frames up to ``max_frames``.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import math
from dataclasses import dataclass, field

import numpy as np

from percept.imaging import UnreadableImage, shrink_to
from percept.imaging import decode_image as decode_image_pixels

logger = logging.getLogger(__name__)

IMAGE_TYPES = frozenset({"jpeg", "jpg", "png", "tif", "tiff", "gif", "bmp", "webp"})
VIDEO_TYPES = frozenset(
    {"mp4", "avi", "mov", "webm", "mkv", "m4v", "mpeg", "mpg", "wmv", "flv", "3gp", "ogv", "ts"}
)
FILE_TYPE_NOT_VALID = "File type not valid"
NOT_SUITABLE = "No Image/Video suitable for tagging analysis"
FRAME_SHORT_SIDE = 256


class DocumentRejected(Exception):
    """A document that cannot be tagged; ``reason`` goes to ``list_id_not_treated``."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail or reason


@dataclass
class Frame:
    """One sampled frame: RGB uint8 pixels and its time in the video (0 for images)."""

    image: np.ndarray
    timestamp: float = 0.0


@dataclass
class Media:
    """A decoded document: one frame for an image, a sample of frames for a video."""

    kind: str  # "image" | "video"
    frames: list[Frame] = field(default_factory=list)
    duration: float = 0.0


def normalise_type(file_type: str | None, file_name: str | None) -> str:
    """The lower-case extension from ``file_type`` (``.PNG``, ``image/png``) or the file name."""
    value = (file_type or "").strip().lower()
    if "/" in value:
        value = value.rsplit("/", 1)[1]
    value = value.lstrip(".")
    if not value and file_name and "." in file_name:
        value = file_name.rsplit(".", 1)[1].strip().lower()
    return value


def media_kind(file_type: str) -> str:
    """``image`` or ``video``; :class:`DocumentRejected` for any other type."""
    if file_type in IMAGE_TYPES:
        return "image"
    if file_type in VIDEO_TYPES:
        return "video"
    raise DocumentRejected(FILE_TYPE_NOT_VALID, f"file type {file_type or '(none)'!r} is not an image or video")


def decode_base64(content: object, limit_bytes: int) -> bytes:
    """The document's bytes; rejects missing, non-base64, empty and oversized content."""
    if not isinstance(content, str) or not content.strip():
        raise DocumentRejected(NOT_SUITABLE, "no content")
    text = content.strip()
    if text.startswith("data:") and "," in text:  # a data: URL
        text = text.split(",", 1)[1]
    # base64 grows 4/3: refuse before decoding what would exceed the limit.
    if len(text) * 3 // 4 > limit_bytes + 3:
        raise DocumentRejected(f"File too large (limit {limit_bytes / 2**20:.0f} MB)")
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise DocumentRejected(NOT_SUITABLE, "content is not valid base64") from None
    if not data:
        raise DocumentRejected(NOT_SUITABLE, "empty content")
    return data


def decode_image(data: bytes, short_side: int = FRAME_SHORT_SIDE) -> np.ndarray:
    """RGB uint8 pixels of an image file (first frame of an animated one)."""
    try:
        rgb = decode_image_pixels(data)
    except UnreadableImage as exc:
        raise DocumentRejected(NOT_SUITABLE, f"undecodable image: {exc}") from None
    if rgb.size == 0 or min(rgb.shape[:2]) < 2:
        raise DocumentRejected(NOT_SUITABLE, "image too small")
    return shrink_to(rgb, short_side)


def _thumb(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.resize(rgb, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def choose_frames(diffs: list[float], max_frames: int, scene_threshold: float) -> list[int]:
    """Indices of probes to keep: the first, the strongest cuts, then evenly spaced fill.

    ``diffs[i]`` is the change from probe ``i-1`` to probe ``i`` (``diffs[0]`` is ignored).
    """
    n = len(diffs)
    if n == 0:
        return []
    chosen = {0}
    cuts = sorted((i for i in range(1, n) if diffs[i] > scene_threshold), key=lambda i: -diffs[i])
    for i in cuts:
        if len(chosen) >= max_frames:
            break
        chosen.add(i)
    # Fill by farthest-point sampling: each new probe is the farthest from those chosen.
    positions = np.arange(n)
    while len(chosen) < min(max_frames, n):
        taken = np.fromiter(chosen, dtype=np.int64)
        distance = np.abs(positions[:, None] - taken[None, :]).min(axis=1)
        best = int(distance.argmax())
        if distance[best] == 0:
            break
        chosen.add(best)
    return sorted(chosen)


def decode_video(
    data: bytes,
    *,
    max_frames: int = 8,
    probe_fps: float = 4.0,
    max_probes: int = 600,
    scene_threshold: float = 0.25,
    keyframes_after_s: float = 120.0,
    short_side: int = FRAME_SHORT_SIDE,
) -> Media:
    """Sample up to ``max_frames`` frames of a video file, scene-change aware.

    Videos longer than ``keyframes_after_s`` are probed on key frames only (the decoder
    skips the others), which keeps hour-long videos far faster than real time.
    """
    import av

    try:
        container = av.open(io.BytesIO(data), mode="r")
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise DocumentRejected(NOT_SUITABLE, f"undecodable video: {exc}") from None
    probes: list[Frame] = []
    diffs: list[float] = []
    duration = 0.0
    try:
        if not container.streams.video:
            raise DocumentRejected(NOT_SUITABLE, "no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / 1_000_000
        if duration > keyframes_after_s:
            stream.codec_context.skip_frame = "NONKEY"
        step = 1.0 / probe_fps
        if duration > 0 and duration / step > max_probes:
            step = duration / max_probes  # long video: probe more sparsely, never more than max_probes
        next_t = -math.inf
        previous: np.ndarray | None = None
        last_t = 0.0
        start: float | None = None
        for frame in container.decode(stream):
            raw = float(frame.time) if frame.time is not None else None
            if start is None and raw is not None:
                start = raw  # timestamps count from the first frame (some files start at 1.4 s)
            t = raw - (start or 0.0) if raw is not None else last_t
            last_t = t
            if t + 1e-6 < next_t:
                continue
            next_t = t + step
            rgb = frame.to_ndarray(format="rgb24")
            thumb = _thumb(rgb)
            diffs.append(0.0 if previous is None else float(np.abs(thumb - previous).mean()))
            previous = thumb
            probes.append(Frame(shrink_to(rgb, short_side), t))
            if len(probes) >= max_probes:
                break
        duration = max(duration, last_t)
    except DocumentRejected:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        if not probes:
            raise DocumentRejected(NOT_SUITABLE, f"undecodable video: {exc}") from None
        logger.warning("video decoding stopped early after %d probes: %s", len(probes), exc)
    finally:
        container.close()
    if not probes:
        raise DocumentRejected(NOT_SUITABLE, "video has no frames")
    keep = choose_frames(diffs, max_frames, scene_threshold)
    return Media("video", [probes[i] for i in keep], duration)
