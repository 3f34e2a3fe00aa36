"""The human look at a job: one self-contained HTML page (PNG figures inlined).

The 2-D projection scatter coloured by the given class, the images flagged by any task
ringed in red, and a strip of example thumbnails per task finding.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from typing import Any

import numpy as np

from percept.correction.images import decode, encode_png, native_array
from percept.correction.job_state import JobState

logger = logging.getLogger(__name__)

THUMB = 64
SCATTER_POINTS = 4000  # at most this many images drawn in the scatter (a fixed random sample)


def _png_of_figure(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return buffer.getvalue()


def scatter_png(state: JobState, flagged: set[str], classes: list[str]) -> bytes:
    """The projection scatter as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 6))
    ax = fig.add_subplot(111)
    good = [r for r in state.good if r.projection is not None]
    if len(good) > SCATTER_POINTS:  # a readable plot, drawn in a fraction of a second
        pick = np.random.default_rng(0).choice(len(good), SCATTER_POINTS, replace=False)
        good = [good[i] for i in sorted(pick)]
    cmap = matplotlib.colormaps["tab20"]
    for k, cls in enumerate(classes):
        pts = np.array([r.projection for r in good if r.item.cls == cls])
        if len(pts):
            ax.scatter(pts[:, 0], pts[:, 1], s=8, color=cmap(k % 20), label=cls, alpha=0.7)
    marked = np.array([r.projection for r in good if r.item.uuid in flagged])
    if len(marked):
        ax.scatter(marked[:, 0], marked[:, 1], s=40, facecolors="none", edgecolors="red",
                   linewidths=1.0, label="flagged")
    ax.set_title("2-D projection (PCA of image features), coloured by given class")
    if len(classes) <= 20:  # a fixed corner: "best" costs seconds with many points
        ax.legend(fontsize=7, markerscale=1.5, loc="upper right")
    return _png_of_figure(fig)


def thumbnail_uri(state: JobState, uid: str) -> str | None:
    """A data: URI of a small thumbnail of the image (corrected version when there is one)."""
    import cv2

    record = next((r for r in state.records if r.item.uuid == uid), None)
    if record is None:
        return None
    try:
        array = state.working.get(uid)
        if array is None:
            array = native_array(decode(record.item.path))
        h, w = array.shape[:2]
        scale = THUMB / max(h, w)
        small = cv2.resize(array, (max(1, round(w * scale)), max(1, round(h * scale))))
        if small.ndim == 2:
            small = small[..., None]
        return "data:image/png;base64," + base64.b64encode(encode_png(small)).decode()
    except Exception:
        return None


def build_report(state: JobState, tasks: list[dict[str, Any]], classes: list[str]) -> str:
    """Write ``report.html`` through the job's sink; returns where it went."""
    flagged: set[str] = set()
    for task in tasks:
        if task.get("name", "").endswith("class_splitting"):
            continue
        flagged.update(str(u) for u in task.get("outliers", []))
    scatter = base64.b64encode(scatter_png(state, flagged, classes)).decode()
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Percept correction job {html.escape(state.job_id)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}figure{display:inline-block;margin:4px;"
        "text-align:center;font-size:11px}img.t{image-rendering:pixelated;border:1px solid #ccc}</style>",
        "</head><body>",
        f"<h1>Correction job {html.escape(state.job_id)}</h1>",
        f"<p>{len(state.records)} images, {len(state.good)} readable, {len(classes)} classes.</p>",
        f"<img alt='projection scatter' src='data:image/png;base64,{scatter}'>",
    ]
    for task in tasks:
        name = html.escape(str(task.get("name")))
        parts.append(f"<h2>{name}</h2>")
        if "error" in task:
            parts.append(f"<p>error: {html.escape(str(task['error']))}</p>")
            continue
        outliers = [str(u) for u in task.get("outliers", [])]
        summary = ", ".join(f"{k}: {len(v)}" for k, v in task.items()
                            if k in ("outliers", "removed", "corrected") and isinstance(v, list))
        parts.append(f"<p>{html.escape(summary)}</p>")
        if name.endswith("class_splitting"):
            parts.append(f"<p>sub-classes: {html.escape(str(task.get('subclasses', {})))}</p>")
            continue
        for uid in outliers[: state.config.report_thumbnails]:
            uri = thumbnail_uri(state, uid)
            if uri:
                caption = html.escape(uid)
                suggested = task.get("suggested", {}).get(uid)
                if suggested:
                    caption += f" → {html.escape(str(suggested))}"
                parts.append(f"<figure><img class='t' src='{uri}'><figcaption>{caption}</figcaption></figure>")
    parts.append("</body></html>")
    return state.sink.write("report.html", "\n".join(parts).encode())
