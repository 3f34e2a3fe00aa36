"""The tagger service's model deployments (filled in by its issue)."""

from __future__ import annotations

from ray.serve import Application

from percept.config import AppArgs


def bind(args: AppArgs, gpu: bool) -> dict[str, Application]:
    """Bound deployments of this service, keyed by the handle name the routers use."""
    return {}
