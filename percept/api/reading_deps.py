"""What both reading routers share: the rate-limited user, the JSON body parser, the files.

Authentication comes first on every reading route (an unauthenticated request with a bad
body gets 401, not 422): bodies are parsed inside the handlers by :func:`parse_body`, after
the :data:`User` dependency.
"""

from __future__ import annotations

import json
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from percept.api.deps import CurrentUser, ServicesDep
from percept.auth import Principal
from percept.reading.files import ReadingFiles
from percept.services import Services

ModelT = TypeVar("ModelT", bound=BaseModel)


def limited_user(request: Request, services: ServicesDep, user: CurrentUser) -> Principal:
    """The authenticated user, counted against the reading service's per-user, per-path limit."""
    services.limiter.hit(user.id, request.url.path, services.reading.settings.rate_limit_per_minute)
    return user


User = Annotated[Principal, Depends(limited_user)]


async def parse_body(request: Request, model: type[ModelT]) -> ModelT:
    """The JSON body validated against ``model``; 422 in FastAPI's validation format."""
    raw = await request.body()
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        raise RequestValidationError([{"type": "json_invalid", "loc": ["body"], "msg": "JSON decode error",
                                       "input": {}}]) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False, include_context=False)]
        ) from None


def files_of(services: Services) -> ReadingFiles:
    return ReadingFiles(services.state, services.blobs)
