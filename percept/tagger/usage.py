"""Memory figures for the envelope's ``memory_used`` (GPU) and ``ram_used`` (RAM), in GiB."""

from __future__ import annotations

import resource
import sys
from pathlib import Path

GIB = 2**30


def rss_gib() -> float:
    """Resident memory of this process in GiB (``/proc`` on Linux, peak RSS elsewhere)."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / GIB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / GIB if sys.platform == "darwin" else peak * 1024 / GIB


def gpu_gib() -> float:
    """GPU memory this process holds through torch, 0 without CUDA."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return 0.0
    return float(torch.cuda.memory_reserved()) / GIB


def usage() -> dict[str, float]:
    """``{"ram_gib", "gpu_gib"}`` of this process."""
    return {"ram_gib": rss_gib(), "gpu_gib": gpu_gib()}
