"""``/v1/auth``: users of the password flow of the reading API (docs/reading.md, "Routes").

The same user tokens authenticate the other user-facing services (search, dataset
correction, the platform task routes).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from percept.api.deps import (
    USER_AUDIENCE,
    USER_TOKEN_TTL_S,
    ServicesDep,
    get_current_user_doc,
    get_limited_user,
)
from percept.auth import Principal
from percept.errors import Conflict, Unauthorized, Unprocessable

router = APIRouter(prefix="/v1/auth", tags=["auth"])


class TextResponse(BaseModel):
    text: str


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"


class UserResponse(BaseModel):
    username: str
    email: str | None = None
    full_name: str | None = None
    disabled: bool | None = None


@router.put("/register", response_model=TextResponse)
def register(
    services: ServicesDep,
    username: Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[\w.@+-]+$")],
    password: Annotated[str, Query(min_length=1, max_length=256)],
    email: str | None = None,
    full_name: str | None = None,
) -> TextResponse:
    try:
        services.users.register(username, password, email, full_name)
    except Conflict:
        raise Unprocessable("Username is already taken") from None
    return TextResponse(text="Registered successfully.")


@router.post("/token", response_model=TokenResponse)
def token(services: ServicesDep, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> TokenResponse:
    user = services.users.authenticate(form.username, form.password)
    if user is None:
        raise Unauthorized("Incorrect username or password", headers={"WWW-Authenticate": "Bearer"})
    access = services.tokens.issue(Principal("user", user["username"]), USER_AUDIENCE, USER_TOKEN_TTL_S)
    return TokenResponse(access_token=access)


@router.get("/users/me", response_model=UserResponse, dependencies=[Depends(get_limited_user)])
def me(user: Annotated[dict[str, Any], Depends(get_current_user_doc)]) -> UserResponse:
    return UserResponse.model_validate(user)
