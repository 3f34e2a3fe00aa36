"""A replayable request's body travels with its scope from the proxy to the ingress
(``percept.retry.INLINE_BODY``), so the ingress's app reads it without Serve's fetch back to
the proxy; anything else keeps Serve's way."""

from __future__ import annotations

import asyncio
import logging
import pickle
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from deployments.ingress import IngressDeployment
from percept.retry import (
    INLINE_BODY,
    INLINE_HARD_CAP_BYTES,
    INLINE_MAX_BYTES,
    InlineBodyMiddleware,
    ReplicaLossMiddleware,
    proxy_middlewares,
)
from percept.testing import read_body


class ServeLike:
    """Stands in for Serve between the proxy middleware and the ingress: the scope crosses
    pickled, and the replica's ``receive`` delivers the body again (Serve's own fetch), then
    the client's disconnect."""

    def __init__(self, ingress: Any) -> None:
        self.ingress = ingress
        self.scopes: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        replica_scope = pickle.loads(pickle.dumps(scope))
        messages: list[dict[str, Any]] = []
        while True:  # what the proxy's receive_asgi_messages hands the replica
            message = await receive()
            messages.append(message)
            if not message.get("more_body", False):
                break
        messages.append({"type": "http.disconnect"})

        async def replica_receive() -> dict[str, Any]:
            return messages.pop(0)

        await self.ingress(replica_scope, replica_receive, send)


class Echo:
    """The ingress's app: reads the body, answers it, then waits for the disconnect as a
    streaming response would. With ``deaths``, the first calls read the body and then fail
    before answering, as when the ingress replica dies (``raises``: the proxy's app raises;
    otherwise it returns without a response, as Serve's proxy does)."""

    def __init__(self, deaths: int = 0, raises: bool = False) -> None:
        self.after: list[dict[str, Any]] = []
        self.bodies: list[bytes] = []
        self.deaths = deaths
        self.raises = raises

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = await read_body(receive)
        self.bodies.append(body)
        if self.deaths > 0:
            self.deaths -= 1
            if self.raises:
                raise RuntimeError("the ingress replica died")
            return
        self.after.append(await receive())
        assert INLINE_BODY not in scope  # taken out before the app sees the scope
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"echo:" + body})


def call(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://proxy") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


def chain(deaths: int = 0, raises: bool = False, **kwargs: Any) -> tuple[ReplicaLossMiddleware, ServeLike, Echo]:
    echo = Echo(deaths, raises)
    serve = ServeLike(InlineBodyMiddleware(echo))
    return ReplicaLossMiddleware(serve, backoff_s=(0.0,), **kwargs), serve, echo


def test_a_replayable_body_travels_in_the_scope_and_the_app_reads_it_once() -> None:
    proxy, serve, echo = chain()
    r = call(proxy, "POST", "/process", content=b'{"documents": []}')
    assert r.text == 'echo:{"documents": []}'
    assert serve.scopes[0][INLINE_BODY] == b'{"documents": []}'
    # the app read the inline body, then got the disconnect: the body Serve fetched again was skipped
    assert echo.after == [{"type": "http.disconnect"}]


def test_a_body_that_is_not_replayed_or_too_large_keeps_serves_fetch() -> None:
    proxy, serve, echo = chain()
    r = call(proxy, "POST", "/v1/image/process/task", content=b"{}")  # a task creation: not buffered
    assert r.text == "echo:{}"
    assert INLINE_BODY not in serve.scopes[0]

    proxy, serve, echo = chain(inline_max_bytes=10)
    r = call(proxy, "POST", "/process", content=b"x" * 11)
    assert r.text == "echo:" + "x" * 11
    assert INLINE_BODY not in serve.scopes[0]
    assert echo.after == [{"type": "http.disconnect"}]


def test_a_get_carries_no_inline_body() -> None:
    proxy, serve, _ = chain()
    assert call(proxy, "GET", "/test").text == "echo:"
    assert INLINE_BODY not in serve.scopes[0]


@pytest.mark.parametrize("raises", [False, True], ids=["returns", "raises"])
def test_a_replay_after_the_replica_died_carries_the_inline_body_again(raises: bool) -> None:
    proxy, serve, echo = chain(deaths=1, raises=raises)
    body = b'{"documents": [1, 2, 3]}'
    r = call(proxy, "POST", "/process", content=body)
    assert r.status_code == 200 and r.text == "echo:" + body.decode()
    assert len(serve.scopes) == 2  # the first attempt lost its replica, the second answered
    assert [scope.get(INLINE_BODY) for scope in serve.scopes] == [body, body]
    assert echo.bodies == [body, body]
    assert echo.after == [{"type": "http.disconnect"}]


def test_a_body_sent_in_several_chunks_is_inlined_whole() -> None:
    chunks = [b'{"documents": ', b"[1, 2", b", 3]}"]
    received: list[dict[str, Any]] = []

    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    proxy, serve, echo = chain()

    async def counting(scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def counted() -> dict[str, Any]:
            message: dict[str, Any] = await receive()
            received.append(message)
            return message

        await proxy(scope, counted, send)

    r = call(counting, "POST", "/process", content=body())
    whole = b"".join(chunks)
    assert sum(1 for m in received if m.get("more_body")) >= len(chunks)  # it did arrive in pieces
    assert r.text == "echo:" + whole.decode()
    assert serve.scopes[0][INLINE_BODY] == whole
    assert echo.bodies == [whole]  # read once, whole: the pieces Serve fetched again were skipped
    assert echo.after == [{"type": "http.disconnect"}]


def test_a_body_at_the_cap_is_inlined_and_one_byte_more_is_not() -> None:
    proxy, serve, _ = chain(inline_max_bytes=10)
    call(proxy, "POST", "/process", content=b"x" * 10)
    call(proxy, "POST", "/process", content=b"x" * 11)
    assert serve.scopes[0][INLINE_BODY] == b"x" * 10
    assert INLINE_BODY not in serve.scopes[1]


def test_a_websocket_scope_keeps_its_key_and_its_receive() -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope)

    scope = {"type": "websocket", "path": "/ws", INLINE_BODY: b"x"}
    asyncio.run(InlineBodyMiddleware(app)(scope, None, None))
    assert seen[0][INLINE_BODY] == b"x"


@pytest.mark.parametrize(("setting", "expected"), [
    (None, INLINE_MAX_BYTES), ("0", 0), ("64", 64 * 2**10), ("99999", INLINE_HARD_CAP_BYTES)])
def test_the_inline_cap_setting(setting: str | None, expected: int, monkeypatch: pytest.MonkeyPatch,
                                caplog: pytest.LogCaptureFixture) -> None:
    if setting is None:
        monkeypatch.delenv("PERCEPT_PROXY_INLINE_MAX_KB", raising=False)
    else:
        monkeypatch.setenv("PERCEPT_PROXY_INLINE_MAX_KB", setting)
    with caplog.at_level(logging.WARNING, logger="percept.retry"):
        (entry,) = proxy_middlewares()
    assert entry.cls is ReplicaLossMiddleware and entry.kwargs["inline_max_bytes"] == expected
    assert ("over the" in caplog.text) == (setting == "99999")  # a clamped setting is said so


def test_the_default_inline_cap_is_256_kib_under_the_hard_cap() -> None:
    assert INLINE_MAX_BYTES == 256 * 2**10 <= INLINE_HARD_CAP_BYTES


def test_a_request_with_a_body_at_the_hard_cap_stays_under_grpcs_default_message_limit() -> None:
    """What Serve's proxy sends the replica: the pickled request with the scope, the body in it."""
    from ray.serve._private.proxy_request_response import ASGIProxyRequest

    headers = [(b"x-header-%d" % i, b"v" * 200) for i in range(64)]  # ~13 KB of headers
    scope = {"type": "http", "method": "POST", "path": "/merge_imgs", "raw_path": b"/merge_imgs", "root_path": "",
             "scheme": "http", "query_string": b"a=1" * 100, "http_version": "1.1", "server": ("10.0.0.1", 8000),
             "client": ("10.0.0.2", 50000), "headers": headers, "state": {}, INLINE_BODY: b"x" * INLINE_HARD_CAP_BYTES}
    arg = ASGIProxyRequest(scope, None, None).serialized_replica_arg("SERVE_PROXY_ACTOR-" + "n" * 40)
    assert INLINE_HARD_CAP_BYTES < len(arg) < 4 * 2**20


def test_the_ingress_app_reads_an_inline_body(tmp_path: Path) -> None:
    """The ingress's own app (as Serve builds it) answers /process from a body in the scope and
    never calls the replica's receive for it."""
    from percept.testing import make_services

    # unbound, on a stand-in: an instance of Serve's wrapper made without __init__ leaves an
    # un-awaited coroutine behind (its async __del__)
    ingress = SimpleNamespace(services=make_services(tmp_path, services=["tagger"]))
    app = IngressDeployment.func_or_class.__serve_build_asgi_app__(ingress)
    body = b'{"documents": [], "num_labels": 3}'
    sent: list[dict[str, Any]] = []

    async def never() -> dict[str, Any]:
        raise AssertionError("the body was fetched instead of read from the scope")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/process", "raw_path": b"/process", "root_path": "",
             "scheme": "http", "query_string": b"", "http_version": "1.1", "server": ("t", 80), "client": ("c", 1),
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
             INLINE_BODY: body}
    with TestClient(app):  # runs the app's startup
        asyncio.run(app(scope, never, send))
    assert sent[0]["status"] == 200, sent
    assert b'"number_documents_treated":0' in sent[1]["body"]
