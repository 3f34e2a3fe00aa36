"""The proxy middleware: a request whose ingress replica died is sent again when that is safe,
otherwise answered 503 with Retry-After, never the proxy's bare 500."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from percept.api.app import create_app
from percept.retry import (
    KEYED_ROUTES,
    PURE_POSTS,
    UNSAFE_GETS,
    ReplicaLossMiddleware,
    proxy_middlewares,
    replayable,
)
from percept.testing import make_services, read_body


class DyingIngress:
    """Stands in for Serve's proxy app: the first ``deaths`` calls read the body, then return
    without answering (what the proxy does when the replica dies); later calls echo the body."""

    def __init__(self, deaths: int, start_then_die: bool = False) -> None:
        self.deaths = deaths
        self.start_then_die = start_then_die
        self.bodies: list[bytes] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = await read_body(receive)
        self.bodies.append(body)
        if self.start_then_die:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            raise RuntimeError("replica died mid-response")
        if self.deaths > 0:
            self.deaths -= 1
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"echo:" + body})


def call(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


def middleware(inner: Any, **kwargs: Any) -> ReplicaLossMiddleware:
    return ReplicaLossMiddleware(inner, backoff_s=(0.0,), **kwargs)


def test_a_pure_post_is_sent_again_with_the_same_body() -> None:
    inner = DyingIngress(deaths=1)
    r = call(middleware(inner), "POST", "/process", json={"documents": [1, 2, 3]})
    assert r.status_code == 200
    assert r.text == 'echo:{"documents":[1,2,3]}'
    assert inner.bodies == [b'{"documents":[1,2,3]}'] * 2


def test_a_get_is_sent_again_until_the_attempts_run_out_then_503() -> None:
    inner = DyingIngress(deaths=5)
    r = call(middleware(inner, attempts=3), "GET", "/v1/task/status", params={"task_id": "t"})
    assert r.status_code == 503
    assert r.headers["retry-after"] == "1"
    assert "retry later" in r.json()["detail"]
    assert len(inner.bodies) == 3


def test_a_task_creation_is_never_sent_twice_and_answers_503() -> None:
    inner = DyingIngress(deaths=1)
    r = call(middleware(inner), "POST", "/v1/image/process/task", json={"image_file": "x"})
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert len(inner.bodies) == 1


def test_an_idempotency_key_makes_a_task_creation_replayable() -> None:
    inner = DyingIngress(deaths=1)
    r = call(middleware(inner), "POST", "/v1/image/process/task", json={"image_file": "x"},
             headers={"Idempotency-Key": "k-1"})
    assert r.status_code == 200 and len(inner.bodies) == 2


def test_an_idempotency_key_does_not_make_other_effects_replayable() -> None:
    """Inspection's training writes a model record before its task: a key does not dedupe that."""
    inner = DyingIngress(deaths=1)
    r = call(middleware(inner), "POST", "/api/v1/train", json={"name": "m"}, headers={"Idempotency-Key": "k-1"})
    assert r.status_code == 503 and len(inner.bodies) == 1


def test_a_get_with_effects_is_not_replayed() -> None:
    inner = DyingIngress(deaths=1)
    assert call(middleware(inner), "GET", "/clear_all").status_code == 503
    assert len(inner.bodies) == 1


def test_a_body_over_the_replay_cap_is_sent_once_whole() -> None:
    inner = DyingIngress(deaths=1)
    big = b"x" * 5000
    r = call(middleware(inner, replay_max_bytes=1000), "POST", "/process", content=big)
    assert r.status_code == 503
    assert inner.bodies == [big]  # the inner app still got the whole body once
    inner = DyingIngress(deaths=0)
    assert call(middleware(inner, replay_max_bytes=1000), "POST", "/process", content=big).text == "echo:" + "x" * 5000


def test_a_response_already_started_is_not_touched() -> None:
    inner = DyingIngress(deaths=0, start_then_die=True)
    with pytest.raises(RuntimeError):
        call(middleware(inner), "GET", "/test")
    assert len(inner.bodies) == 1


def test_answers_pass_through_unchanged() -> None:
    inner = DyingIngress(deaths=0)
    r = call(middleware(inner), "PUT", "/v1/auth/register", content=b"abc")
    assert r.status_code == 200 and r.text == "echo:abc"


def test_replayable_rules() -> None:
    assert replayable("GET", "/v1/task/status")
    assert replayable("HEAD", "/healthz/")
    assert not replayable("GET", "/scrape")
    assert replayable("POST", "/process")
    assert not replayable("POST", "/v1/audio/upload")
    assert not replayable("DELETE", "/api/v1/item/1")
    assert not replayable("DELETE", "/api/v1/item/1", [(b"Idempotency-Key", b"k")])
    assert replayable("GET", "/scrape", [(b"idempotency-key", b"k")])
    assert replayable("POST", "/correction/jobs", [(b"Idempotency-Key", b"k")])


def test_the_serve_callback_returns_starlette_middlewares(monkeypatch: pytest.MonkeyPatch) -> None:
    from ray.serve._private.http_util import validate_http_proxy_callback_return

    monkeypatch.setenv("PERCEPT_PROXY_REPLAY_MAX_MB", "2")
    (entry,) = validate_http_proxy_callback_return(proxy_middlewares())
    assert entry.cls is ReplicaLossMiddleware and entry.kwargs["replay_max_bytes"] == 2 * 2**20


def test_the_listed_routes_exist_with_their_method(tmp_path: Path) -> None:
    """The lists name real routes (a renamed route must not silently lose its rule)."""
    client = TestClient(create_app(make_services(tmp_path)))
    paths = client.get("/openapi.json").json()["paths"]
    for path in PURE_POSTS:
        assert "post" in paths.get(path, {}), path
    for path in UNSAFE_GETS:
        assert "get" in paths.get(path, {}), path


def test_the_keyed_routes_create_one_task_and_do_nothing_else(tmp_path: Path) -> None:
    """Each keyed route exists and its endpoint's one effect is ``runner.submit`` (directly or
    through its module's one-line helper), so the key's dedupe covers all it does."""
    import inspect

    from percept.api.openapi import api_routes

    services = make_services(tmp_path, debug_routes=True)
    routes = {(m, path): r for path, r in api_routes(create_app(services).routes) for m in (r.methods or ())}
    for method, path in KEYED_ROUTES:
        route = routes[(method, path)]
        source = inspect.getsource(route.endpoint)
        assert any(call in source for call in ("runner.submit(", "submit(services", "_task(services",
                                               "_embed_task(services")), (method, path)
        assert ".put(" not in source and ".create(" not in source, (method, path)


@pytest.mark.parametrize("path", ["/process", "/work/status/j1", "/api/v1/items", "/v1/task/status", "/scrape"])
def test_the_503_body_is_the_contracts_own(path: str, tmp_path: Path) -> None:
    """The proxy writes the three error shapes itself; they match what the app renders for a 503."""
    from starlette.requests import Request

    from percept.api.errors import ErrorInfo, render
    from percept.retry import UNAVAILABLE

    app = create_app(make_services(tmp_path))
    scope = {"type": "http", "method": "GET", "path": path, "headers": [], "query_string": b"", "app": app}
    expected = render(Request(scope), ErrorInfo(503, UNAVAILABLE, "Service Unavailable", {"Retry-After": "1"},
                                                kind="unavailable"))
    r = call(middleware(DyingIngress(deaths=9), attempts=1), "GET", path)
    assert r.status_code == 503
    assert r.content == expected.body
    assert {k: v for k, v in r.headers.items() if k != "content-length"} == {
        k: v for k, v in expected.headers.items() if k != "content-length"}


def test_every_operation_declares_the_proxys_503(tmp_path: Path) -> None:
    spec = TestClient(create_app(make_services(tmp_path))).get("/openapi.json").json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert "Retry-After" in operation["responses"]["503"]["headers"], (method, path)


def test_the_keyed_operations_document_the_idempotency_key_header(tmp_path: Path) -> None:
    spec = TestClient(create_app(make_services(tmp_path, debug_routes=True))).get("/openapi.json").json()
    for method, path in KEYED_ROUTES:
        params = spec["paths"][path][method.lower()].get("parameters", [])
        assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in params), (method, path)
    assert not any(p["name"] == "Idempotency-Key" for p in spec["paths"]["/api/v1/train"]["post"].get("parameters", []))


def test_the_keyed_operations_document_the_keys_limits_and_its_400(tmp_path: Path) -> None:
    from percept.tasks import IDEMPOTENCY_KEY_MAX

    spec = TestClient(create_app(make_services(tmp_path, debug_routes=True))).get("/openapi.json").json()
    for method, path in KEYED_ROUTES:
        operation = spec["paths"][path][method.lower()]
        (param,) = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
        assert param["schema"]["maxLength"] == IDEMPOTENCY_KEY_MAX
        assert "400" in operation["responses"], (method, path)


def test_every_get_that_starts_a_task_or_deletes_is_never_replayed(tmp_path: Path) -> None:
    """The dangerous direction of the proxy's lists: a new GET with an effect that is missing
    from UNSAFE_GETS would be sent twice after an ingress death. Its endpoint's source names
    the effect (a task submission or a clear/delete)."""
    import inspect

    from percept.api.openapi import api_routes

    effects = ("submit(", "_task(services", "_embed_task(services", ".clear", ".delete(")
    routes = api_routes(create_app(make_services(tmp_path, debug_routes=True)).routes)
    with_effects = {path for path, route in routes if "GET" in (route.methods or ())
                    and any(e in inspect.getsource(route.endpoint) for e in effects)}
    assert with_effects, "the scan finds the vendor GETs that queue tasks"
    assert with_effects <= UNSAFE_GETS, with_effects - UNSAFE_GETS
