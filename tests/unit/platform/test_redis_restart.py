"""A Redis state store that restarts for a few seconds loses no task.

Each test starts its own redis-server (a free port, append-only file, fsync on every write),
kills it with SIGKILL while work is in flight, and starts it again a few seconds later on
the same files: the store's calls wait and reconnect, and the task ends finished.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from percept.storage.state import RedisStateStore
from percept.tasks import ProgressReporter, TaskManager, TaskRunner, TaskStatus

pytestmark = pytest.mark.redis


class RedisServer:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.directory),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--logfile", "redis.log"],
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def restart_after(self, seconds: float) -> threading.Thread:
        def later() -> None:
            time.sleep(seconds)
            self.start()

        thread = threading.Thread(target=later, daemon=True)
        thread.start()
        return thread


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.proc.terminate()
        server.proc.wait()


def test_operations_wait_for_a_restarting_server(redis_server: RedisServer) -> None:
    store = RedisStateStore(redis_server.url, retry_for_s=15)
    store.put("ns", "a", {"x": 1, "owner": "user:ann"})
    redis_server.kill()
    restart = redis_server.restart_after(2.0)
    began = time.monotonic()
    assert store.get("ns", "a") == {"x": 1, "owner": "user:ann"}  # blocks until the server is back
    waited = time.monotonic() - began
    assert 1.5 < waited < 12
    store.update("ns", "a", lambda d: d and {**d, "x": 2})
    assert [d["x"] for d in store.list("ns", owner="user:ann")] == [2]
    restart.join()


def test_gives_up_after_its_window(redis_server: RedisServer) -> None:
    import redis

    store = RedisStateStore(redis_server.url, retry_for_s=1.0)
    redis_server.kill()
    began = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        store.get("ns", "a")
    assert time.monotonic() - began < 5


def test_a_task_running_across_a_restart_is_not_lost(redis_server: RedisServer) -> None:
    store = RedisStateStore(redis_server.url, retry_for_s=15)
    manager = TaskManager(store)
    runner = TaskRunner(manager, redis_server.url)
    before = manager.create("ocr", "user:ann")  # created before the outage, never run

    async def main() -> str:
        async def work(reporter: ProgressReporter) -> dict[str, str]:
            await asyncio.sleep(0.3)
            redis_server.kill()  # the server dies while the task works...
            redis_server.restart_after(3.0)
            await asyncio.sleep(0.5)
            await asyncio.to_thread(reporter, 50, "half way, server down")  # ...and reports into it
            return {"text": "hello"}

        record = runner.submit("ocr", "user:ann", work)
        await runner.drain(30)
        return record.id

    task_id = asyncio.run(main())
    done = manager.get(task_id)
    assert done is not None and done.status is TaskStatus.finished and done.result == {"text": "hello"}
    kept = manager.get(before.id)
    assert kept is not None and kept.status is TaskStatus.pending
    assert manager.active("user:ann", "ocr") == (1, 0)  # the finished task left the quota index
