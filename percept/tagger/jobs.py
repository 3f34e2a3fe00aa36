"""The bounded job log behind ``GET /work/status``.

Every ``/process`` call is a job ``{uid, status, type_job}`` in the state store namespace
``tagger_jobs``. (**Fix of the original**: it never evicted jobs.) Jobs older than
``ttl_s`` and all but the newest ``max_jobs`` are evicted every ``EVICT_EVERY`` starts
(so the log holds at most ``max_jobs + EVICT_EVERY`` jobs per ingress replica) and
before every listing.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from percept.storage import StateStore

logger = logging.getLogger(__name__)
NAMESPACE = "tagger_jobs"
EVICT_EVERY = 8


class JobLog:
    """Recent ``/process`` jobs, newest kept, oldest evicted."""

    def __init__(self, state: StateStore, max_jobs: int = 200, ttl_s: float = 3600.0) -> None:
        self.state = state
        self.max_jobs = max_jobs
        self.ttl_s = ttl_s
        self._started = 0

    def start(self, type_job: str, documents: int) -> str:
        """Record a running job; returns its uid."""
        uid = uuid.uuid4().hex
        now = time.time()
        self.state.put(NAMESPACE, uid, {
            "uid": uid, "status": "running", "type_job": type_job,
            "documents": documents, "created": now, "updated": now,
        })
        self._started += 1
        if self._started % EVICT_EVERY == 0:
            self.evict()
        return uid

    def finish(self, uid: str, status: str, **extra: Any) -> None:
        """Mark a job ``finished`` or ``failed`` (with counts or the error)."""
        def apply(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            if doc is None:
                return None
            return {**doc, **extra, "status": status, "updated": time.time()}

        self.state.update(NAMESPACE, uid, apply)

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
        self.evict()
        docs = sorted(self.state.list(NAMESPACE), key=lambda d: d.get("created", 0.0), reverse=True)
        return {str(d["uid"]): d for d in docs}
