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
from ray.serve import Application

from deployments.base import ModelDeployment, deployment_options
from percept.config import AppArgs
from percept.inspection.engine import TrainedModel
from percept.inspection.worker import InspectionWorker
from percept.storage.blobs import BlobStore
from percept.tasks import ProgressReporter

MAX_MODELS_PER_REPLICA = 8


def _worker(args: AppArgs) -> InspectionWorker:
    section = args.service_section("inspection")
    assert args.blob_url is not None
    return InspectionWorker(BlobStore(args.blob_url), int(section.get("work_size", 256)))


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


def bind(args: AppArgs, gpu: bool) -> dict[str, Application]:
    """Bound deployments of this service, keyed by the handle name the routers use."""
    trainer = InspectionTrainer.options(
        **deployment_options(args, "inspection_trainer", gpu, num_cpus=1.0, num_gpus=0.0,
                             max_ongoing_requests=2, num_replicas=1)
    ).bind(args)
    predictor = InspectionPredictor.options(
        **deployment_options(args, "inspection_predictor", gpu, num_cpus=0.5, num_gpus=0.0,
                             max_ongoing_requests=8)
    ).bind(args)
    return {"inspection_trainer": trainer, "inspection_predictor": predictor}
