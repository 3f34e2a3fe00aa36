"""The spec's Python interface: ``start_ic_processing_job`` and ``get_image_metadata``.

Both take the user's uuid, the request as a JSON string and ``sock_addr`` (a Unix socket
path receiving newline-delimited JSON events, see :mod:`percept.correction.events`; empty:
no events) and return the spec's output as a JSON string. The job runs its per-image work on
Ray Data: it joins the Ray cluster named by ``RAY_ADDRESS`` or starts a local one.

Corrected images and the report are written under ``config_params.output_dir``, by default
``<the dataset's common folder>/corrected_<job id>/`` — new files, never the originals.
"""

from __future__ import annotations

import json
import logging
import os
import uuid as uuidlib
from pathlib import Path
from typing import Any

from percept.correction.events import SocketEvents
from percept.correction.images import ImageDecodeError, metadata
from percept.correction.job import Executor, run_job
from percept.correction.sinks import DirSink
from percept.errors import BadRequest, NotFound, ServiceError

logger = logging.getLogger(__name__)


def _load(request: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(request, dict):
        return request
    try:
        value = json.loads(request)
    except (TypeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"request is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadRequest("the request must be a JSON object")
    return value


def default_output_dir(request: dict[str, Any], job_id: str) -> Path:
    """``<common folder of the dataset's files>/corrected_<job id>``."""
    paths = [p for files in (request.get("dataset", {}).get("class_files") or {}).values()
             if isinstance(files, dict) for p in files]
    try:
        common = Path(os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths])) if paths else None
    except ValueError:
        common = None
    return (common or Path.cwd()) / f"corrected_{job_id}"


def run_correction(
    user: str,
    request: str | dict[str, Any],
    sock_addr: str = "",
    *,
    job_id: str | None = None,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """``start_ic_processing_job`` returning a dict (for Python callers)."""
    job_id = job_id or uuidlib.uuid4().hex
    events = SocketEvents(sock_addr, job_id, user)
    try:
        body = _load(request)
        output_dir = (body.get("config_params") or {}).get("output_dir") if isinstance(
            body.get("config_params"), dict) else None
        sink = DirSink(output_dir or default_output_dir(body, job_id))
        if executor is None:
            from pipelines.correction import ray_data_executor

            executor = ray_data_executor
        events.progress(0.0, "started")
        result = run_job(body, job_id=job_id, sink=sink, executor=executor, emit=events.progress)
    except Exception as exc:
        events.finished(False, str(exc.detail) if isinstance(exc, ServiceError) else f"{type(exc).__name__}: {exc}")
        raise
    events.finished(True)
    return result


def start_ic_processing_job(uuid: str, request: str, sock_addr: str) -> str:
    """Run an image-correction job; returns the spec's output JSON (a string).

    Raises :class:`percept.errors.BadRequest` on a malformed request; per-image and
    per-task faults are reported inside the output instead.
    """
    return json.dumps(run_correction(uuid, request, sock_addr))


def get_image_metadata(uuid: str, request: str, sock_addr: str) -> str:
    """``{"channels", "height", "width", "mean", "std_dev"}`` of ``request["path"]`` as JSON.

    Mean and std_dev are per channel of the file (1 gray, 3 RGB, 4 RGBA), in [0, 1].
    """
    events = SocketEvents(sock_addr, f"metadata-{uuidlib.uuid4().hex[:8]}", uuid)
    try:
        body = _load(request)
        path = body.get("path")
        if not isinstance(path, str) or not path:
            raise BadRequest("path: required string")
        try:
            result = metadata(path)
        except ImageDecodeError as exc:
            raise (NotFound if "not found" in str(exc) or "not a file" in str(exc) else BadRequest)(str(exc)) from None
    except ServiceError as exc:
        events.finished(False, str(exc.detail))
        raise
    events.finished(True)
    return json.dumps(result)
