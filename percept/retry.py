"""Calls whose replica dies: model calls retried by the ingress, requests by the proxy.

A model replica killed mid-request (OOM, node loss, ``kill -9``) fails its in-flight calls
with ``RayActorError``. For calls that are pure functions of their arguments (tag an image,
embed a text, recognise a page) the ingress sends the call once more: Serve routes it to a
live replica (or waits for the restarted one), and the caller sees an answer instead of an
error. Calls with effects (training, task work, uploads) are never retried here; a task
whose replica dies ends failed with its reason (``percept.tasks``).

Each handle field of a group names its idempotent methods (``absent(idempotent=...)`` in
``percept.handles``); :func:`retry_idempotent` wraps the handles of a group in place.

The ingress replica itself can die too: :class:`ReplicaLossMiddleware` (below) runs in
Serve's HTTP proxy and sends a safe request again, or answers 503 with ``Retry-After``
instead of the proxy's bare 500.

The body of such a request, which that middleware buffers anyway, also travels to the
ingress inside the request's scope (up to ``PERCEPT_PROXY_INLINE_MAX_KB``, 256 KiB by
default), and :class:`InlineBodyMiddleware`, outermost in the ingress's app, hands it to the
app without waiting for Serve's fetch of the body back from the proxy.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import fields
from typing import Any

logger = logging.getLogger(__name__)


def _dead_replica_errors() -> tuple[type[BaseException], ...]:
    from ray.exceptions import ActorUnavailableError, RayActorError

    return (RayActorError, ActorUnavailableError)


class _RetryingMethod:
    def __init__(self, handle: Any, name: str) -> None:
        self._handle = handle
        self._name = name

    def remote(self, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        first = getattr(self._handle, self._name).remote(*args, **kwargs)

        async def run() -> Any:
            try:
                return await first
            except _dead_replica_errors() as exc:
                logger.warning("%s: replica died during the call (%s); sending it once more",
                               self._name, type(exc).__name__)
                return await getattr(self._handle, self._name).remote(*args, **kwargs)

        return asyncio.ensure_future(run())


class RetryingHandle:
    """A DeploymentHandle whose idempotent methods are sent once more on a dead replica."""

    def __init__(self, handle: Any, methods: frozenset[str]) -> None:
        self._handle = handle
        self._methods = methods

    def options(self, **kwargs: Any) -> RetryingHandle:
        return RetryingHandle(self._handle.options(**kwargs), self._methods)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self._methods:
            return _RetryingMethod(self._handle, name)
        return getattr(self._handle, name)


def retry_idempotent(group: Any) -> Any:
    """Wrap the real handles of a handle group (dataclass) whose field lists idempotent methods."""
    from percept.handles import Absent

    for field in fields(group):
        methods = field.metadata.get("idempotent")
        handle = getattr(group, field.name)
        in_process = not getattr(type(handle), "retry_on_replica_loss", True)  # e.g. a model in the ingress
        if methods and not in_process and not isinstance(handle, (Absent, RetryingHandle)):
            setattr(group, field.name, RetryingHandle(handle, methods))
    return group


# --- The proxy side: a request whose ingress replica died ---------------------------------
#
# Serve's HTTP proxy answers nothing when the ingress replica serving a request dies
# (``RayActorError``): its ASGI app returns without a response and uvicorn sends a bare 500.
# :class:`ReplicaLossMiddleware` runs in the proxy (installed by Serve from
# ``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH=percept.retry.proxy_middlewares``, set in every
# node's environment by ``cluster/local.sh`` and the RayService manifest) and wraps it:
#
# * a request that is safe to send twice (:func:`replayable`) and whose body fits
#   ``PERCEPT_PROXY_REPLAY_MAX_MB`` is buffered and sent again when no response started (up to
#   4 attempts, 0.1, 0.5 and 1 s apart): the router skips a replica it cannot reach (over
#   Serve's gRPC transport a dead one is "unavailable" until the controller drops it, within
#   a control-loop tick or two), so a later attempt lands on a live one;
# * anything else, or a request that lost its replica on every attempt, gets a 503 with
#   ``Retry-After`` (the client may retry), never a 500.
#
# Safe to send twice: GET/HEAD/OPTIONS except the vendor routes that start work on a GET,
# the POST routes that compute an answer from their body and store nothing, and, with an
# ``Idempotency-Key`` header, the routes whose one effect is a task (``KEYED_ROUTES``: task
# creation keeps one task per key, ``percept.tasks``).

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# GETs of the vendor contracts with effects (they queue a task or delete): never replayed.
UNSAFE_GETS = frozenset({"/scrape", "/clear_all", "/highlight_all_images", "/get_all_resnet_embeddings",
                         "/get_all_clip_embeddings"})
# POSTs that are pure functions of their body (tagging, queries, a token): replayed.
PURE_POSTS = frozenset({"/process", "/hello", "/merge_imgs", "/find_all_complementary", "/find_all_similar_by_lab",
                        "/get_top_24_resnet_similar", "/get_top_25_clip_similar", "/correction/metadata",
                        "/v1/auth/token", "/api/auth/token"})
IDEMPOTENCY_HEADER = b"idempotency-key"
# Routes whose only effect is creating one task: with an Idempotency-Key, a repeat answers the
# same task. (Inspection's train and serve write model records first: not keyed.)
KEYED_ROUTES = frozenset({
    ("POST", "/v1/audio/process/task"), ("POST", "/v1/audio/extract/task"), ("POST", "/v1/image/process/task"),
    ("POST", "/v1/comparison/audio/image/task"), ("POST", "/v1/comparison/audio/text/task"),
    ("POST", "/correction/jobs"), ("POST", "/platform/tasks/selftest"), ("GET", "/scrape"),
    ("GET", "/highlight_all_images"), ("GET", "/get_all_resnet_embeddings"), ("GET", "/get_all_clip_embeddings"),
})


def replayable(method: str, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> bool:
    """Whether sending this request a second time is harmless."""
    path = path.rstrip("/") or "/"
    if method in SAFE_METHODS and path not in UNSAFE_GETS:
        return True
    if method == "POST" and path in PURE_POSTS:
        return True
    keyed = any(name.lower() == IDEMPOTENCY_HEADER for name, _ in headers or [])
    return keyed and ("GET" if method == "HEAD" else method, path) in KEYED_ROUTES


# --- The body of a buffered request travels with its scope ---------------------------------
#
# Serve's proxy sends a replica the request's scope only; the replica fetches the body with an
# actor call back to the proxy (``receive_asgi_messages``) before the app can read it (a GET,
# whose route never reads the body, does not wait for it). The proxy middleware holds the whole
# body of a replayable request anyway: up to ``inline_max_bytes`` it adds it to the scope it
# passes on (Serve pickles the scope into the request), and :class:`InlineBodyMiddleware`,
# outermost in the ingress's app, hands it to the app at once. Serve's own fetch still runs
# (Serve starts it for every request) and is skipped over, off the request's path. Measured on
# a 2-core machine with a 15 KB POST, within pairs of back-to-back runs: 0.9-2.8 ms and
# 1.1-3.3 core-ms less per request (docs/performance.md, finding 11).
#
# The default cap is small because only small bodies were measured, and an inlined body
# crosses from the proxy twice (in the scope, and again in Serve's fetch, which cannot be
# turned off) and is held twice in the ingress until the request ends.
# ``PERCEPT_PROXY_INLINE_MAX_KB`` changes it, up to ``INLINE_HARD_CAP_BYTES``.
INLINE_BODY = "percept.inline_body"
INLINE_MAX_BYTES = 256 * 2**10  # the default cap
INLINE_HARD_CAP_BYTES = 2 * 2**20  # well under gRPC's default 4 MB message limit with the scope around it


class InlineBodyMiddleware:
    """The ingress half: a scope carrying the body answers the app's first ``receive`` with it;
    later calls pass the client's disconnect through, skipping the body Serve fetched again."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = scope.pop(INLINE_BODY, None) if scope["type"] == "http" else None
        if not isinstance(body, bytes):
            await self.app(scope, receive, send)
            return
        pending = True

        async def inline_receive() -> dict[str, Any]:
            nonlocal pending
            if pending:
                pending = False
                return {"type": "http.request", "body": body, "more_body": False}
            while True:
                message: dict[str, Any] = await receive()
                if message["type"] != "http.request":
                    return message

        await self.app(scope, inline_receive, send)


class ReplicaLossMiddleware:
    """Replays a safe request whose replica died before answering; otherwise answers 503.

    A replayable body of at most ``inline_max_bytes`` travels in the scope too
    (:class:`InlineBodyMiddleware`); 0 turns that off."""

    def __init__(self, app: Any, attempts: int = 4, backoff_s: tuple[float, ...] = (0.1, 0.5, 1.0),
                 replay_max_bytes: int = 16 * 2**20, retry_after_s: int = 1,
                 inline_max_bytes: int = INLINE_MAX_BYTES) -> None:
        self.app = app
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s
        self.replay_max_bytes = replay_max_bytes
        self.retry_after_s = retry_after_s
        self.inline_max_bytes = inline_max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope.get("method", "GET"), scope.get("path", "/")
        buffered: list[dict[str, Any]] = []
        disconnected = False
        inline: bytes | None = None
        can_replay = replayable(method, path, scope.get("headers"))
        if can_replay:
            can_replay, disconnected = await self._buffer(receive, buffered)
            if disconnected:
                return  # the client left before its body arrived
            if can_replay:
                body = b"".join(m.get("body", b"") for m in buffered)
                inline = body if 0 < len(body) <= self.inline_max_bytes else None

        started = False

        async def tracked_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        def replayer(pending: list[dict[str, Any]]) -> Any:
            async def replay_receive() -> dict[str, Any]:
                nonlocal disconnected
                if pending:
                    return pending.pop(0)
                message = await receive()
                if message["type"] == "http.disconnect":
                    disconnected = True
                return message

            return replay_receive

        for attempt in range(self.attempts):
            try:
                # a copy per attempt: the proxy appends a route prefix to root_path in place
                attempt_scope = dict(scope)
                if inline is not None:
                    attempt_scope[INLINE_BODY] = inline
                await self.app(attempt_scope, replayer(list(buffered)), tracked_send)
            except Exception:
                if started:
                    raise
                logger.warning("%s %s: the proxy failed before answering", method, path, exc_info=True)
            if started:
                return
            last = attempt + 1 >= self.attempts
            if disconnected or not can_replay or last:
                break
            delay = self.backoff_s[min(attempt, len(self.backoff_s) - 1)] if self.backoff_s else 0.0
            logger.warning("%s %s: its replica died before answering; sending it again in %.1f s (attempt %d)",
                           method, path, delay, attempt + 2)
            await asyncio.sleep(delay)
        if disconnected:
            return  # nobody to answer
        logger.warning("%s %s: no replica answered; 503", method, path)
        await self._unavailable(path, send)

    async def _buffer(self, receive: Any, into: list[dict[str, Any]]) -> tuple[bool, bool]:
        """Read the body into ``into``; (whether it all fits the replay cap, client disconnected)."""
        size = 0
        while True:
            message = await receive()
            into.append(message)
            if message["type"] == "http.disconnect":
                return False, True
            size += len(message.get("body", b""))
            if size > self.replay_max_bytes:
                return False, False  # too large to keep: sent once, the rest streams through
            if not message.get("more_body", False):
                return True, False

    async def _unavailable(self, path: str, send: Any) -> None:
        body = json.dumps(unavailable_body(path), separators=(",", ":")).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"retry-after", str(self.retry_after_s).encode())]
        if error_contract(path) == "inspection":
            headers.append((b"content-language", b"en"))
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})


UNAVAILABLE = "unavailable: the replica serving this request stopped; retry later"
TAGGER_PATHS = ("/process", "/test", "/health-check", "/work/status")


def error_contract(path: str) -> str:
    """Whose error format ``path`` answers in: ``inspection`` (``/api``), ``tagger`` (the
    Detect envelope) or ``detail`` (everything else)."""
    if path == "/api" or path.startswith("/api/"):
        return "inspection"
    if path in TAGGER_PATHS or path.startswith("/work/status"):
        return "tagger"
    return "detail"


def unavailable_body(path: str) -> dict[str, Any]:
    """The 503 body in the error format of the contract owning ``path``.

    The proxy does not load the application (its routers pull in the model code), so the three
    shapes are written here; a unit test checks them against the app's own renderers.
    """
    contract = error_contract(path)
    if contract == "inspection":
        return {"errors": {"detail": UNAVAILABLE, "source": {"pointer": path}, "status": 503,
                           "title": "Service Unavailable"}}
    if contract == "tagger":
        return {"status": {"code": 503, "message": "Service Unavailable"}, "data": [], "error": UNAVAILABLE,
                "number_documents_treated": 0, "number_documents_non_treated": 0, "list_id_not_treated": [],
                "memory_used": "", "ram_used": ""}
    return {"detail": UNAVAILABLE}


def proxy_middlewares() -> list[Any]:
    """Serve's proxy callback (``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH``): our middlewares."""
    from starlette.middleware import Middleware

    max_mb = float(os.environ.get("PERCEPT_PROXY_REPLAY_MAX_MB", "16"))
    inline_kb = float(os.environ.get("PERCEPT_PROXY_INLINE_MAX_KB", str(INLINE_MAX_BYTES // 2**10)))
    inline_max = max(0, int(inline_kb * 2**10))
    if inline_max > INLINE_HARD_CAP_BYTES:
        logger.warning("PERCEPT_PROXY_INLINE_MAX_KB=%s is over the %d KiB cap; using %d KiB",
                       os.environ["PERCEPT_PROXY_INLINE_MAX_KB"], INLINE_HARD_CAP_BYTES // 2**10,
                       INLINE_HARD_CAP_BYTES // 2**10)
        inline_max = INLINE_HARD_CAP_BYTES
    # a body is inlined only if it is also buffered for replay: the cap in effect is
    # min(this, PERCEPT_PROXY_REPLAY_MAX_MB, INLINE_HARD_CAP_BYTES)
    return [Middleware(ReplicaLossMiddleware, replay_max_bytes=int(max_mb * 2**20), inline_max_bytes=inline_max)]
