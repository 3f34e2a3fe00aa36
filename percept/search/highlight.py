"""Background removal of stored images: pick a method, cut out, store the RGBA PNG."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from percept.errors import BadRequest, WeightsMissing
from percept.search.background import METHODS, U2NetMasker, cutout
from percept.search.catalog import ImageCatalog, public_record
from percept.search.images import encode_png, split_alpha

logger = logging.getLogger(__name__)


class BackgroundRemover:
    """Masks with U²-Net when its weights are there (``auto``), else with GrabCut."""

    def __init__(self, models_path: str | Path, method: str = "auto") -> None:
        self.models_path = Path(models_path)
        self.u2net: U2NetMasker | None = None
        self.u2net_missing: str | None = None
        if method in ("auto", "u2net"):
            try:
                self.u2net = U2NetMasker(self.models_path)
            except WeightsMissing as exc:
                if method == "u2net":
                    raise
                self.u2net_missing = str(exc.detail)
        self.default = "u2net" if self.u2net is not None else ("grabcut" if method == "auto" else method)
        self.name = f"background:{self.default}"
        self.device = "cpu"

    def methods(self) -> list[str]:
        return list(METHODS) + (["u2net"] if self.u2net is not None else [])

    def masker(self, method: str | None) -> Callable[[np.ndarray], np.ndarray]:
        chosen = method or self.default
        if chosen == "u2net":
            if self.u2net is None:
                raise WeightsMissing("U2-Net", str(self.models_path), hint="put u2net.onnx there")
            return self.u2net
        if chosen not in METHODS:
            raise BadRequest(f"Unknown background method {chosen!r}; use one of {self.methods()}")
        return METHODS[chosen]

    def remove(self, image: np.ndarray, method: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(mask, RGBA cut-out) of an RGB/RGBA image."""
        rgb, _ = split_alpha(image)
        mask = self.masker(method)(rgb)
        return mask, cutout(rgb, mask)

    def highlight(self, catalog: ImageCatalog, owner: str, ref: str, method: str | None = None) -> tuple[dict[str, Any], bytes]:
        """Cut out one stored image; (updated public record, PNG bytes)."""
        doc = catalog.get(owner, ref)
        mask, rgba = self.remove(catalog.read(doc), method)
        png = encode_png(rgba)
        updated = catalog.set_highlighted(owner, doc["id"], png, mask, rgba)
        return public_record(updated), png
