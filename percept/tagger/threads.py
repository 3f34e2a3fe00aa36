"""Thread settings of a model replica, from the CPU share it was given.

torch, OpenCV and onnxruntime each size their thread pools to every core of the machine.
On a node shared by many replicas (17 on a 2-core laptop) that oversubscribes the cores:
measured here under load, one EfficientNet-Lite0 image took 88-155 ms with 1 torch thread
and 660-1,500 ms with 2 (the pools spin while other processes hold the cores). A replica
therefore runs ``int(num_cpus)`` threads (at least 1), split over the forward passes it
runs at once; throughput beyond one core comes from running passes in parallel (see
``concurrent_batches`` of the classifier) or from more replicas, not from wider pools.
"""

from __future__ import annotations

import logging
import os

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
