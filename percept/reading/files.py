"""The reading service's files: who owns which audio and image, and where the bytes are.

Audio and image ids are separate namespaces (``reading_audio``, ``reading_image``); each
doc names its owner and blob key. Another user's file is reported as not existing.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from percept.storage import BlobStore, StateStore, owner_prefix

Kind = Literal["audio", "image"]
NAMESPACE = {"audio": "reading_audio", "image": "reading_image"}
SUFFIX = {"audio": "mp3", "image": "png"}


def blob_key(kind: Kind, owner: str, file_id: str) -> str:
    return f"{owner_prefix('reading', owner)}/{kind}/{file_id}.{SUFFIX[kind]}"


class ReadingFiles:
    """Register and look up uploaded or generated files per owner."""

    def __init__(self, state: StateStore, blobs: BlobStore) -> None:
        self.state = state
        self.blobs = blobs

    def new(self, kind: Kind, owner: str) -> tuple[str, str]:
        """A fresh id and the blob key its bytes go to."""
        file_id = str(uuid.uuid4())
        return file_id, blob_key(kind, owner, file_id)

    def register(self, kind: Kind, owner: str, file_id: str, key: str, **meta: Any) -> dict[str, Any]:
        doc = {"id": file_id, "owner": owner, "key": key, "created_at": time.time(), **meta}
        self.state.put(NAMESPACE[kind], file_id, doc)
        return doc

    def get(self, kind: Kind, owner: str, file_id: str) -> dict[str, Any] | None:
        """The file's doc if it exists and belongs to ``owner``."""
        doc = self.state.get(NAMESPACE[kind], str(file_id))
        if doc is None or doc.get("owner") != owner:
            return None
        return doc
