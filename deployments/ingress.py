"""The gateway: one FastAPI app (built by ``percept.api.create_app``) holding the handles.

No route logic lives here: the routers are in ``percept.api``; this class only builds the
services container on the replica and hands it to the app factory (Serve's late-bound
ingress calls ``__serve_build_asgi_app__`` after ``__init__``).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from ray import serve

from deployments.base import host_in_process
from percept.api.app import create_app
from percept.config import AppArgs
from percept.handles import Handle, HandleGroup
from percept.logs import configure_logging
from percept.models.weights import use_models_dir
from percept.retry import InlineBodyMiddleware, retry_idempotent
from percept.services import Services, build_services

logger = logging.getLogger(__name__)


@serve.deployment(name="IngressDeployment")
@serve.ingress()
class IngressDeployment:
    def __init__(
        self,
        args: AppArgs,
        handles: list[HandleGroup],
        plugin_handles: dict[str, Handle],
        plugins: list[dict[str, Any]],
        plugin_errors: list[dict[str, Any]],
    ) -> None:
        configure_logging()
        use_models_dir(args.models_path)
        # models hosted here (InIngress) are built first; a dead model replica: calls sent once more
        handles = [retry_idempotent(host_in_process(group, args)) for group in handles]
        self.services: Services = build_services(args, handles, plugins, plugin_errors, plugin_handles)
        logger.info(
            "ingress ready: %d deployments, %d plugins, state %s",
            len(list(self.services.deployments())), len(plugins), self.services.state.url.split("://")[0],
        )

    def __serve_build_asgi_app__(self) -> FastAPI:
        app = create_app(self.services)
        # outermost: a body the proxy sent with the scope reaches the app without a fetch
        app.add_middleware(InlineBodyMiddleware)
        return app

    def check_health(self) -> None:
        if not self.services.state.ping():
            raise RuntimeError("state store does not answer")
