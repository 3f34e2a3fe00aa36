"""Memory figures for the envelope's ``memory_used`` (GPU) and ``ram_used`` (RAM), in GiB."""

from __future__ import annotations

import resource
import sys
import time
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


RECENT_S = 1.0
_recent: tuple[float, dict[str, float]] | None = None


def recent_usage(max_age_s: float = RECENT_S) -> dict[str, float]:
    """:func:`usage`, read again at most every ``max_age_s``: the envelope's memory figures are
    informative, and reading ``/proc`` on every request was 3 % of the ingress's event loop."""
    global _recent
    now = time.monotonic()
    if _recent is None or now - _recent[0] >= max_age_s:
        _recent = (now, usage())
    return dict(_recent[1])
