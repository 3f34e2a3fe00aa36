"""Long work as tasks: a record in the state store, run without blocking the ingress.

A request that takes seconds creates a :class:`TaskRecord` and returns its id at once. The
:class:`TaskRunner` (one per ingress replica) awaits the work — a call on a model deployment
or a Ray task, so the ingress event loop stays free — and writes status, progress, result
and error into the store. Work reports progress through a :class:`ProgressReporter`, a
small picklable object that any deployment or Ray task can call.

A runner heartbeats its running tasks. A task whose heartbeat is older than
``STALE_AFTER_S`` (its replica crashed or was stopped) is reported ``failed`` with the reason
the next time anyone reads it, so no task hangs forever.

Quotas: each principal may have at most ``max_running`` tasks of one kind running and
``max_queued`` more waiting (``pending``) behind them (:class:`TaskQuotas`, per kind). A
submission past both is refused with 429 and ``Retry-After``; a queued task starts when one
of the principal's running tasks of its kind ends. Active tasks are indexed in a small
namespace (``tasks.active``) so counting never reads a principal's whole history.

Idempotency: a submission made under an ``Idempotency-Key`` header (the request's key is in
:data:`idempotency_key`) creates at most one task per principal, kind and key; the same
request sent again (a client's retry, or Serve's proxy replaying it after the ingress
replica died, ``percept.retry``) answers the task the first one created.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from percept.errors import ServiceError, TooManyRequests, unwrap_remote_error
from percept.storage.state import StateStore, open_state_store

logger = logging.getLogger(__name__)

TASKS = "tasks"
ACTIVE = "tasks.active"
IDEMPOTENT = "tasks.idempotent"  # principal, kind, key -> the task id it created
# The request's Idempotency-Key (set by the ingress per request, percept.api.app).
idempotency_key: ContextVar[str | None] = ContextVar("percept_idempotency_key", default=None)
IDEMPOTENCY_KEY_MAX = 200  # characters of an Idempotency-Key: visible ASCII (0x21-0x7E)


def idempotency_key_problem(value: bytes) -> str | None:
    """Why ``value`` is not a usable Idempotency-Key (the ingress answers 400), or None."""
    if len(value) > IDEMPOTENCY_KEY_MAX:
        return f"Idempotency-Key is longer than {IDEMPOTENCY_KEY_MAX} characters"
    if any(byte < 0x21 or byte > 0x7E for byte in value):
        return "Idempotency-Key may hold only visible ASCII characters (no spaces or control characters)"
    return None
HEARTBEAT_S = 5.0
STALE_AFTER_S = 60.0
QUEUE_POLL_S = 0.25


class TaskQuota(BaseModel):
    """Per principal and task kind: how many may run at once and how many may wait."""

    max_running: int = Field(4, ge=1, le=1000)
    max_queued: int = Field(16, ge=0, le=10_000)
    retry_after_s: int = Field(5, ge=1, le=3600, description="Retry-After of a refused submission")


class TaskQuotas(BaseModel):
    """The default quota and per-kind overrides (``task_quotas`` in the application args)."""

    default: TaskQuota = Field(default_factory=TaskQuota)
    # The self-test is a diagnostic: nobody needs many countdowns at once.
    kinds: dict[str, TaskQuota] = Field(
        default_factory=lambda: {"platform.selftest": TaskQuota(max_running=2, max_queued=2)}
    )

    def for_kind(self, kind: str) -> TaskQuota:
        return self.kinds.get(kind, self.default)


class TaskStatus(StrEnum):
    pending = "pending"
    running = "running"
    finished = "finished"
    failed = "failed"

    @property
    def done(self) -> bool:
        return self in (TaskStatus.finished, TaskStatus.failed)


class TaskRecord(BaseModel):
    """What the store keeps about one task."""

    id: str
    kind: str
    owner: str
    status: TaskStatus = TaskStatus.pending
    progress: float = Field(0.0, ge=0, le=100)
    message: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    result: Any = None
    error: str | None = None
    error_status: int | None = None
    created_at: float = Field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    heartbeat_at: float | None = None

    @property
    def ready(self) -> bool:
        return self.status == TaskStatus.finished


class TaskManager:
    """Create, read and update task records."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def create(self, kind: str, owner: str, params: dict[str, Any] | None = None,
               task_id: str | None = None) -> TaskRecord:
        record = TaskRecord(id=task_id or str(uuid.uuid4()), kind=kind, owner=owner, params=params or {})
        self.store.put(ACTIVE, record.id, {"id": record.id, "owner": owner, "kind": kind,
                                           "status": record.status.value, "at": record.created_at})
        self.store.put(TASKS, record.id, record.model_dump(mode="json"))
        return record

    def active(self, owner: str, kind: str) -> tuple[int, int]:
        """(pending, running) tasks of ``owner`` and ``kind``; ended or stale ones are pruned."""
        pending = running = 0
        now = time.time()
        for doc in self.store.list(ACTIVE, owner=owner):
            if doc.get("kind") != kind:
                continue
            if now - float(doc.get("at", 0)) > STALE_AFTER_S:
                record = self.get(str(doc["id"]))  # fails the task if its replica is gone
                if record is None or record.status.done:
                    self.store.delete(ACTIVE, str(doc["id"]))
                    continue
            if doc.get("status") == TaskStatus.running.value:
                running += 1
            else:
                pending += 1
        return pending, running

    def get(self, task_id: str) -> TaskRecord | None:
        doc = self.store.get(TASKS, task_id)
        if doc is None:
            return None
        record = TaskRecord.model_validate(doc)
        if not record.status.done and self._is_stale(record):
            return self.fail(task_id, "interrupted: the replica running this task stopped")
        return record

    def get_owned(self, task_id: str, owner: str, kind: str | None = None) -> TaskRecord | None:
        """The task if it exists and belongs to ``owner`` (and is of ``kind``), else None."""
        record = self.get(task_id)
        if record is None or record.owner != owner:
            return None
        if kind is not None and record.kind != kind:
            return None
        return record

    def list(self, owner: str | None = None, kind: str | None = None) -> list[TaskRecord]:
        records = [TaskRecord.model_validate(d) for d in self.store.list(TASKS, owner=owner)]
        return [r for r in records if kind is None or r.kind == kind]

    @staticmethod
    def _is_stale(record: TaskRecord) -> bool:
        last = record.heartbeat_at or record.created_at
        return time.time() - last > STALE_AFTER_S

    def _patch(self, task_id: str, **changes: Any) -> TaskRecord | None:
        def fn(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            if doc is None:
                return None
            if TaskStatus(doc["status"]).done and "status" not in changes:
                return doc  # a late progress report never reopens a finished task
            doc.update(changes)
            return doc

        doc = self.store.update(TASKS, task_id, fn)
        if "status" in changes:
            if TaskStatus(changes["status"]).done or doc is None:
                self.store.delete(ACTIVE, task_id)
            else:
                self.store.update(ACTIVE, task_id, lambda d: d and {**d, "status": changes["status"],
                                                                    "at": time.time()})
        return TaskRecord.model_validate(doc) if doc else None

    def start(self, task_id: str) -> TaskRecord | None:
        now = time.time()
        return self._patch(task_id, status=TaskStatus.running.value, started_at=now, heartbeat_at=now)

    def touch(self, task_id: str) -> None:
        """Keep a queued task's index entry fresh (it is alive, only waiting)."""
        self.store.update(ACTIVE, task_id, lambda d: d and {**d, "at": time.time()})

    def heartbeat(self, task_id: str) -> None:
        self._patch(task_id, heartbeat_at=time.time())
        self.touch(task_id)

    def progress(self, task_id: str, percent: float, message: str = "") -> TaskRecord | None:
        return self._patch(
            task_id,
            progress=float(min(100.0, max(0.0, percent))),
            message=message,
            heartbeat_at=time.time(),
        )

    def finish(self, task_id: str, result: Any) -> TaskRecord | None:
        now = time.time()
        return self._patch(
            task_id,
            status=TaskStatus.finished.value,
            progress=100.0,
            message="finished",
            result=result,
            finished_at=now,
            heartbeat_at=now,
        )

    def fail(self, task_id: str, error: str, status_code: int | None = None) -> TaskRecord | None:
        now = time.time()
        return self._patch(
            task_id,
            status=TaskStatus.failed.value,
            message="failed",
            error=error,
            error_status=status_code,
            finished_at=now,
            heartbeat_at=now,
        )


class ProgressReporter:
    """Picklable progress callback for work running in another process.

    ``reporter(42.0, "embedding images")`` writes into the task record. It opens its own
    store connection lazily, so it can be sent to any deployment or Ray task.
    """

    def __init__(self, state_url: str, task_id: str, start: float = 0.0, end: float = 100.0) -> None:
        self.state_url = state_url
        self.task_id = task_id
        self.start = start
        self.end = end
        self._manager: TaskManager | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"state_url": self.state_url, "task_id": self.task_id, "start": self.start, "end": self.end}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def scaled(self, start: float, end: float) -> ProgressReporter:
        """A reporter mapping 0–100 onto [start, end] of this one's range (for sub-steps)."""
        span = self.end - self.start
        return ProgressReporter(
            self.state_url, self.task_id, self.start + span * start / 100, self.start + span * end / 100
        )

    def __call__(self, percent: float, message: str = "") -> None:
        if self._manager is None:
            self._manager = TaskManager(open_state_store(self.state_url))
        value = self.start + (self.end - self.start) * max(0.0, min(100.0, percent)) / 100.0
        try:
            self._manager.progress(self.task_id, value, message)
        except Exception:  # progress is advisory: never fail the work because of it
            logger.warning("could not record progress of task %s", self.task_id, exc_info=True)


Work = Callable[[ProgressReporter], Awaitable[Any]]


class TaskRunner:
    """Runs task work on the ingress event loop (the work itself awaits remote calls)."""

    def __init__(self, manager: TaskManager, state_url: str, quotas: TaskQuotas | None = None) -> None:
        self.manager = manager
        self.state_url = state_url
        self.quotas = quotas or TaskQuotas()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._slots: dict[tuple[str, str], asyncio.Lock] = {}

    def submit(
        self, kind: str, owner: str, work: Work, params: dict[str, Any] | None = None
    ) -> TaskRecord:
        """Create the record and start (or queue) the work; returns at once.

        Raises :class:`TooManyRequests` (429, ``Retry-After``) when ``owner`` already has
        ``max_running + max_queued`` active tasks of ``kind``.
        """
        key = idempotency_key.get()
        task_id = None
        if key:
            existing, task_id = self._claim(kind, owner, key)
            if existing is not None:
                return existing
        quota = self.quotas.for_kind(kind)
        pending, running = self.manager.active(owner, kind)
        if pending + running >= quota.max_running + quota.max_queued:
            raise TooManyRequests(
                f"Too many tasks of kind {kind!r}: {running} running and {pending} queued "
                f"(at most {quota.max_running} running and {quota.max_queued} queued per user)",
                headers={"Retry-After": str(quota.retry_after_s)},
                code="task_quota",
            )
        record = self.manager.create(kind, owner, params, task_id)
        reporter = ProgressReporter(self.state_url, record.id)
        self._running[record.id] = asyncio.get_running_loop().create_task(
            self._run(record, work, reporter)
        )
        return record

    def _claim(self, kind: str, owner: str, key: str) -> tuple[TaskRecord | None, str]:
        """(the task this key already created, or None; the id a new task takes)."""
        store = self.manager.store
        slot = hashlib.sha256(f"{owner}\0{kind}\0{key}".encode()).hexdigest()
        task_id = str(uuid.uuid4())
        if store.put_if_absent(IDEMPOTENT, slot, {"task_id": task_id, "owner": owner, "kind": kind,
                                                  "at": time.time()}):
            return None, task_id
        doc = store.get(IDEMPOTENT, slot) or {}
        task_id = str(doc.get("task_id") or task_id)
        existing = self.manager.get(task_id)
        if existing is not None:
            logger.info("task %s: the same request again (Idempotency-Key), not a second task", task_id)
            return existing, task_id
        # claimed by a replica that stopped before creating the task: create it under that id
        return None, task_id

    async def _wait_for_slot(self, record: TaskRecord) -> None:
        """Start the task once its owner runs fewer than ``max_running`` of its kind.

        Exact within one replica (a lock per owner and kind); across ingress replicas two
        tasks may start in the same instant and overshoot by one, never more per replica.
        """
        quota = self.quotas.for_kind(record.kind)
        lock = self._slots.setdefault((record.owner, record.kind), asyncio.Lock())
        last_touch = time.monotonic()
        while True:
            async with lock:
                _, running = await asyncio.to_thread(self.manager.active, record.owner, record.kind)
                if running < quota.max_running:
                    await asyncio.to_thread(self.manager.start, record.id)
                    return
            if time.monotonic() - last_touch > HEARTBEAT_S:
                await asyncio.to_thread(self.manager.touch, record.id)
                last_touch = time.monotonic()
            await asyncio.sleep(QUEUE_POLL_S)

    async def _run(self, record: TaskRecord, work: Work, reporter: ProgressReporter) -> None:
        task_id = record.id
        await self._wait_for_slot(record)
        beat = asyncio.create_task(self._heartbeat(task_id))
        try:
            result = await work(reporter)
        except Exception as exc:
            cause = unwrap_remote_error(exc)
            if isinstance(cause, ServiceError):
                reason, code = str(cause.detail), cause.status_code
            else:
                logger.exception("task %s failed", task_id)
                reason, code = f"{type(cause).__name__}: {cause}", 500
            await asyncio.to_thread(self.manager.fail, task_id, reason, code)
        else:
            await asyncio.to_thread(self.manager.finish, task_id, result)
        finally:
            beat.cancel()
            self._running.pop(task_id, None)

    async def _heartbeat(self, task_id: str) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            await asyncio.to_thread(self.manager.heartbeat, task_id)

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Wait for running tasks (tests, graceful shutdown)."""
        if self._running:
            await asyncio.wait(list(self._running.values()), timeout=timeout_s)
