"""``create_app``: the FastAPI application the ingress deployment serves.

One app, one port: the five contracts' original paths at the root (``/v1`` reading,
``/api`` inspection, ``/process`` … tagger, ``/scrape`` … search, ``/correction`` dataset
correction) plus ``/platform`` and ``/healthz``. OpenAPI at ``/docs`` and ``/openapi.json``.
"""

from __future__ import annotations

import importlib
import logging
import time
import uuid

from fastapi import FastAPI, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from percept.api import auth, debug, platform, ui
from percept.api.errors import ErrorInfo, install_error_handlers, render
from percept.api.limits import BodyLimitMiddleware, derived_caps
from percept.api.openapi import document_errors
from percept.registry import spec_of
from percept.services import Services
from percept.tasks import idempotency_key, idempotency_key_problem

logger = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 512 * 1024 * 1024


class RequestContext:
    """Request id, body-size guard and the one log line of every request.

    A plain ASGI middleware (``@app.middleware("http")`` wraps every request in a task
    group and re-streams the response: about a millisecond per request). The request id
    (``X-Request-ID`` or a new one) goes to ``request.state.request_id`` and the response.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = ""
        length = b""
        key = b""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                rid = value.decode("latin-1")
            elif name == b"content-length":
                length = value
            elif name == b"idempotency-key":
                key = value
        rid = rid or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        refusal = None
        if length.isdigit() and int(length) > MAX_REQUEST_BYTES:
            refusal = ErrorInfo(413, f"Request body larger than {MAX_REQUEST_BYTES // 2**20} MB",
                                "Payload Too Large", {})
        elif key and (problem := idempotency_key_problem(key)):
            refusal = ErrorInfo(400, problem, "Bad Request", {})
        if refusal is not None:
            response = render(Request(scope, receive), refusal)
            response.headers["X-Request-ID"] = rid
            await response(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        header = (b"x-request-id", rid.encode("latin-1"))
        # tasks created by this request: at most one per key (percept.tasks)
        key_token = idempotency_key.set(key.decode("ascii")) if key else None

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if key_token is not None:
                idempotency_key.reset(key_token)
            logger.info("%s %s -> %d in %.1f ms", scope["method"], scope["path"], status,
                        (time.perf_counter() - started) * 1000, extra={"request_id": rid})


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

    app.include_router(platform.router)
    app.include_router(auth.router)
    if services.args.debug_routes:
        app.include_router(debug.router)
    for service in services.args.services:
        importlib.import_module(spec_of(service).router).include(app)
    ui.install(app)  # the console at /ui, and /docs + /redoc served offline
    document_errors(app)  # every error response in the OpenAPI, with its contract's model
    limits = services.args.request_limits
    app.add_middleware(BodyLimitMiddleware, caps={**derived_caps(services), **limits.routes},
                       default_mb=limits.default_mb)
    # added last, so outermost: a request the body caps refuse has its request id and log line too
    app.add_middleware(RequestContext)
    return app
