"""The inspection service's deployments: a trainer and a multiplexed predictor.

* ``inspection_trainer`` (``InspectionTrainer``): fits a model from good images (a task
  awaits it) and stores it in the blob store.
* ``inspection_predictor`` (``InspectionPredictor``): loads each tenant's models on demand
  with Serve model multiplexing (the model id is the model's blob key), so many clients
  share a few replicas; scores images and writes their anomaly maps.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ray import serve

from deployments.base import ModelDeployment, bind_group
from percept.config import AppArgs
from percept.handles import InspectionHandles
from percept.inspection.engine import TrainedModel
from percept.inspection.worker import InspectionWorker
from percept.registry import INSPECTION
from percept.storage.blobs import BlobStore
from percept.tasks import ProgressReporter

MAX_MODELS_PER_REPLICA = 8


def _worker(args: AppArgs) -> InspectionWorker:
    assert args.blob_url is not None
    return InspectionWorker(BlobStore(args.blob_url), INSPECTION.load_settings(args).work_size)


@serve.deployment(name="InspectionTrainer")
class InspectionTrainer(ModelDeployment[InspectionWorker]):
    """Trains models; one request at a time per replica (training is CPU-bound)."""

    model_label = "inspection trainer"

    def __init__(self, args: AppArgs) -> None:
        super().__init__(args)
        self.load(lambda: _worker(args))

    async def train(
        self, owner: str, model_id: int, algorithm_id: str, params: dict[str, Any],
        image_keys: list[str], reporter: ProgressReporter,
    ) -> dict[str, Any]:
        worker = self.require()
        return await asyncio.to_thread(worker.train, owner, model_id, algorithm_id, params, image_keys, reporter)


@serve.deployment(name="InspectionPredictor")
class InspectionPredictor(ModelDeployment[InspectionWorker]):
    """Scores images with a tenant's model, loaded through Serve's model multiplexing."""

    model_label = "inspection predictor"

    def __init__(self, args: AppArgs) -> None:
        super().__init__(args)
        self.load(lambda: _worker(args))

    @serve.multiplexed(max_num_models_per_replica=MAX_MODELS_PER_REPLICA)
    async def get_model(self, model_key: str) -> TrainedModel:
        return await asyncio.to_thread(self.require().load_model, model_key)

    async def predict(self, model_key: str, key_prefix: str, images: list[dict[str, Any]]) -> list[dict[str, Any]]:
        model = await self.get_model(serve.get_multiplexed_model_id() or model_key)
        return await asyncio.to_thread(self.require().predict_with, model, key_prefix, images)


def bind(args: AppArgs, gpu: bool) -> InspectionHandles:
    """The trainer and the multiplexed predictor (resources from serve_config.yaml)."""
    return bind_group(InspectionHandles, args, gpu, inspection_trainer=InspectionTrainer,
                      inspection_predictor=InspectionPredictor)
