"""Pure functions that shape model outputs into the Detect ``content`` lists."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

Labels = Sequence[tuple[str, float]]
Detection = dict[str, Any]  # {"label": str, "score": float, "box": [x0, y0, x1, y1]}


def label_content(labels: Labels, num_labels: int) -> list[dict[str, Any]]:
    """``[{"label", "probability"}]`` for one image, most probable first."""
    ordered = sorted(labels, key=lambda item: -item[1])[:num_labels]
    return [{"label": label, "probability": float(p)} for label, p in ordered]


def video_label_content(
    frames: Sequence[Labels],
    timestamps: Sequence[float],
    num_labels: int,
    min_probability: float,
) -> list[dict[str, Any]]:
    """Labels of a video: mean probability over the sampled frames, with timestamps.

    A label's probability is its mean over all sampled frames (0 in frames where it is not
    among that frame's returned labels); it *appears* at a frame's timestamp when its
    probability there is at least ``min_probability``.
    """
    if len(frames) != len(timestamps):
        raise ValueError("one timestamp per frame")
    if not frames:
        return []
    sums: dict[str, float] = defaultdict(float)
    seen: dict[str, list[float]] = defaultdict(list)
    for labels, t in zip(frames, timestamps, strict=True):
        for label, p in labels:
            sums[label] += float(p)
            if p >= min_probability:
                seen[label].append(round(float(t), 3))
    n = len(frames)
    ranked = sorted(sums.items(), key=lambda item: (-item[1], item[0]))[:num_labels]
    return [
        {"label": label, "probability": total / n, "timestamps": sorted(set(seen.get(label, [])))}
        for label, total in ranked
    ]


def count_objects(detections: Sequence[Detection]) -> Counter[str]:
    """How many instances of each label one frame holds."""
    return Counter(str(d["label"]) for d in detections)


def count_content(counts: Counter[str] | dict[str, int]) -> list[dict[str, int]]:
    """The spec's second output shape: ``[{"car": 7}, {"person": 6}]``, by label name."""
    return [{label: int(n)} for label, n in sorted(counts.items()) if n > 0]


def video_counts(frames: Sequence[Sequence[Detection]]) -> Counter[str]:
    """Counts over a video: per label, the most instances seen in any one sampled frame.

    (The spec gives counts for images only; the largest simultaneous count is the reading
    that does not count one car once per frame.)
    """
    total: Counter[str] = Counter()
    for detections in frames:
        for label, n in count_objects(detections).items():
            total[label] = max(total[label], n)
    return total
