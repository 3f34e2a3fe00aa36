"""Wire models of the image search service (docs/search.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ImagePathRequest(BaseModel):
    """``{"img_path": ...}``: a stored image's id, its ``img_path`` or its file name."""

    model_config = ConfigDict(extra="ignore")

    # The original took server paths (path traversal); we accept only references into the store.
    img_path: str = Field(..., min_length=1, max_length=300, description="image id, img_path or file name")


class HighlightRequest(ImagePathRequest):
    """One image's background removal; ``method`` overrides the configured default."""

    method: Literal["grabcut", "border", "u2net"] | None = None


class MergeRequest(BaseModel):
    """Two stored images to blend with a Laplacian pyramid."""

    model_config = ConfigDict(extra="ignore")

    img_path_1: str = Field(..., min_length=1, max_length=300)
    img_path_2: str = Field(..., min_length=1, max_length=300)
    levels: int | None = Field(None, ge=0, le=10, description="pyramid depth; default as deep as the size allows (≤ 6)")
    direction: Literal["vertical", "horizontal"] = Field(
        "vertical", description="vertical: left half of image 1, right half of image 2"
    )


class TextQueryRequest(BaseModel):
    """``{"text_query": ...}`` for the CLIP text search."""

    model_config = ConfigDict(extra="ignore")

    text_query: str = Field(..., min_length=1, max_length=1000)


class TaskCreated(BaseModel):
    """A long job started: follow it at ``/platform/tasks/{task_id}`` (or ``/events``, ``/ws``)."""

    task_id: str
    status: str
    kind: str
    status_url: str


class SearchHit(BaseModel):
    id: str
    score: float = Field(description="similarity (cosine, fraction in band) or distance (CIEDE2000)")
    img_path: str | None = None
    source_url: str | None = None


class SearchResponse(BaseModel):
    """JSON form of a search result (the PNG collage is the other form)."""

    query: dict[str, Any]
    results: list[SearchHit]


class ClearResponse(BaseModel):
    deleted: int
