"""The tagger's model deployments: the classifier (batched) and the object detector.

``tagger_classifier`` wraps the offline EfficientNet-Lite0 (or a transformers classifier
named in ``service_config.tagger.classifier``); every frame is one ``classify`` call and
``@serve.batch`` groups the frames of one request and of concurrent requests. Knobs in
``user_config``: ``max_batch_size``, ``batch_wait_timeout_s``, ``batching`` (false: one
forward pass per call). ``tagger_detector`` batches images the same way (grouped by
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
from ray.serve import Application

from deployments.base import ModelDeployment, deployment_options
from percept.config import AppArgs
from percept.tagger.aggregate import Detection
from percept.tagger.classifier import load_classifier, top_k
from percept.tagger.detector import load_detector
from percept.tagger.settings import TaggerSettings
from percept.tagger.usage import usage

logger = logging.getLogger(__name__)
CLASSIFIER_KEY = "tagger_classifier"
DETECTOR_KEY = "tagger_detector"
DEFAULT_BATCH = {"max_batch_size": 16, "batch_wait_timeout_s": 0.01, "batching": True}
DEFAULT_DETECT_BATCH = {"max_batch_size": 8, "batch_wait_timeout_s": 0.01, "batching": True}
RETRY_LOAD_S = 5.0


class TaggerClassifier(ModelDeployment[Any]):
    """Ray-free-testable classifier wrapper: batched ``classify(image, top_k)``."""

    model_label = "tagger classifier"

    def __init__(self, args: AppArgs, core_factory: Callable[[], Any] | None = None) -> None:
        super().__init__(args)
        settings = TaggerSettings.from_section(args.service_section("tagger"))
        self.batching = True
        self.batches = 0
        self.largest_batch = 0
        self.load(core_factory or (lambda: load_classifier(settings, self.models_path)))

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Batch knobs from ``user_config`` (applied without restarting the replica)."""
        config = {**DEFAULT_BATCH, **(user_config or {})}
        self.batching = bool(config["batching"])
        self._predict_batched.set_max_batch_size(int(config["max_batch_size"]))
        self._predict_batched.set_batch_wait_timeout_s(float(config["batch_wait_timeout_s"]))
        logger.info("tagger classifier batching=%s %s", self.batching, config)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.01)
    async def _predict_batched(self, images: list[np.ndarray]) -> list[np.ndarray]:
        core = self.require()
        self.batches += 1
        self.largest_batch = max(self.largest_batch, len(images))
        probs = await asyncio.to_thread(core.predict, images)
        return list(probs)

    async def classify(self, image: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The ``k`` most probable labels of one RGB image."""
        core = self.require()
        if self.batching:
            probs = await self._predict_batched(image)
        else:
            probs = (await asyncio.to_thread(core.predict, [image]))[0]
        return top_k(probs, core.labels, k)

    def usage(self) -> dict[str, float]:
        """RAM and GPU memory of this replica (GiB)."""
        return usage()

    def status(self) -> dict[str, Any]:
        """Availability plus batching figures (batches run, largest batch seen)."""
        return {**super().status(), "batching": self.batching, "batches": self.batches,
                "largest_batch": self.largest_batch}


class TaggerDetector(ModelDeployment[Any]):
    """Object detector wrapper: ``detect(images, threshold)`` boxes per image."""

    model_label = "tagger object detector"

    def __init__(self, args: AppArgs, core_factory: Callable[[], Any] | None = None) -> None:
        super().__init__(args)
        settings = TaggerSettings.from_section(args.service_section("tagger"))
        self._factory = core_factory or (lambda: load_detector(settings, self.models_path))
        self._tried = 0.0
        self.batching = True
        self._try_load()

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Batch knobs from ``user_config``, as for the classifier."""
        config = {**DEFAULT_DETECT_BATCH, **(user_config or {})}
        self.batching = bool(config["batching"])
        self._detect_batched.set_max_batch_size(int(config["max_batch_size"]))
        self._detect_batched.set_batch_wait_timeout_s(float(config["batch_wait_timeout_s"]))

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

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
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


def bind(args: AppArgs, gpu: bool) -> dict[str, Application]:
    """The classifier and detector, keyed by the handle names the router uses."""
    classifier = TaggerClassifierDeployment.options(**deployment_options(
        args, CLASSIFIER_KEY, gpu, num_cpus=0.1, num_gpus=0.25, max_ongoing_requests=128,
        autoscaling_config={"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 32},
        user_config=dict(DEFAULT_BATCH),
    ))
    detector = TaggerDetectorDeployment.options(**deployment_options(
        args, DETECTOR_KEY, gpu, num_cpus=0.1, num_gpus=0.25, max_ongoing_requests=64,
        autoscaling_config={"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 16},
        user_config=dict(DEFAULT_DETECT_BATCH),
    ))
    return {CLASSIFIER_KEY: classifier.bind(args), DETECTOR_KEY: detector.bind(args)}
