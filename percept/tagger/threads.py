"""Thread settings of a model replica, from the CPU share it was given.

torch, OpenCV and onnxruntime each size their thread pools to every core of the machine.
On a node shared by many replicas (17 on a 2-core laptop) that oversubscribes the cores:
measured here under load, one EfficientNet-Lite0 image took 88-155 ms with 1 torch thread
and 660-1,500 ms with 2 (the pools spin while other processes hold the cores). A replica
therefore runs ``int(num_cpus)`` threads (at least 1), split over the forward passes it
runs at once; throughput beyond one core comes from running passes in parallel (see
``concurrent_batches`` of the classifier) or from more replicas, not from wider pools.

An opt-in exception (:class:`PassThreads`, the classifier on the CPU,
``PERCEPT_CLASSIFIER_WIDE_THREADS``): a pass that runs alone may take more threads while that
measures faster than one (the bare model's best single image, on the main thread with the cores
free, was its 2-thread figure; inside the classifier, on an executor thread, 2-thread passes
measured 13.4-15.4 ms against 12.7-13.7 with one thread even with the cores free); torch keeps
the count per calling thread, so the other passes keep theirs (:func:`run_with_threads`). Off by
default: on the loaded 2-core machine it cost CPU and throughput at c=1, c=4 and c=16
(docs/performance.md, finding 34).
"""

from __future__ import annotations

import logging
import os
from typing import Any

logger = logging.getLogger(__name__)


def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threads_for(cpu_share: float | None, parallel: int = 1, cores: int | None = None) -> int:
    """Intra-op threads of one forward pass: the whole CPUs of the share, split over the
    passes run at once, at least one. ``cpu_share`` None: every available core."""
    cores = cores or available_cores()
    whole = cores if cpu_share is None else min(cores, int(cpu_share))
    return max(1, whole // max(1, parallel))


def apply_threads(threads: int) -> dict[str, int]:
    """Size torch's and OpenCV's pools (and the OMP/MKL defaults of libraries loaded later)."""
    threads = max(1, int(threads))
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)
    applied = {"threads": threads}
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only settable before the first parallel work; harmless when late
        pass
    applied["torch"] = torch.get_num_threads()
    try:
        import cv2

        cv2.setNumThreads(threads)
        applied["opencv"] = cv2.getNumThreads()
    except ImportError:
        pass
    logger.info("model threads: %s", applied)
    return applied


WIDE_THREADS_ENV = "PERCEPT_CLASSIFIER_WIDE_THREADS"  # unset or "1": off (every pass on the narrow count)
MAX_WIDE_THREADS = 4  # "auto": one 224 x 224 image gains little past a few threads (not measured past 2)


def wide_threads(narrow: int, cores: int | None = None) -> int:
    """Threads of a pass that runs alone, from ``PERCEPT_CLASSIFIER_WIDE_THREADS``: unset, empty
    or ``1``: ``narrow`` (off, the default: on a loaded 2-core machine it cost c=4 and c=16
    throughput, docs/performance.md finding 34); ``auto``: the cores this process may use, at
    most ``MAX_WIDE_THREADS``; a whole number n >= 2: n. Never below ``narrow``; anything else
    is logged and means off."""
    text = os.environ.get(WIDE_THREADS_ENV, "").strip().lower()
    if not text:
        return narrow
    if text == "auto":
        return max(narrow, min(MAX_WIDE_THREADS, cores or available_cores()))
    try:
        value = int(text)
        if value < 1:
            raise ValueError(text)
    except ValueError:
        logger.warning("%s=%r is neither 'auto' nor a whole number >= 1: ignored (off)", WIDE_THREADS_ENV, text)
        return narrow
    return max(narrow, value)


def run_with_threads(threads: int, fn: Any, *args: Any) -> Any:
    """``fn(*args)`` with torch's intra-op pool of *this thread* at ``threads``.

    torch's OpenMP backend keeps the count per calling thread (OpenMP's ``nthreads`` of the
    thread; oneDNN reads the same), so passes on other threads keep theirs. Set only on a
    change: ``torch.set_num_threads`` also writes the process-wide default that threads starting
    later pick up, and rebuilds torch's (caffe2) pthreadpool under a mutex on every width change
    (a negligible cost as measured here, docs/performance.md finding 34)."""
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return fn(*args)


class PassThreads:
    """Intra-op threads per forward pass, from the passes in flight and what each width measured.

    Several passes in flight: ``narrow`` threads each (one per pass, so concurrent passes do not
    oversubscribe the cores). One pass alone: ``wide`` threads (every core), unless passes alone
    have measured slower wide than narrow. Measured (docs/performance.md finding 34), one
    EfficientNet-Lite0 image on the 2-core machine with the cores nearly free: the bare pass on the
    main thread 11.0-12.5 ms at 2 threads in a quiet window, and in one later look 9.3 ms once and
    17.3-18.5 ms twice against 13.8-14.9 ms at 1 thread; inside the classifier (an executor
    thread) 2-thread passes gave 13.4-15.4 ms p50 per request against 12.7-13.7 with 1. With other
    processes on the cores an OpenMP team waits at every operator for a thread that is not running (2 threads
    5-10x slower than 1 under load, module docstring). So the width of a pass alone is chosen by
    the exponentially weighted mean of each width's recent wall times over passes that ran
    alone, the loser tried again every ``probe_every`` passes alone (its figure replaced by the
    probe's; the interval doubling, up to ``max_probe_every``, while it keeps losing). The first pass of each width is not counted
    (one-off set-up: oneDNN's primitives, OpenMP's team). Not thread-safe: call it from one
    event loop.
    """

    def __init__(self, narrow: int, wide: int, probe_every: int = 16, max_probe_every: int = 256,
                 weight: float = 0.3) -> None:
        self.narrow = max(1, narrow)
        self.wide = max(self.narrow, wide)
        self.probe_every = self.base_probe = max(2, probe_every)
        self.max_probe_every = max(self.probe_every, max_probe_every)
        self.weight = weight
        self.mean_s: dict[int, float] = {}
        self.seen: dict[int, int] = {}
        self.alone = 0  # passes picked alone since the last probe
        self.picked = {self.narrow: 0, self.wide: 0}

    @property
    def enabled(self) -> bool:
        return self.wide > self.narrow

    def preferred(self) -> int:
        """The width a pass alone gets now (wide until both widths have a figure)."""
        wide, narrow = self.mean_s.get(self.wide), self.mean_s.get(self.narrow)
        if wide is None or narrow is None:
            return self.wide
        return self.wide if wide <= narrow else self.narrow

    def pick(self, in_flight: int) -> int:
        """Threads for a pass started with ``in_flight`` passes (itself included) under way."""
        if not self.enabled or in_flight > 1:
            threads = self.narrow
        else:
            threads = best = self.preferred()
            other = self.narrow if best == self.wide else self.wide
            if other not in self.mean_s:  # a width without a figure yet: every other pass alone
                if self.alone % 2 == 1:
                    threads = other
            elif self.alone + 1 >= self.probe_every:
                threads, self.alone = other, -1
            self.alone += 1
        self.picked[threads] = self.picked.get(threads, 0) + 1
        return threads

    def record(self, threads: int, seconds: float) -> None:
        """The wall time of a pass that ran alone from start to end with ``threads``."""
        if not self.enabled or threads not in (self.narrow, self.wide):
            return
        self.seen[threads] = self.seen.get(threads, 0) + 1
        if self.seen[threads] == 1:
            return  # set-up
        before = self.preferred()
        old = self.mean_s.get(threads)
        if old is None or threads != before:  # first figure, or a probe of the loser: its old figure is stale
            self.mean_s[threads] = seconds
        else:
            self.mean_s[threads] = old + self.weight * (seconds - old)
        if threads != before and old is not None:  # a probe of the loser
            if self.preferred() == before:  # lost again: try it less often
                self.probe_every = min(self.max_probe_every, self.probe_every * 2)
            else:
                self.probe_every = self.base_probe

    def state(self) -> dict[str, Any]:
        """Figures for the replica's status."""
        return {"narrow": self.narrow, "wide": self.wide, "alone_now": self.preferred() if self.enabled else self.narrow,
                "mean_ms": {str(k): round(v * 1000, 2) for k, v in sorted(self.mean_s.items())},
                "passes": {str(k): v for k, v in sorted(self.picked.items())}}
