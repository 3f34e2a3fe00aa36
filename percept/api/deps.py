"""FastAPI dependencies: the seam tests override.

``get_services`` gives the replica's :class:`~percept.services.Services`; the auth
dependencies turn a bearer token into a :class:`~percept.auth.Principal`. Users (password
flow, reading assessment and the other user-facing services) and API clients (inspection)
get tokens of different audiences.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, WebSocket
from fastapi.security import OAuth2PasswordBearer

from percept.auth import Principal, TokenError
from percept.errors import BadRequest, Unauthorized
from percept.services import Services

USER_AUDIENCE = "percept-user"
CLIENT_AUDIENCE = "percept-client"
USER_TOKEN_TTL_S = 7 * 24 * 3600

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/v1/auth/token", auto_error=False)


async def get_services(request: Request) -> Services:
    """The app's services (async: FastAPI runs a plain ``def`` dependency in its thread pool,
    a thread hop on every request for an attribute read)."""
    return request.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(get_services)]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _www() -> dict[str, str]:
    return {"WWW-Authenticate": "Bearer"}


def get_current_user_doc(
    services: ServicesDep, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> dict[str, Any]:
    """The stored user behind a valid user token (401 otherwise, 400 if disabled)."""
    if not token:
        raise Unauthorized("Not authenticated", headers=_www())
    try:
        subject = services.tokens.verify(token, USER_AUDIENCE)
    except TokenError:
        raise Unauthorized("Could not validate credentials", headers=_www()) from None
    kind, _, name = subject.partition(":")
    user = services.users.get(name) if kind == "user" else None
    if user is None:
        raise Unauthorized("Could not validate credentials", headers=_www())
    if user.get("disabled"):
        raise BadRequest("Inactive user")
    return user


def get_current_user(user: Annotated[dict[str, Any], Depends(get_current_user_doc)]) -> Principal:
    return Principal("user", str(user["username"]))


CurrentUser = Annotated[Principal, Depends(get_current_user)]


def get_principal(request: Request, services: ServicesDep) -> Principal:
    """A user or an API client, from a token of either audience."""
    token = _bearer(request)
    if not token:
        raise Unauthorized("Not authenticated", headers=_www())
    for audience in (USER_AUDIENCE, CLIENT_AUDIENCE):
        try:
            subject = services.tokens.verify(token, audience)
        except TokenError:
            continue
        kind, _, name = subject.partition(":")
        return Principal(kind, name)
    raise Unauthorized("Could not validate credentials", headers=_www())


AnyPrincipal = Annotated[Principal, Depends(get_principal)]


def get_limited_user(request: Request, services: ServicesDep, user: CurrentUser) -> Principal:
    """The authenticated user, counted against ``rate_limit_per_minute`` per path (429 past it).

    The reading service counts against its own limit (``percept.api.reading.limited_user``),
    inspection clients in ``percept.api.inspection_deps.current_client``.
    """
    services.limiter.hit(user.id, request.url.path)
    return user


LimitedUser = Annotated[Principal, Depends(get_limited_user)]


def get_limited_principal(request: Request, services: ServicesDep, principal: AnyPrincipal) -> Principal:
    """A user or an API client, counted against ``rate_limit_per_minute`` per path (429 past it)."""
    services.limiter.hit(principal.id, request.url.path)
    return principal


LimitedPrincipal = Annotated[Principal, Depends(get_limited_principal)]


def websocket_owner(
    websocket: WebSocket, services: Services, audiences: tuple[str, ...] = (USER_AUDIENCE, CLIENT_AUDIENCE)
) -> str | None:
    """The principal id of a websocket's token (``?token=`` or a bearer header), or None."""
    token = websocket.query_params.get("token") or websocket.headers.get("authorization", "").partition(" ")[2]
    for audience in audiences:
        try:
            return services.tokens.verify(token, audience)
        except TokenError:
            continue
    return None
