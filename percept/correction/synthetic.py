"""A labelled image dataset with known faults, from scikit-learn's ``load_digits``.

Used by the tests and the benchmark: digits upsampled to image files, with a fraction of
labels flipped, one class merged into another (for splitting) and some images blurred,
darkened or over-exposed. The ground truth comes back with the request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class SyntheticDataset:
    """The request's ``dataset`` section plus what was injected (by image uuid)."""

    dataset: dict[str, Any]
    true_class: dict[str, str]
    given_class: dict[str, str]
    flipped: set[str] = field(default_factory=set)
    blurred: set[str] = field(default_factory=set)
    dark: set[str] = field(default_factory=set)
    bright: set[str] = field(default_factory=set)
    merged: tuple[str, str] | None = None
    paths: dict[str, str] = field(default_factory=dict)

    def request(self, tasks: list[str], **config: Any) -> dict[str, Any]:
        return {"config_params": dict(config), "dataset": self.dataset,
                "tasks": [{"name": t} for t in tasks]}


def make_digits_dataset(
    root: Path,
    *,
    seed: int = 0,
    per_class: int | None = None,
    classes: list[int] | None = None,
    side: int = 32,
    flip_fraction: float = 0.1,
    merge: tuple[int, int] | None = (7, 1),
    n_blur: int = 6,
    n_dark: int = 4,
    n_bright: int = 4,
) -> SyntheticDataset:
    """Write the digits as ``side``x``side`` RGB PNGs under ``root``; returns the request data.

    ``merge=(a, b)`` files every ``a`` image under class ``b`` (``a`` is not a class then).
    Flipped labels go to another (remaining) class; blur is a Gaussian of sigma ``side/16``;
    dark images are scaled by 0.25; bright ones are washed out toward white.
    """
    import cv2
    from PIL import Image
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    digits = load_digits()
    images, targets = digits.images, digits.target
    keep = classes if classes is not None else list(range(10))
    index = [i for i in range(len(targets)) if targets[i] in keep]
    if per_class is not None:
        chosen: list[int] = []
        for c in keep:
            members = [i for i in index if targets[i] == c]
            chosen += list(rng.choice(members, size=min(per_class, len(members)), replace=False))
        index = sorted(chosen)
    root.mkdir(parents=True, exist_ok=True)
    true = {f"img{i:05d}": str(int(targets[i])) for i in index}
    given = dict(true)
    merged = None
    if merge is not None and merge[0] in keep and merge[1] in keep:
        merged = (str(merge[0]), str(merge[1]))
        given = {k: (merged[1] if v == merged[0] else v) for k, v in given.items()}
    names = sorted(set(given.values()), key=int)
    ids = list(given)
    flipped = set(rng.choice(ids, size=int(round(flip_fraction * len(ids))), replace=False).tolist())
    for uid in sorted(flipped):
        others = [c for c in names if c != given[uid]]
        given[uid] = str(rng.choice(others))
    rest = [u for u in ids if u not in flipped]
    picks = rng.choice(rest, size=n_blur + n_dark + n_bright, replace=False).tolist()
    blurred, dark, bright = set(picks[:n_blur]), set(picks[n_blur:n_blur + n_dark]), set(picks[n_blur + n_dark:])
    class_files: dict[str, dict[str, Any]] = {c: {} for c in names}
    paths: dict[str, str] = {}
    for i in index:
        uid = f"img{i:05d}"
        array = cv2.resize((images[i] / 16.0).astype(np.float32), (side, side), interpolation=cv2.INTER_CUBIC)
        array = np.clip(array, 0, 1) * 0.85 + 0.05
        if uid in blurred:
            array = cv2.GaussianBlur(array, (0, 0), side / 16.0)
        if uid in dark:
            array = array * 0.25
        if uid in bright:
            array = 0.75 + array * 0.25
        rgb = np.stack([array, array * 0.9 + 0.05, array * 0.8 + 0.1], axis=-1)
        path = root / given[uid] / f"{uid}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)).save(path)
        paths[uid] = str(path)
        class_files[given[uid]][str(path)] = {"uuid": uid}
    dataset = {"uuid": f"digits-seed{seed}", "classes": names, "class_files": class_files}
    return SyntheticDataset(dataset=dataset, true_class=true, given_class=given, flipped=flipped,
                            blurred=blurred, dark=dark, bright=bright, merged=merged, paths=paths)
