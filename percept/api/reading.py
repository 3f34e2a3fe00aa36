"""``/v1`` upload, download and model-list routes of the reading service (docs/reading.md).

Authentication comes first on every route (an unauthenticated request with a bad body gets
401, not 422): bodies and forms are parsed inside the handlers, after ``User``. Every route
counts against a per-user, per-path rate limit (``service_config.reading.rate_limit_per_minute``).
The task routes are in :mod:`percept.api.reading_tasks`.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, cast
from uuid import UUID

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi import UploadFile as FastApiUpload
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from percept.api import reading_tasks
from percept.api.deps import ServicesDep
from percept.api.reading_deps import User, files_of
from percept.api.uploads import read_limited
from percept.auth import Principal
from percept.errors import NotFound, Unprocessable
from percept.reading.files import Kind
from percept.schemas.reading import ModelData, ModelsDataReponse, UploadFileResponse
from percept.services import Services

router = APIRouter(prefix="/v1", tags=["reading"])
MEDIA = {"audio": "audio/mpeg", "image": "image/png"}


async def _upload(request: Request, services: Services, user: Principal, kind: Kind) -> UploadFileResponse:
    config = services.reading.settings
    try:
        form = await request.form(max_files=1, max_fields=10)
    except Exception:  # a body that is not a readable multipart form (the body cap answers 413 before this)
        raise Unprocessable("Send the file as multipart/form-data in the field upload_file") from None
    upload = form.get("upload_file")
    if not isinstance(upload, UploadFile):
        raise RequestValidationError([{"type": "missing", "loc": ["body", "upload_file"], "msg": "Field required",
                                       "input": None}])
    content_type = (upload.content_type or "").split(";")[0].strip().lower()
    if not content_type.startswith(f"{kind}/"):
        raise Unprocessable(f"Only {kind} files uploads are allowed")
    limit_mb = config.max_audio_mb if kind == "audio" else config.max_image_mb
    data = await read_limited(cast(FastApiUpload, upload), int(limit_mb * 2**20))
    files = files_of(services)
    file_id, key = files.new(kind, user.id)
    tools = services.reading.handles.reading
    if kind == "audio":
        meta = await tools.convert_audio.remote(data, key)
    else:
        meta = await tools.convert_image.remote(data, key)
    await asyncio.to_thread(files.register, kind, user.id, file_id, key, original_name=upload.filename, **meta)
    return UploadFileResponse(file_id=UUID(file_id))


async def _download(services: Services, user: Principal, kind: Kind, file_id: UUID) -> Response:
    files = files_of(services)
    doc = await asyncio.to_thread(files.get, kind, user.id, str(file_id))
    if doc is None:
        raise NotFound("File not found")
    try:
        data = await asyncio.to_thread(services.blobs.get_bytes, doc["key"])
    except KeyError:
        raise NotFound("File not found") from None
    suffix = "mp3" if kind == "audio" else "png"
    return Response(data, media_type=MEDIA[kind],
                    headers={"Content-Disposition": f'attachment; filename="{file_id}.{suffix}"'})


def _models(services: Services, kind: Kind) -> ModelsDataReponse:
    """The plugins of a kind, then the other names clients may use for them (the original
    project's ``whisper`` and ``eng_tesseract`` by default), each listed as an alias."""
    models = [ModelData(name=p.name, languages=p.languages, description=p.description)
              for p in services.plugins.values() if p.kind == kind]
    for alias, target in services.reading.settings.model_aliases.items():
        info = services.plugins.get(target)
        if info is not None and info.kind == kind and alias not in services.plugins:
            models.append(ModelData(name=alias, languages=info.languages,
                                    description=f"alias of {target}: {info.description}"))
    return ModelsDataReponse(models=models)


@router.post("/audio/upload", response_model=UploadFileResponse, tags=["audio"])
async def upload_audio_file(request: Request, services: ServicesDep, user: User) -> UploadFileResponse:
    """Upload a recording (multipart field ``upload_file``, part type ``audio/*``); stored as MP3."""
    return await _upload(request, services, user, "audio")


@router.get("/audio/download", tags=["audio"])
async def download_audio_file(services: ServicesDep, user: User, file: Annotated[UUID, Query()]) -> Response:
    """An uploaded recording or a segment, as MP3."""
    return await _download(services, user, "audio", file)


@router.get("/audio/models", response_model=ModelsDataReponse, tags=["audio"])
async def get_audio_processing_models(services: ServicesDep, user: User) -> ModelsDataReponse:
    """The audio plugins of this application."""
    return _models(services, "audio")


@router.post("/image/upload", response_model=UploadFileResponse, tags=["image"])
async def upload_image(request: Request, services: ServicesDep, user: User) -> UploadFileResponse:
    """Upload a page photo (multipart field ``upload_file``, part type ``image/*``); stored as PNG."""
    return await _upload(request, services, user, "image")


@router.get("/image/download", tags=["image"])
async def download_image_file(services: ServicesDep, user: User, file: Annotated[UUID, Query()]) -> Response:
    """An uploaded image, as PNG."""
    return await _download(services, user, "image", file)


@router.get("/image/models", response_model=ModelsDataReponse, tags=["image"])
async def get_models(services: ServicesDep, user: User) -> ModelsDataReponse:
    """The image plugins of this application."""
    return _models(services, "image")


def include(app: FastAPI) -> None:
    """Add this service's routes; its errors use the default ``{"detail": ...}`` body."""
    app.include_router(router)
    app.include_router(reading_tasks.router)
