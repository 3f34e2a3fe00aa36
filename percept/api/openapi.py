"""Every error an operation can answer, declared in the OpenAPI with its contract's model.

FastAPI documents the success response and 422. The rest is added here, once the routers
are in: for each operation, the status codes it can answer (from what its endpoint, its
helpers and its dependencies raise, plus the edge: the body cap, the JSON depth check,
authentication, rate limits, task quotas, deployments that may be unavailable) and, for each,
the error body of the contract that owns the path: ``{"detail": ...}`` (reading, search,
correction, platform), ``{"errors": {...}}`` (inspection, ``/api``), the Detect envelope
(tagger).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel

from percept.api.errors import _TITLES
from percept.retry import KEYED_ROUTES, error_contract
from percept.tasks import IDEMPOTENCY_KEY_MAX


class ErrorDetail(BaseModel):
    """The error body of the reading, search, correction and platform routes."""

    detail: Any
    request_id: str | None = None


class InspectionErrorSource(BaseModel):
    pointer: str


class InspectionErrorBody(BaseModel):
    detail: str | None = None
    source: InspectionErrorSource
    status: int
    title: str


class InspectionError(BaseModel):
    """The error body of the inspection API (``/api``), English or Japanese."""

    errors: InspectionErrorBody


RAISES = {
    "BadRequest": 400, "Unauthorized": 401, "Forbidden": 403, "NotFound": 404, "Conflict": 409,
    "PayloadTooLarge": 413, "Unprocessable": 422, "RequestValidationError": 422, "TooManyRequests": 429,
    "ServiceUnavailable": 503, "require(": 503, "read_limited(": 413, "submit(": 429, ".remote(": 503,
    "submit_training(": 429, "submit_prediction(": 429, "parse_body(": 422, "request.form(": 422,
}
IDEMPOTENCY_PARAMETER = {
    "name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string", "maxLength": IDEMPOTENCY_KEY_MAX, "pattern": "^[!-~]+$"},
    "description": "at most one task per caller and key: the same request again (a retry) answers the same task; "
                   "a longer key or one with characters outside visible ASCII is answered 400",
}
AUTH = {"get_current_user_doc", "get_principal", "current_client"}
LIMITED = {"get_limited_user", "limited_user", "current_client", "get_limited_principal"}
_CALL = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)\(")


def _source(fn: Callable[..., Any]) -> str:
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):
        return ""


def _scan(fn: Callable[..., Any], seen: set[Any], depth: int = 0) -> set[int]:
    """Codes raised by ``fn`` and the helpers of its own module it calls (two levels)."""
    if fn in seen or depth > 2:
        return set()
    seen.add(fn)
    text = _source(fn)
    codes = {code for marker, code in RAISES.items() if marker in text}
    module = inspect.getmodule(fn)
    for name in set(_CALL.findall(text)):
        helper = getattr(module, name, None)
        if inspect.isfunction(helper) and helper.__module__ == getattr(module, "__name__", None):
            codes |= _scan(helper, seen, depth + 1)
    return codes


def _dependencies(route: APIRoute) -> list[Callable[..., Any]]:
    found: list[Callable[..., Any]] = []
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        if dep.call is not None:
            found.append(dep.call)
        stack.extend(dep.dependencies)
    return found


def route_codes(route: APIRoute) -> set[int]:
    """The error statuses ``route`` can answer."""
    seen: set[Any] = set()
    codes = _scan(route.endpoint, seen)
    names = set()
    for call in _dependencies(route):
        names.add(getattr(call, "__name__", ""))
        codes |= _scan(call, seen)
    if names & AUTH:
        codes |= {401}
    if names & LIMITED:
        codes |= {429}
    methods = route.methods or set()
    if methods & {"POST", "PUT", "PATCH"}:
        codes |= {400, 413}  # malformed or too deeply nested body; the body cap
    if route.dependant.path_params or route.dependant.query_params or route.body_field is not None:
        codes |= {422}
    if route.path_format.count("{") or any("id" in p.name for p in route.dependant.query_params):
        codes |= {404}
    # Any operation: Serve's proxy answers 503 + Retry-After when the ingress replica serving
    # the request stops and the request is not safe to send again (percept.retry).
    codes |= {503}
    if error_contract(route.path) == "tagger":
        codes |= {500}  # the Detect envelope documents its 500 too
    return codes


ERROR_MODELS = {"inspection": "InspectionError", "tagger": "TaggerResponse", "detail": "ErrorDetail"}


def api_routes(routes: list[Any], prefix: str = "") -> list[tuple[str, APIRoute]]:
    """(full path, route) of every APIRoute, inside included routers too (FastAPI ≥ 0.16x nests them)."""
    found: list[tuple[str, APIRoute]] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append((prefix + route.path_format, route))
        elif hasattr(route, "original_router") and hasattr(route, "include_context"):
            found.extend(api_routes(route.original_router.routes, prefix + route.include_context.prefix))
    return found


def document_errors(app: FastAPI) -> None:
    """Make ``app.openapi()`` declare every error response with the contract's model."""
    original = app.openapi
    routes = {(path, m.lower()): r for path, r in api_routes(app.routes) for m in (r.methods or ())}

    done: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if "schema" in done:
            return done["schema"]
        app.openapi_schema = None
        schema = original()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (ErrorDetail, InspectionError):
            extra = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(extra.pop("$defs", {}))
            components[model.__name__] = extra
        if "TaggerResponse" not in components:
            from percept.schemas.tagger import TaggerResponse

            extra = TaggerResponse.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(extra.pop("$defs", {}))
            components["TaggerResponse"] = extra
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                route = routes.get((path, method))
                if route is None:
                    continue
                ref = {"$ref": f"#/components/schemas/{ERROR_MODELS[error_contract(path)]}"}
                codes = route_codes(route)
                if (method.upper(), path) in KEYED_ROUTES:
                    operation.setdefault("parameters", []).append(IDEMPOTENCY_PARAMETER)
                    codes |= {400}  # a malformed Idempotency-Key
                responses = operation.setdefault("responses", {})
                for code in sorted(codes):
                    entry = responses.setdefault(str(code), {"description": _TITLES.get(code, "Error")})
                    entry["content"] = {"application/json": {"schema": ref}}
                    if code in (429, 503):
                        entry["headers"] = {"Retry-After": {"schema": {"type": "integer"},
                                                            "description": "seconds to wait before retrying"}}
        app.openapi_schema = done["schema"] = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
