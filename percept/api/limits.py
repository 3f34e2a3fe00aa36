"""Request limits at the edge, before a body is read: size per route, file names, JSON depth.

* **Body size per route** (``request_limits``: :class:`percept.config.BodyLimits`): the declared ``Content-Length`` is checked
  before anything is read, and a body sent without one (chunked) is counted as it streams
  and cut off at the limit. Each route's cap is derived from its service's own settings
  (an upload route allows one file at the service's size limit, ``/process`` one document
  at ``max_document_mb`` in base64), so the finer per-file answers (413 from the upload,
  ``list_id_not_treated`` for one oversized tagger document) still come from the service.
  Everything else (JSON and small forms) gets ``default_mb``. Past the cap: 413 in the
  contract's error format.
* **JSON depth**: a body nested deeper than Python's parser can follow answers 400 (see
  ``percept.api.errors``), never 500.
* **File names** (:func:`check_filename`): a name with a path (``../../etc/evil.png``),
  control characters or over 255 bytes is refused by the upload routes.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MB = 2**20




def derived_caps(services: Any) -> dict[str, float]:
    """Caps (MB) of the routes that take files, from the services' own limits, with room for framing."""
    caps: dict[str, float] = {"/correction/": 16.0, "/ui/api/": 4.0}
    enabled = set(services.args.services)
    if "reading" in enabled:
        reading = services.reading.settings
        caps["/v1/audio/upload"] = room(reading.max_audio_mb)
        caps["/v1/image/upload"] = room(reading.max_image_mb)
    if "inspection" in enabled:
        inspection = services.inspection.settings
        caps["/api/v1/upload"] = room(inspection.max_upload_mb * inspection.max_files_per_upload)
        caps["/api/v1/serve"] = 4.0
    if "tagger" in enabled:
        # one document at the per-document limit (base64: 4/3), so that one too large is
        # answered in list_id_not_treated, not by refusing the whole request
        caps["/process"] = room(settings_mb(services.tagger.settings, "max_document_mb", 50.0) * 4 / 3)
    if "correction" in enabled:
        caps["/ui/api/correction/datasets"] = room(services.correction.settings.max_upload_mb)
    if "search" in enabled:
        upload_mb = room(services.search.settings.max_upload_bytes / MB)
        for path in ("/find_all_complementary", "/find_all_similar_by_lab", "/get_top_24_resnet_similar"):
            caps[path] = upload_mb
    return caps


def room(mb: float) -> float:
    """A service's own limit plus room for framing (multipart, JSON), so that its finer answer wins."""
    return mb * 1.25 + 1


def settings_mb(settings: Any, name: str, default: float) -> float:
    return float(getattr(settings, name, default))


class BodyLimitMiddleware:
    """ASGI middleware: 413 before the app reads a body larger than its route's cap."""

    def __init__(self, app: ASGIApp, caps: dict[str, float], default_mb: float) -> None:
        self.app = app
        self.exact = {p: int(mb * MB) for p, mb in caps.items() if not p.endswith("/")}
        self.prefixes = sorted(((p, int(mb * MB)) for p, mb in caps.items() if p.endswith("/")),
                               key=lambda item: -len(item[0]))
        self.default = int(default_mb * MB)

    def limit_for(self, path: str) -> int:
        if path in self.exact:
            return self.exact[path]
        for prefix, limit in self.prefixes:
            if path.startswith(prefix):
                return limit
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = dict(scope.get("headers") or ()).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:  # declared too large: not one byte is read
            await _refuse(scope, receive, send, limit)
            return
        if declared:
            await self.app(scope, receive, send)  # the server stops at the declared length
            return
        # Sent without a length (chunked): read up to the cap here, then replay it to the app.
        messages: list[Message] = []
        received = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            received += len(message.get("body", b""))
            if received > limit:
                await _refuse(scope, receive, send, limit)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


async def _refuse(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    from percept.api.errors import ErrorInfo, render  # the contract's error format

    response = render(Request(scope), ErrorInfo(413, too_large(limit), "Payload Too Large", {}))
    await response(scope, receive, send)


def too_large(limit: int) -> str:
    return f"Request body larger than {limit / MB:.1f} MB, the limit of this route"


_BAD_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")


def check_filename(name: str | None) -> str | None:
    """The reason a client's file name is refused, or None when it is a plain name."""
    if not name:
        return None  # no name given: the service names the file itself
    if _BAD_NAME.search(name) or name in (".", "..") or name.startswith(".."):
        return f"Invalid file name {name[:80]!r}: a plain name without a path is expected"
    if len(name.encode("utf-8", errors="replace")) > 255:
        return "Invalid file name: longer than 255 bytes"
    return None
