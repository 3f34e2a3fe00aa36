"""The image catalog: one record per stored image (state store) and its files (blob store).

Namespaces: ``search_images`` (records, ``owner`` indexed), ``search_hashes`` (per-owner
content hashes, so a crawl never stores the same bytes twice) and ``search_versions`` (a
per-owner counter bumped on every change, so each index replica knows when to rebuild).
Blob keys: ``search/<owner>/<id>.<ext>`` (original), ``…/<id>.fg.png`` (background
removed), ``…/<id>.<kind>.npy`` (embeddings).
"""

from __future__ import annotations

import base64
import builtins
import hashlib
import io
import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from percept.errors import NotFound
from percept.search.background import border_mask
from percept.search.colour import dominant_colours
from percept.search.images import FEATURE_SIDE, decode_image, feature_thumb, split_alpha
from percept.storage import BlobStore, StateStore, owner_prefix

logger = logging.getLogger(__name__)

IMAGES = "search_images"
HASHES = "search_hashes"
VERSIONS = "search_versions"
EMBEDDING_KINDS = ("resnet", "clip")
_EXT = {"jpeg": "jpg", "png": "png", "gif": "gif", "webp": "webp", "bmp": "bmp"}
_PRIVATE_FIELDS = ("features",)


def public_record(doc: dict[str, Any]) -> dict[str, Any]:
    """A record as the API shows it (internal colour features left out)."""
    return {k: v for k, v in doc.items() if k not in _PRIVATE_FIELDS}


@dataclass
class ColourFeatures:
    """Thumbnails of an owner's images for the colour searches: ids and (n, side², 4) RGBA."""

    ids: list[str]
    thumbs: np.ndarray


class ImageCatalog:
    """Records and files of the stored images, always scoped to one owner."""

    def __init__(self, state: StateStore, blobs: BlobStore) -> None:
        self.state = state
        self.blobs = blobs

    # versions ---------------------------------------------------------------------------
    def version(self, owner: str) -> int:
        doc = self.state.get(VERSIONS, owner)
        return int(doc["version"]) if doc else 0

    def bump(self, owner: str) -> int:
        doc = self.state.update(
            VERSIONS, owner, lambda d: {"owner": owner, "version": (d or {}).get("version", 0) + 1}
        )
        return int(doc["version"]) if doc else 0

    # records ----------------------------------------------------------------------------
    def add(
        self, owner: str, data: bytes, *, source_url: str | None = None, page_url: str | None = None,
        fmt: str = "png",
    ) -> tuple[dict[str, Any], bool]:
        """Store an image (deduplicated by content): (record, created)."""
        image = decode_image(data)  # refuse unreadable bytes before anything is written
        digest = hashlib.sha256(data).hexdigest()
        image_id = uuid.uuid4().hex
        if not self.state.put_if_absent(HASHES, f"{owner}:{digest}", {"owner": owner, "id": image_id}):
            existing = self.state.get(HASHES, f"{owner}:{digest}")
            record = self.state.get(IMAGES, str(existing["id"])) if existing else None
            if record is not None:
                return record, False
            self.state.put(HASHES, f"{owner}:{digest}", {"owner": owner, "id": image_id})
        rgb, alpha = split_alpha(image)
        mask = alpha if alpha is not None else border_mask(rgb)
        if mask.mean() < 0.02:  # nothing stands out from the border: use the whole picture
            mask = np.ones(rgb.shape[:2], dtype=bool)
        key = f"{owner_prefix('search', owner)}/{image_id}.{_EXT.get(fmt, 'png')}"
        self.blobs.put_bytes(key, data)
        record = {
            "id": image_id,
            "owner": owner,
            "img_path": key,
            "source_url": source_url,
            "page_url": page_url,
            "sha256": digest,
            "format": fmt,
            "bytes": len(data),
            "width": int(rgb.shape[1]),
            "height": int(rgb.shape[0]),
            "created_at": time.time(),
            "dominant_colours": dominant_colours(rgb, mask),
            "foreground_fraction": round(float(mask.mean()), 4),
            "highlighted_path": None,
            "embedding_resnet": None,
            "embedding_clip": None,
            "features": base64.b64encode(feature_thumb(image, mask).tobytes()).decode(),
        }
        self.state.put(IMAGES, image_id, record)
        self.bump(owner)
        return record, True

    def list(self, owner: str) -> list[dict[str, Any]]:
        return self.state.list(IMAGES, owner=owner)

    def get(self, owner: str, ref: str) -> dict[str, Any]:
        """A record by id, by its ``img_path`` (blob key) or its file name; 404 when not the owner's."""
        ref = ref.strip()
        candidate = ref.rsplit("/", 1)[-1].split(".", 1)[0]
        doc = self.state.get(IMAGES, candidate) if re.fullmatch(r"[0-9a-f]{32}", candidate) else None
        if doc is None or doc.get("owner") != owner:
            raise NotFound("Image not found")
        if "/" in ref and ref not in (doc["img_path"], doc.get("highlighted_path")):
            raise NotFound("Image not found")
        return doc

    def read(self, doc: dict[str, Any], *, highlighted: bool = False) -> np.ndarray:
        """The decoded image (RGB/RGBA), or its background-removed cut-out when asked and present."""
        key = doc.get("highlighted_path") if highlighted and doc.get("highlighted_path") else doc["img_path"]
        try:
            return decode_image(self.blobs.get_bytes(str(key)))
        except KeyError:
            raise NotFound("Image file is missing from the store") from None

    def set_highlighted(self, owner: str, image_id: str, png: bytes, mask: np.ndarray, rgba: np.ndarray) -> dict[str, Any]:
        """Store the cut-out and refresh the record's colour features with its mask."""
        key = f"{owner_prefix('search', owner)}/{image_id}.fg.png"
        self.blobs.put_bytes(key, png)

        def fn(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            if doc is None:
                return None
            doc["highlighted_path"] = key
            doc["foreground_fraction"] = round(float(mask.mean()), 4)
            if mask.any():
                doc["features"] = base64.b64encode(feature_thumb(rgba, mask).tobytes()).decode()
                doc["dominant_colours"] = dominant_colours(rgba[..., :3], mask)
            return doc

        doc = self.state.update(IMAGES, image_id, fn)
        self.bump(owner)
        if doc is None:
            raise NotFound("Image not found")
        return doc

    def clear(self, owner: str) -> int:
        """Delete every record, hash and file of an owner; the number of images deleted."""
        docs = self.list(owner)
        for doc in docs:
            self.state.delete(IMAGES, doc["id"])
            self.state.delete(HASHES, f"{owner}:{doc['sha256']}")
        for key in self.blobs.list(owner_prefix("search", owner)):
            self.blobs.delete(key)
        self.bump(owner)
        return len(docs)

    # colour features -------------------------------------------------------------------
    def colour_features(self, owner: str) -> ColourFeatures:
        docs = [d for d in self.list(owner) if d.get("features")]
        side = FEATURE_SIDE * FEATURE_SIDE
        thumbs = np.zeros((len(docs), side, 4), dtype=np.uint8)
        for i, doc in enumerate(docs):
            thumbs[i] = np.frombuffer(base64.b64decode(doc["features"]), dtype=np.uint8).reshape(side, 4)
        return ColourFeatures([d["id"] for d in docs], thumbs)

    # embeddings -------------------------------------------------------------------------
    def missing_embeddings(self, owner: str, kind: str, model: str) -> builtins.list[dict[str, Any]]:
        field = f"embedding_{kind}"
        return [d for d in self.list(owner) if (d.get(field) or {}).get("model") != model]

    def save_embedding(self, owner: str, image_id: str, kind: str, model: str, vector: np.ndarray) -> None:
        key = f"{owner_prefix('search', owner)}/{image_id}.{kind}.npy"
        buf = io.BytesIO()
        np.save(buf, np.asarray(vector, dtype=np.float32))
        self.blobs.put_bytes(key, buf.getvalue())
        entry = {"model": model, "dim": int(vector.shape[-1]), "key": key}

        def fn(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            if doc is None:
                return None
            doc[f"embedding_{kind}"] = entry
            return doc

        self.state.update(IMAGES, image_id, fn)

    def embeddings(self, owner: str, kind: str, model: str) -> tuple[builtins.list[str], np.ndarray]:
        """Ids and the (n, d) matrix of an owner's stored embeddings of one model."""
        ids, rows = [], []
        for doc in self.list(owner):
            entry = doc.get(f"embedding_{kind}") or {}
            if entry.get("model") != model:
                continue
            try:
                rows.append(np.load(io.BytesIO(self.blobs.get_bytes(entry["key"]))))
                ids.append(doc["id"])
            except KeyError:
                logger.warning("embedding file %s is missing", entry.get("key"))
        matrix = np.stack(rows).astype(np.float32) if rows else np.zeros((0, 0), dtype=np.float32)
        return ids, matrix
