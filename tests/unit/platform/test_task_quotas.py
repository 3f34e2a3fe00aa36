"""Per-principal, per-kind task quotas: queued work waits, work past the queue is refused (429)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from deployments.echo import Echo
from percept.api.app import create_app
from percept.errors import TooManyRequests
from percept.handles import DebugHandles
from percept.storage.state import SqliteStateStore
from percept.tasks import ACTIVE, ProgressReporter, TaskManager, TaskQuota, TaskQuotas, TaskRunner, TaskStatus
from percept.testing import LocalHandle, make_services, user_headers


def _runner(tmp_path: Path, **quota: int) -> TaskRunner:
    store = SqliteStateStore(tmp_path / "s.db")
    return TaskRunner(TaskManager(store), store.url, TaskQuotas(default=TaskQuota(**quota), kinds={}))


def test_queued_tasks_wait_for_a_running_slot_and_excess_is_refused(tmp_path: Path) -> None:
    runner = _runner(tmp_path, max_running=1, max_queued=1, retry_after_s=7)
    release = asyncio.Event()
    started: list[str] = []

    async def main() -> None:
        async def work(reporter: ProgressReporter) -> str:
            started.append(reporter.task_id)
            await release.wait()
            return "done"

        first = runner.submit("ocr", "user:ann", work)
        second = runner.submit("ocr", "user:ann", work)
        with pytest.raises(TooManyRequests) as refused:
            runner.submit("ocr", "user:ann", work)
        assert refused.value.headers == {"Retry-After": "7"}
        assert "1 running" in str(refused.value.detail) or "1 queued" in str(refused.value.detail)
        # Other principals and other kinds have their own quota.
        other = runner.submit("ocr", "user:bob", work)
        kind = runner.submit("asr", "user:ann", work)
        await asyncio.sleep(0.6)
        assert set(started) == {first.id, other.id, kind.id}  # the second waits behind the first
        second_now = runner.manager.get(second.id)
        assert second_now is not None and second_now.status is TaskStatus.pending
        assert runner.manager.active("user:ann", "ocr") == (1, 1)
        release.set()
        await runner.drain(5)
        assert second.id in started
        for record in (first, second, other, kind):
            done = runner.manager.get(record.id)
            assert done is not None and done.status is TaskStatus.finished
        assert runner.manager.active("user:ann", "ocr") == (0, 0)
        assert runner.manager.store.keys(ACTIVE) == []  # ended tasks leave the index
        runner.submit("ocr", "user:ann", work)  # room again
        await runner.drain(5)

    asyncio.run(main())


def test_failed_tasks_free_their_slot(tmp_path: Path) -> None:
    runner = _runner(tmp_path, max_running=1, max_queued=0)

    async def main() -> None:
        async def bad(reporter: ProgressReporter) -> None:
            raise RuntimeError("boom")

        runner.submit("ocr", "user:ann", bad)
        await runner.drain(5)
        record = runner.submit("ocr", "user:ann", bad)
        await runner.drain(5)
        got = runner.manager.get(record.id)
        assert got is not None and got.status is TaskStatus.failed and "boom" in (got.error or "")

    asyncio.run(main())


def test_a_task_left_by_a_dead_replica_stops_counting(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "s.db")
    manager = TaskManager(store)
    record = manager.create("ocr", "user:ann")
    manager.start(record.id)
    assert manager.active("user:ann", "ocr") == (0, 1)
    old = time.time() - 3600
    store.update("tasks", record.id, lambda d: d and {**d, "heartbeat_at": old})
    store.update(ACTIVE, record.id, lambda d: d and {**d, "at": old})
    assert manager.active("user:ann", "ocr") == (0, 0)
    got = manager.get(record.id)
    assert got is not None and got.status is TaskStatus.failed and "interrupted" in (got.error or "")


def test_selftest_quota_is_the_platform_429_with_retry_after(tmp_path: Path) -> None:
    services = make_services(tmp_path, DebugHandles(echo=LocalHandle(Echo())), debug_routes=True,
                             admins=["user:ann"])
    with TestClient(create_app(services)) as client:
        ann = user_headers(client, "ann")
        limit = TaskQuotas().for_kind("platform.selftest")
        answers = [client.post("/platform/tasks/selftest", params={"steps": 50, "step_s": 0.2}, headers=ann)
                   for _ in range(limit.max_running + limit.max_queued + 1)]
        assert [a.status_code for a in answers[:-1]] == [202] * (limit.max_running + limit.max_queued)
        refused = answers[-1]
        assert refused.status_code == 429, refused.text
        assert refused.headers["Retry-After"] == str(limit.retry_after_s)
        assert "Too many tasks" in refused.text


def test_quotas_come_from_the_application_args(tmp_path: Path) -> None:
    services = make_services(tmp_path, task_quotas={"default": {"max_running": 3, "max_queued": 7},
                                                    "kinds": {"reading.audio": {"max_running": 1, "max_queued": 0}}})
    assert services.runner.quotas.for_kind("search.scrape").max_queued == 7
    assert services.runner.quotas.for_kind("reading.audio").max_running == 1
