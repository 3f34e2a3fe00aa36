"""What every model deployment shares: loading a core, availability, health, status."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from percept.config import AppArgs, DeploymentOptions
from percept.errors import ServiceUnavailable, WeightsMissing
from percept.logs import configure_logging
from percept.models.weights import use_models_dir

logger = logging.getLogger(__name__)
CoreT = TypeVar("CoreT")


class ModelDeployment(Generic[CoreT]):
    """Base of the model deployments.

    A subclass calls :meth:`load` with a factory of its Ray-free core. Missing weights do
    not crash the replica: it stays healthy, reports ``available: false`` with the message
    naming the weights and the directory, and its routes answer 503 with that message.
    """

    model_label = "model"

    def __init__(self, args: AppArgs) -> None:
        configure_logging()
        self.args = args
        self.models_path = use_models_dir(args.models_path)
        self.core: CoreT | None = None
        self.unavailable: str | None = "loading"

    def load(self, factory: Callable[[], CoreT]) -> None:
        try:
            self.core = factory()
            self.unavailable = None
        except WeightsMissing as exc:
            self.core = None
            self.unavailable = str(exc.detail)
            logger.warning("%s: %s", self.model_label, self.unavailable)

    def require(self) -> CoreT:
        """The core, or 503 with the reason it is missing."""
        if self.core is None:
            raise ServiceUnavailable(self.unavailable or f"unavailable: {self.model_label}")
        return self.core

    def status(self) -> dict[str, Any]:
        return {
            "name": self.model_label,
            "available": self.core is not None,
            "message": self.unavailable or "ready",
            "device": str(getattr(self.core, "device", "cpu")),
            "pid": os.getpid(),
        }

    def check_health(self) -> None:
        """Serve's health check: a replica without weights is healthy but unavailable."""
        return None


def deployment_options(args: AppArgs, key: str, gpu: bool, **defaults: Any) -> dict[str, Any]:
    """Serve options of a model deployment: ``args.deployments[key]`` or these defaults.

    ``gpu`` is what ``build_app`` decided for the cluster; without GPUs ``num_gpus`` is 0.
    """
    base = args.deployments.get(key) or DeploymentOptions(**defaults)
    return base.serve_options(use_gpu=gpu)
