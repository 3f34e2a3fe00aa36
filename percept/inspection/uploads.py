"""Turning uploaded files into items and images (names checked, images decoded once)."""

from __future__ import annotations

import mimetypes
import re
import time
from typing import Any

from percept.errors import BadRequest
from percept.inspection.errors import api_error
from percept.inspection.imaging import image_size
from percept.inspection.store import InspectionRepo
from percept.storage.blobs import BlobStore, owner_prefix

# A stem of letters, digits, "_" or "-" and one extension: no spaces, no extra dots.
_NAME = re.compile(r"^([\w\-]{1,128})\.([A-Za-z0-9]{1,8})$")
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def parse_bool(value: Any, name: str) -> bool | None:
    """``True``/``False``/``None`` from "true", "False", "1", "" (None when absent or empty)."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in ("", "none", "null"):
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise api_error(BadRequest, "Invalid Request", [f"Invalid value: {name} ({value})"])


def item_id_of(filename: str) -> str | None:
    """The item id (the file name's stem), or None when the name is not acceptable."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    match = _NAME.match(base)
    return match.group(1) if match else None


def store_uploads(
    records: InspectionRepo,
    blobs: BlobStore,
    owner: str,
    payloads: list[tuple[str, bytes]],
    training: bool,
    good: bool | None,
) -> list[str]:
    """Validate every file first (400 lists all bad names), then store items and images.

    Re-uploading a name replaces that item (its image, labels and assessments): the item id
    is the file name, so the latest file wins.
    """
    bad_names = [f"Invalid filename {name}" for name, _ in payloads if item_id_of(name) is None]
    if bad_names:
        raise api_error(BadRequest, "Invalid Request", bad_names)
    sizes: list[tuple[int, int]] = []
    unreadable = []
    for name, content in payloads:
        try:
            sizes.append(image_size(content))
        except Exception:  # Pillow raises many types for bad files
            unreadable.append(f"Unreadable image {name}")
    if unreadable:
        raise api_error(BadRequest, "Invalid Request", unreadable)
    seen: dict[str, int] = {}
    for index, (name, _) in enumerate(payloads):
        seen[item_id_of(name) or ""] = index  # a name twice in one upload: the last one wins
    item_ids = []
    now = time.time()
    for item_id, index in seen.items():
        name, content = payloads[index]
        width, height = sizes[index]
        old = records.get_item(owner, item_id)
        for old_image in (old or {}).get("image_ids", []):
            records.delete_image(old_image)
        image_id = records.next_id("image")
        ext = name.rsplit(".", 1)[-1].lower()
        key = blobs.put_bytes(f"{owner_prefix('inspection', owner)}/images/{image_id}.{ext}", content)
        records.put_image({
            "owner": owner, "image_id": image_id, "item_id": item_id, "blob_key": key,
            "content_type": mimetypes.guess_type(name)[0] or "application/octet-stream",
            "file_size": len(content), "width": width, "height": height,
            "annotations": [], "created_at": now,
        })
        records.put_item({
            "owner": owner, "item_id": item_id, "is_training_data": training, "good": good,
            "image_ids": [image_id], "status": "pending", "created_at": now, "finished_at": None,
            "assessments": {}, "last_model_id": None,
        })
        item_ids.append(item_id)
    return item_ids
