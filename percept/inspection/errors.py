"""The inspection service's errors: the vendor's ``title`` and ``detail`` on a ServiceError.

Routes and domain code raise :func:`api_error`; ``percept.api.inspection_deps.render_error``
renders every error under ``/api`` as ``{"errors": {"detail", "source", "status", "title"}}``.
"""

from __future__ import annotations

from typing import Any

from percept.errors import ServiceError

CODE = "inspection"
CODE_NO_DETAIL = "inspection:null"


def api_error(cls: type[ServiceError], title: str, detail: Any = None) -> ServiceError:
    """An error rendered with exactly this ``title`` and ``detail`` (None stays null)."""
    if detail is None:
        return cls("", title=title, code=CODE_NO_DETAIL)
    return cls(detail, title=title, code=CODE)
