"""The state store: JSON documents in namespaces, shared by every replica.

Two backends pass the same test suite:

* :class:`SqliteStateStore` — the embedded default, one file under the data directory, no
  server. Safe across processes on one node (WAL mode, busy timeout, ``BEGIN IMMEDIATE``
  for read-modify-write).
* :class:`RedisStateStore` — for clusters, selected by a ``redis://`` URL. A Redis server
  that restarts (or a network blip) is ridden out: every operation reconnects and retries
  with backoff for up to ``retry_for_s`` seconds before the error reaches the caller.

Documents are dicts; a document's ``owner`` field (if any) is indexed so that listing one
principal's objects does not read everyone's.
"""

from __future__ import annotations

import builtins
import functools
import json
import logging
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

Doc = dict[str, Any]
T = TypeVar("T")
Updater = Callable[[Doc | None], Doc | None]


class StateStore(ABC):
    """Namespaced JSON documents plus expiring counters."""

    url: str

    @abstractmethod
    def get(self, ns: str, key: str) -> Doc | None:
        """The document, or None."""

    @abstractmethod
    def put(self, ns: str, key: str, doc: Doc) -> None:
        """Insert or replace."""

    @abstractmethod
    def put_if_absent(self, ns: str, key: str, doc: Doc) -> bool:
        """Insert unless the key exists; True when inserted."""

    @abstractmethod
    def update(self, ns: str, key: str, fn: Updater) -> Doc | None:
        """Atomically replace the document with ``fn(old)``; ``None`` from fn deletes it."""

    @abstractmethod
    def delete(self, ns: str, key: str) -> bool:
        """True when something was deleted."""

    @abstractmethod
    def list(self, ns: str, *, owner: str | None = None) -> builtins.list[Doc]:
        """All documents of a namespace (of one owner when given), oldest key first."""

    @abstractmethod
    def keys(self, ns: str) -> builtins.list[str]:
        """All keys of a namespace."""

    @abstractmethod
    def clear(self, ns: str) -> int:
        """Delete a whole namespace; the number deleted."""

    @abstractmethod
    def incr(self, key: str, window_s: float) -> tuple[int, float]:
        """Count a hit in a fixed window: (hits so far, seconds until the window resets)."""

    @abstractmethod
    def ping(self) -> bool:
        """True when the backend answers."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class SqliteStateStore(StateStore):
    """The embedded default: a SQLite file, WAL mode, one connection per thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.url = f"sqlite:///{self.path}"
        self._local = threading.local()
        with self._tx() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS docs (ns TEXT NOT NULL, key TEXT NOT NULL, owner TEXT,"
                " value TEXT NOT NULL, updated REAL NOT NULL, PRIMARY KEY (ns, key))"
            )
            conn.execute("CREATE INDEX IF NOT EXISTS docs_owner ON docs (ns, owner)")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, hits INTEGER NOT NULL,"
                " reset_at REAL NOT NULL)"
            )

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @staticmethod
    def _row(doc: Doc) -> tuple[str | None, str]:
        owner = doc.get("owner")
        return (str(owner) if owner is not None else None, json.dumps(doc, default=str))

    def get(self, ns: str, key: str) -> Doc | None:
        row = self._conn().execute("SELECT value FROM docs WHERE ns=? AND key=?", (ns, key)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, ns: str, key: str, doc: Doc) -> None:
        owner, value = self._row(doc)
        with self._tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO docs (ns, key, owner, value, updated) VALUES (?,?,?,?,?)",
                (ns, key, owner, value, time.time()),
            )

    def put_if_absent(self, ns: str, key: str, doc: Doc) -> bool:
        owner, value = self._row(doc)
        with self._tx() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO docs (ns, key, owner, value, updated) VALUES (?,?,?,?,?)",
                (ns, key, owner, value, time.time()),
            )
            return cur.rowcount == 1

    def update(self, ns: str, key: str, fn: Updater) -> Doc | None:
        with self._tx() as conn:
            row = conn.execute("SELECT value FROM docs WHERE ns=? AND key=?", (ns, key)).fetchone()
            new = fn(json.loads(row[0]) if row else None)
            if new is None:
                conn.execute("DELETE FROM docs WHERE ns=? AND key=?", (ns, key))
            else:
                owner, value = self._row(new)
                conn.execute(
                    "INSERT OR REPLACE INTO docs (ns, key, owner, value, updated) VALUES (?,?,?,?,?)",
                    (ns, key, owner, value, time.time()),
                )
            return new

    def delete(self, ns: str, key: str) -> bool:
        with self._tx() as conn:
            return conn.execute("DELETE FROM docs WHERE ns=? AND key=?", (ns, key)).rowcount > 0

    def list(self, ns: str, *, owner: str | None = None) -> builtins.list[Doc]:
        if owner is None:
            rows = self._conn().execute("SELECT value FROM docs WHERE ns=? ORDER BY key", (ns,))
        else:
            rows = self._conn().execute(
                "SELECT value FROM docs WHERE ns=? AND owner=? ORDER BY key", (ns, owner)
            )
        return [json.loads(r[0]) for r in rows.fetchall()]

    def keys(self, ns: str) -> builtins.list[str]:
        rows = self._conn().execute("SELECT key FROM docs WHERE ns=? ORDER BY key", (ns,))
        return [r[0] for r in rows.fetchall()]

    def clear(self, ns: str) -> int:
        with self._tx() as conn:
            return conn.execute("DELETE FROM docs WHERE ns=?", (ns,)).rowcount

    def incr(self, key: str, window_s: float) -> tuple[int, float]:
        now = time.time()
        with self._tx() as conn:
            row = conn.execute("SELECT hits, reset_at FROM counters WHERE key=?", (key,)).fetchone()
            if row is None or row[1] <= now:
                hits, reset_at = 1, now + window_s
            else:
                hits, reset_at = row[0] + 1, row[1]
            conn.execute(
                "INSERT OR REPLACE INTO counters (key, hits, reset_at) VALUES (?,?,?)",
                (key, hits, reset_at),
            )
        return hits, max(0.0, reset_at - now)

    def ping(self) -> bool:
        return self._conn().execute("SELECT 1").fetchone() == (1,)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _retrying(method: Callable[..., T]) -> Callable[..., T]:
    """Run a store operation again (new connection, backoff) while Redis is unreachable.

    Whole operations are retried, WATCH/MULTI included, because a transaction cannot be
    resumed on a new connection. Every operation here is safe to repeat: a write stores the
    same document again, an update reruns its function on the current document; only a
    rate-limit counter may count one hit twice when the reply was lost.
    """

    @functools.wraps(method)
    def wrapper(self: RedisStateStore, *args: Any, **kwargs: Any) -> T:
        deadline = time.monotonic() + self.retry_for_s
        delay = 0.05
        attempt = 0
        while True:
            try:
                return method(self, *args, **kwargs)
            except self._transient as exc:
                attempt += 1
                if time.monotonic() + delay > deadline:
                    logger.error("redis unreachable for %.1f s, giving up: %s", self.retry_for_s, exc)
                    raise
                if attempt == 1:
                    logger.warning("redis unreachable (%s): retrying for up to %.0f s", exc, self.retry_for_s)
                time.sleep(delay)
                delay = min(1.0, delay * 2)

    return wrapper


class RedisStateStore(StateStore):
    """Documents as Redis strings; per-namespace and per-owner key sets as indexes."""

    def __init__(self, url: str, prefix: str = "percept", retry_for_s: float = 15.0) -> None:
        import redis  # heavy-ish import kept out of the SQLite path

        self.url = url
        self.prefix = prefix
        self.retry_for_s = retry_for_s
        # Short socket timeouts so a dead server is noticed fast; the retry loop waits for it.
        self._redis = redis.Redis.from_url(
            url, decode_responses=True, socket_connect_timeout=2.0, socket_timeout=5.0,
            health_check_interval=30, retry_on_timeout=False,
        )
        self._watch_error = redis.WatchError
        self._transient: tuple[type[BaseException], ...] = (redis.ConnectionError, redis.TimeoutError)

    def _k(self, ns: str, key: str) -> str:
        return f"{self.prefix}:d:{ns}:{key}"

    def _idx(self, ns: str) -> str:
        return f"{self.prefix}:i:{ns}"

    def _own(self, ns: str, owner: str) -> str:
        return f"{self.prefix}:o:{ns}:{owner}"

    def _write(self, pipe: Any, ns: str, key: str, old: Doc | None, new: Doc | None) -> None:
        if old is not None and old.get("owner") is not None:
            pipe.srem(self._own(ns, str(old["owner"])), key)
        if new is None:
            pipe.delete(self._k(ns, key))
            pipe.srem(self._idx(ns), key)
            return
        pipe.set(self._k(ns, key), json.dumps(new, default=str))
        pipe.sadd(self._idx(ns), key)
        if new.get("owner") is not None:
            pipe.sadd(self._own(ns, str(new["owner"])), key)

    @_retrying
    def get(self, ns: str, key: str) -> Doc | None:
        raw = self._redis.get(self._k(ns, key))
        return json.loads(raw) if raw else None

    @_retrying
    def put(self, ns: str, key: str, doc: Doc) -> None:
        self.update(ns, key, lambda _old: doc)

    @_retrying
    def put_if_absent(self, ns: str, key: str, doc: Doc) -> bool:
        inserted = False

        def fn(old: Doc | None) -> Doc | None:
            nonlocal inserted
            inserted = old is None
            return doc if old is None else old

        self.update(ns, key, fn)
        return inserted

    @_retrying
    def update(self, ns: str, key: str, fn: Updater) -> Doc | None:
        name = self._k(ns, key)
        with self._redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(name)
                    raw = pipe.get(name)
                    old = json.loads(raw) if raw else None
                    new = fn(old)
                    pipe.multi()
                    self._write(pipe, ns, key, old, new)
                    pipe.execute()
                    return new
                except self._watch_error:
                    continue

    @_retrying
    def delete(self, ns: str, key: str) -> bool:
        existed = self.get(ns, key) is not None
        self.update(ns, key, lambda _old: None)
        return existed

    def _mget(self, ns: str, keys: builtins.list[str]) -> builtins.list[Doc]:
        if not keys:
            return []
        raws = self._redis.mget([self._k(ns, k) for k in keys])
        return [json.loads(r) for r in raws if r]

    @_retrying
    def list(self, ns: str, *, owner: str | None = None) -> builtins.list[Doc]:
        index = self._idx(ns) if owner is None else self._own(ns, owner)
        return self._mget(ns, sorted(str(k) for k in self._redis.smembers(index)))

    @_retrying
    def keys(self, ns: str) -> builtins.list[str]:
        return sorted(str(k) for k in self._redis.smembers(self._idx(ns)))

    @_retrying
    def clear(self, ns: str) -> int:
        keys = self.keys(ns)
        owners = self._redis.keys(f"{self.prefix}:o:{ns}:*")
        with self._redis.pipeline() as pipe:
            for key in keys:
                pipe.delete(self._k(ns, key))
            pipe.delete(self._idx(ns), *owners) if owners else pipe.delete(self._idx(ns))
            pipe.execute()
        return len(keys)

    @_retrying
    def incr(self, key: str, window_s: float) -> tuple[int, float]:
        name = f"{self.prefix}:c:{key}"
        with self._redis.pipeline() as pipe:
            pipe.incr(name)
            pipe.pttl(name)
            hits, ttl_ms = pipe.execute()
        if ttl_ms is None or ttl_ms < 0:
            self._redis.pexpire(name, int(window_s * 1000))
            ttl_ms = int(window_s * 1000)
        return int(hits), ttl_ms / 1000.0

    def ping(self) -> bool:  # not retried: a health check answers now
        return bool(self._redis.ping())

    def close(self) -> None:
        self._redis.close()


def open_state_store(url: str) -> StateStore:
    """A store for ``sqlite:///path`` or ``redis://…`` / ``rediss://…``."""
    if url.startswith("sqlite:///"):
        return SqliteStateStore(url[len("sqlite:///") - 1 :] if url.startswith("sqlite:////") else url[len("sqlite:///") :])
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisStateStore(url)
    raise ValueError(f"unsupported state store URL {url!r}: use sqlite:///path or redis://host:port/db")
