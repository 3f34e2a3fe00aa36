"""One suite, two backends: the embedded SQLite store and a real redis-server."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from percept.storage.state import SqliteStateStore, StateStore, open_state_store

REDIS_URL = os.environ.get("PERCEPT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def redis_available() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except Exception:
        return False


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    if request.param == "sqlite":
        s: StateStore = SqliteStateStore(tmp_path / "state.db")
    else:
        if not redis_available():
            if os.environ.get("CI"):
                pytest.fail(f"redis-server is not reachable at {REDIS_URL} (CI must start it)")
            pytest.skip("redis-server not running")
        from percept.storage.state import RedisStateStore

        s = RedisStateStore(REDIS_URL, prefix=f"test-{uuid.uuid4().hex[:8]}")
    yield s
    s.close()


def test_put_get_delete(store: StateStore) -> None:
    assert store.get("ns", "a") is None
    store.put("ns", "a", {"x": 1, "owner": "user:ann"})
    assert store.get("ns", "a") == {"x": 1, "owner": "user:ann"}
    store.put("ns", "a", {"x": 2})
    assert store.get("ns", "a") == {"x": 2}
    assert store.delete("ns", "a") is True
    assert store.delete("ns", "a") is False
    assert store.get("ns", "a") is None


def test_namespaces_are_separate(store: StateStore) -> None:
    store.put("one", "k", {"v": 1})
    store.put("two", "k", {"v": 2})
    assert store.get("one", "k") == {"v": 1}
    assert store.clear("one") == 1
    assert store.get("one", "k") is None
    assert store.get("two", "k") == {"v": 2}


def test_list_by_owner_follows_owner_changes(store: StateStore) -> None:
    store.put("items", "1", {"id": "1", "owner": "user:ann"})
    store.put("items", "2", {"id": "2", "owner": "user:bob"})
    store.put("items", "3", {"id": "3", "owner": "user:ann"})
    assert [d["id"] for d in store.list("items", owner="user:ann")] == ["1", "3"]
    assert [d["id"] for d in store.list("items")] == ["1", "2", "3"]
    store.put("items", "3", {"id": "3", "owner": "user:bob"})
    assert [d["id"] for d in store.list("items", owner="user:ann")] == ["1"]
    assert [d["id"] for d in store.list("items", owner="user:bob")] == ["2", "3"]
    assert store.keys("items") == ["1", "2", "3"]


def test_put_if_absent(store: StateStore) -> None:
    assert store.put_if_absent("u", "ann", {"n": 1}) is True
    assert store.put_if_absent("u", "ann", {"n": 2}) is False
    assert store.get("u", "ann") == {"n": 1}


def test_update_is_atomic_under_threads(store: StateStore) -> None:
    store.put("c", "k", {"n": 0})

    def bump() -> None:
        for _ in range(25):
            store.update("c", "k", lambda d: {"n": (d or {"n": 0})["n"] + 1})

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get("c", "k") == {"n": 100}


def test_update_returning_none_deletes(store: StateStore) -> None:
    store.put("c", "k", {"n": 0})
    assert store.update("c", "k", lambda d: None) is None
    assert store.get("c", "k") is None


def test_incr_counts_within_a_window(store: StateStore) -> None:
    key = f"rl-{uuid.uuid4().hex}"
    hits = [store.incr(key, 60)[0] for _ in range(3)]
    assert hits == [1, 2, 3]
    _, reset_in = store.incr(key, 60)
    assert 0 < reset_in <= 60


def test_incr_window_expires(store: StateStore) -> None:
    key = f"rl-{uuid.uuid4().hex}"
    store.incr(key, 0.05)
    import time

    time.sleep(0.15)
    assert store.incr(key, 0.05)[0] == 1


def test_survives_reopen(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    first = open_state_store(url)
    first.put("users", "ann", {"username": "ann"})
    first.close()
    assert open_state_store(url).get("users", "ann") == {"username": "ann"}


def test_unknown_url_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported state store URL"):
        open_state_store("mongodb://x")
