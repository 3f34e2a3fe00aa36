"""``create_app``: the FastAPI application the ingress deployment serves.

One app, one port: the five contracts' original paths at the root (``/v1`` reading,
``/api`` inspection, ``/process`` … tagger, ``/scrape`` … search, ``/correction`` dataset
correction) plus ``/platform`` and ``/healthz``. OpenAPI at ``/docs`` and ``/openapi.json``.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import Response

from percept.api import auth, debug, platform, ui
from percept.api.errors import ErrorInfo, install_error_handlers, render, request_id
from percept.registry import spec_of
from percept.services import Services

logger = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 512 * 1024 * 1024


def create_app(services: Services) -> FastAPI:
    """The whole HTTP surface over ``services`` (tests pass fakes for the handles)."""
    app = FastAPI(
        title="Percept",
        version="0.1.0",
        description="Vision and speech services on Ray Serve.",
    )
    app.state.services = services
    app.state.error_renderers = []
    install_error_handlers(app)

    @app.middleware("http")
    async def request_context(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        rid = request_id(request)
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > MAX_REQUEST_BYTES:
            return render(
                request,
                ErrorInfo(413, f"Request body larger than {MAX_REQUEST_BYTES // 2**20} MB", "Payload Too Large", {}),
            )
        started = time.perf_counter()
        response = await call_next(request)
        response.headers["X-Request-ID"] = rid
        logger.info(
            "%s %s -> %d in %.1f ms",
            request.method,
            request.url.path,
            response.status_code,
            (time.perf_counter() - started) * 1000,
            extra={"request_id": rid},
        )
        return response

    app.include_router(platform.router)
    app.include_router(auth.router)
    if services.args.debug_routes:
        app.include_router(debug.router)
    for service in services.args.services:
        importlib.import_module(spec_of(service).router).include(app)
    ui.install(app)  # the console at /ui, and /docs + /redoc served offline
    return app
