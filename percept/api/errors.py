"""Errors in one place: every failure rendered in the error format of its contract.

Each service registers a renderer for the paths it owns (``register_error_renderer``):
``{"detail": ...}`` is the default (reading assessment, platform), the inspection API
renders ``{"errors": {...}}``, the tagger the Detect envelope. Serve's back-pressure and
unavailable errors become 503; anything unexpected becomes 500 with a request id and no
traceback.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from percept.errors import ServiceError, unwrap_remote_error

logger = logging.getLogger(__name__)


@dataclass
class ErrorInfo:
    """What every renderer receives."""

    status: int
    detail: Any
    title: str
    headers: dict[str, str]
    code: str | None = None
    kind: str = "service"  # service | validation | http | unavailable | internal


Renderer = Callable[[Request, ErrorInfo], Response]


def register_error_renderer(
    app: FastAPI, match: str | Callable[[str], bool], renderer: Renderer
) -> None:
    """Render errors of paths starting with ``match`` (or for which ``match(path)`` holds)."""
    predicate = (lambda path, prefix=match: path.startswith(prefix)) if isinstance(match, str) else match
    if not hasattr(app.state, "error_renderers"):
        app.state.error_renderers = []
    app.state.error_renderers.insert(0, (predicate, renderer))


def default_renderer(request: Request, info: ErrorInfo) -> Response:
    body: dict[str, Any] = {"detail": info.detail}
    if info.kind == "internal":
        body["request_id"] = request_id(request)
    return JSONResponse(jsonable_encoder(body), status_code=info.status, headers=info.headers)


def render(request: Request, info: ErrorInfo) -> Response:
    path = request.url.path
    renderers = getattr(request.app.state, "error_renderers", [])
    for predicate, renderer in renderers:
        if predicate(path):
            return renderer(request, info)
    return default_renderer(request, info)


def request_id(request: Request) -> str:
    rid = getattr(request.state, "request_id", None)
    if rid is None:
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex
        request.state.request_id = rid
    return str(rid)


_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def _unavailable_types() -> tuple[type[BaseException], ...]:
    try:
        from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

        return (BackPressureError, DeploymentUnavailableError)
    except ImportError:  # pragma: no cover - ray is a dependency
        return ()


def info_for(exc: BaseException, request: Request) -> ErrorInfo:
    exc = unwrap_remote_error(exc)
    if isinstance(exc, ServiceError):
        return ErrorInfo(exc.status_code, exc.detail, exc.title, dict(exc.headers), exc.code)
    if isinstance(exc, RequestValidationError):
        return ErrorInfo(422, jsonable_encoder(exc.errors()), "Validation Error", {}, kind="validation")
    if isinstance(exc, StarletteHTTPException):
        return ErrorInfo(
            exc.status_code,
            exc.detail,
            _TITLES.get(exc.status_code, "Error"),
            dict(exc.headers or {}),
            kind="http",
        )
    if isinstance(exc, RecursionError):  # a JSON body nested deeper than the parser follows
        return ErrorInfo(400, "Malformed request: the JSON body is nested too deeply", "Bad Request", {},
                         kind="validation_depth")
    if isinstance(exc, _unavailable_types()):
        return ErrorInfo(503, "unavailable: the service is overloaded or restarting, retry later",
                         "Service Unavailable", {"Retry-After": "1"}, kind="unavailable")
    rid = request_id(request)
    logger.error("unhandled error on %s %s (request %s)", request.method, request.url.path, rid,
                 exc_info=(type(exc), exc, exc.__traceback__))
    return ErrorInfo(500, f"Internal server error (request {rid})", "Internal Server Error", {}, kind="internal")


def install_error_handlers(app: FastAPI) -> None:
    async def handle(request: Request, exc: Exception) -> Response:
        return render(request, info_for(exc, request))

    app.add_exception_handler(ServiceError, handle)
    app.add_exception_handler(RequestValidationError, handle)
    app.add_exception_handler(StarletteHTTPException, handle)
    app.add_exception_handler(RecursionError, handle)  # JSON too deep: a 400, handled (not re-raised)
    app.add_exception_handler(Exception, handle)
