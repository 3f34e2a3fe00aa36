"""The inspection service's deployments: a trainer, a multiplexed predictor and the backbone.

* ``inspection_trainer`` (``InspectionTrainer``): fits a model from good images (a task
  awaits it) and stores it in the blob store.
* ``inspection_predictor`` (``InspectionPredictor``): loads each tenant's models on demand
  with Serve model multiplexing (the model id is the model's blob key), so many clients
  share a few replicas; scores images and writes their anomaly maps. A model is small
  (PatchCore's memory bank, ~2 MB): the network is not part of it.
* ``inspection_backbone`` (``InspectionBackbone``): the one copy of PatchCore's feature
  network (EfficientNet-Lite0 or a TorchScript backbone from the models directory), on a
  fractional GPU share where there is one; single-image calls from concurrent predictions
  are batched (``@serve.batch``, knobs in serve_config.yaml's ``user_config``). Trainer
  and predictor call it through :class:`HandleBackbone`.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import numpy as np
from ray import serve

from deployments.base import Batching, ModelDeployment, bind_group
from percept.config import AppArgs
from percept.handles import Handle, InspectionHandles
from percept.inspection.engine import TrainedModel
from percept.inspection.patchcore import FeatureBackbone, feature_maps_grouped, load_backbone
from percept.inspection.worker import InspectionWorker
from percept.registry import INSPECTION
from percept.storage.blobs import BlobStore
from percept.tasks import ProgressReporter

MAX_MODELS_PER_REPLICA = 8


def _replica_loop() -> asyncio.AbstractEventLoop:
    """The loop the replica's methods run on (its constructor runs there too)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # constructed outside a loop (a test): the thread's own loop
        return asyncio.get_event_loop_policy().get_event_loop()


class HandleBackbone:
    """:class:`FeatureBackbone` over the backbone deployment (called from worker threads).

    One image goes through the batched method, so concurrent predictions share a forward
    pass; a training set goes in one call. The worker runs in a thread (``asyncio.to_thread``),
    and a handle whose router lives on the replica's own loop (serve_config.yaml sets
    ``RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP=0``) cannot be called from there with
    ``.result()``: each call is sent from the replica's event loop instead.
    """

    def __init__(self, handle: Handle, name: str, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.handle = handle
        self.name = name
        self.loop = loop

    def _call(self, method: str, *args: Any) -> Any:
        async def send() -> Any:
            return await getattr(self.handle, method).remote(*args)

        if self.loop is None:
            raise RuntimeError("HandleBackbone needs the replica's event loop")
        return asyncio.run_coroutine_threadsafe(send(), self.loop).result()

    def feature_maps(self, images: list[np.ndarray], blocks: tuple[int, ...], size: tuple[int, int]) -> list[np.ndarray]:
        if len(images) == 1:
            return list(self._call("feature_maps_single", (images[0], tuple(blocks), tuple(size))))
        return list(self._call("feature_maps", images, tuple(blocks), tuple(size)))


def _worker(args: AppArgs, backbone: Handle, loop: asyncio.AbstractEventLoop) -> InspectionWorker:
    assert args.blob_url is not None
    settings = INSPECTION.load_settings(args)
    return InspectionWorker(BlobStore(args.blob_url), settings.work_size,
                            backbone=lambda: HandleBackbone(backbone, settings.backbone, loop),
                            batch_size=settings.predict_batch)


@serve.deployment(name="InspectionBackbone")
class InspectionBackbone(Batching, ModelDeployment[FeatureBackbone]):
    """PatchCore's feature network: whole batches (training) or batched single images."""

    model_label = "inspection backbone"
    batched_methods: ClassVar[tuple[str, ...]] = ("feature_maps_single",)

    def __init__(self, args: AppArgs) -> None:
        super().__init__(args)
        name = INSPECTION.load_settings(args).backbone
        self.load(lambda: load_backbone(name, self.models_path, "auto"))

    async def feature_maps(self, images: list[np.ndarray], blocks: tuple[int, ...], size: tuple[int, int]) -> list[np.ndarray]:
        return await asyncio.to_thread(self.require().feature_maps, images, blocks, size)

    @serve.batch
    async def feature_maps_single(self, requests: list[tuple[np.ndarray, tuple[int, ...], tuple[int, int]]]) -> list[list[np.ndarray]]:
        """``(image, blocks, size)`` per call; calls asking the same blocks and size share a pass."""
        return await asyncio.to_thread(feature_maps_grouped, self.require(), requests)


@serve.deployment(name="InspectionTrainer")
class InspectionTrainer(ModelDeployment[InspectionWorker]):
    """Trains models; one request at a time per replica (training is CPU-bound)."""

    model_label = "inspection trainer"

    def __init__(self, args: AppArgs, backbone: Handle) -> None:
        super().__init__(args)
        loop = _replica_loop()
        self.load(lambda: _worker(args, backbone, loop))

    async def train(
        self, owner: str, model_id: int, algorithm_id: str, params: dict[str, Any],
        image_keys: list[str], reporter: ProgressReporter, defect_keys: list[str] | None = None,
    ) -> dict[str, Any]:
        worker = self.require()
        return await asyncio.to_thread(worker.train, owner, model_id, algorithm_id, params, image_keys, reporter,
                                       defect_keys)


@serve.deployment(name="InspectionPredictor")
class InspectionPredictor(ModelDeployment[InspectionWorker]):
    """Scores images with a tenant's model, loaded through Serve's model multiplexing."""

    model_label = "inspection predictor"

    def __init__(self, args: AppArgs, backbone: Handle) -> None:
        super().__init__(args)
        loop = _replica_loop()
        self.load(lambda: _worker(args, backbone, loop))

    @serve.multiplexed(max_num_models_per_replica=MAX_MODELS_PER_REPLICA)
    async def get_model(self, model_key: str) -> TrainedModel:
        return await asyncio.to_thread(self.require().load_model, model_key)

    async def predict(self, model_key: str, key_prefix: str, images: list[dict[str, Any]]) -> list[dict[str, Any]]:
        model = await self.get_model(serve.get_multiplexed_model_id() or model_key)
        return await asyncio.to_thread(self.require().predict_with, model, key_prefix, images)


def bind(args: AppArgs, gpu: bool) -> InspectionHandles:
    """The backbone, the trainer and the multiplexed predictor that call it (resources
    from serve_config.yaml)."""
    return bind_group(InspectionHandles, args, gpu, inspection_backbone=InspectionBackbone,
                      inspection_trainer=(InspectionTrainer, lambda group: (group.inspection_backbone,)),
                      inspection_predictor=(InspectionPredictor, lambda group: (group.inspection_backbone,)))
