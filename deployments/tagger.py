"""The tagger's model deployments: the classifier (batched) and the object detector.

``tagger_classifier`` wraps the offline EfficientNet-Lite0 (or a transformers classifier
named in ``service_config.tagger.classifier``); every frame is one ``classify`` call and
``@serve.batch`` groups the frames of one request and of concurrent requests. Knobs in
``user_config``: ``max_batch_size``, ``batch_wait_timeout_s``, ``batching`` (false: one
forward pass per call). Opt-in (``PERCEPT_CLASSIFIER_WIDE_THREADS=auto`` or a count, in the
replica's environment): on the CPU a pass started while no other request is in flight takes
more threads while that measures faster than one (``percept.tagger.threads.PassThreads``;
off by default, docs/performance.md finding 34). ``tagger_detector`` batches images the same way (grouped by
threshold and image size inside a batch) and loads a transformers COCO detector from the
models directory; without it the replica stays healthy and reports detection unavailable,
and it looks for the weights again (at most every few seconds) when asked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from ray import serve

from deployments.base import Batching, InIngress, ModelDeployment, bind_group
from percept.config import AppArgs
from percept.handles import TaggerHandles
from percept.registry import TAGGER
from percept.tagger.aggregate import Detection
from percept.tagger.classifier import load_classifier, top_k
from percept.tagger.detector import load_detector
from percept.tagger.process import MediaCounter, MediaLabeller
from percept.tagger.threads import PassThreads, apply_threads, run_with_threads, threads_for, wide_threads
from percept.tagger.usage import usage

logger = logging.getLogger(__name__)
RETRY_LOAD_S = 5.0
MAX_PARALLEL = 8
EAGER_MAX_PASSES = 2  # concurrent_batches of a classifier running the eager model (see concurrent_cap)


def in_replica() -> bool:
    """Inside a Serve replica (thread settings belong to the replica, not to a test process)."""
    try:
        serve.get_replica_context()
    except Exception:
        return False
    return True


def replica_cpus() -> float:
    """The CPU share Ray gave this replica (``num_cpus`` of its deployment in serve_config.yaml)."""
    import ray

    return float(ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0))


class TaggerClassifier(Batching, ModelDeployment[Any]):
    """Ray-free-testable classifier wrapper: batched ``classify(image, top_k)``."""

    model_label = "tagger classifier"
    batched_methods = ("_predict_batched",)

    def __init__(self, args: AppArgs, core_factory: Callable[[], Any] | None = None) -> None:
        super().__init__(args)
        settings = TAGGER.load_settings(args)
        self.batches = 0
        self.largest_batch = 0
        self.threads: dict[str, int] = {}
        self.pass_threads: PassThreads | None = None  # per-pass width on the CPU (batches_configured)
        self._documents = 0  # tag() calls under way (decoding, or waiting for their passes)
        self._passes = 0  # forward passes under way (or waiting for a thread)
        self._entered = 0  # tag() and classify() calls begun so far: a pass ran alone if none began meanwhile
        # Passes may overlap (up to MAX_PARALLEL); user_config's concurrent_batches says how many do.
        self.load(core_factory or (lambda: load_classifier(settings, self.models_path, parallel=MAX_PARALLEL)))
        self.labeller = MediaLabeller(settings, self.classify)

    def concurrent_cap(self) -> int | None:
        """Eager PyTorch takes the GIL back for every operator: more than EAGER_MAX_PASSES eager
        passes at once only queue on it (unmeasured; the frozen graph releases it for the pass)."""
        return EAGER_MAX_PASSES if getattr(self.core, "graph", None) == "eager" else None

    def batches_configured(self, knobs: Any) -> None:
        """Thread pools sized from the replica's CPU share, split over the concurrent passes; on
        the CPU a pass that runs alone may take every core (:class:`PassThreads`)."""
        if in_replica():  # a test process keeps its own settings
            narrow = threads_for(replica_cpus(), self.concurrent_batches)
            self.threads = apply_threads(narrow)
            self.use_pass_threads(narrow, wide_threads(narrow))

    def use_pass_threads(self, narrow: int, wide: int) -> None:
        """Choose each CPU pass's threads from the passes in flight (off on other devices, or
        when ``wide`` is not above ``narrow``)."""
        chooser = PassThreads(narrow, wide)
        self.pass_threads = chooser if chooser.enabled and self.batch_device() == "cpu" else None

    async def _predict(self, core: Any, images: list[np.ndarray]) -> np.ndarray:
        """``core.predict(images)`` in a thread, on the width :class:`PassThreads` picks."""
        chooser = self.pass_threads
        if chooser is None:
            return await asyncio.to_thread(core.predict, images)
        self._passes += 1
        crowd = max(self._passes, self._documents)
        entered = self._entered
        threads = chooser.pick(crowd)
        started = time.perf_counter()
        # the pass counts as under way until its thread returns, even if the request that started
        # it is cancelled meanwhile (shield: the pass runs on; a later pass is not judged alone)
        work = asyncio.ensure_future(asyncio.to_thread(run_with_threads, threads, core.predict, images))
        work.add_done_callback(self._pass_done)
        probs = await asyncio.shield(work)
        if crowd <= 1 and self._entered == entered:  # alone from start to end
            chooser.record(threads, time.perf_counter() - started)
        return probs

    def _pass_done(self, work: asyncio.Future[Any]) -> None:
        """A pass's thread returned (on the event loop)."""
        self._passes -= 1
        if not work.cancelled():
            work.exception()  # retrieved: a cancelled request's failed pass is not logged as never retrieved

    @serve.batch
    async def _predict_batched(self, images: list[np.ndarray]) -> list[np.ndarray]:
        core = self.require()
        self.batches += 1
        self.largest_batch = max(self.largest_batch, len(images))
        probs = await self._predict(core, images)
        return list(probs)

    async def classify(self, image: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The ``k`` most probable labels of one RGB image."""
        core = self.require()
        self._entered += 1
        if self.batching:
            probs = await self._predict_batched(image)
        else:
            probs = (await self._predict(core, [image]))[0]
        return top_k(probs, core.labels, k)

    async def tag(self, data: bytes, kind: str, num_labels: int) -> dict[str, Any]:
        """Decode one document here and label it: its frames go through the batch queue."""
        self._documents += 1
        self._entered += 1
        try:
            return await self.labeller.tag(data, kind, num_labels)
        finally:
            self._documents -= 1

    def usage(self) -> dict[str, float]:
        """RAM and GPU memory of this replica (GiB)."""
        return usage()

    def status(self) -> dict[str, Any]:
        """Availability plus batching figures (batches run, largest batch seen, threads)."""
        return {**super().status(), "batching": self.batching, "batches": self.batches,
                "largest_batch": self.largest_batch, "concurrent_batches": self.concurrent_batches,
                "threads": self.threads, "graph": getattr(self.core, "graph", None),
                "pass_threads": self.pass_threads.state() if self.pass_threads is not None else None}


class TaggerDetector(Batching, ModelDeployment[Any]):
    """Object detector wrapper: ``detect(images, threshold)`` boxes per image."""

    model_label = "tagger object detector"
    batched_methods = ("_detect_batched",)

    def __init__(self, args: AppArgs, core_factory: Callable[[], Any] | None = None) -> None:
        super().__init__(args)
        settings = TAGGER.load_settings(args)
        self._factory = core_factory or (lambda: load_detector(settings, self.models_path))
        self._tried = 0.0
        self.counter = MediaCounter(settings, self.detect)
        self._try_load()

    def _try_load(self) -> None:
        self._tried = time.monotonic()
        try:
            self.load(self._factory)
        except Exception as exc:  # a broken weights folder must not crash the replica
            logger.exception("tagger detector failed to load")
            self.core, self.unavailable = None, f"unavailable: object detector failed to load: {exc}"

    def _retry(self) -> None:
        if self.core is None and time.monotonic() - self._tried >= RETRY_LOAD_S:
            self._try_load()

    async def unavailable_reason(self) -> str | None:
        """None when detection works, else why not (looks for new weights first)."""
        await asyncio.to_thread(self._retry)
        return None if self.core is not None else (self.unavailable or "unavailable: object detector")

    async def detect(self, images: list[np.ndarray], threshold: float) -> list[list[Detection]]:
        """Detections (``label``, ``score``, ``box``) per image above ``threshold``."""
        await asyncio.to_thread(self._retry)
        core = self.require()
        if self.batching:
            return list(await asyncio.gather(*(self._detect_batched((image, threshold)) for image in images)))
        return await asyncio.to_thread(core.detect, images, threshold)  # type: ignore[no-any-return]

    async def count(self, data: bytes, kind: str, threshold: float) -> dict[str, Any]:
        """Decode one document here and count its objects (frames through the batch queue)."""
        await asyncio.to_thread(self._retry)
        self.require()
        return await self.counter.count(data, kind, threshold)

    @serve.batch
    async def _detect_batched(self, items: list[tuple[np.ndarray, float]]) -> list[list[Detection]]:
        core = self.require()
        out: list[list[Detection]] = [[] for _ in items]
        # One forward pass per (threshold, image size): padding images of different sizes
        # into one batch would shift DETR-style boxes.
        groups: dict[tuple[float, tuple[int, ...]], list[int]] = {}
        for i, (image, threshold) in enumerate(items):
            groups.setdefault((threshold, tuple(image.shape)), []).append(i)
        for (threshold, _), members in groups.items():
            found = await asyncio.to_thread(core.detect, [items[i][0] for i in members], threshold)
            for i, detections in zip(members, found, strict=True):
                out[i] = detections
        return out

    def usage(self) -> dict[str, float]:
        """RAM and GPU memory of this replica (GiB)."""
        return usage()


TaggerClassifierDeployment = serve.deployment(name="TaggerClassifier")(TaggerClassifier)
TaggerDetectorDeployment = serve.deployment(name="TaggerDetector")(TaggerDetector)


def classifier_in_ingress(args: AppArgs, gpu: bool) -> bool:
    """Whether the ingress replica runs the classifier itself (``classifier_in_ingress``).

    On the CPU the hops cost as much as EfficientNet-Lite0 (docs/performance.md): the proxy
    -> ingress -> classifier path spent 65-90 core-ms per image against 35-41 in one process.
    Run in the ingress, an image skips one hop and its serialisation, and the app keeps one
    replica less up; batching works the same (the ingress's event loop gathers the batch).
    On GPUs the classifier keeps its own replicas (its GPU share, its own scaling).
    """
    if args.classifier_in_ingress == "auto":
        return not gpu
    return args.classifier_in_ingress == "always"


def bind(args: AppArgs, gpu: bool) -> TaggerHandles:
    """The classifier and the detector (resources and batch knobs from serve_config.yaml)."""
    classifier: Any = (InIngress(TaggerClassifier, "tagger_classifier") if classifier_in_ingress(args, gpu)
                       else TaggerClassifierDeployment)
    return bind_group(TaggerHandles, args, gpu,
                      tagger_classifier=classifier, tagger_detector=TaggerDetectorDeployment)
