"""The per-batch featurizer: one callable class for Ray Data ``map_batches`` and local runs.

Input batch columns: ``path``, ``uuid``. Output columns: ``uuid``, ``error`` (empty when
fine), metadata (``channels``, ``height``, ``width``, ``mean``/``std_dev`` as JSON text),
``rgb_sum``/``rgb_sq_sum`` (B, 3) and ``pixels`` for the dataset statistics, ``measures``
(B, len(MEASURES)): exposure and sharpness measures, see
:func:`percept.correction.images.quality_measures`), ``sharpness``, ``brightness`` and
``features`` (B, D) float32 (D fixed per feature kind).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import numpy as np

try:  # one OpenCV thread per worker: Ray Data already runs workers in parallel
    import cv2 as _cv2

    _cv2.setNumThreads(1)
except ImportError:  # pragma: no cover
    pass

from percept.correction.images import (
    MEASURE_SIDE,
    MEASURES,
    PIXEL_SIDE,
    ImageDecodeError,
    channel_stats_batch,
    decode,
    gray_of,
    measure_gray,
    native_array,
    pixel_features_batch,
    quality_measures,
)

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


def read_array(path: str) -> np.ndarray:
    """HxWxC float32 in [0, 1] with the file's own channels (RGB order), as :func:`native_array`.

    OpenCV decodes PNG and JPEG about twice as fast as Pillow; anything it cannot read (or
    reads in a form Pillow would not give) goes through Pillow.
    """
    import cv2

    raw = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if raw is None and not os.path.isfile(path):
        raise ImageDecodeError("file not found")
    if raw is None or raw.dtype not in (np.uint8, np.uint16) or raw.ndim not in (2, 3):
        return native_array(decode(path))
    scale = np.float32(1.0 / (255.0 if raw.dtype == np.uint8 else 65535.0))
    if raw.ndim == 2:
        return raw[..., None].astype(np.float32) * scale
    if raw.shape[2] == 3:
        return raw[..., ::-1].astype(np.float32) * scale
    if raw.shape[2] == 4:
        return raw[..., [2, 1, 0, 3]].astype(np.float32) * scale
    return native_array(decode(path))


FEATURE_DIMS = {"pixels": PIXEL_SIDE * PIXEL_SIDE + 324, "imagenet": 1280}
# Pixel features cost ~0.1 ms an image, so batches must be large for the per-batch overhead
# (a Ray task, an object-store block) to vanish; EfficientNet batches are bounded by memory.
AUTO_BATCH = {"pixels": 512, "imagenet": 32}


# The featurizer measures a batch in slices of at most this many images (see Featurizer).
SLICE_IMAGES = 512


def batch_size_for(kind: str, configured: int) -> int:
    """The batch size a job uses: the configured one, or by feature kind when it is 0."""
    return configured if configured > 0 else AUTO_BATCH.get(kind, 32)


class Featurizer:
    """Decode, measure and embed a batch of images; failures become per-row errors.

    Images of one size are measured and featurized together as one array (the common case
    of a dataset of equal-size images costs a few numpy calls per batch, not per image).
    """

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
        n = len(batch["path"])
        if n > SLICE_IMAGES and self.kind == "pixels":
            # Large batches (a Ray Data pixel task takes a whole block, up to 4,096 images) in
            # slices: the per-image CPU grows with the slice, as the batch's temporaries leave
            # the CPU caches (measured, 32x32 grey: 78 µs an image in slices of 256-512, 91 at
            # 2,500, 112 at 4,096). Every image is measured on its own, so the columns are the
            # same either way. Pixel features only: an embedding model's batches are the
            # job's batch size, chosen for the model (its actor pool's), and stay whole.
            parts = [self._call({k: v[s:s + SLICE_IMAGES] for k, v in batch.items()})
                     for s in range(0, n, SLICE_IMAGES)]
            return {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}
        return self._call(batch)

    def _call(self, batch: dict[str, Any]) -> dict[str, Any]:
        paths = [str(p) for p in batch["path"]]
        n = len(paths)
        cols = empty_columns(n, FEATURE_DIMS[self.kind])
        cols["uuid"] = np.asarray([str(u) for u in batch["uuid"]], dtype=object)
        groups: dict[tuple[int, ...], list[tuple[int, np.ndarray]]] = {}
        for i, path in enumerate(paths):
            try:
                array = self._read(path)
                groups.setdefault(array.shape, []).append((i, array))
            except ImageDecodeError as exc:
                cols["error"][i] = str(exc)
            except Exception as exc:  # one bad file must never sink the batch
                logger.warning("image %s failed: %s", path, exc)
                cols["error"][i] = f"{type(exc).__name__}: {exc}"
        rgbs: dict[int, np.ndarray] = {}
        for (h, w, c), group in groups.items():
            index = [i for i, _ in group]
            arrays = np.stack([a for _, a in group])
            mean, std, rgb_sum, rgb_sq, pixels = channel_stats_batch(arrays)
            cols["channels"][index], cols["height"][index], cols["width"][index] = c, h, w
            cols["rgb_sum"][index], cols["rgb_sq_sum"][index], cols["pixels"][index] = rgb_sum, rgb_sq, pixels
            for k, i in enumerate(index):
                cols["mean"][i] = json.dumps(np.round(mean[k], 6).tolist())
                cols["std_dev"][i] = json.dumps(np.round(std[k], 6).tolist())
            rgb = arrays if c == 3 else (np.repeat(arrays, 3, axis=3) if c == 1 else arrays[..., :3])
            grays = arrays[..., 0] if c == 1 else gray_of(rgb)
            if min(h, w) > MEASURE_SIDE:  # large images: measured at 256 px, one at a time
                cols["measures"][index] = np.stack([measure_gray(g) for g in grays])
            else:
                cols["measures"][index] = quality_measures(grays)
            if self.kind == "pixels":
                cols["features"][index] = pixel_features_batch(grays)
            else:
                for k, i in enumerate(index):
                    rgbs[i] = (rgb[k] * 255.0 + 0.5).astype(np.uint8)
        if self.model is not None and rgbs:
            order = sorted(rgbs)
            vectors = self.model.embed([rgbs[i] for i in order])
            for i, vec in zip(order, vectors, strict=True):
                cols["features"][i] = vec
        m = cols["measures"]
        cols["sharpness"] = np.exp(m[:, MEASURES.index("steep")])
        cols["brightness"] = m[:, MEASURES.index("mean")].copy()
        return cols

    def _read(self, path: str) -> np.ndarray:
        if self.allowed_roots is not None and not path_allowed(path, self.allowed_roots):
            raise ImageDecodeError("path outside the allowed roots")
        return read_array(path)


def empty_columns(n: int, dims: int) -> dict[str, Any]:
    """The featurizer's output columns for ``n`` rows, filled with "no value"."""
    return {
        "uuid": np.asarray([""] * n, dtype=object),
        "error": np.asarray([""] * n, dtype=object),
        "channels": np.zeros(n, np.int64),
        "height": np.zeros(n, np.int64),
        "width": np.zeros(n, np.int64),
        "mean": np.asarray(["[]"] * n, dtype=object),
        "std_dev": np.asarray(["[]"] * n, dtype=object),
        "rgb_sum": np.zeros((n, 3), np.float64),
        "rgb_sq_sum": np.zeros((n, 3), np.float64),
        "pixels": np.zeros(n, np.int64),
        "measures": np.zeros((n, len(MEASURES)), np.float64),
        "features": np.zeros((n, dims), np.float32),
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


def run_local(items: list[dict[str, Any]], featurizer: Featurizer, batch_size: int = 256,
              progress: Any = None) -> list[dict[str, Any]]:
    """Featurize without Ray (tests, tiny jobs, the one-process baseline): same batches, here."""
    out: list[dict[str, Any]] = []
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        cols = featurizer({"path": [i["path"] for i in chunk], "uuid": [i["uuid"] for i in chunk]})
        out += rows_of(cols)
        if progress is not None:
            progress(len(out), len(items))
    return out


def rows_of(cols: dict[str, Any]) -> list[dict[str, Any]]:
    """Column batch → row dicts; array columns (measures, features, sums) stay numpy rows."""
    names = list(cols)
    lists = [np.asarray(cols[k]) if np.asarray(cols[k]).ndim > 1 else np.asarray(cols[k]).tolist() for k in names]
    n = len(lists[0]) if lists else 0
    return [dict(zip(names, (col[i] for col in lists), strict=True)) for i in range(n)]
