"""The tagger's routes (Detect ``/process`` contract): ``POST /process``, ``GET /test``,
``GET /health-check``, ``GET /work/status``.

No authentication: as in the original, the tagger is an internal service of a document
pipeline (put it behind the cluster's network policy). Every error, including malformed
requests, is answered in the Detect envelope with a 4xx/5xx status and the reason in
``error`` (the original answered 500 with a traceback).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response

from percept.api.deps import ServicesDep
from percept.api.errors import ErrorInfo, register_error_renderer
from percept.errors import PayloadTooLarge, Unprocessable
from percept.retry import error_contract
from percept.schemas.tagger import TaggerRequest, TaggerResponse, TaggerStatus
from percept.tagger.jobs import JobLog
from percept.tagger.process import HandleModels, TaggerPipeline

logger = logging.getLogger(__name__)
router = APIRouter(tags=["tagger"])


T = TypeVar("T")


async def _jobs(jobs: JobLog, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """A job-log call: inline when it only touches memory, else in a thread (store I/O)."""
    if jobs.writes_behind:
        return method(*args, **kwargs)
    return await asyncio.to_thread(method, *args, **kwargs)


@router.post("/process", response_model=TaggerResponse, summary="Tag images and videos (labels or object counts)")
async def process(body: TaggerRequest, services: ServicesDep) -> TaggerResponse:
    """Top ``num_labels`` labels per document, or object counts with ``"prompt": "<OD>"``."""
    settings = services.tagger.settings
    if len(body.documents) > settings.max_documents:
        raise PayloadTooLarge(f"Too many documents: {len(body.documents)} > {settings.max_documents} per request")
    if body.num_labels > settings.max_num_labels:
        raise Unprocessable(f"num_labels must be at most {settings.max_num_labels}")
    models = HandleModels(services.tagger.handles)
    jobs = services.tagger.jobs
    uid = await _jobs(jobs, jobs.start, "object_detection" if body.wants_counts else "tagging", len(body.documents))
    try:
        response = await TaggerPipeline(models, settings).run(body)
    except Exception as exc:
        await _jobs(jobs, jobs.finish, uid, "failed", error=str(getattr(exc, "detail", exc))[:500])
        raise
    await _jobs(jobs, jobs.finish, uid, "finished", treated=response.number_documents_treated,
                non_treated=response.number_documents_non_treated)
    return response


@router.get("/test", summary="Health Check")
async def test_endpoint() -> dict[str, str]:
    """The original's liveness probe."""
    return {"test endpoint is": "OK"}


@router.get("/health-check", summary="Health Check")
async def health_check() -> dict[str, str]:
    """The original's health probe."""
    return {"message": "OK"}


@router.get("/work/status", summary="Status Handler")
async def work_status(services: ServicesDep) -> dict[str, Any]:
    """The recent jobs ``{uid: {"uid", "status", "type_job", ...}}``; old ones are evicted."""
    return await asyncio.to_thread(services.tagger.jobs.recent)


def _message(info: ErrorInfo) -> str:
    if info.kind == "validation" and isinstance(info.detail, list):
        parts = []
        for err in info.detail:
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
            parts.append(f"{loc}: {err.get('msg', 'invalid')}")
        return "Malformed request: " + "; ".join(parts)
    return str(info.detail)


def render_envelope(request: Request, info: ErrorInfo) -> Response:
    """Errors of the tagger's paths in the Detect envelope."""
    body = TaggerResponse(status=TaggerStatus(code=info.status, message=info.title), error=_message(info))
    return JSONResponse(jsonable_encoder(body), status_code=info.status, headers=info.headers)


def include(app: FastAPI) -> None:
    """Add the tagger's routes and its envelope error renderer."""
    app.include_router(router)
    register_error_renderer(app, lambda path: error_contract(path) == "tagger",
                            render_envelope)
