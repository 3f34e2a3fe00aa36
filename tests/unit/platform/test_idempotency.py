"""Idempotency-Key: a task-creating request sent twice (a client's retry, or the proxy replaying
it after the ingress replica died) creates one task, not two."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from deployments.echo import Echo
from percept.api.app import create_app
from percept.handles import DebugHandles
from percept.storage.state import SqliteStateStore
from percept.tasks import (
    IDEMPOTENT,
    ProgressReporter,
    TaskManager,
    TaskQuota,
    TaskQuotas,
    TaskRunner,
    idempotency_key,
)
from percept.testing import LocalHandle, make_services, user_headers


def test_the_same_key_answers_the_same_task_over_http(tmp_path: Path) -> None:
    services = make_services(tmp_path, DebugHandles(echo=LocalHandle(Echo())), debug_routes=True,
                             admins=["user:ann", "user:bob"])
    with TestClient(create_app(services)) as client:
        headers = {name: user_headers(client, name) for name in ("ann", "bob")}

        def create(who: str, key: str | None) -> str:
            extra = {"Idempotency-Key": key} if key else {}
            r = client.post("/platform/tasks/selftest", params={"steps": 1, "step_s": 0.01},
                            headers={**headers[who], **extra})
            assert r.status_code == 202, r.text
            return str(r.json()["task_id"])

        first = create("ann", "order-1")
        assert create("ann", "order-1") == first  # the retry: the same task
        assert create("ann", "order-2") != first  # another key: another task
        assert create("bob", "order-1") != first  # keys are per principal
        assert create("ann", None) != create("ann", None)  # no key: every request is new
        mine = services.tasks.store.list("tasks", owner="user:ann")
        assert len(mine) == 4  # order-1, order-2 and the two without a key


def _runner(tmp_path: Path, **quota: int) -> TaskRunner:
    store = SqliteStateStore(tmp_path / "s.db")
    return TaskRunner(TaskManager(store), store.url, TaskQuotas(default=TaskQuota(**quota), kinds={}))


async def _noop(reporter: ProgressReporter) -> str:
    return "done"


def test_a_replay_is_not_refused_by_the_quota_its_first_attempt_took(tmp_path: Path) -> None:
    runner = _runner(tmp_path, max_running=1, max_queued=0)

    async def main() -> None:
        release = asyncio.Event()

        async def work(reporter: ProgressReporter) -> str:
            await release.wait()
            return "done"

        token = idempotency_key.set("k")
        try:
            first = runner.submit("ocr", "user:ann", work)
            again = runner.submit("ocr", "user:ann", work)  # the quota is full, but this is the same task
        finally:
            idempotency_key.reset(token)
        assert again.id == first.id
        release.set()
        await runner.drain(5)

    asyncio.run(main())


def test_a_key_claimed_by_a_replica_that_died_before_creating_the_task(tmp_path: Path) -> None:
    """The claim is written first; if its replica stops before the task record, the replay
    creates the task under the claimed id (one task, never none)."""
    runner = _runner(tmp_path, max_running=2, max_queued=2)

    async def main() -> None:
        token = idempotency_key.set("k")
        try:
            orphan, task_id = runner._claim("ocr", "user:ann", "k")  # a first attempt that died here
            assert orphan is None
            record = runner.submit("ocr", "user:ann", _noop)
        finally:
            idempotency_key.reset(token)
        assert record.id == task_id
        assert len(runner.manager.store.keys(IDEMPOTENT)) == 1
        await runner.drain(5)

    asyncio.run(main())


@pytest.mark.parametrize("key", [b"k" * 201, b"order 1", b"caf\xe9", b"tab\there"])
@pytest.mark.parametrize("method, path, shape", [
    ("POST", "/platform/tasks/selftest", "detail"),  # platform: {"detail": ...}
    ("POST", "/api/v1/train", "errors"),  # inspection: {"errors": {...}}
    ("POST", "/process", "status"),  # tagger: the Detect envelope
])
def test_a_malformed_key_is_a_400_in_the_contracts_format(key: bytes, method: str, path: str, shape: str,
                                                          tmp_path: Path) -> None:
    """Too long or not visible ASCII: refused before any work (never cut short, which would let
    two keys with the same first 200 characters share a task), no task created."""
    services = make_services(tmp_path, DebugHandles(echo=LocalHandle(Echo())), debug_routes=True)
    with TestClient(create_app(services)) as client:
        r = client.request(method, path, headers=[(b"idempotency-key", key)], json={})
    assert r.status_code == 400, r.text
    body = r.json()
    assert shape in body
    assert "Idempotency-Key" in r.text
    if shape == "errors":
        assert body["errors"]["status"] == 400
    if shape == "status":
        assert body["status"]["code"] == 400
    assert services.tasks.store.list("tasks") == []


def test_a_key_of_the_longest_allowed_length_is_used(tmp_path: Path) -> None:
    services = make_services(tmp_path, DebugHandles(echo=LocalHandle(Echo())), debug_routes=True,
                             admins=["user:ann"])
    with TestClient(create_app(services)) as client:
        headers = {**user_headers(client, "ann"), "Idempotency-Key": "k" * 200}
        ids = {client.post("/platform/tasks/selftest", params={"steps": 1, "step_s": 0.01},
                           headers=headers).json()["task_id"] for _ in range(2)}
    assert len(ids) == 1
