"""Reading uploads at the edge with a size limit (413 past it, never a full read first).

Typed with Starlette's UploadFile, the base of FastAPI's, so `request.form()` parts fit too.
"""

from __future__ import annotations

from starlette.datastructures import UploadFile

from percept.errors import PayloadTooLarge, Unprocessable

CHUNK = 1024 * 1024


async def read_limited(upload: UploadFile, limit_bytes: int, *, allow_empty: bool = False) -> bytes:
    """The upload's bytes; 413 when larger than ``limit_bytes``, 422 when empty."""
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = await upload.read(CHUNK)
        if not chunk:
            break
        total += len(chunk)
        if total > limit_bytes:
            raise PayloadTooLarge(
                f"File too large: the limit is {limit_bytes / 2**20:.0f} MB"
                if limit_bytes >= 2**20
                else f"File too large: the limit is {limit_bytes} bytes"
            )
        chunks.append(chunk)
    if total == 0 and not allow_empty:
        raise Unprocessable("The uploaded file is empty")
    return b"".join(chunks)
