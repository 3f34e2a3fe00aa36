"""Wire models of the inspection API (the vendor's JSON bodies)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class TokenRequest(BaseModel):
    """``POST /api/auth/token``."""

    client_id: str = Field(..., max_length=200)
    client_secret: str = Field(..., max_length=500)
    grant_type: str | None = "client_credentials"


class OverrideParam(BaseModel):
    algorithm_parameter_id: int
    value: Any


class TrainRequest(BaseModel):
    """``POST /api/v1/train``."""

    algorithm_id: str = Field(..., max_length=100)
    name: str | None = Field(None, max_length=200)
    override_params: list[OverrideParam] | None = None
    item_ids: list[str] = Field(..., max_length=5000)


class DeleteModelsRequest(BaseModel):
    """``DELETE /api/v1/model`` (a JSON body on a DELETE, as the vendor's SDK sends it)."""

    model_config = ConfigDict(protected_namespaces=())

    model_ids: list[int | str] = Field(..., min_length=1, max_length=1000)


class ServeRequest(BaseModel):
    """``POST /api/v1/serve``: ``model_id`` empty or null means the active model."""

    model_config = ConfigDict(protected_namespaces=())

    item_ids: list[str] = Field(..., min_length=1, max_length=1000)
    model_id: int | str | None = ""


class Annotation(BaseModel):
    x_min: int = Field(..., ge=0)
    x_max: int = Field(..., ge=0)
    y_min: int = Field(..., ge=0)
    y_max: int = Field(..., ge=0)
    notes: str | None = Field(None, max_length=2000)


class AnnotationRequest(BaseModel):
    """``POST /api/v1/image/{image_id}/annotation``: replaces the image's annotations."""

    annotations: list[Annotation] = Field(..., max_length=1000)
