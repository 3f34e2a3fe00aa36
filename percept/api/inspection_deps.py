"""HTTP plumbing of the inspection API: its error format and its auth dependencies.

Every error under ``/api`` is ``{"errors": {"detail", "source": {"pointer"}, "status",
"title"}}`` with the message in the caller's language. Routes raise
:func:`percept.inspection.errors.api_error`; everything else (validation, unknown routes,
405, 500, 503) is mapped here too.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response

from percept.api.deps import CLIENT_AUDIENCE, ServicesDep
from percept.api.errors import ErrorInfo
from percept.auth import TokenError
from percept.errors import Forbidden, Unauthorized
from percept.inspection.errors import CODE, CODE_NO_DETAIL, api_error
from percept.inspection.i18n import language, translate
from percept.inspection.store import InspectionRepo


def _validation_messages(errors: Any) -> list[str]:
    messages = []
    for err in errors if isinstance(errors, list) else []:
        loc = ".".join(str(p) for p in err.get("loc", ()))
        if err.get("type") == "missing":
            messages.append(f"Field required: {loc}")
        elif err.get("type") == "json_invalid":
            messages.append("The request body is not valid JSON")
        else:
            messages.append(f"Invalid value: {loc} ({err.get('msg', '')})")
    return messages


def render_error(request: Request, info: ErrorInfo) -> Response:
    """The ``{"errors": ...}`` body, in English or Japanese."""
    status, title, detail = info.status, info.title, info.detail
    if info.code == CODE_NO_DETAIL:
        detail = None
    elif info.code == CODE:
        pass
    elif info.kind == "validation":
        # Reading chosen: a body or query that does not validate is the vendor's 400 "Invalid Request".
        status, title, detail = 400, "Invalid Request", _validation_messages(info.detail)
    elif detail == title or (info.kind == "http" and status == 404):
        detail = None
    lang = language(request.headers.get("accept-language"))
    body = {
        "errors": {
            "detail": translate(detail, lang),
            "source": {"pointer": request.url.path},
            "status": status,
            "title": translate(title, lang),
        }
    }
    headers = dict(info.headers)
    headers["Content-Language"] = lang
    return JSONResponse(jsonable_encoder(body), status_code=status, headers=headers)


def repo(services: ServicesDep) -> InspectionRepo:
    """The inspection records (a thin typed view of the state store)."""
    return InspectionRepo(services.state)


RepoDep = Annotated[InspectionRepo, Depends(repo)]


def current_client(request: Request, services: ServicesDep) -> str:
    """The caller's owner id ``client:<id>`` from a client-credentials bearer token."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise api_error(Unauthorized, "No permission to access this resource")
    try:
        subject = services.tokens.verify(token.strip(), CLIENT_AUDIENCE)
    except TokenError:
        raise api_error(Unauthorized, "No permission to access this resource") from None
    kind, _, client_id = subject.partition(":")
    client = services.clients.get(client_id) if kind == "client" else None
    if client is None or client.get("disabled"):
        raise api_error(Unauthorized, "No permission to access this resource")
    services.limiter.hit(subject, request.url.path)  # per client and path (serve_config rate_limit_per_minute)
    return subject


ClientDep = Annotated[str, Depends(current_client)]


def licensed_client(owner: ClientDep, records: RepoDep) -> str:
    """The caller, if it has activated a license (403 "Invalid license!" otherwise)."""
    if records.license(owner) is None:
        raise api_error(Forbidden, "Invalid license!")
    return owner


LicensedClient = Annotated[str, Depends(licensed_client)]
