"""Image search routes (docs/search.md), at the root as in the original service.

Every route needs a user bearer token (and counts against the per-user rate limit); every
image belongs to its user. Searches answer a
PNG collage (the original's output) or JSON, chosen by ``?format=png|json`` or else by the
``Accept`` header (``application/json`` → JSON). Long jobs (crawl, bulk embedding,
background removal of everything) are tasks: 202 with the task id.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI, File, Query, Request, UploadFile
from fastapi.responses import Response

from percept.api.deps import LimitedUser, ServicesDep
from percept.api.uploads import read_limited
from percept.errors import Unprocessable
from percept.schemas.search import (
    ClearResponse,
    HighlightRequest,
    ImagePathRequest,
    MergeRequest,
    SearchResponse,
    TaskCreated,
    TextQueryRequest,
)
from percept.search.catalog import ImageCatalog, public_record
from percept.search.engine import SearchQuery
from percept.services import Services
from percept.tasks import ProgressReporter

router = APIRouter(tags=["search"])

PNG = {"content": {"image/png": {}}, "description": "PNG (or JSON with Accept: application/json)"}
Format = Annotated[Literal["png", "json"] | None, Query(description="png (collage) or json; default by Accept")]
MAX_START_URLS = 20


def _catalog(services: Services) -> ImageCatalog:
    return ImageCatalog(services.state, services.blobs)


def _wants_json(request: Request, fmt: str | None) -> bool:
    if fmt is not None:
        return fmt == "json"
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "image/png" not in accept


def _task(services: Services, kind: str, owner: str, work: Any, params: dict[str, Any]) -> TaskCreated:
    record = services.runner.submit(kind, owner, work, params)
    return TaskCreated(task_id=record.id, status=record.status.value, kind=kind,
                       status_url=f"/platform/tasks/{record.id}")


async def _upload(services: Services, image: UploadFile) -> bytes:
    return await read_limited(image, services.search.settings.max_upload_bytes)


async def _find(services: Services, owner: str, query: SearchQuery, request: Request, fmt: str | None) -> Any:
    """One call to the index: it searches and answers (JSON results or the PNG collage)."""
    answer = await services.search.handles.search.find.remote(owner, query, _wants_json(request, fmt))
    return answer if isinstance(answer, SearchResponse) else Response(answer, media_type="image/png")


@router.get("/scrape", status_code=202, response_model=TaskCreated)
async def scrape(
    services: ServicesDep,
    user: LimitedUser,
    url: Annotated[list[str] | None, Query(description="start pages; default service_config.search.start_urls")] = None,
) -> TaskCreated:
    """Crawl start pages, download their images into the store (a task)."""
    urls = list(dict.fromkeys(url or services.search.settings.start_urls))
    if not urls:
        raise Unprocessable("No start URLs: pass ?url=... or set service_config.search.start_urls")
    if len(urls) > MAX_START_URLS:
        raise Unprocessable(f"At most {MAX_START_URLS} start URLs per crawl")
    for u in urls:
        parts = urlsplit(u)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Unprocessable(f"Not an http(s) URL: {u[:200]}")

    async def work(reporter: ProgressReporter) -> Any:
        return await services.search.handles.search.scrape.remote(user.id, urls, reporter)

    return _task(services, "search.scrape", user.id, work, {"urls": urls})


@router.post("/hello")
async def hello(body: ImagePathRequest, services: ServicesDep, user: LimitedUser) -> dict[str, Any]:
    """The stored record of one image."""
    doc = await asyncio.to_thread(_catalog(services).get, user.id, body.img_path)
    return public_record(doc)


@router.get("/clear_all", response_model=ClearResponse)
async def clear_all(services: ServicesDep, user: LimitedUser) -> ClearResponse:
    """Delete all of the caller's images, records, cut-outs and embeddings."""
    return ClearResponse(deleted=await asyncio.to_thread(_catalog(services).clear, user.id))


@router.get("/highlight_all_images", status_code=202, response_model=TaskCreated)
async def highlight_all_images(
    services: ServicesDep,
    user: LimitedUser,
    method: Annotated[Literal["grabcut", "border", "u2net"] | None, Query()] = None,
    only_missing: bool = False,
) -> TaskCreated:
    """Remove the background of every stored image (a task)."""

    async def work(reporter: ProgressReporter) -> Any:
        return await services.search.handles.search_background.highlight_all.remote(user.id, method, only_missing, reporter)

    return _task(services, "search.highlight_all", user.id, work, {"method": method})


@router.post("/highlight_particular_image", responses={200: PNG})
async def highlight_particular_image(
    body: HighlightRequest, request: Request, services: ServicesDep, user: LimitedUser, format: Format = None
) -> Any:
    """Remove one image's background: the RGBA PNG, or the updated record as JSON."""
    record, png = await services.search.handles.search_background.highlight.remote(user.id, body.img_path, body.method)
    return record if _wants_json(request, format) else Response(png, media_type="image/png")


@router.post("/merge_imgs", responses={200: {"content": {"image/png": {}}}}, response_class=Response)
async def merge_imgs(body: MergeRequest, services: ServicesDep, user: LimitedUser) -> Response:
    """Blend two stored images with a Laplacian pyramid (PNG)."""
    png = await services.search.handles.search.merge.remote(
        user.id, body.img_path_1, body.img_path_2, body.levels, body.direction
    )
    return Response(png, media_type="image/png")


@router.post("/find_all_complementary", responses={200: PNG})
async def find_all_complementary(
    request: Request,
    services: ServicesDep,
    user: LimitedUser,
    image: Annotated[UploadFile, File(description="a .png, ideally with the background removed")],
    format: Format = None,
    k: Annotated[int, Query(ge=1, le=100)] = 24,
    tolerance: Annotated[float | None, Query(gt=0, le=90, description="hue band, degrees")] = None,
    min_fraction: Annotated[float | None, Query(gt=0, le=1)] = None,
) -> Any:
    """Images whose colours complement the query's dominant hue (HSV)."""
    query = SearchQuery("complementary", k, image=await _upload(services, image), tolerance=tolerance,
                        min_fraction=min_fraction)
    return await _find(services, user.id, query, request, format)


@router.post("/find_all_similar_by_lab", responses={200: PNG})
async def find_all_similar_by_lab(
    request: Request,
    services: ServicesDep,
    user: LimitedUser,
    image: Annotated[UploadFile, File(description="a .png, ideally with the background removed")],
    format: Format = None,
    k: Annotated[int, Query(ge=1, le=100)] = 24,
) -> Any:
    """Images closest in colour (mean CIEDE2000 in CIELAB)."""
    query = SearchQuery("similar_by_lab", k, image=await _upload(services, image))
    return await _find(services, user.id, query, request, format)


def _embed_task(services: Services, user: Any, kind: str) -> TaskCreated:
    async def work(reporter: ProgressReporter) -> Any:
        return await services.search.handles.search.embed_missing.remote(user.id, kind, reporter)

    return _task(services, f"search.embed_{kind}", user.id, work, {"kind": kind})


@router.get("/get_all_resnet_embeddings", status_code=202, response_model=TaskCreated)
async def get_all_resnet_embeddings(services: ServicesDep, user: LimitedUser) -> TaskCreated:
    """Compute the missing ResNet34 embeddings (column ``embedding_resnet``), as a task."""
    return _embed_task(services, user, "resnet")


@router.get("/get_all_clip_embeddings", status_code=202, response_model=TaskCreated)
async def get_all_clip_embeddings(services: ServicesDep, user: LimitedUser) -> TaskCreated:
    """Compute the missing CLIP embeddings (column ``embedding_clip``), as a task."""
    return _embed_task(services, user, "clip")


@router.post("/get_top_24_resnet_similar", responses={200: PNG})
async def get_top_24_resnet_similar(
    request: Request,
    services: ServicesDep,
    user: LimitedUser,
    image: Annotated[UploadFile, File(description="a .jpg or .png")],
    format: Format = None,
) -> Any:
    """The 24 stored images most cosine-similar to the query (ResNet34 embeddings)."""
    query = SearchQuery("similar_by_image", 24, image=await _upload(services, image))
    return await _find(services, user.id, query, request, format)


@router.post("/get_top_25_clip_similar", responses={200: PNG})
async def get_top_25_clip_similar(
    body: TextQueryRequest, request: Request, services: ServicesDep, user: LimitedUser, format: Format = None
) -> Any:
    """The 25 stored images that best match a text (CLIP)."""
    query = SearchQuery("similar_by_text", 25, text=body.text_query)
    return await _find(services, user.id, query, request, format)


def include(app: FastAPI) -> None:
    """Add this service's routes (errors use the default ``{"detail": ...}`` format)."""
    app.include_router(router)
