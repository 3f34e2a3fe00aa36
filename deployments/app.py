"""``build_app``: the only place that binds deployments.

``serve run serve_config.yaml`` calls it with the YAML ``args``, validated into
:class:`percept.config.AppArgs`. Every model deployment gets its resources
(``num_cpus``, fractional ``num_gpus``), autoscaling and ``max_ongoing_requests`` from
those args; with ``accelerator: auto`` the GPU shares are dropped on a cluster without GPUs,
so one config serves a laptop and a GPU cluster.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

from ray.serve import Application

from deployments.echo import EchoDeployment
from deployments.ingress import IngressDeployment
from deployments.plugin import PluginDeployment
from percept.config import AppArgs
from percept.logs import configure_logging
from percept.plugins import discover_plugins

logger = logging.getLogger(__name__)

SERVICE_DEPLOYMENTS = {
    "reading": "deployments.reading",
    "inspection": "deployments.inspection",
    "tagger": "deployments.tagger",
    "search": "deployments.search",
    "correction": "deployments.correction",
}


def cluster_has_gpus() -> bool:
    import ray

    return bool(ray.is_initialized() and ray.cluster_resources().get("GPU", 0) > 0)


def use_gpus(args: AppArgs) -> bool:
    if args.accelerator == "cpu":
        return False
    if args.accelerator == "gpu":
        return True
    has = cluster_has_gpus()
    if not has:
        logger.warning("no GPU in the cluster: model deployments run on the CPU (num_gpus dropped)")
    return has


def build_app(args: AppArgs | dict[str, Any] | None = None) -> Application:
    """Validate the args and bind the ingress, every model deployment and every plugin."""
    configure_logging()
    if not isinstance(args, AppArgs):
        args = AppArgs.model_validate(args or {})
    args = args.resolved(Path.cwd())
    gpu = use_gpus(args)

    handles: dict[str, Application] = {
        "echo": EchoDeployment.options(num_replicas=1, ray_actor_options={"num_cpus": 0}).bind()
    }
    for service in args.services:
        module = importlib.import_module(SERVICE_DEPLOYMENTS[service])
        handles.update(module.bind(args, gpu))

    found = discover_plugins(args.plugins_dir)
    for error in found.errors:
        logger.error("plugin %s skipped: %s", error.file, error.error)
    for name, info in found.plugins.items():
        options = args.options_for_plugin(name).serve_options(use_gpu=gpu)
        handles[f"plugin:{name}"] = PluginDeployment.options(
            name=f"Plugin_{name}", **options
        ).bind(args, info.model_dump())

    ingress = IngressDeployment.options(**args.ingress.serve_options(use_gpu=False))
    return ingress.bind(
        args,
        handles,
        [p.model_dump() for p in found.plugins.values()],
        [e.model_dump() for e in found.errors],
    )


__all__ = ["build_app"]
