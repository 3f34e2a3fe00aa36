"""The correction service's HTTP routes: image-correction jobs and image metadata.

A job is created with the spec's request JSON and runs as a platform task on the
``correction`` deployment (Ray Data inside); status, the spec's output JSON, the HTML report,
corrected files and progress events (websocket) are read by job id. Jobs belong to the user
who created them; another user's job is a 404. Errors are ``{"detail": ...}``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from fastapi import APIRouter, FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse, Response

from percept.api.deps import USER_AUDIENCE, LimitedUser, ServicesDep, websocket_owner
from percept.api.platform import watch_task
from percept.correction.request import parse_request
from percept.errors import Conflict, Forbidden, NotFound, PayloadTooLarge
from percept.handles import require
from percept.schemas.correction import (
    CorrectionJobRequest,
    CorrectionJobResponse,
    CorrectionJobSummary,
    ImageMetadataRequest,
    ImageMetadataResponse,
)
from percept.services import Services
from percept.tasks import ProgressReporter, TaskRecord

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/correction", tags=["correction"])
KIND = "correction"
STATUS = {"pending": "pending", "running": "running", "finished": "completed", "failed": "failed"}


def allowed_roots(services: Services) -> list[str]:
    return services.correction.settings.roots(services.args.data_dir)


def lexically_inside(path: str, roots: list[str]) -> bool:
    """A quick edge check (the worker re-checks with symlinks resolved)."""
    norm = os.path.normpath(path)
    if not os.path.isabs(norm):
        return False
    return any(norm == os.path.normpath(r) or norm.startswith(os.path.normpath(r).rstrip(os.sep) + os.sep)
               for r in roots)


def _owned(services: Services, job_id: str, owner: str) -> TaskRecord:
    record = services.tasks.get_owned(job_id, owner, KIND)
    if record is None:
        raise NotFound("Job not found")
    return record


def _public(record: TaskRecord) -> CorrectionJobResponse:
    return CorrectionJobResponse(
        job_id=record.id, status=STATUS[record.status.value], progress=record.progress,  # type: ignore[arg-type]
        message=record.message, error=record.error, created_at=record.created_at,
        finished_at=record.finished_at, summary=record.result if isinstance(record.result, dict) else None)


def _finished(record: TaskRecord) -> dict[str, Any]:
    if record.status.value == "failed":
        raise Conflict(f"job failed: {record.error}")
    if record.status.value != "finished" or not isinstance(record.result, dict):
        raise Conflict(f"job is {STATUS[record.status.value]} ({record.progress:.0f} %)")
    return record.result


@router.post("/jobs", status_code=202, response_model=CorrectionJobResponse)
async def create_job(body: CorrectionJobRequest, services: ServicesDep, user: LimitedUser) -> CorrectionJobResponse:
    """Start ``start_ic_processing_job`` with the spec's request; returns the job id at once."""
    request = body.model_dump(exclude_none=True)
    parsed = parse_request(request)  # 400 on a malformed request, before any work starts
    limit = services.correction.settings.max_images
    if len(parsed.items) > limit:
        raise PayloadTooLarge(f"{len(parsed.items)} images: at most {limit} per job")
    roots = allowed_roots(services)
    outside = [i.path for i in parsed.items if not lexically_inside(i.path, roots)]
    if outside:
        raise Forbidden(f"{len(outside)} image path(s) outside the allowed roots, e.g. {outside[0]!r}")
    handle = require(services.correction.handles.correction)  # 503 before the task starts
    owner = user.id

    async def work(reporter: ProgressReporter) -> Any:
        summary: CorrectionJobSummary = await handle.run_job.remote(reporter.task_id, owner, request, reporter)
        return summary.model_dump(exclude_none=True)  # the task record keeps it as JSON

    record = services.runner.submit(KIND, owner, work, {"images": len(parsed.items),
                                                        "tasks": [t["name"] for t in parsed.tasks]})
    return _public(record)


@router.get("/jobs", response_model=list[CorrectionJobResponse])
def list_jobs(services: ServicesDep, user: LimitedUser) -> list[CorrectionJobResponse]:
    """The caller's jobs, newest first."""
    records = sorted(services.tasks.list(owner=user.id, kind=KIND), key=lambda r: -r.created_at)
    return [_public(r) for r in records]


@router.get("/jobs/{job_id}", response_model=CorrectionJobResponse)
def get_job(job_id: str, services: ServicesDep, user: LimitedUser) -> CorrectionJobResponse:
    """Status and progress (percent) of a job."""
    return _public(_owned(services, job_id, user.id))


@router.get("/jobs/{job_id}/result")
def get_result(job_id: str, services: ServicesDep, user: LimitedUser) -> Response:
    """The spec's output JSON (409 while the job runs or when it failed)."""
    summary = _finished(_owned(services, job_id, user.id))
    try:
        data = services.blobs.get_bytes(summary["result_key"])
    except (KeyError, FileNotFoundError):
        raise NotFound("the job's result is gone") from None
    return Response(data, media_type="application/json")


@router.get("/jobs/{job_id}/report", response_class=HTMLResponse)
def get_report(job_id: str, services: ServicesDep, user: LimitedUser) -> HTMLResponse:
    """The HTML report: projection scatter by class, flagged images, thumbnails per finding."""
    summary = _finished(_owned(services, job_id, user.id))
    if not summary.get("report_key"):
        raise NotFound("this job has no report")
    try:
        return HTMLResponse(services.blobs.get_bytes(summary["report_key"]).decode())
    except (KeyError, FileNotFoundError):
        raise NotFound("the job's report is gone") from None


@router.get("/jobs/{job_id}/files/{name:path}")
def get_file(job_id: str, name: str, services: ServicesDep, user: LimitedUser) -> Response:
    """A corrected image (``images/<uuid>.png``, as named by ``corrected_path``) of the job."""
    summary = _finished(_owned(services, job_id, user.id))
    prefix = summary["result_key"].rsplit("/", 1)[0]
    if name.startswith(prefix + "/"):
        name = name[len(prefix) + 1:]
    if not name.startswith("images/") or ".." in name.split("/"):
        raise NotFound("File not found")
    try:
        data = services.blobs.get_bytes(f"{prefix}/{name}")
    except (KeyError, FileNotFoundError, ValueError):
        raise NotFound("File not found") from None
    return Response(data, media_type="image/png")


@router.post("/metadata", response_model=ImageMetadataResponse)
async def image_metadata(body: ImageMetadataRequest, services: ServicesDep, user: LimitedUser) -> Any:
    """``get_image_metadata``: channels, height, width, per-channel mean and std_dev in [0, 1]."""
    if not lexically_inside(body.path, allowed_roots(services)):
        raise Forbidden("path is outside the allowed roots")
    return await services.correction.handles.correction.image_metadata.remote(body.path)


def _event(record: TaskRecord) -> dict[str, Any]:
    return {"event": "status" if record.status.done else "progress", "job_id": record.id,
            "status": STATUS[record.status.value], "progress": round(record.progress, 2),
            "message": record.message, "error": record.error}


@router.websocket("/jobs/{job_id}/events")
async def job_events(websocket: WebSocket, job_id: str) -> None:
    """Progress events (JSON, one per change) until the job ends; token as ``?token=`` or bearer."""
    services: Services = websocket.app.state.services
    owner = websocket_owner(websocket, services, (USER_AUDIENCE,))
    if owner is None:
        await websocket.close(code=4401, reason="Not authenticated")
        return
    await websocket.accept()
    try:
        async for record in watch_task(services, job_id, owner, KIND):
            if record is None:
                await websocket.send_json({"event": "error", "job_id": job_id, "error": "Job not found"})
                break
            await websocket.send_json(_event(record))
    except WebSocketDisconnect:
        return
    await websocket.close()


def include(app: FastAPI) -> None:
    """Add this service's routes (errors use the default ``{"detail": ...}`` format)."""
    app.include_router(router)

