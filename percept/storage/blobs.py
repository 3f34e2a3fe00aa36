"""The blob store: uploads, converted files, audio segments, collages, models, datasets.

A local directory by default; any fsspec URI (``s3://bucket/prefix``, ``gs://…``,
``memory://…``) for clusters. Keys are relative, ``/``-separated, and never escape the root.
Libraries that need a real filename get one from :meth:`BlobStore.local_path`.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem

_KEY = re.compile(r"^[A-Za-z0-9._\-]+(/[A-Za-z0-9._\-]+)*$")


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def owner_prefix(service: str, owner: str) -> str:
    """The one folder of a principal's blobs in a service: ``owner_prefix("search", "user:ann")``
    is ``search/user_ann`` (every character a key may not hold becomes ``_``)."""
    return f"{service}/{_UNSAFE.sub('_', owner) or '_'}"


class InvalidKey(ValueError):
    """A key that is empty, absolute or climbs out of the store."""


def check_key(key: str) -> str:
    if not _KEY.match(key) or any(part in (".", "..") for part in key.split("/")):
        raise InvalidKey(f"invalid blob key {key!r}")
    return key


class BlobStore:
    """Bytes under keys, on any fsspec filesystem."""

    def __init__(self, url: str) -> None:
        self.url = url
        fs, root = fsspec.core.url_to_fs(url)
        self.fs = fs
        self.root = root.rstrip("/")
        self.is_local = isinstance(fs, LocalFileSystem)
        self.fs.makedirs(self.root, exist_ok=True)

    def _path(self, key: str) -> str:
        return f"{self.root}/{check_key(key)}"

    def put_bytes(self, key: str, data: bytes) -> str:
        """Write atomically (a local temp file renamed into place)."""
        path = self._path(key)
        parent = path.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        if self.is_local:
            fd, tmp = tempfile.mkstemp(dir=parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        else:
            self.fs.pipe_file(path, data)
        return key

    def put_file(self, key: str, source: str | Path) -> str:
        path = self._path(key)
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        if self.is_local:
            tmp = f"{path}.tmp-{os.getpid()}"
            shutil.copyfile(source, tmp)
            os.replace(tmp, path)
        else:
            self.fs.put_file(str(source), path)
        return key

    def get_bytes(self, key: str) -> bytes:
        try:
            return bytes(self.fs.cat_file(self._path(key)))
        except FileNotFoundError:
            raise KeyError(key) from None

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self._path(key)))

    def size(self, key: str) -> int:
        return int(self.fs.size(self._path(key)))

    def delete(self, key: str) -> bool:
        path = self._path(key)
        if not self.fs.exists(path):
            return False
        self.fs.rm(path, recursive=True)
        return True

    def list(self, prefix: str = "") -> list[str]:
        """Keys under a prefix (a folder), recursively."""
        base = self._path(prefix) if prefix else self.root
        if not self.fs.exists(base):
            return []
        found = self.fs.find(base)
        return sorted(p[len(self.root) + 1 :] for p in found if "/.tmp-" not in p)

    @contextmanager
    def local_path(self, key: str, suffix: str = "") -> Iterator[Path]:
        """A filename a library can open: the file itself when local, else a temp copy."""
        if self.is_local:
            path = Path(self._path(key))
            if not path.exists():
                raise KeyError(key)
            yield path
            return
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / (Path(key).name + suffix)
            try:
                self.fs.get_file(self._path(key), str(target))
            except FileNotFoundError:
                raise KeyError(key) from None
            yield target

    def uri(self, key: str) -> str:
        """A URI for the key, e.g. for a Ray Data read."""
        path = self._path(key)
        if self.is_local:
            return path
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return f"{protocol}://{path}"
