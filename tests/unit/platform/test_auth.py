from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
from fastapi.testclient import TestClient

from percept.api.app import create_app
from percept.api.deps import USER_AUDIENCE
from percept.auth import ClientStore, Principal, TokenError, TokenIssuer, UserStore
from percept.errors import Conflict
from percept.storage.state import SqliteStateStore
from percept.testing import make_services


@pytest.fixture
def store(tmp_path: Path) -> SqliteStateStore:
    return SqliteStateStore(tmp_path / "s.db")


def test_passwords_are_hashed_and_checked(store: SqliteStateStore) -> None:
    users = UserStore(store)
    users.register("ann", "s3cret", email="a@x.org")
    raw = store.get("users", "ann")
    assert raw is not None and "s3cret" not in str(raw) and raw["hashed_password"].startswith("$argon2")
    assert users.authenticate("ann", "s3cret") is not None
    assert users.authenticate("ann", "wrong") is None
    assert users.authenticate("nobody", "s3cret") is None
    with pytest.raises(Conflict):
        users.register("ann", "other")


def test_signing_secret_is_generated_once_and_shared(store: SqliteStateStore) -> None:
    first = TokenIssuer(store)
    token = first.issue(Principal("user", "ann"), "aud", 60)
    assert TokenIssuer(store).verify(token, "aud") == "user:ann"
    other = TokenIssuer(SqliteStateStore(Path(str(store.path) + ".other")))
    with pytest.raises(TokenError):
        other.verify(token, "aud")


def test_tokens_check_audience_and_expiry(store: SqliteStateStore) -> None:
    issuer = TokenIssuer(store)
    with pytest.raises(TokenError):
        issuer.verify(issuer.issue(Principal("user", "ann"), "a", 60), "b")
    expired = issuer.issue(Principal("user", "ann"), "a", -1)
    with pytest.raises(TokenError):
        issuer.verify(expired, "a")
    forged = jwt.encode({"sub": "user:ann", "aud": "a", "exp": time.time() + 60}, "guess", algorithm="HS256")
    with pytest.raises(TokenError):
        issuer.verify(forged, "a")


def test_client_secrets_are_shown_once_and_stored_hashed(store: SqliteStateStore) -> None:
    clients = ClientStore(store)
    client_id, secret = clients.create("factory-1")
    assert clients.verify(client_id, secret)
    assert not clients.verify(client_id, secret + "x")
    assert not clients.verify("ci_unknown", secret)
    assert secret not in str(store.get("api_clients", client_id))
    assert all("secret_hash" not in c for c in clients.list())


def test_auth_routes_follow_the_contract(tmp_path: Path) -> None:
    client = TestClient(create_app(make_services(tmp_path)))
    ok = client.put("/v1/auth/register", params={"username": "ann", "password": "pw", "email": "a@b.c"})
    assert ok.status_code == 200 and ok.json() == {"text": "Registered successfully."}
    taken = client.put("/v1/auth/register", params={"username": "ann", "password": "x"})
    assert taken.status_code == 422 and taken.json() == {"detail": "Username is already taken"}

    bad = client.post("/v1/auth/token", data={"username": "ann", "password": "nope"})
    assert bad.status_code == 401
    assert bad.json() == {"detail": "Incorrect username or password"}
    assert bad.headers["www-authenticate"] == "Bearer"

    token = client.post("/v1/auth/token", data={"username": "ann", "password": "pw", "grant_type": "password"})
    assert token.status_code == 200 and token.json()["token_type"] == "bearer"
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    me = client.get("/v1/auth/users/me", headers=headers)
    assert me.json()["username"] == "ann" and me.json()["email"] == "a@b.c"

    assert client.get("/v1/auth/users/me").json() == {"detail": "Not authenticated"}
    wrong = client.get("/v1/auth/users/me", headers={"Authorization": "Bearer abc.def.ghi"})
    assert wrong.status_code == 401 and wrong.json() == {"detail": "Could not validate credentials"}


def test_disabled_user_is_refused(tmp_path: Path) -> None:
    services = make_services(tmp_path)
    client = TestClient(create_app(services))
    client.put("/v1/auth/register", params={"username": "bob", "password": "pw"})
    token = client.post("/v1/auth/token", data={"username": "bob", "password": "pw"}).json()["access_token"]
    services.users.set_disabled("bob", True)
    resp = client.get("/v1/auth/users/me", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 400 and resp.json() == {"detail": "Inactive user"}


def test_user_token_is_not_a_client_token(tmp_path: Path) -> None:
    services = make_services(tmp_path)
    token = services.tokens.issue(Principal("client", "ci_x"), "percept-client", 60)
    client = TestClient(create_app(services))
    resp = client.get("/v1/auth/users/me", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 401
    assert services.tokens.verify(services.tokens.issue(Principal("user", "a"), USER_AUDIENCE, 60), USER_AUDIENCE)


def test_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    from percept.auth import RateLimiter
    from percept.errors import TooManyRequests

    limiter = RateLimiter(SqliteStateStore(tmp_path / "rl.db"), limit=2, window_s=60)
    limiter.hit("user:ann", "/v1/x")
    limiter.hit("user:ann", "/v1/x")
    limiter.hit("user:bob", "/v1/x")  # another principal has its own budget
    limiter.hit("user:ann", "/v1/y")  # and another path
    with pytest.raises(TooManyRequests) as caught:
        limiter.hit("user:ann", "/v1/x")
    assert caught.value.status_code == 429
    assert 1 <= int(caught.value.headers["Retry-After"]) <= 60
