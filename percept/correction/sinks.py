"""Where a correction job writes corrected images and its report: a directory or the blob store."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol


class OutputSink(Protocol):
    """Where corrected images and the report are written; returns the written location."""

    def write(self, name: str, data: bytes) -> str: ...


class DirSink:
    """Files under a directory of their own (never one of the dataset's files)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def write(self, name: str, data: bytes) -> str:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{path.name}")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return str(path)


class BlobSink:
    """Objects in the platform's blob store under a prefix (``correction/<owner>/<job>``)."""

    def __init__(self, blobs: Any, prefix: str) -> None:
        self.blobs = blobs
        self.prefix = prefix.rstrip("/")

    def write(self, name: str, data: bytes) -> str:
        return str(self.blobs.put_bytes(f"{self.prefix}/{name}", data))
