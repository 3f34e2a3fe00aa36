"""The SDK's error: ``APIError("<message> (<status>)")`` as the vendor's SDK raises it."""

from __future__ import annotations

from typing import Any


class APIError(Exception):
    """An error answer of the inspection API.

    ``str(err)`` is ``"<message> (<status>)"``; the message is the error's detail when it
    has one (joined when a list), else its title.
    """

    def __init__(self, status: int, title: str = "", detail: Any = None, pointer: str | None = None) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.pointer = pointer
        if isinstance(detail, list) and detail:
            message = "; ".join(str(d) for d in detail)
        elif isinstance(detail, str) and detail:
            message = detail
        else:
            message = title or "Error"
        self.message = message
        super().__init__(f"{message} ({status})")
