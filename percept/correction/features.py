"""The per-batch featurizer: one callable class for Ray Data ``map_batches`` and local runs.

Input batch columns: ``path``, ``uuid``. Output columns: ``uuid``, ``error`` (empty when
fine), metadata (``channels``, ``height``, ``width``, ``mean``/``std_dev`` as JSON text),
RGB sums for the dataset statistics, ``sharpness``, ``brightness``, ``low``, ``high`` and
``features`` (float32 bytes; the vector length is the same for every image of a run).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

try:  # one OpenCV thread per worker: Ray Data already runs workers in parallel
    import cv2 as _cv2

    _cv2.setNumThreads(1)
except ImportError:  # pragma: no cover
    pass

from percept.correction.images import ImageDecodeError, decode, measure, native_array, to_rgb

logger = logging.getLogger(__name__)

FEATURE_KINDS = ("auto", "pixels", "imagenet")
# "auto" reading: EfficientNet embeddings only pay off once images carry real detail.
AUTO_IMAGENET_MIN_SIDE = 64


def path_allowed(path: str, roots: list[str] | None) -> bool:
    """Whether ``path`` (symlinks resolved) lies under one of ``roots`` (None: no restriction)."""
    if roots is None:
        return True
    real = os.path.realpath(path)
    for root in roots:
        base = os.path.realpath(root)
        if real == base or real.startswith(base.rstrip(os.sep) + os.sep):
            return True
    return False


class Featurizer:
    """Decode, measure and embed a batch of images; failures become per-row errors."""

    def __init__(self, kind: str = "pixels", models_path: str | None = None,
                 allowed_roots: list[str] | None = None) -> None:
        if kind not in ("pixels", "imagenet"):
            raise ValueError(f"unknown feature kind {kind!r}")
        self.kind = kind
        self.allowed_roots = allowed_roots
        self.model: Any = None
        if kind == "imagenet":
            from percept.models.imagenet import ImageNetModel

            self.model = ImageNetModel(models_path)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        paths = [str(p) for p in batch["path"]]
        rows: list[dict[str, Any]] = []
        rgbs: list[np.ndarray | None] = []
        for path in paths:
            row: dict[str, Any] = {"error": ""}
            rgb = None
            try:
                if not path_allowed(path, self.allowed_roots):
                    raise ImageDecodeError("path outside the allowed roots")
                if not Path(path).is_file():
                    raise ImageDecodeError("file not found")
                image = decode(path)
                info = measure(image, with_pixels=self.kind == "pixels")
                row.update(
                    channels=info.channels, height=info.height, width=info.width,
                    mean=json.dumps(info.mean), std_dev=json.dumps(info.std_dev),
                    rgb_sum=json.dumps(info.rgb_sum), rgb_sq_sum=json.dumps(info.rgb_sq_sum),
                    pixels=info.pixels, sharpness=info.sharpness, brightness=info.brightness,
                    low=info.low, high=info.high, features=info.features,
                )
                if self.kind == "imagenet":
                    rgb = (to_rgb(native_array(image)) * 255.0 + 0.5).astype(np.uint8)
            except ImageDecodeError as exc:
                row["error"] = str(exc)
            except Exception as exc:  # one bad file must never sink the batch
                logger.warning("image %s failed: %s", path, exc)
                row["error"] = f"{type(exc).__name__}: {exc}"
            rows.append(row)
            rgbs.append(rgb)
        if self.model is not None:
            good = [i for i, r in enumerate(rgbs) if r is not None]
            if good:
                vectors = self.model.embed([rgbs[i] for i in good])
                for i, vec in zip(good, vectors, strict=True):
                    rows[i]["features"] = vec
        return self._columns(batch, rows)

    @staticmethod
    def _columns(batch: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
        def col(name: str, default: Any) -> list[Any]:
            return [r.get(name, default) for r in rows]

        feats = [np.asarray(r.get("features", np.zeros(0)), np.float32).tobytes() for r in rows]
        return {
            "uuid": np.asarray([str(u) for u in batch["uuid"]], dtype=object),
            "error": np.asarray(col("error", ""), dtype=object),
            "channels": np.asarray(col("channels", 0), dtype=np.int64),
            "height": np.asarray(col("height", 0), dtype=np.int64),
            "width": np.asarray(col("width", 0), dtype=np.int64),
            "mean": np.asarray(col("mean", "[]"), dtype=object),
            "std_dev": np.asarray(col("std_dev", "[]"), dtype=object),
            "rgb_sum": np.asarray(col("rgb_sum", "[0,0,0]"), dtype=object),
            "rgb_sq_sum": np.asarray(col("rgb_sq_sum", "[0,0,0]"), dtype=object),
            "pixels": np.asarray(col("pixels", 0), dtype=np.int64),
            "sharpness": np.asarray(col("sharpness", 0.0), dtype=np.float64),
            "brightness": np.asarray(col("brightness", 0.0), dtype=np.float64),
            "low": np.asarray(col("low", 0.0), dtype=np.float64),
            "high": np.asarray(col("high", 0.0), dtype=np.float64),
            "features": np.asarray(feats, dtype=object),
        }


def choose_kind(kind: str, sample_paths: list[str]) -> str:
    """Resolve ``auto``: pixels for tiny images (median short side < 64 px), else imagenet."""
    if kind != "auto":
        return kind
    sides = []
    for path in sample_paths[:8]:
        try:
            image = decode(path)
            sides.append(min(image.size))
        except ImageDecodeError:
            continue
    if sides and float(np.median(sides)) >= AUTO_IMAGENET_MIN_SIDE:
        return "imagenet"
    return "pixels"


def run_local(items: list[dict[str, Any]], featurizer: Featurizer, batch_size: int = 64,
              progress: Any = None) -> list[dict[str, Any]]:
    """Featurize without Ray (tests, tiny jobs): the same batches, in this process."""
    out: list[dict[str, Any]] = []
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        cols = featurizer({"path": [i["path"] for i in chunk], "uuid": [i["uuid"] for i in chunk]})
        out += rows_of(cols)
        if progress is not None:
            progress(len(out), len(items))
    return out


def rows_of(cols: dict[str, Any]) -> list[dict[str, Any]]:
    """Column batch → row dicts (features back to float32 vectors)."""
    n = len(cols["uuid"])
    rows = []
    for i in range(n):
        row = {k: (v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in cols.items() if k != "features"}
        raw = cols["features"][i]
        row["features"] = np.frombuffer(bytes(raw), dtype=np.float32)
        rows.append(row)
    return rows
