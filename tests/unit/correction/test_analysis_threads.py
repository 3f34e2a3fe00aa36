"""The analysis's threads: how many (PERCEPT_ANALYSIS_THREADS, OMP_NUM_THREADS, the CPUs), BLAS
kept at one thread while any job of the process runs, the pool on a failure."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from percept.correction import analysis
from tests.synthetic.correction import SyntheticDataset

ROOT = Path(__file__).resolve().parents[3]


def _cpus() -> int:
    import os

    return max(1, min(len(os.sched_getaffinity(0)), analysis.ANALYSIS_MAX_THREADS))


def test_the_threads_follow_omp_num_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray sets OMP_NUM_THREADS in its workers to the CPUs reserved (at least 1): a Serve replica
    with num_cpus 0.05 runs its analysis on one thread, not on every CPU of the machine (fails on
    the old code where the process may use 2 or more CPUs: the affinity's count)."""
    monkeypatch.delenv("PERCEPT_ANALYSIS_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert analysis.analysis_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3,1")
    assert analysis.analysis_threads() == min(3, analysis.ANALYSIS_MAX_THREADS)
    monkeypatch.setenv("OMP_NUM_THREADS", "64")
    assert analysis.analysis_threads() == analysis.ANALYSIS_MAX_THREADS
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert analysis.analysis_threads() == _cpus()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PERCEPT_ANALYSIS_THREADS", "3")  # the explicit setting wins
    assert analysis.analysis_threads() == 3


@pytest.mark.parametrize("bad", ["abc", "-1", "0", "2.5", "²"])
def test_a_bad_thread_setting_is_logged_once_and_ignored(bad: str, monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    """(fails on the old code: '²' passes str.isdigit and int() raised; the others were ignored
    without a word)."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(analysis, "_warned_threads", set(), raising=False)
    monkeypatch.setenv("PERCEPT_ANALYSIS_THREADS", bad)
    with caplog.at_level(logging.WARNING, logger=analysis.__name__):
        assert analysis.analysis_threads() == _cpus()
        assert analysis.analysis_threads() == _cpus()
    warned = [r for r in caplog.records if "PERCEPT_ANALYSIS_THREADS" in r.getMessage()]
    assert len(warned) == 1, caplog.records


RACE = r"""
import json, sys, threading
from pathlib import Path
from threadpoolctl import threadpool_info
from percept.correction import analysis, job
from percept.correction.sinks import DirSink

def blas():
    return sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})

analysis.load_numeric_libraries()
seen = {"start": blas()}
a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

def fake_analyse(parsed, state, *args):
    if state.job_id == "a":
        a_in.set()
        assert b_in.wait(60)
    else:
        assert a_in.wait(60)
        b_in.set()
        assert a_out.wait(60)
        seen["b after a"] = blas()
    return {}

job._analyse = fake_analyse
request = json.loads(Path(sys.argv[1]).read_text())

def run(name):
    try:
        job.run_job(request, job_id=name, sink=DirSink(Path(sys.argv[2]) / name))
    finally:
        if name == "a":
            a_out.set()

# Both jobs in threads, as a Serve replica runs them (asyncio.to_thread); the main thread never
# sets a BLAS limit (once it has, OpenBLAS ignores the other threads' settings). Job a is inside
# its analysis before job b starts: a enters its limit first and leaves first.
threads = [threading.Thread(target=run, args=(name,)) for name in ("a", "b")]
threads[0].start()
assert a_in.wait(120)
threads[1].start()
for t in threads:
    t.join(120)
seen["end"] = blas()
print(json.dumps(seen))
"""


@pytest.mark.skipif(len(__import__("os").sched_getaffinity(0)) < 2, reason="needs 2 CPUs to tell limited from not")
def test_overlapping_jobs_keep_blas_at_one_thread(digits: SyntheticDataset, tmp_path: Path) -> None:
    """Two jobs in one replica (max_ongoing_requests 8): the first to finish must not lift the
    other's BLAS limit, and the last restores the process's own count (fails on the old code:
    each job's threadpool_limits restored on exit what it saw on entry, so job B ran on at the
    machine's count after job A ended and the process kept 1 thread after both,
    /tmp/rev13/race.py). In a fresh process: OpenBLAS 0.3.31 ignores a setting made in another
    thread once the main thread has made one, as other tests of this session do."""
    request = tmp_path / "request.json"
    request.write_text(json.dumps(digits.request(["diagnose_image_blur"])))
    done = subprocess.run([sys.executable, "-c", RACE, str(request), str(tmp_path / "out")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=True)
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["start"] != [1], seen
    assert seen["b after a"] == [1], seen
    assert seen["end"] == seen["start"], seen


class _ProcessWideLimit:
    """A stand-in for threadpoolctl's BLAS limit with OpenBLAS's process-wide count: sets it on
    entry, and restore_original_limits puts back what it saw then."""

    count = 4

    def __init__(self, limit: int, user_api: str | None = None) -> None:
        self.original = _ProcessWideLimit.count
        _ProcessWideLimit.count = limit

    def restore_original_limits(self) -> None:
        _ProcessWideLimit.count = self.original


def test_the_blas_limit_is_counted_across_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """one_blas_thread nests and overlaps: the first caller in sets the limit, the last out
    restores it, whatever the order in which the threads leave."""
    import threadpoolctl

    monkeypatch.setattr(threadpoolctl, "threadpool_limits", _ProcessWideLimit)
    monkeypatch.setattr(analysis, "load_numeric_libraries", lambda: None)
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: list[int] = []

    def first() -> None:
        with analysis.one_blas_thread():
            first_in.set()
            second_in.wait(30)
            seen.append(_ProcessWideLimit.count)
        first_out.set()

    def second() -> None:
        first_in.wait(30)
        with analysis.one_blas_thread(), analysis.one_blas_thread():
            second_in.set()
            first_out.wait(30)
            seen.append(_ProcessWideLimit.count)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert seen == [1, 1]
    assert _ProcessWideLimit.count == 4


def test_a_failed_fold_cancels_the_tasks_not_started(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a failure the pool drops its queued tasks instead of running every one of them before
    the error is raised (fails on the old code: all five folds' classifiers ran)."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 60)
    features = (rng.normal(0, 3, (4, 40))[labels] + rng.normal(0, 1.5, (240, 40))).astype(np.float32)
    calls: list[int] = []

    def broken(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        time.sleep(0.3)
        raise RuntimeError("fold broke")

    monkeypatch.setattr(LogisticRegression, "fit", broken)
    monkeypatch.setenv("PERCEPT_ANALYSIS_THREADS", "2")
    with pytest.raises(RuntimeError, match="fold broke"):
        analysis.out_of_sample_probabilities(features, labels, 4, lda_knn_weight=0.0)
    assert len(calls) < 5, calls


def test_inline_pool_lets_an_interrupt_through() -> None:
    """The one-thread stand-in keeps an Exception for result(), as a pool would, but lets a
    KeyboardInterrupt or SystemExit stop the job at once (fails on the old code: kept)."""
    def interrupted() -> None:
        raise KeyboardInterrupt

    def failed() -> None:
        raise ValueError("kept")

    inline = analysis._Inline()
    with pytest.raises(ValueError, match="kept"):
        inline.submit(failed).result()
    with pytest.raises(KeyboardInterrupt):
        inline.submit(interrupted)
