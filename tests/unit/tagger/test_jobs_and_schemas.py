"""The job log behind /work/status, and the request model."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from percept.schemas.tagger import TaggerRequest
from percept.storage.state import SqliteStateStore
from percept.tagger.jobs import NAMESPACE, JobLog
from percept.tagger.settings import TaggerSettings


def test_jobs_lifecycle_and_eviction(tmp_path: Path) -> None:
    state = SqliteStateStore(tmp_path / "s.db")
    log = JobLog(state, max_jobs=3, ttl_s=100)
    uids = [log.start("tagging", 1) for _ in range(5)]
    log.finish(uids[-1], "finished", treated=1)
    recent = log.recent()
    assert list(recent) == uids[:1:-1]  # newest first, the two oldest evicted
    assert len(recent) == 3
    assert recent[uids[-1]]["status"] == "finished" and recent[uids[-1]]["type_job"] == "tagging"
    assert recent[uids[-2]]["status"] == "running"
    # Everything expires after the TTL.
    assert log.evict(now=10**12) == 3
    assert state.list(NAMESPACE) == []
    log.finish("gone", "failed")  # finishing an evicted job is harmless


@pytest.mark.parametrize(("given", "expected"), [(7, 7), ("7", 7), (" 3 ", 3), (None, 5), (4.0, 4)])
def test_num_labels_int_or_numeric_string(given: object, expected: int) -> None:
    assert TaggerRequest.model_validate({"documents": [], "num_labels": given}).num_labels == expected


@pytest.mark.parametrize("bad", ["five", "2.5", True, 0, -1, 2.5, [3], "1e3"])
def test_num_labels_refused(bad: object) -> None:
    with pytest.raises(ValidationError):
        TaggerRequest.model_validate({"documents": [], "num_labels": bad})


def test_request_prompt_and_ids() -> None:
    req = TaggerRequest.model_validate({"documents": [{"id": 12, "source": {}}], "prompt": " <od> "})
    assert req.wants_counts and req.documents[0].id == "12" and req.num_labels == 5
    assert not TaggerRequest.model_validate({"documents": []}).wants_counts
    with pytest.raises(ValidationError):
        TaggerRequest.model_validate({"documents": [{"source": {}}]})


def test_settings_validate() -> None:
    assert TaggerSettings.from_section(None).video_frames == 8
    with pytest.raises(ValidationError):
        TaggerSettings.from_section({"video_frames": 0})
    with pytest.raises(ValidationError):
        TaggerSettings.from_section({"unknown_knob": 1})


def test_job_log_stays_bounded(tmp_path: Path) -> None:
    from percept.tagger.jobs import EVICT_EVERY

    log = JobLog(SqliteStateStore(tmp_path / "s.db"), max_jobs=4, ttl_s=100)
    for _ in range(30):
        log.start("tagging", 1)
        assert len(log.state.list(NAMESPACE)) <= 4 + EVICT_EVERY


def test_num_classes_alias() -> None:
    assert TaggerRequest.model_validate({"documents": [], "num_classes": "8"}).num_labels == 8
    assert TaggerRequest.model_validate({"documents": [], "num_classes": 8, "num_labels": 2}).num_labels == 2


def test_job_log_writes_behind_the_request(tmp_path: Path) -> None:
    """start/finish touch memory only; the store catches up within flush_s, listing flushes."""
    import time

    state = SqliteStateStore(tmp_path / "s.db")
    slow = JobLog(state, max_jobs=10, ttl_s=100, flush_s=30.0)
    uid = slow.start("tagging", 2)
    assert state.list(NAMESPACE) == []  # nothing written on the request path
    slow.finish(uid, "finished", treated=2)
    assert slow.recent()[uid]["status"] == "finished"  # a listing flushes first
    assert state.get(NAMESPACE, uid)["treated"] == 2

    quick = JobLog(state, max_jobs=10, ttl_s=100, flush_s=0.05)
    other = quick.start("object_detection", 1)
    deadline = time.monotonic() + 5
    while state.get(NAMESPACE, other) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert state.get(NAMESPACE, other)["status"] == "running"  # the background write happened
    quick.finish(other, "failed", error="boom")  # finishing an already written job merges into it
    while state.get(NAMESPACE, other)["status"] != "failed" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert state.get(NAMESPACE, other) | {"updated": 0} == {
        "uid": other, "status": "failed", "type_job": "object_detection", "documents": 1,
        "created": state.get(NAMESPACE, other)["created"], "updated": 0, "error": "boom"}


def test_job_log_synchronous_when_flush_is_zero(tmp_path: Path) -> None:
    state = SqliteStateStore(tmp_path / "s.db")
    log = JobLog(state, flush_s=0)
    uid = log.start("tagging", 1)
    assert state.get(NAMESPACE, uid)["status"] == "running"
