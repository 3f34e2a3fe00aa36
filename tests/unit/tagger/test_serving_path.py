"""The serving path's cheap parts: bytes (not pixels) go to the classifier, which decodes
and labels there; its memory figures come back with the labels; usage is cached."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from percept.api.app import create_app
from percept.handles import TaggerHandles
from percept.tagger import process
from percept.tagger.media import NOT_SUITABLE
from percept.tagger.process import HandleModels, MediaLabeller
from percept.tagger.settings import TaggerSettings
from percept.testing import LocalHandle, make_services
from tests.synthetic.tagger import document, encode_image, make_video

from .conftest import FakeClassifier, solid


class ReplicaSideClassifier(FakeClassifier):
    """A classifier replica with ``tag``: decodes what it is sent and labels it locally."""

    def __init__(self) -> None:
        super().__init__()
        self.tagged: list[tuple[type, str]] = []
        self.usage_calls = 0

    async def tag(self, data: bytes, kind: str, num_labels: int) -> dict[str, Any]:
        self.tagged.append((type(data), kind))

        async def classify(image: np.ndarray, k: int) -> list[tuple[str, float]]:
            return self.classify(image, k)

        return await MediaLabeller(TaggerSettings(video_frames=3), classify,
                                   usage=lambda: {"ram_gib": 1.25, "gpu_gib": 0.5}).tag(data, kind, num_labels)

    def usage(self) -> dict[str, float]:
        self.usage_calls += 1
        return super().usage()


def client_with(tmp_path: Path, classifier: Any) -> TestClient:
    services = make_services(tmp_path, TaggerHandles(tagger_classifier=LocalHandle(classifier)), services=["tagger"])
    return TestClient(create_app(services))


def test_documents_travel_as_bytes_and_usage_rides_along(tmp_path: Path) -> None:
    classifier = ReplicaSideClassifier()
    client = client_with(tmp_path, classifier)
    blue = encode_image(solid((10, 10, 230)), "JPEG")
    video = make_video([((230, 10, 10), 1.0), ((10, 10, 230), 1.0)], fps=8)
    docs = [document(blue, "jpg", "img"), document(video, "mp4", "vid"),
            document(b"not a picture", "png", "bad")]
    body = client.post("/process", json={"documents": docs, "num_labels": 2}).json()
    assert body["number_documents_treated"] == 2
    assert body["list_id_not_treated"] == [{"bad": NOT_SUITABLE}]  # rejected on the replica, a value back
    image, clip = body["data"]
    assert image["source"]["content"][0]["label"] == "lakeside" and image["source"]["media_type"] == "image"
    assert clip["source"]["media_type"] == "video" and len(clip["source"]["frames_analysed"]) == 3
    assert {c["label"] for c in clip["source"]["content"]} == {"fire engine", "lakeside"}
    assert sorted(classifier.tagged) == [(bytes, "image"), (bytes, "image"), (bytes, "video")]
    # The replica's figures came with the labels: no usage() round trip.
    assert (body["ram_used"], body["memory_used"]) == ("1.25", "0.50") and classifier.usage_calls == 0


def test_usage_hop_is_cached(monkeypatch: Any) -> None:
    classifier = ReplicaSideClassifier()
    models = HandleModels(TaggerHandles(tagger_classifier=LocalHandle(classifier)))
    process._USAGE_CACHE.clear()
    first = asyncio.run(models.usage(False))
    assert asyncio.run(models.usage(False)) == first and classifier.usage_calls == 1
    monkeypatch.setattr(process, "USAGE_TTL_S", 0.0)
    asyncio.run(models.usage(False))
    assert classifier.usage_calls == 2


def test_threads_follow_the_cpu_share() -> None:
    from percept.tagger.threads import threads_for

    assert threads_for(0.1, cores=2) == 1  # a fractional share never gets a pool wider than one
    assert threads_for(4, cores=16) == 4 and threads_for(4, parallel=2, cores=16) == 2
    assert threads_for(8, cores=2) == 2  # never more than the cores there are
    assert threads_for(None, parallel=3, cores=2) == 1


def test_object_counts_decode_on_the_detector(tmp_path: Path) -> None:
    from percept.tagger.process import MediaCounter

    from .conftest import FakeDetector

    class ReplicaSideDetector(FakeDetector):
        def __init__(self) -> None:
            super().__init__()
            self.counted: list[tuple[type, str]] = []

        async def count(self, data: bytes, kind: str, threshold: float) -> dict[str, Any]:
            self.counted.append((type(data), kind))

            async def detect(images: list[np.ndarray], t: float) -> list[list[Any]]:
                return self.detect(images, t)

            return await MediaCounter(TaggerSettings(), detect).count(data, kind, threshold)

    detector = ReplicaSideDetector()
    handles = TaggerHandles(tagger_classifier=LocalHandle(FakeClassifier()), tagger_detector=LocalHandle(detector))
    client = TestClient(create_app(make_services(tmp_path, handles, services=["tagger"])))
    docs = [document(encode_image(solid((200, 10, 10))), "png", "red"), document(b"junk", "png", "bad")]
    body = client.post("/process", json={"documents": docs, "prompt": "<OD>"}).json()
    assert body["data"][0]["source"]["content"] == [{"car": 5}, {"person": 2}]
    assert body["list_id_not_treated"] == [{"bad": NOT_SUITABLE}]
    assert detector.counted == [(bytes, "image"), (bytes, "image")]


def test_batch_knobs_through_serves_public_api(monkeypatch: Any) -> None:
    """user_config sizes batches and runs up to ``concurrent_batches`` of them at once, through
    ``set_max_batch_size`` / ``set_batch_wait_timeout_s`` and ``@serve.batch(max_concurrent_batches=)``."""
    from ray import serve
    from ray.serve import batching

    from deployments.base import Batching

    # The queue's only replica-bound call: a warning about max_ongoing_requests.
    monkeypatch.setattr(batching._BatchQueue, "_warn_if_max_batch_size_exceeds_max_ongoing_requests",
                        lambda self: None)

    class Doubler(Batching):
        batched_methods = ("_double",)

        def __init__(self) -> None:
            self.sizes: list[int] = []
            self.running = self.most_running = 0

        @serve.batch
        async def _double(self, xs: list[int]) -> list[int]:
            self.sizes.append(len(xs))
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            await asyncio.sleep(0.05)
            self.running -= 1
            return [2 * x for x in xs]

    doubler = Doubler()
    doubler.reconfigure({"max_batch_size": 3, "batch_wait_timeout_s": 0.02, "concurrent_batches": 2})

    async def calls() -> list[int]:
        return list(await asyncio.gather(*(doubler._double(i) for i in range(7))))

    assert asyncio.run(calls()) == [2 * i for i in range(7)]
    assert max(doubler.sizes) == 3 and sum(doubler.sizes) == 7
    assert doubler.most_running == 2  # two batches at once, never more
    assert Doubler._double is not doubler._double  # the class's decorator is left as it was


def test_a_small_file_with_many_pixels_is_decoded_off_the_event_loop(monkeypatch: Any) -> None:
    """Where the classifier shares the ingress's event loop, a decode on the loop stalls every
    request: small images are decoded inline, a small file holding many pixels in a thread."""
    import io
    import threading

    from PIL import Image

    def png(size: int) -> bytes:
        out = io.BytesIO()
        Image.new("RGB", (size, size), (200, 30, 30)).save(out, format="PNG")
        return out.getvalue()

    big_flat, small = png(6000), png(224)
    assert len(big_flat) <= process.INLINE_DECODE_BYTES  # the byte size says nothing of the pixels
    where: list[bool] = []

    def decode(data: bytes, kind: str, settings: TaggerSettings) -> str:
        where.append(threading.current_thread() is threading.main_thread())
        return "decoded"

    monkeypatch.setattr(process, "decode_media", decode)
    settings = TaggerSettings()
    for data in (small, big_flat, b"not an image"):
        assert asyncio.run(process.decode_off_loop(data, "image", settings)) == "decoded"
    assert where == [True, False, False]  # on the loop; in a thread; in a thread (the decode says why)


def test_the_replicas_memory_figures_are_read_at_most_once_a_second(monkeypatch: Any) -> None:
    from percept.tagger import usage

    reads: list[int] = []
    monkeypatch.setattr(usage, "usage", lambda: reads.append(1) or {"ram_gib": float(len(reads)), "gpu_gib": 0.0})
    monkeypatch.setattr(usage, "_recent", None)
    clock = [100.0]
    monkeypatch.setattr(usage.time, "monotonic", lambda: clock[0])
    assert usage.recent_usage()["ram_gib"] == 1.0
    clock[0] += 0.5
    assert usage.recent_usage()["ram_gib"] == 1.0 and len(reads) == 1
    clock[0] += 0.6
    assert usage.recent_usage()["ram_gib"] == 2.0 and len(reads) == 2
    assert process.MediaLabeller(process.TaggerSettings(), None).usage is usage.recent_usage  # type: ignore[arg-type]
