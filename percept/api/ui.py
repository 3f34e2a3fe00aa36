"""The web console at ``/ui`` and offline API docs at ``/docs`` and ``/redoc``.

The console is static files (``percept/ui/static``: HTML, CSS, plain JavaScript modules; no
build step) that call the services' own routes with the services' own auth. This router
adds only what a browser cannot do with those routes alone:

* ``/ui/api/config``: which services this application serves and where the Ray dashboard is;
* ``/ui/api/correction/roots`` and ``/ui/api/correction/folder``: turn a dataset folder on the
  server (one sub-folder per class, inside the allowed roots) into the spec's request;
* ``/ui/api/correction/jobs/{id}/original/{uuid}``: an image of the caller's own finished job,
  as it was before the job (the "before" of a before/after pair);
* ``/ui/api/search/images/{id}``: one of the caller's stored search images (the result grid).

Swagger UI and ReDoc load their script and style from this app (the ``fastapi-offline``
wheel ships them), so ``/docs`` works on a cluster without internet.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from percept.api.deps import LimitedUser, ServicesDep
from percept.errors import Forbidden, NotFound, Unprocessable
from percept.services import Services

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parents[1] / "ui" / "static"
DOCS_ASSETS_URL = "/ui/docs-assets"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
MEDIA = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".bmp": "image/bmp",
         ".gif": "image/gif", ".webp": "image/webp", ".tif": "image/tiff", ".tiff": "image/tiff"}
MAX_FOLDER_IMAGES = 20_000
MAX_UPLOAD_FILES = 5_000  # per browser upload of a dataset folder
DASHBOARD_ENV = "PERCEPT_RAY_DASHBOARD_URL"

router = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/ui/api", tags=["console"])


def docs_assets_dir() -> Path:
    """The Swagger UI / ReDoc files of the pinned ``fastapi-offline`` wheel."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).resolve().parent / "static"


# -- the console's pages -------------------------------------------------------------------------


@router.get("/ui")
def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui/")
def ui_index() -> FileResponse:
    """The console's single page; each service is a view inside it (``#/reading`` …)."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html",
                        headers={"Cache-Control": "no-cache"})


# -- offline API docs ----------------------------------------------------------------------------


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    app: FastAPI = request.app
    root = request.scope.get("root_path", "")
    return get_swagger_ui_html(
        openapi_url=f"{root}{app.openapi_url}",
        title=f"{app.title} - Swagger UI",
        oauth2_redirect_url=f"{root}/docs/oauth2-redirect",
        swagger_js_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{root}{DOCS_ASSETS_URL}/favicon.png",
    )


@router.get("/docs/oauth2-redirect")
def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    app: FastAPI = request.app
    root = request.scope.get("root_path", "")
    return get_redoc_html(
        openapi_url=f"{root}{app.openapi_url}",
        title=f"{app.title} - ReDoc",
        redoc_js_url=f"{root}{DOCS_ASSETS_URL}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{DOCS_ASSETS_URL}/favicon.png",
        with_google_fonts=False,
    )


# -- console helpers -----------------------------------------------------------------------------


@api.get("/config")
def console_config(request: Request, services: ServicesDep) -> dict[str, Any]:
    """What the console shows: the services served and the Ray dashboard's address."""
    dashboard = os.environ.get(DASHBOARD_ENV) or f"{request.url.scheme}://{request.url.hostname}:8265"
    return {"services": list(services.args.services), "dashboard_url": dashboard,
            "docs_url": "/docs", "redoc_url": "/redoc"}


def allowed_roots(services: Services) -> list[Path]:
    """The folders correction jobs may read (``service_config.correction.allowed_roots``)."""
    from percept.api.correction import allowed_roots as roots

    return [Path(r) for r in roots(services)]


def inside(path: Path, roots: list[Path]) -> bool:
    """Whether ``path`` (symlinks resolved) lies in one of ``roots``."""
    real = path.resolve()
    return any(real == r.resolve() or r.resolve() in real.parents for r in roots)


@api.get("/correction/roots")
def correction_roots(services: ServicesDep, user: LimitedUser) -> dict[str, Any]:
    """Where dataset folders may be, and the folders found there (two levels deep)."""
    roots = allowed_roots(services)
    found: list[str] = []
    for root in roots:
        if not root.is_dir():
            continue
        for child in sorted(root.iterdir())[:200]:
            if child.is_dir() and not child.name.startswith(".") and child.name != "blobs":
                found.append(str(child))
                found.extend(str(g) for g in sorted(child.iterdir())[:50]
                             if g.is_dir() and not g.name.startswith("."))
    return {"allowed_roots": [str(r) for r in roots], "folders": found[:500]}


class FolderRequest(BaseModel):
    path: str = Field(..., min_length=1, max_length=4096, description="a folder with one sub-folder per class")


def scan_folder(folder: Path) -> dict[str, Any]:
    """The spec's ``dataset`` for a folder of class folders: ``classes`` and ``class_files``."""
    found: dict[str, list[Path]] = {}
    count = 0
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in class_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        count += len(files)
        if count > MAX_FOLDER_IMAGES:
            raise Unprocessable(f"More than {MAX_FOLDER_IMAGES} images in {folder}: start this job from the API")
        if files:
            found[class_dir.name] = files
    # an image's uuid is its file name's stem, or class-stem where two classes share a stem
    stems = Counter(f.stem for files in found.values() for f in files)
    class_files = {cls: {str(f): {"uuid": f.stem if stems[f.stem] == 1 else f"{cls}-{f.stem}"} for f in files}
                   for cls, files in found.items()}
    if not class_files:
        raise Unprocessable(f"No class folders with images in {folder} (expected {folder}/<class>/<image>.png)")
    return {"uuid": folder.name, "classes": list(class_files), "class_files": class_files, "images": count}


@api.post("/correction/folder")
def correction_folder(body: FolderRequest, services: ServicesDep, user: LimitedUser) -> dict[str, Any]:
    """The dataset part of a correction request, read from a folder inside the allowed roots."""
    folder = Path(body.path).expanduser()
    roots = allowed_roots(services)
    if not folder.is_absolute() or not inside(folder, roots):
        raise Forbidden(f"{body.path} is outside the folders jobs may read ({', '.join(map(str, roots))})")
    if not folder.is_dir():
        raise NotFound(f"No folder {body.path}")
    return scan_folder(folder)


def _safe_part(text: str) -> str:
    """One path segment from a browser-given name: letters, digits, ``._-``; never ``..``."""
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in text.strip())[:100].lstrip(".")
    return cleaned or "_"


@api.post("/correction/datasets")
async def upload_dataset(request: Request, services: ServicesDep, user: LimitedUser) -> dict[str, Any]:
    """A dataset folder chosen in the browser (``<class>/<image>`` relative names, field ``files``),
    saved under ``<data_dir>/uploads/<user>/<name>``: a folder the correction job can read."""
    data_dir = Path(services.args.data_dir)
    if not inside(data_dir, allowed_roots(services)):
        raise Forbidden("Uploads are off: service_config.correction.allowed_roots does not include the data directory")
    form = await request.form(max_files=MAX_UPLOAD_FILES, max_fields=5)
    name = _safe_part(str(form.get("name") or "dataset"))
    target = data_dir / "uploads" / _safe_part(user.id) / name
    saved = 0
    for item in form.getlist("files"):
        if isinstance(item, str) or not item.filename:
            continue
        parts = [p for p in str(item.filename).replace("\\", "/").split("/") if p]
        if len(parts) < 2 or Path(parts[-1]).suffix.lower() not in IMAGE_SUFFIXES:
            continue  # not <class>/<image>: skipped (e.g. notes or a loose file at the top)
        path = target / _safe_part(parts[-2]) / _safe_part(parts[-1])
        data = await item.read()
        await run_in_threadpool(_write, path, data)
        saved += 1
    if not saved:
        raise Unprocessable("No images in class folders: choose a folder with one sub-folder per class")
    return {"path": str(target), "images": saved}


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _original_path(result: dict[str, Any], uuid: str) -> str | None:
    for files in (result.get("dataset", {}).get("class_files") or {}).values():
        for path, meta in (files or {}).items():
            if isinstance(meta, dict) and str(meta.get("uuid")) == uuid:
                return str(path)
    return None


@api.get("/correction/jobs/{job_id}/original/{uuid}")
def correction_original(job_id: str, uuid: str, services: ServicesDep, user: LimitedUser) -> Response:
    """An input image of the caller's own finished job, as it was (the "before" picture)."""
    from percept.api.correction import KIND

    record = services.tasks.get_owned(job_id, user.id, KIND)
    if record is None or not isinstance(record.result, dict) or not record.result.get("result_key"):
        raise NotFound("Job not found or not finished")
    try:
        result = json.loads(services.blobs.get_bytes(record.result["result_key"]))
    except (KeyError, FileNotFoundError):
        raise NotFound("the job's result is gone") from None
    path = _original_path(result, uuid)
    if path is None:
        raise NotFound("No such image in this job")
    file = Path(path)
    if file.suffix.lower() not in IMAGE_SUFFIXES or not inside(file, allowed_roots(services)) or not file.is_file():
        raise NotFound("The original image is not readable")
    return FileResponse(file, media_type=MEDIA[file.suffix.lower()])


@api.get("/search/images/{image_id}")
def search_image(image_id: str, services: ServicesDep, user: LimitedUser) -> Response:
    """One of the caller's stored search images (404 for anyone else's)."""
    from percept.search.catalog import ImageCatalog

    catalog = ImageCatalog(services.state, services.blobs)
    doc = catalog.get(user.id, image_id)
    try:
        data = services.blobs.get_bytes(str(doc["img_path"]))
    except KeyError:
        raise NotFound("Image not found") from None
    fmt = str(doc.get("format") or "png").lower()
    return Response(data, media_type=MEDIA.get(f".{fmt}", "application/octet-stream"),
                    headers={"Cache-Control": "private, max-age=3600"})


def install(app: FastAPI) -> None:
    """Add the console, its helpers and the offline docs (replacing FastAPI's CDN-based pages)."""
    replaced = {app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url} - {None}
    app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) not in replaced]
    app.docs_url = app.redoc_url = None
    app.include_router(router)
    app.include_router(api)
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=docs_assets_dir()), name="docs-assets")
