"""``/platform``: health, model and plugin status, and task progress (poll, SSE, websocket).

The debug routes (echo, hop, task self-test) are in :mod:`percept.api.debug`, served only
with ``debug_routes: true``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any, cast

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from percept.api.deps import LimitedPrincipal, ServicesDep, websocket_owner
from percept.errors import NotFound
from percept.handles import Handle
from percept.services import Services
from percept.tasks import TaskRecord

router = APIRouter(tags=["platform"])

STATUS_TIMEOUT_S = 5.0
POLL_S = 0.5
STREAM_LIMIT_S = 3600.0


async def model_statuses(services: Services) -> dict[str, dict[str, Any]]:
    """Ask every model deployment for its status (weights, device), in parallel.

    A deployment scaled to zero (autoscaling ``min_replicas: 0``; no replica at all, not even
    a starting one) is not asked (asking would start a replica): it is reported from Serve's
    replica count with its last status seen here and the cold start its last replica
    measured (``startup_s``, seconds from its process start to ready).
    """
    running = await live_replicas()

    async def one(name: str, handle: Handle) -> tuple[str, dict[str, Any]]:
        key = (str(getattr(handle, "app_name", "")), str(getattr(handle, "deployment_name", "")))
        if running is not None and running.get(key, 1) == 0:
            return name, scaled_to_zero(name, _LAST_STATUS.get(name))
        try:
            status = dict(await asyncio.wait_for(handle.status.remote(), STATUS_TIMEOUT_S))
            _LAST_STATUS[name] = status
            return name, status
        except Exception as exc:  # a broken replica is reported, not raised
            return name, {"name": name, "available": False, "message": f"unavailable: {type(exc).__name__}: {exc}"}

    pairs = await asyncio.gather(*(one(n, h) for n, h in sorted(services.deployments(), key=lambda p: p[0])))
    return dict(pairs)


# The last status each deployment answered (this ingress replica): what a deployment now at
# zero replicas reported when it last ran, its cold start included.
_LAST_STATUS: dict[str, dict[str, Any]] = {}


async def live_replicas() -> dict[tuple[str, str], int] | None:
    """Replicas per ``(application, deployment)`` that are not stopping (running, starting,
    pending, …); None outside Serve (tests) or if unknown."""
    import ray

    if not ray.is_initialized():
        return None
    from ray import serve

    try:
        status = await asyncio.wait_for(asyncio.to_thread(serve.status), STATUS_TIMEOUT_S)
    except Exception:
        return None
    # replica_states is keyed by the state's value ("RUNNING", "STARTING", "STOPPING", …)
    return {(app_name, name): sum(int(n) for state, n in cast(dict[str, int], dep.replica_states).items()
                                  if state != "STOPPING")
            for app_name, app in status.applications.items() for name, dep in app.deployments.items()}


def scaled_to_zero(name: str, last: dict[str, Any] | None) -> dict[str, Any]:
    """The status of a deployment with no replica now (it starts on its next request)."""
    cold = (last or {}).get("startup_s")
    available = bool((last or {}).get("available", True))
    note = f"last cold start {cold:.1f} s" if isinstance(cold, (int, float)) else "cold start not measured yet"
    message = f"scaled to zero: starts on its next request ({note})"
    if not available:
        message += f"; when it last ran: {(last or {}).get('message')}"
    return {**(last or {"name": name}), "available": available, "replicas": 0, "scaled_to_zero": True,
            "cold_start_s": cold, "message": message}


@router.get("/healthz")
def healthz(services: ServicesDep) -> dict[str, str]:
    """Liveness of the ingress and its state store."""
    services.state.ping()
    return {"status": "ok"}


@router.get("/platform/health")
async def health(services: ServicesDep) -> dict[str, Any]:
    """Every deployment's status: ``ok`` when all are available, else ``degraded``."""
    models = await model_statuses(services)
    degraded = [n for n, s in models.items() if not s.get("available")]
    return {
        "status": "degraded" if degraded else "ok",
        "unavailable": degraded,
        "state_store": services.state.url.split("://")[0],
        "blob_store": services.blobs.url if "://" not in services.blobs.url else services.blobs.url.split("://")[0],
        "deployments": models,
    }


@router.get("/platform/models")
async def models(services: ServicesDep) -> dict[str, Any]:
    return {"models": await model_statuses(services)}


@router.get("/platform/plugins")
def plugins(services: ServicesDep) -> dict[str, Any]:
    return {
        "plugins": [p.model_dump() for p in services.plugins.values()],
        "errors": [e.model_dump() for e in services.plugin_errors],
    }


def _public(record: TaskRecord) -> dict[str, Any]:
    return record.model_dump(mode="json", exclude={"params"})


def _owned(services: Services, task_id: str, owner: str) -> TaskRecord:
    record = services.tasks.get_owned(task_id, owner)
    if record is None:
        raise NotFound("Task not found")
    return record


@router.get("/platform/tasks")
def list_tasks(services: ServicesDep, principal: LimitedPrincipal, kind: str | None = None) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in _public(r).items() if k != "result"}
        for r in services.tasks.list(owner=principal.id, kind=kind)
    ]


@router.get("/platform/tasks/{task_id}")
def get_task(task_id: str, services: ServicesDep, principal: LimitedPrincipal) -> dict[str, Any]:
    return _public(_owned(services, task_id, principal.id))


def _event(record: TaskRecord) -> dict[str, Any]:
    return {
        "task_id": record.id,
        "status": record.status.value,
        "progress": record.progress,
        "message": record.message,
        "error": record.error,
    }


async def watch_task(
    services: Services, task_id: str, owner: str, kind: str | None = None
) -> AsyncIterator[TaskRecord | None]:
    """Each changed state of a task until it ends; ``None`` once if it is not (or no longer) there.

    The one polling loop behind every progress stream (platform SSE and websocket, the
    services' own event routes).
    """
    last: tuple[Any, ...] | None = None
    deadline = time.monotonic() + STREAM_LIMIT_S
    while time.monotonic() < deadline:
        record = await asyncio.to_thread(services.tasks.get_owned, task_id, owner, kind)
        if record is None:
            yield None
            return
        state = (record.status, record.progress, record.message, record.error)
        if state != last:
            yield record
            last = state
        if record.status.done:
            return
        await asyncio.sleep(POLL_S)


async def task_events(services: Services, task_id: str, owner: str) -> AsyncIterator[dict[str, Any]]:
    """Progress events of a task until it ends (each change once)."""
    async for record in watch_task(services, task_id, owner):
        if record is None:
            yield {"task_id": task_id, "status": "missing", "progress": 0, "message": "", "error": "Task not found"}
            return
        yield _event(record)


@router.get("/platform/tasks/{task_id}/events")
async def stream_task(task_id: str, services: ServicesDep, principal: LimitedPrincipal) -> StreamingResponse:
    """Server-sent events: one ``progress`` event per change, ending with the final status."""
    _owned(services, task_id, principal.id)

    async def body() -> AsyncIterator[str]:
        async for event in task_events(services, task_id, principal.id):
            yield f"event: progress\ndata: {json.dumps(event)}\n\n"

    return StreamingResponse(body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@router.websocket("/platform/tasks/{task_id}/ws")
async def task_ws(websocket: WebSocket, task_id: str) -> None:
    """The same events over a websocket; the token comes as ``?token=`` or a bearer header."""
    services: Services = websocket.app.state.services
    owner = websocket_owner(websocket, services)
    if owner is None:
        await websocket.close(code=4401, reason="Not authenticated")
        return
    await websocket.accept()
    try:
        async for event in task_events(services, task_id, owner):
            await websocket.send_json(event)
    except WebSocketDisconnect:
        return
    await websocket.close()
