"""The bounded job log behind ``GET /work/status``.

Every ``/process`` call is a job ``{uid, status, type_job}`` in the state store namespace
``tagger_jobs``. (**Fix of the original**: it never evicted jobs.) Jobs older than
``ttl_s`` and all but the newest ``max_jobs`` are evicted after a write that follows
``EVICT_EVERY`` starts (so the log holds at most ``max_jobs`` plus the jobs of one write
per ingress replica) and before every listing.

Off the request path: ``start`` and ``finish`` only touch memory; a background thread
writes the changes to the state store ``flush_s`` seconds later, several jobs in one go
(the store was two writes per request, on the hot path). ``recent`` flushes first, so a
replica always lists its own jobs; another ingress replica's jobs show up within
``flush_s``. ``flush_s=0`` writes synchronously (the old behaviour).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from percept.storage import StateStore

logger = logging.getLogger(__name__)
NAMESPACE = "tagger_jobs"
EVICT_EVERY = 8
FLUSH_S = 0.5


class JobLog:
    """Recent ``/process`` jobs, newest kept, oldest evicted."""

    def __init__(self, state: StateStore, max_jobs: int = 200, ttl_s: float = 3600.0,
                 flush_s: float = FLUSH_S) -> None:
        self.state = state
        self.max_jobs = max_jobs
        self.ttl_s = ttl_s
        self.flush_s = flush_s
        self._started = 0
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        # uid -> (new job document or None, fields to merge into the stored document)
        self._pending: dict[str, tuple[dict[str, Any] | None, dict[str, Any]]] = {}
        self._evict_due = False
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def writes_behind(self) -> bool:
        """True when ``start``/``finish`` only touch memory (cheap enough for the event loop)."""
        return self.flush_s > 0

    def start(self, type_job: str, documents: int) -> str:
        """Record a running job; returns its uid (no store I/O when writing behind)."""
        uid = uuid.uuid4().hex
        now = time.time()
        doc = {"uid": uid, "status": "running", "type_job": type_job,
               "documents": documents, "created": now, "updated": now}
        with self._lock:
            self._pending[uid] = (doc, {})
            self._started += 1
            if self._started % EVICT_EVERY == 0:
                self._evict_due = True
        self._written()
        return uid

    def finish(self, uid: str, status: str, **extra: Any) -> None:
        """Mark a job ``finished`` or ``failed`` (with counts or the error)."""
        patch = {**extra, "status": status, "updated": time.time()}
        with self._lock:
            doc, merged = self._pending.get(uid, (None, {}))
            if doc is not None:
                self._pending[uid] = ({**doc, **patch}, {})
            else:
                self._pending[uid] = (None, {**merged, **patch})
        self._written()

    def _written(self) -> None:
        if self.flush_s <= 0:
            self.flush()
            return
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="tagger-job-log", daemon=True)
                    self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()  # idle costs nothing: no timer while nothing is pending
            time.sleep(self.flush_s)  # gather the jobs of the next flush_s into one write
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # the log is informative: never let it kill the thread
                logger.warning("tagger job log: writing to the state store failed", exc_info=True)

    def flush(self) -> None:
        """Write the pending changes now (then evict, when due)."""
        with self._flushing:
            with self._lock:
                pending, self._pending = self._pending, {}
                evict, self._evict_due = self._evict_due, False
            for uid, (doc, patch) in pending.items():
                if doc is not None:
                    self.state.put(NAMESPACE, uid, doc)
                elif patch:
                    self.state.update(NAMESPACE, uid, _merge(patch))
            if evict:
                self.evict()

    def evict(self, now: float | None = None) -> int:
        """Drop expired jobs and all but the newest ``max_jobs``; returns how many."""
        now = time.time() if now is None else now
        docs = sorted(self.state.list(NAMESPACE), key=lambda d: d.get("created", 0.0), reverse=True)
        doomed = [d for i, d in enumerate(docs) if i >= self.max_jobs or now - d.get("created", 0.0) > self.ttl_s]
        for doc in doomed:
            self.state.delete(NAMESPACE, str(doc["uid"]))
        if doomed:
            logger.debug("evicted %d tagger jobs", len(doomed))
        return len(doomed)

    def recent(self) -> dict[str, dict[str, Any]]:
        """``{uid: {"uid", "status", "type_job", ...}}``, newest first."""
        self.flush()
        self.evict()
        docs = sorted(self.state.list(NAMESPACE), key=lambda d: d.get("created", 0.0), reverse=True)
        return {str(d["uid"]): d for d in docs}


def _merge(patch: dict[str, Any]) -> Callable[[dict[str, Any] | None], dict[str, Any] | None]:
    """A state-store updater merging ``patch`` into a stored job (a gone job stays gone)."""
    def apply(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if doc is None else {**doc, **patch}

    return apply
