from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from deployments.echo import Echo
from percept.api.app import create_app
from percept.errors import NotFound
from percept.handles import DebugHandles
from percept.storage.state import SqliteStateStore
from percept.tasks import TASKS, ProgressReporter, TaskManager, TaskRunner, TaskStatus
from percept.testing import LocalHandle, make_services, user_headers


@pytest.fixture
def manager(tmp_path: Path) -> TaskManager:
    return TaskManager(SqliteStateStore(tmp_path / "s.db"))


def test_lifecycle(manager: TaskManager) -> None:
    record = manager.create("demo", "user:ann", {"x": 1})
    assert record.status is TaskStatus.pending and record.progress == 0
    manager.start(record.id)
    manager.progress(record.id, 40, "working")
    got = manager.get(record.id)
    assert got is not None and got.status is TaskStatus.running and got.progress == 40
    manager.finish(record.id, {"answer": 42})
    done = manager.get(record.id)
    assert done is not None and done.ready and done.result == {"answer": 42} and done.progress == 100


def test_late_progress_never_reopens_a_finished_task(manager: TaskManager) -> None:
    record = manager.create("demo", "user:ann")
    manager.finish(record.id, 1)
    manager.progress(record.id, 10, "late")
    got = manager.get(record.id)
    assert got is not None and got.status is TaskStatus.finished and got.progress == 100


def test_ownership_and_kind(manager: TaskManager) -> None:
    record = manager.create("audio", "user:ann")
    assert manager.get_owned(record.id, "user:ann") is not None
    assert manager.get_owned(record.id, "user:bob") is None
    assert manager.get_owned(record.id, "user:ann", kind="image") is None
    assert manager.get_owned("missing", "user:ann") is None
    assert [r.id for r in manager.list(owner="user:ann", kind="audio")] == [record.id]


def test_stale_task_ends_failed(manager: TaskManager) -> None:
    record = manager.create("demo", "user:ann")
    manager.start(record.id)
    manager.store.update(TASKS, record.id, lambda d: {**(d or {}), "heartbeat_at": time.time() - 3600})
    got = manager.get(record.id)
    assert got is not None and got.status is TaskStatus.failed
    assert "interrupted" in (got.error or "")


def test_progress_reporter_pickles_and_scales(tmp_path: Path) -> None:
    import pickle

    url = f"sqlite:///{tmp_path / 's.db'}"
    manager = TaskManager(SqliteStateStore(tmp_path / "s.db"))
    record = manager.create("demo", "user:ann")
    reporter = pickle.loads(pickle.dumps(ProgressReporter(url, record.id).scaled(50, 100)))
    reporter(50, "half of the second half")
    got = manager.get(record.id)
    assert got is not None and got.progress == 75 and got.message == "half of the second half"


def test_runner_records_success_and_failure(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    manager = TaskManager(SqliteStateStore(tmp_path / "s.db"))
    runner = TaskRunner(manager, url)

    async def main() -> tuple[str, str]:
        async def good(reporter: ProgressReporter) -> dict[str, int]:
            reporter(50, "half")
            return {"ok": 1}

        async def bad(reporter: ProgressReporter) -> None:
            raise NotFound("No such audio file available")

        a = runner.submit("demo", "user:ann", good)
        b = runner.submit("demo", "user:ann", bad)
        await runner.drain()
        return a.id, b.id

    good_id, bad_id = asyncio.run(main())
    good = manager.get(good_id)
    bad = manager.get(bad_id)
    assert good is not None and good.status is TaskStatus.finished and good.result == {"ok": 1}
    assert bad is not None and bad.status is TaskStatus.failed
    assert bad.error == "No such audio file available" and bad.error_status == 404


def test_selftest_task_over_http_with_sse_and_websocket(tmp_path: Path) -> None:
    services = make_services(tmp_path, DebugHandles(echo=LocalHandle(Echo())), debug_routes=True,
                             admins=["user:ann"])
    with TestClient(create_app(services)) as client:
        ann = user_headers(client, "ann")
        created = client.post("/platform/tasks/selftest", params={"steps": 3, "step_s": 0.05}, headers=ann)
        assert created.status_code == 202
        task_id = created.json()["task_id"]
        with client.stream("GET", f"/platform/tasks/{task_id}/events", headers=ann) as stream:
            events = [json.loads(line[6:]) for line in stream.iter_lines() if line.startswith("data: ")]
        assert events[-1]["status"] == "finished" and events[-1]["progress"] == 100
        progresses = [e["progress"] for e in events]
        assert progresses == sorted(progresses)
        record = client.get(f"/platform/tasks/{task_id}", headers=ann).json()
        assert record["status"] == "finished" and record["result"]["steps"] == 3

        token = ann["Authorization"].split()[1]
        with client.websocket_connect(f"/platform/tasks/{task_id}/ws?token={token}") as ws:
            assert ws.receive_json()["status"] == "finished"

        bob = user_headers(client, "bob")
        assert client.get(f"/platform/tasks/{task_id}", headers=bob).status_code == 404
        assert client.get(f"/platform/tasks/{task_id}").status_code == 401
        assert client.post("/platform/tasks/selftest", params={"steps": 0}, headers=ann).status_code == 422
