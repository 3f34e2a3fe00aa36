"""The ``/process`` pipeline: read each document, tag it, fill the envelope.

Ray-free: it talks to the models through :class:`TaggerModels` (the router passes one over
the deployment handles, unit tests one over fakes). Documents are processed concurrently.

Labels: the ingress only checks the document and decodes its base64; the file's bytes go to
the classifier (:meth:`TaggerModels.tag`; its own replica, or the ingress replica itself
with ``classifier_in_ingress``), which decodes the image or samples the video there (:class:`MediaLabeller`, in a thread) and classifies every frame through its
batch queue, so frames of one request and of concurrent requests share forward passes and
no pixels cross a process boundary. The replica's memory figures come back with the
labels (no extra ``usage`` call per request). Object counts go the same way to the
detector replica (:class:`MediaCounter`).
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from PIL import Image

from percept.errors import ServiceError, ServiceUnavailable, unwrap_remote_error
from percept.handles import TaggerHandles, is_running
from percept.schemas.tagger import TaggerDocument, TaggerRequest, TaggerResponse
from percept.tagger import aggregate
from percept.tagger.media import (
    NOT_SUITABLE,
    DocumentRejected,
    Frame,
    Media,
    decode_base64,
    decode_image,
    decode_video,
    media_kind,
    normalise_type,
)
from percept.tagger.settings import TaggerSettings
from percept.tagger.usage import recent_usage as replica_usage

logger = logging.getLogger(__name__)
# Labels asked of the classifier per video frame, so labels outside one frame's top
# num_labels still count towards the video's mean.
VIDEO_FRAME_TOP_K = 25
TAGGING_FAILED = "Tagging failed (internal error)"
# Serve's back-pressure / replica-gone errors: the whole request is answered 503, not each document.
NO_DETECTOR = "unavailable: object detection is not running in this application"
SERVE_UNAVAILABLE = frozenset({"BackPressureError", "DeploymentUnavailableError", "ActorUnavailableError"})


class TaggerModels(Protocol):
    """The model calls the pipeline makes (deployment handles or fakes)."""

    async def classify(self, image: Any, top_k: int) -> list[tuple[str, float]]: ...
    async def tag(self, data: bytes, kind: str, num_labels: int) -> dict[str, Any]: ...
    async def count(self, data: bytes, kind: str, threshold: float) -> dict[str, Any]: ...
    async def detect(self, images: list[Any], threshold: float) -> list[list[aggregate.Detection]]: ...
    async def detector_unavailable(self) -> str | None: ...
    async def usage(self, detector: bool) -> dict[str, float]: ...


class HandleModels:
    """:class:`TaggerModels` over the tagger's deployment handles (or ``LocalHandle``)."""

    def __init__(self, handles: TaggerHandles) -> None:
        self.classifier = handles.tagger_classifier
        self.detector = handles.tagger_detector

    async def classify(self, image: Any, top_k: int) -> list[tuple[str, float]]:
        return await self.classifier.classify.remote(image, top_k)  # type: ignore[no-any-return]

    async def tag(self, data: bytes, kind: str, num_labels: int) -> dict[str, Any]:
        """Decode and label one document on the classifier replica (see :class:`MediaLabeller`)."""
        return await self.classifier.tag.remote(data, kind, num_labels)  # type: ignore[no-any-return]

    async def count(self, data: bytes, kind: str, threshold: float) -> dict[str, Any]:
        """Decode one document on the detector replica and count its objects (:class:`MediaCounter`)."""
        if not is_running(self.detector):
            raise ServiceUnavailable(NO_DETECTOR)
        return await self.detector.count.remote(data, kind, threshold)  # type: ignore[no-any-return]

    async def detect(self, images: list[Any], threshold: float) -> list[list[aggregate.Detection]]:
        if not is_running(self.detector):
            raise ServiceUnavailable(NO_DETECTOR)
        return await self.detector.detect.remote(images, threshold)  # type: ignore[no-any-return]

    async def detector_unavailable(self) -> str | None:
        if not is_running(self.detector):
            return NO_DETECTOR
        return await self.detector.unavailable_reason.remote()  # type: ignore[no-any-return]

    async def usage(self, detector: bool) -> dict[str, float]:
        """Memory of the model replicas; asked at most every ``USAGE_TTL_S`` per handle."""
        key = (id(self.classifier), id(self.detector) if detector else 0)
        cached = _USAGE_CACHE.get(key)
        if cached is not None and time.monotonic() - cached[0] < USAGE_TTL_S:
            return dict(cached[1])
        calls = [self.classifier.usage.remote()]
        if detector and is_running(self.detector):
            calls.append(self.detector.usage.remote())
        results = await asyncio.gather(*calls, return_exceptions=True)
        total = {"ram_gib": 0.0, "gpu_gib": 0.0}
        for result in results:
            if isinstance(result, dict):
                for k in total:
                    total[k] += float(result.get(k, 0.0))
        _USAGE_CACHE[key] = (time.monotonic(), total)
        return total


# Memory figures are informative: one look every few seconds per replica set is enough.
USAGE_TTL_S = 5.0
_USAGE_CACHE: dict[tuple[int, int], tuple[float, dict[str, float]]] = {}


@dataclass
class Outcome:
    """One document's result: its ``data`` entry, or the reason it was not treated."""

    doc_id: str
    entry: dict[str, Any] | None = None
    reason: str | None = None


def read_document(doc: TaggerDocument, settings: TaggerSettings) -> tuple[bytes, str]:
    """The document's bytes and kind (``image`` | ``video``); :class:`DocumentRejected` otherwise."""
    content = doc.source.content
    if not isinstance(content, str) or not content.strip():  # nothing to tag, whatever its type
        raise DocumentRejected(NOT_SUITABLE, "no content")
    kind = media_kind(normalise_type(doc.source.file_type, doc.source.file_name))
    return decode_base64(content, int(settings.max_document_mb * 2**20)), kind


def decode_media(data: bytes, kind: str, settings: TaggerSettings) -> Media:
    """Decode an image or sample a video (blocking: run it in a thread)."""
    if kind == "image":
        return Media("image", [Frame(decode_image(data))])
    return decode_video(
        data,
        max_frames=settings.video_frames,
        probe_fps=settings.video_probe_fps,
        max_probes=settings.video_max_probe_frames,
        scene_threshold=settings.scene_threshold,
        keyframes_after_s=settings.video_keyframes_after_s,
    )


def load_media(doc: TaggerDocument, settings: TaggerSettings) -> Media:
    """Read and decode one document (blocking: run it in a thread)."""
    return decode_media(*read_document(doc, settings), settings)


# Base64 text longer than this is decoded in a thread rather than on the event loop.
INLINE_BASE64_CHARS = 256 * 1024
# An image of at most this many bytes and pixels is decoded on the event loop (about a
# millisecond for a 224 x 224 JPEG: less than the thread hop it saves); others and videos in a
# thread. The pixel bound matters where the loop is the ingress's (classifier_in_ingress): a
# 100 KB PNG can hold 6000 x 6000 flat pixels and take a second to decode.
INLINE_DECODE_BYTES = 128 * 1024
INLINE_DECODE_PIXELS = 512 * 512


def _small_image(data: bytes) -> bool:
    if len(data) > INLINE_DECODE_BYTES:
        return False
    try:
        with Image.open(io.BytesIO(data)) as header:  # reads the header only
            width, height = header.size
    except Exception:  # noqa: BLE001 - not an image Pillow knows: the thread's decode says why
        return False
    return width * height <= INLINE_DECODE_PIXELS


async def decode_off_loop(data: bytes, kind: str, settings: TaggerSettings) -> Media:
    """:func:`decode_media`, in a thread unless it is a small image."""
    if kind == "image" and _small_image(data):
        return decode_media(data, kind, settings)
    return await asyncio.to_thread(decode_media, data, kind, settings)

Classify = Callable[[Any, int], Awaitable[list[tuple[str, float]]]]


async def label_media(media: Media, num_labels: int, classify: Classify,
                      min_probability: float) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The ``content`` of a decoded document (and, for a video, its duration and frame times)."""
    if media.kind == "image":
        labels = await classify(media.frames[0].image, num_labels)
        return aggregate.label_content(labels, num_labels), {}
    k = max(num_labels, VIDEO_FRAME_TOP_K)
    per_frame = await asyncio.gather(*(classify(f.image, k) for f in media.frames))
    content = aggregate.video_label_content(per_frame, [f.timestamp for f in media.frames], num_labels,
                                            min_probability)
    return content, {"duration": round(media.duration, 3),
                     "frames_analysed": [round(f.timestamp, 3) for f in media.frames]}


class MediaLabeller:
    """Decode and label documents where the classifier runs (the classifier replica).

    ``tag`` returns ``{"content", "extra", "usage"}``, or ``{"rejected", "detail"}`` for a
    document that cannot be tagged (a value, not an exception: nothing to unwrap).
    """

    def __init__(self, settings: TaggerSettings, classify: Classify,
                 usage: Callable[[], dict[str, float]] | None = replica_usage) -> None:
        self.settings = settings
        self.classify = classify
        self.usage = usage  # this process's memory figures (None: not the classifier's process)

    async def tag(self, data: bytes, kind: str, num_labels: int) -> dict[str, Any]:
        try:
            media = await decode_off_loop(data, kind, self.settings)
        except DocumentRejected as exc:
            return {"rejected": exc.reason, "detail": exc.detail}
        content, extra = await label_media(media, num_labels, self.classify, self.settings.label_min_probability)
        result = {"content": content, "extra": {"media_type": media.kind, **extra}}
        if self.usage is not None:
            result["usage"] = self.usage()
        return result


def echo_entry(doc: TaggerDocument, content: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """The document as sent, with ``source.content`` replaced by the result."""
    entry = doc.model_dump(exclude_none=False)
    source = {**entry.get("source", {}), "content": content, **extra}
    entry["source"] = {k: v for k, v in source.items() if v is not None or k == "content"}
    if entry.get("index") is None:
        entry.pop("index", None)
    return entry


Detect = Callable[[list[Any], float], Awaitable[list[list[aggregate.Detection]]]]


async def count_media(media: Media, threshold: float, detect: Detect) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Object counts of a decoded document, with the detections (per frame for a video)."""
    found = await detect([f.image for f in media.frames], threshold)
    if media.kind == "image":
        return aggregate.count_content(aggregate.count_objects(found[0])), {
            "media_type": "image", "detections": found[0]}
    detections = [{"timestamp": round(f.timestamp, 3), "detections": d}
                  for f, d in zip(media.frames, found, strict=True)]
    return aggregate.count_content(aggregate.video_counts(found)), {
        "media_type": "video", "duration": round(media.duration, 3), "detections": detections}


class MediaCounter:
    """Decode documents and count their objects where the detector runs (its replica).

    ``count`` returns ``{"content", "extra"}`` or ``{"rejected", "detail"}``, as
    :meth:`MediaLabeller.tag` does.
    """

    def __init__(self, settings: TaggerSettings, detect: Detect) -> None:
        self.settings = settings
        self.detect = detect

    async def count(self, data: bytes, kind: str, threshold: float) -> dict[str, Any]:
        try:
            media = await decode_off_loop(data, kind, self.settings)
        except DocumentRejected as exc:
            return {"rejected": exc.reason, "detail": exc.detail}
        content, extra = await count_media(media, threshold, self.detect)
        return {"content": content, "extra": extra}


class TaggerPipeline:
    """Runs one ``/process`` request over the models."""

    def __init__(self, models: TaggerModels, settings: TaggerSettings) -> None:
        self.models = models
        self.settings = settings
        self.usage: dict[str, float] | None = None  # the classifier's figures, when a document brought them

    async def _read(self, doc: TaggerDocument) -> tuple[bytes, str]:
        content = doc.source.content
        if isinstance(content, str) and len(content) > INLINE_BASE64_CHARS:
            return await asyncio.to_thread(read_document, doc, self.settings)
        return read_document(doc, self.settings)

    async def _labels(self, doc: TaggerDocument, num_labels: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        data, kind = await self._read(doc)
        try:
            result = await self.models.tag(data, kind, num_labels)
        except AttributeError:  # a classifier without ``tag``: decode here, classify there
            labeller = MediaLabeller(self.settings, self.models.classify, usage=None)
            result = await labeller.tag(data, kind, num_labels)
        if isinstance(result.get("usage"), dict):
            self.usage = result["usage"]
        return self._result(result)

    @staticmethod
    def _result(result: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        if result.get("rejected"):
            raise DocumentRejected(str(result["rejected"]), str(result.get("detail", "")))
        return list(result["content"]), dict(result.get("extra") or {})

    async def _counts(self, doc: TaggerDocument, threshold: float) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        data, kind = await self._read(doc)
        try:
            result = await self.models.count(data, kind, threshold)
        except AttributeError:  # a detector without ``count``: decode here, detect there
            result = await MediaCounter(self.settings, self.models.detect).count(data, kind, threshold)
        return self._result(result)

    async def _one(self, doc: TaggerDocument, request: TaggerRequest, threshold: float) -> Outcome:
        try:
            if request.wants_counts:
                content, extra = await self._counts(doc, threshold)
            else:
                content, extra = await self._labels(doc, request.num_labels)
        except DocumentRejected as exc:
            logger.info("document %s not treated: %s", doc.id, exc.detail)
            return Outcome(doc.id, reason=exc.reason)
        except Exception as exc:
            cause = unwrap_remote_error(exc)
            if isinstance(cause, ServiceError):
                raise cause from None
            if type(cause).__name__ in SERVE_UNAVAILABLE:  # by name: this module stays Ray-free
                raise ServiceUnavailable("unavailable: the tagger models are overloaded or restarting, "
                                         "retry later", headers={"Retry-After": "1"}) from None
            logger.exception("document %s failed", doc.id)
            return Outcome(doc.id, reason=TAGGING_FAILED)
        return Outcome(doc.id, entry=echo_entry(doc, content, **extra))

    async def run(self, request: TaggerRequest) -> TaggerResponse:
        """Tag every document; per-document failures are listed, not raised."""
        threshold = (request.detection_threshold if request.detection_threshold is not None
                     else self.settings.detection_threshold)
        if request.wants_counts:
            reason = await self.models.detector_unavailable()
            if reason:
                raise ServiceUnavailable(f"object detection unavailable ({reason}); labels still work without "
                                         f"the \"<OD>\" prompt")
        outcomes = await asyncio.gather(*(self._one(d, request, threshold) for d in request.documents))
        try:
            usage = (self.usage if self.usage is not None and not request.wants_counts
                     else await self.models.usage(request.wants_counts))
        except Exception:  # memory figures are informative only
            logger.warning("memory usage not available", exc_info=True)
            usage = {"ram_gib": 0.0, "gpu_gib": 0.0}
        response = TaggerResponse(
            data=[o.entry for o in outcomes if o.entry is not None],
            list_id_not_treated=[{o.doc_id: o.reason} for o in outcomes if o.reason is not None],
            memory_used=f"{usage.get('gpu_gib', 0.0):.2f}",
            ram_used=f"{usage.get('ram_gib', 0.0):.2f}",
        )
        response.number_documents_treated = len(response.data)
        response.number_documents_non_treated = len(response.list_id_not_treated)
        return response
