"""Threads per forward pass on the CPU: every core for a pass that runs alone, one each when
several run at once, and back to one for passes alone when that measured faster (other
processes on the cores)."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from deployments.tagger import TaggerClassifier
from percept.config import AppArgs
from percept.tagger.threads import PassThreads, run_with_threads, wide_threads
from tests.synthetic.tagger import encode_image

from .conftest import solid


def test_several_passes_in_flight_get_the_narrow_count() -> None:
    chooser = PassThreads(narrow=1, wide=4)
    assert [chooser.pick(in_flight) for in_flight in (2, 3, 16)] == [1, 1, 1]
    assert chooser.pick(1) == 4  # alone, nothing measured yet: every core


def test_passes_alone_measure_both_widths_then_keep_the_faster() -> None:
    chooser = PassThreads(narrow=1, wide=2, probe_every=8)
    picks = []
    for _ in range(4):  # each width once for its set-up (not counted), then once measured
        threads = chooser.pick(1)
        picks.append(threads)
        chooser.record(threads, 0.012 if threads == 2 else 0.020)
    assert sorted(picks) == [1, 1, 2, 2]
    assert chooser.preferred() == 2
    later = [chooser.pick(1) for _ in range(16)]
    assert later.count(2) >= 14 and later.count(1) >= 1  # the loser is still tried now and then


def test_wide_slower_alone_falls_back_to_narrow_and_probes_less_often() -> None:
    """Other processes on the cores: a 2-thread pass alone took 5-10x the 1-thread one here."""
    chooser = PassThreads(narrow=1, wide=2, probe_every=4, max_probe_every=16)

    def run(n: int) -> list[int]:
        out = []
        for _ in range(n):
            threads = chooser.pick(1)
            chooser.record(threads, 0.150 if threads == 2 else 0.020)
            out.append(threads)
        return out

    run(4)
    assert chooser.preferred() == 1
    picks = run(64)
    wide_at = [i for i, t in enumerate(picks) if t == 2]
    assert 2 <= len(wide_at) <= 6  # probes, ever rarer: gaps 8, 16, 16 ...
    gaps = np.diff(wide_at)
    assert all(b >= a for a, b in zip(gaps, gaps[1:], strict=False)) and gaps[-1] == 16


def test_the_wide_width_comes_back_when_the_cores_free_up() -> None:
    chooser = PassThreads(narrow=1, wide=2, probe_every=4)
    wide_s = 0.150
    for _ in range(40):
        threads = chooser.pick(1)
        chooser.record(threads, wide_s if threads == 2 else 0.020)
    assert chooser.preferred() == 1
    wide_s = 0.012  # the other processes stopped
    for _ in range(200):
        threads = chooser.pick(1)
        chooser.record(threads, wide_s if threads == 2 else 0.020)
    assert chooser.preferred() == 2


def test_one_width_means_off() -> None:
    chooser = PassThreads(narrow=2, wide=2)
    assert not chooser.enabled and {chooser.pick(1), chooser.pick(5)} == {2}


def test_wide_threads_is_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PERCEPT_CLASSIFIER_WIDE_THREADS", raising=False)
    assert wide_threads(1, cores=2) == 1  # off by default: every pass on the narrow count, as before
    for text, wide in (("1", 1), ("auto", 2), ("3", 3), ("two", 1), ("0", 1)):
        monkeypatch.setenv("PERCEPT_CLASSIFIER_WIDE_THREADS", text)
        assert wide_threads(1, cores=2) == wide, text
    monkeypatch.setenv("PERCEPT_CLASSIFIER_WIDE_THREADS", "auto")
    assert wide_threads(1, cores=64) == 4  # at most MAX_WIDE_THREADS
    assert wide_threads(2, cores=2) == 2  # never below narrow: then off


def test_a_threads_count_is_per_calling_thread() -> None:
    """The mechanism: torch's OpenMP count set in one worker thread leaves the others' alone,
    so a wide pass and narrow passes can run side by side."""
    import torch

    before = torch.get_num_threads()
    barrier = threading.Barrier(2)

    def probe(threads: int) -> int:
        def inner() -> int:
            barrier.wait(timeout=10)  # both threads have set their count before either reads it
            time.sleep(0.05)
            return torch.get_num_threads()

        return int(run_with_threads(threads, inner))

    try:
        with ThreadPoolExecutor(2) as pool:
            wide, narrow = pool.map(probe, (3, 1))
        assert (wide, narrow) == (3, 1)
    finally:
        torch.set_num_threads(before)


class ThreadsSeen:
    """A classifier core that notes torch's thread count of each pass; a pass takes
    ``pass_s / threads`` (as on idle cores)."""

    device = "cpu"
    labels = ["a", "b"]

    def __init__(self, pass_s: float = 0.0) -> None:
        self.seen: list[int] = []
        self.pass_s = pass_s

    def predict(self, images: list[np.ndarray]) -> np.ndarray:
        import torch

        threads = torch.get_num_threads()
        self.seen.append(threads)
        time.sleep(self.pass_s / threads)
        return np.tile(np.array([[0.75, 0.25]], dtype=np.float32), (len(images), 1))


JPEG = encode_image(solid((200, 30, 30)), "JPEG")


def _deployment(tmp_path: Path, core: ThreadsSeen, batching: bool, wide: int) -> TaggerClassifier:
    """The classifier deployment on ``core`` with a chooser of 1 or ``wide`` threads per pass."""
    deployment = TaggerClassifier(AppArgs(models_path=tmp_path), core_factory=lambda: core)
    deployment.reconfigure({"batching": batching})
    deployment.use_pass_threads(1, wide)
    return deployment


async def _one_at_a_time(deployment: TaggerClassifier, n: int) -> None:
    for _ in range(n):
        assert (await deployment.tag(JPEG, "image", 1))["content"][0]["label"] == "a"


async def _at_once(deployment: TaggerClassifier, n: int) -> None:
    await asyncio.gather(*(deployment.tag(JPEG, "image", 1) for _ in range(n)))


def test_the_classifier_goes_wide_for_one_request_and_narrow_for_many(tmp_path: Path) -> None:
    import torch

    before = torch.get_num_threads()
    core = ThreadsSeen(pass_s=0.06)
    deployment = _deployment(tmp_path, core, batching=False, wide=3)
    try:
        asyncio.run(_one_at_a_time(deployment, 6))
        alone = list(core.seen)
        assert alone.count(3) >= 4 and set(alone) <= {1, 3}  # wide, bar the narrow width's measurement
        state = deployment.status()["pass_threads"]
        assert state["wide"] == 3 and set(state["mean_ms"]) == {"1", "3"}
        core.seen.clear()
        asyncio.run(_at_once(deployment, 8))
        # the first of a burst started alone (the others had not arrived): wide; the rest one thread
        # each; the wide pass overlapped others, so its time is not counted as a pass alone
        assert core.seen[1:] == [1] * 7
        assert deployment.status()["pass_threads"]["mean_ms"] == state["mean_ms"]
    finally:
        torch.set_num_threads(before)


def test_off_outside_a_replica_and_on_other_devices(tmp_path: Path) -> None:
    core = ThreadsSeen()
    deployment = TaggerClassifier(AppArgs(models_path=tmp_path), core_factory=lambda: core)
    deployment.reconfigure({"batching": False})
    assert deployment.pass_threads is None  # a test process keeps its own settings
    core.device = "cuda"
    deployment.use_pass_threads(1, 2)
    assert deployment.pass_threads is None and deployment.status()["pass_threads"] is None


def test_unset_means_one_width_for_every_pass_in_a_replica(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The opt-in promise through the deployment: in a replica with the variable unset there is no
    chooser and every pass runs on the replica's thread count, alone or not (as before the lever)."""
    import os

    import torch

    import deployments.tagger as tagger_module

    before = torch.get_num_threads()
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):  # apply_threads writes them
        monkeypatch.setenv(name, os.environ.get(name, ""))
    monkeypatch.setattr(tagger_module, "in_replica", lambda: True)
    monkeypatch.setattr(tagger_module, "replica_cpus", lambda: 1.0)
    core = ThreadsSeen(pass_s=0.02)
    deployment = TaggerClassifier(AppArgs(models_path=tmp_path), core_factory=lambda: core)
    jpeg = encode_image(solid((200, 30, 30)), "JPEG")

    async def requests() -> None:
        for _ in range(4):
            await deployment.tag(jpeg, "image", 1)
        await asyncio.gather(*(deployment.tag(jpeg, "image", 1) for _ in range(4)))

    try:
        monkeypatch.setenv("PERCEPT_CLASSIFIER_WIDE_THREADS", "2")
        deployment.reconfigure({"batching": False})
        assert deployment.pass_threads is not None  # the same replica with the variable set: on
        monkeypatch.delenv("PERCEPT_CLASSIFIER_WIDE_THREADS")
        deployment.reconfigure({"batching": False})
        assert deployment.pass_threads is None and deployment.status()["pass_threads"] is None
        asyncio.run(requests())
        assert core.seen == [deployment.threads["threads"]] * 8 == [1] * 8
    finally:
        torch.set_num_threads(before)


def test_batched_passes_take_the_width_from_the_requests_in_flight(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Batching on: a request alone goes through the batch queue to a wide pass; a burst's
    batches run narrow."""
    import torch
    from ray.serve import batching

    # the queue's only replica-bound call: a warning about max_ongoing_requests (as test_serving_path)
    monkeypatch.setattr(batching._BatchQueue, "_warn_if_max_batch_size_exceeds_max_ongoing_requests",
                        lambda self: None)
    before = torch.get_num_threads()
    core = ThreadsSeen(pass_s=0.02)
    deployment = _deployment(tmp_path, core, batching=True, wide=3)
    try:
        async def both() -> None:  # one event loop: Serve's batch queue belongs to the loop it started on
            await _one_at_a_time(deployment, 4)
            seen.extend(core.seen)
            core.seen.clear()
            await _at_once(deployment, 8)

        seen: list[int] = []
        asyncio.run(both())
        burst, core.seen = core.seen, seen
        # alone: wide first (nothing measured yet), the narrow width once for its figure (which width
        # wins after that is wall-time dependent, pinned without batching above)
        assert core.seen[:2] == [3, 1] and set(core.seen) <= {1, 3}
        assert deployment.largest_batch > 1 and burst and set(burst) == {1}  # the burst: narrow
    finally:
        torch.set_num_threads(before)


def test_a_cancelled_requests_pass_still_counts_until_its_thread_returns(tmp_path: Path) -> None:
    """A request cancelled while its pass runs (a client gone) leaves the pass running on the
    cores: a request that comes meanwhile is not alone and gets the narrow count; once the pass
    has returned, a request alone goes wide again."""
    import torch

    before = torch.get_num_threads()
    core = ThreadsSeen(pass_s=0.2)  # wide (2 threads) 0.1 s, narrow 0.2 s
    deployment = _deployment(tmp_path, core, batching=False, wide=2)
    jpeg = JPEG

    async def scenario() -> list[int]:
        await _one_at_a_time(deployment, 4)  # both widths measured alone: wide is the faster
        assert deployment.pass_threads is not None and deployment.pass_threads.preferred() == 2
        core.seen.clear()
        first = asyncio.create_task(deployment.tag(jpeg, "image", 1))
        await asyncio.sleep(0.04)  # its wide pass is running
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        await deployment.tag(jpeg, "image", 1)  # while the cancelled pass still runs
        await asyncio.sleep(0.15)  # every pass has returned
        await deployment.tag(jpeg, "image", 1)
        return list(core.seen)

    try:
        assert asyncio.run(scenario()) == [2, 1, 2]
        assert deployment._passes == 0
    finally:
        torch.set_num_threads(before)
