"""The reading service's HTTP routes (filled in by its issue)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

router = APIRouter(tags=["reading"])


def include(app: FastAPI) -> None:
    """Add this service's routes (and its error renderer, if it has its own format)."""
    app.include_router(router)
