"""Reading uploads at the edge: the file name checked (400), a size limit (413 past it, never a
full read first). Every upload route reads its files through :func:`read_limited`.

Typed with Starlette's UploadFile, the base of FastAPI's, so `request.form()` parts fit too.
"""

from __future__ import annotations

from starlette.datastructures import UploadFile

from percept.api.limits import check_filename
from percept.errors import BadRequest, PayloadTooLarge, Unprocessable

CHUNK = 1024 * 1024


async def read_limited(upload: UploadFile, limit_bytes: int, *, allow_empty: bool = False) -> bytes:
    """The upload's bytes; 400 for a name with a path, 413 when larger than ``limit_bytes``, 422 when empty."""
    if (reason := check_filename(upload.filename)) is not None:
        raise BadRequest(reason, title="Invalid Request")  # the inspection contract's title for a bad input
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
