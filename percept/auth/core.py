"""Principals, passwords and tokens.

* Users (reading assessment): argon2-hashed passwords, HS256 JWT bearer tokens.
* API clients (visual inspection): client id + secret, the secret shown once and stored
  argon2-hashed; client-credential tokens are JWTs too.

The signing secret is generated on first start and persisted in the state store, so every
replica (and every restart) signs and verifies with the same key, and no default string
exists anywhere. Every stored object carries an ``owner``: a principal id such as
``user:alice`` or ``client:ci_5f…``.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from percept.errors import Conflict
from percept.storage.state import StateStore

_hasher = PasswordHasher()
USERS = "users"
CLIENTS = "api_clients"
SECRETS = "secrets"


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def verify_secret(hashed: str, secret: str) -> bool:
    try:
        return _hasher.verify(hashed, secret)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class Principal:
    """Who is calling: ``kind`` is ``user`` or ``client``."""

    kind: str
    name: str
    disabled: bool = False

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.name}"


class TokenError(Exception):
    """A token that is malformed, forged, expired or of the wrong audience."""


class TokenIssuer:
    """Signs and verifies JWTs with the persisted secret."""

    def __init__(self, store: StateStore) -> None:
        candidate = {"key": secrets.token_urlsafe(64), "created": time.time()}
        store.put_if_absent(SECRETS, "jwt", candidate)
        doc = store.get(SECRETS, "jwt")
        assert doc is not None
        self._key = str(doc["key"])

    def issue(self, principal: Principal, audience: str, expires_in: int) -> str:
        now = int(time.time())
        claims = {"sub": principal.id, "aud": audience, "iat": now, "exp": now + expires_in}
        return jwt.encode(claims, self._key, algorithm="HS256")

    def verify(self, token: str, audience: str) -> str:
        """The principal id inside a valid token."""
        try:
            claims = jwt.decode(token, self._key, algorithms=["HS256"], audience=audience)
        except jwt.PyJWTError as exc:
            raise TokenError(str(exc)) from None
        return str(claims["sub"])


class UserStore:
    """Users of the password flow."""

    def __init__(self, store: StateStore) -> None:
        self._store = store

    def register(
        self, username: str, password: str, email: str | None = None, full_name: str | None = None
    ) -> dict[str, Any]:
        doc = {
            "username": username,
            "email": email,
            "full_name": full_name,
            "hashed_password": hash_secret(password),
            "disabled": False,
            "created": time.time(),
        }
        if not self._store.put_if_absent(USERS, username, doc):
            raise Conflict("Username is already taken")
        return doc

    def get(self, username: str) -> dict[str, Any] | None:
        return self._store.get(USERS, username)

    def authenticate(self, username: str, password: str) -> dict[str, Any] | None:
        user = self.get(username)
        if user is None:
            # Hash anyway so that timing does not reveal which names exist.
            verify_secret(_DUMMY_HASH, password)
            return None
        return user if verify_secret(user["hashed_password"], password) else None

    def set_disabled(self, username: str, disabled: bool) -> None:
        def fn(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            if doc is not None:
                doc["disabled"] = disabled
            return doc

        self._store.update(USERS, username, fn)


class ClientStore:
    """API clients of the client-credentials flow."""

    def __init__(self, store: StateStore) -> None:
        self._store = store

    def create(self, name: str) -> tuple[str, str]:
        """A new client; returns ``(client_id, secret)`` — the secret is not stored."""
        client_id = f"ci_{secrets.token_hex(12)}"
        secret = secrets.token_urlsafe(32)
        self._store.put(
            CLIENTS,
            client_id,
            {
                "client_id": client_id,
                "name": name,
                "secret_hash": hash_secret(secret),
                "disabled": False,
                "created": time.time(),
            },
        )
        return client_id, secret

    def get(self, client_id: str) -> dict[str, Any] | None:
        return self._store.get(CLIENTS, client_id)

    def list(self) -> list[dict[str, Any]]:
        return [
            {k: v for k, v in doc.items() if k != "secret_hash"} for doc in self._store.list(CLIENTS)
        ]

    def verify(self, client_id: str, secret: str) -> bool:
        doc = self.get(client_id)
        return doc is not None and not doc.get("disabled") and verify_secret(doc["secret_hash"], secret)

    def delete(self, client_id: str) -> bool:
        return self._store.delete(CLIENTS, client_id)


_DUMMY_HASH = _hasher.hash(secrets.token_hex(8))
