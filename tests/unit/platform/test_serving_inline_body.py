"""A replayable request's body travels with its scope from the proxy to the ingress
(``percept.retry.INLINE_BODY``), so the ingress's app reads it without Serve's fetch back to
the proxy; anything else keeps Serve's way."""

from __future__ import annotations

import asyncio
import pickle
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from deployments.ingress import IngressDeployment
from percept.retry import INLINE_BODY, INLINE_MAX_BYTES, InlineBodyMiddleware, ReplicaLossMiddleware


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
    streaming response would."""

    def __init__(self) -> None:
        self.after: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.after.append(await receive())
        assert INLINE_BODY not in scope  # taken out before the app sees the scope
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"echo:" + body})


def call(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://proxy") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


def chain(**kwargs: Any) -> tuple[ReplicaLossMiddleware, ServeLike, Echo]:
    echo = Echo()
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


def test_the_inline_cap_stays_under_grpcs_default_message_limit() -> None:
    assert INLINE_MAX_BYTES < 4 * 2**20


def test_the_ingress_app_reads_an_inline_body(tmp_path: Path) -> None:
    """The ingress's own app (as Serve builds it) answers /process from a body in the scope and
    never calls the replica's receive for it."""
    from percept.testing import make_services

    ingress = object.__new__(IngressDeployment.func_or_class)
    ingress.services = make_services(tmp_path, services=["tagger"])
    app = ingress.__serve_build_asgi_app__()
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
