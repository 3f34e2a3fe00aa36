"""``build_app``: the only place that binds deployments.

``serve run serve_config.yaml`` calls it with the YAML ``args``, validated into
:class:`percept.config.AppArgs`. For each service of ``args.services`` (the registry,
:mod:`percept.registry`) it validates the service's settings and calls its deployments
module's ``bind``, which returns the service's handle group; every model deployment gets its
resources (``num_cpus``, fractional ``num_gpus``), autoscaling, ``max_ongoing_requests`` and
``user_config`` from ``args.deployments.<key>``. With ``accelerator: auto`` the GPU shares are
dropped on a cluster without GPUs, so one config serves a laptop and a GPU cluster.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

from ray.serve import Application

from deployments.base import bind_group
from deployments.echo import EchoDeployment
from deployments.ingress import IngressDeployment
from deployments.plugin import PluginDeployment, plugin_deployment_name
from percept.config import AppArgs
from percept.handles import DebugHandles, HandleGroup
from percept.logs import configure_logging
from percept.plugins import discover_plugins
from percept.registry import spec_of

logger = logging.getLogger(__name__)


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

    groups: list[HandleGroup] = []
    for service in args.services:
        spec = spec_of(service)
        spec.load_settings(args)  # a wrong service_config section fails the build, not the first request
        groups.append(importlib.import_module(spec.deployments).bind(args, gpu))
    if args.debug_routes:
        groups.append(bind_group(DebugHandles, args, False, echo=EchoDeployment))

    found = discover_plugins(args.plugins_dir)
    for error in found.errors:
        logger.error("plugin %s skipped: %s", error.file, error.error)
    plugin_apps: dict[str, Application] = {}
    for name, info in found.plugins.items():
        options = args.options_for_plugin(name).serve_options(use_gpu=gpu)
        deployment = PluginDeployment.options(name=plugin_deployment_name(name), **options)
        plugin_apps[name] = deployment.bind(args, info.model_dump())

    ingress = IngressDeployment.options(**args.ingress.serve_options(use_gpu=False))
    return ingress.bind(
        args,
        groups,
        plugin_apps,
        [p.model_dump() for p in found.plugins.values()],
        [e.model_dump() for e in found.errors],
    )


__all__ = ["build_app"]
