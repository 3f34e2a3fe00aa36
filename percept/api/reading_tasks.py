"""``/v1`` task routes of the reading service: processing, extraction, comparison, status.

Task creation checks the model first, then the file (the contract's order: an unknown model
is reported before an unknown file); the work runs as a platform task that makes one call to
the ``reading`` deployment (:class:`percept.reading.workflow.ReadingTools`). Result routes: unknown or unfinished →
406, a task of another kind → 422, each with the contract's message.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from percept.api.deps import ServicesDep
from percept.api.reading_deps import User, files_of, parse_body
from percept.auth import Principal
from percept.errors import NotAcceptable, NotFound, Unprocessable
from percept.handles import Handle, require
from percept.reading.files import Kind
from percept.schemas.reading import (
    AudioExtractPhrasesRequest,
    AudioExtractPhrasesResponse,
    AudioImageComparisonResultsResponse,
    AudioProcessingRequest,
    AudioProcessingResponse,
    AudioTextComparisonResultsResponse,
    AudioToImageComparisonRequest,
    AudioToTextComparisonRequest,
    ImageProcessingRequest,
    ImageProcessingResponse,
    TaskCreateResponse,
    TaskStatusResponse,
)
from percept.services import Services
from percept.tasks import ProgressReporter, TaskRecord, TaskStatus

router = APIRouter(prefix="/v1")

AUDIO_PROCESS = "reading.audio_process"
AUDIO_EXTRACT = "reading.audio_extract"
IMAGE_PROCESS = "reading.image_process"
COMPARE_IMAGE = "reading.compare_audio_image"
COMPARE_TEXT = "reading.compare_audio_text"
NOT_DONE = "The job is non-existent or not done"
NOT_READY = "Results are not ready yet or no task with such id exist"
TaskId = Annotated[UUID, Query()]


def tools(services: Services) -> Handle:
    """The ``reading`` deployment, which runs each task's work in one call (503 when absent)."""
    return require(services.reading.handles.reading)


def _check_model(services: Services, kind: Kind, name: str) -> str:
    """The plugin a model name means (aliases such as the original's ``whisper`` resolved);
    404 when there is none of that kind."""
    plugin = name if name in services.plugins else services.reading.settings.plugin_name(name)
    info = services.plugins.get(plugin)
    if info is None or info.kind != kind:
        raise NotFound(f"No such {kind} model available")
    return plugin


async def _file_key(services: Services, kind: Kind, user: Principal, file_id: UUID) -> str:
    doc = await asyncio.to_thread(files_of(services).get, kind, user.id, str(file_id))
    if doc is None:
        raise NotFound(f"No such {kind} file available")
    return str(doc["key"])


def submit(services: Services, kind: str, user: Principal, work: Any, params: dict[str, Any]) -> TaskCreateResponse:
    """Start a task; the response carries its id."""
    record = services.runner.submit(kind, user.id, work, params)
    return TaskCreateResponse(task_id=UUID(record.id))


async def _record(services: Services, user: Principal, task_id: UUID) -> TaskRecord | None:
    record = await asyncio.to_thread(services.tasks.get_owned, str(task_id), user.id)
    if record is None or not record.kind.startswith("reading."):
        return None
    return record


async def _result(services: Services, user: Principal, task_id: UUID, kind: str, missing: str,
                  wrong_kind: str) -> Any:
    record = await _record(services, user, task_id)
    if record is None:
        raise NotAcceptable(missing)
    if record.kind != kind:
        raise Unprocessable(wrong_kind)
    if record.status != TaskStatus.finished:
        raise NotAcceptable(missing)
    return record.result


@router.post("/audio/process/task", response_model=TaskCreateResponse, tags=["audio"])
async def process_audio(request: Request, services: ServicesDep, user: User) -> TaskCreateResponse:
    """Recognise a recording with an audio model: text and timed segments."""
    body = await parse_body(request, AudioProcessingRequest)
    audio_model = _check_model(services, "audio", body.audio_model)
    key = await _file_key(services, "audio", user, body.audio_file)
    flow = tools(services)

    async def work(reporter: ProgressReporter) -> Any:
        return await flow.process_audio.remote(user.id, key, audio_model, reporter)

    return submit(services, AUDIO_PROCESS, user, work, body.model_dump(mode="json"))


@router.get("/audio/process/result", response_model=AudioProcessingResponse, tags=["audio"])
async def get_response(services: ServicesDep, user: User, task_id: TaskId) -> Any:
    """The result of an audio processing task."""
    return await _result(services, user, task_id, AUDIO_PROCESS, NOT_DONE, "There is no such audio processing task")


@router.post("/audio/extract/task", response_model=TaskCreateResponse, tags=["audio"])
async def extract_text_from_audio(request: Request, services: ServicesDep, user: User) -> TaskCreateResponse:
    """Find phrases in a recording: whether each was read, and where."""
    body = await parse_body(request, AudioExtractPhrasesRequest)
    if len(body.phrases) > services.reading.settings.max_phrases:
        raise Unprocessable(f"Too many phrases: the limit is {services.reading.settings.max_phrases}")
    audio_model = _check_model(services, "audio", body.audio_model)
    key = await _file_key(services, "audio", user, body.audio_file)
    flow = tools(services)

    async def work(reporter: ProgressReporter) -> Any:
        return await flow.extract.remote(user.id, key, audio_model, body.phrases, reporter)

    return submit(services, AUDIO_EXTRACT, user, work, body.model_dump(mode="json"))


@router.get("/audio/extract/result", response_model=AudioExtractPhrasesResponse, tags=["audio"])
async def get_extracted_results(services: ServicesDep, user: User, task_id: TaskId) -> Any:
    """The result of a phrase extraction task."""
    return await _result(services, user, task_id, AUDIO_EXTRACT, NOT_DONE, "There is no such audio extraction task")


@router.post("/image/process/task", response_model=TaskCreateResponse, tags=["image"])
async def process_image(request: Request, services: ServicesDep, user: User) -> TaskCreateResponse:
    """Recognise the text of a page image with an image model: text and word boxes."""
    body = await parse_body(request, ImageProcessingRequest)
    image_model = _check_model(services, "image", body.image_model)
    key = await _file_key(services, "image", user, body.image_file)
    flow = tools(services)

    async def work(reporter: ProgressReporter) -> Any:
        return await flow.process_image.remote(key, image_model, reporter)

    return submit(services, IMAGE_PROCESS, user, work, body.model_dump(mode="json"))


@router.get("/image/process/result", response_model=ImageProcessingResponse, tags=["image"])
async def get_image_response(services: ServicesDep, user: User, task_id: TaskId) -> Any:
    """The result of an image processing task."""
    return await _result(services, user, task_id, IMAGE_PROCESS, NOT_DONE, "There is no such image processing task")


@router.post("/comparison/audio/image/task", response_model=TaskCreateResponse, tags=["comparison"])
async def compare_audio_image(request: Request, services: ServicesDep, user: User) -> TaskCreateResponse:
    """Compare a reading with the text of a page photo."""
    body = await parse_body(request, AudioToImageComparisonRequest)
    image_model = _check_model(services, "image", body.image_model)
    audio_model = _check_model(services, "audio", body.audio_model)
    image_key = await _file_key(services, "image", user, body.image_file)
    audio_key = await _file_key(services, "audio", user, body.audio_file)
    flow = tools(services)

    async def work(reporter: ProgressReporter) -> Any:
        return await flow.compare_image.remote(user.id, audio_key, audio_model, image_key, image_model, reporter)

    return submit(services, COMPARE_IMAGE, user, work, {**body.model_dump(mode="json"), "image_key": image_key})


@router.get("/comparison/audio/image/result", response_model=AudioImageComparisonResultsResponse,
            tags=["comparison"])
async def get_audio_image_result(services: ServicesDep, user: User, task_id: TaskId) -> Any:
    """Errors of a reading against a page photo, and the word-level report."""
    return await _result(services, user, task_id, COMPARE_IMAGE, NOT_READY,
                         "There is no such task consists of the both image and audio")


@router.get("/comparison/audio/image/view", tags=["comparison"],
            response_class=Response, responses={200: {"content": {"image/png": {}}}})
async def get_audio_image_view(services: ServicesDep, user: User, task_id: TaskId) -> Response:
    """The page with each misread word's box highlighted (PNG; beyond the original)."""
    result = await _result(services, user, task_id, COMPARE_IMAGE, NOT_READY,
                           "There is no such task consists of the both image and audio")
    record = await _record(services, user, task_id)
    assert record is not None
    words = result["report"]["words"]
    box_of_word: list[int | None] = [None] * (1 + max((w["index"] for w in words if w["index"] is not None),
                                                     default=-1))
    for w in words:
        if w["index"] is not None:
            box_of_word[w["index"]] = w.get("box")
    png = await services.reading.handles.reading.view.remote(record.params["image_key"], result["image"]["boxes"],
                                                       words, box_of_word)
    return Response(png, media_type="image/png")


@router.post("/comparison/audio/text/task", response_model=TaskCreateResponse, tags=["comparison"])
async def compare_audio_text(request: Request, services: ServicesDep, user: User) -> TaskCreateResponse:
    """Compare a reading with a text (a list of strings, joined with spaces)."""
    body = await parse_body(request, AudioToTextComparisonRequest)
    limit = services.reading.settings.max_text_chars
    if sum(len(t) for t in body.text) > limit:
        raise Unprocessable(f"The text is too long: the limit is {limit} characters")
    audio_model = _check_model(services, "audio", body.audio_model)
    key = await _file_key(services, "audio", user, body.audio_file)
    flow = tools(services)

    async def work(reporter: ProgressReporter) -> Any:
        return await flow.compare_text.remote(user.id, key, audio_model, body.text, reporter)

    return submit(services, COMPARE_TEXT, user, work, {"audio_file": str(body.audio_file),
                                                         "audio_model": body.audio_model})


@router.get("/comparison/audio/text/result", response_model=AudioTextComparisonResultsResponse,
            tags=["comparison"])
async def get_audio_text_result(services: ServicesDep, user: User, task_id: TaskId) -> Any:
    """Errors of a reading against a text, and the word-level report."""
    return await _result(services, user, task_id, COMPARE_TEXT, NOT_READY,
                         "There is no such task consists of the both audio and text")


@router.get("/task/status", response_model=TaskStatusResponse, tags=["task"])
async def get_status(services: ServicesDep, user: User, task_id: TaskId) -> TaskStatusResponse:
    """A task's status; an unknown id is "results are not available", a failed task says why."""
    record = await _record(services, user, task_id)
    if record is None:
        return TaskStatusResponse(task_id=str(task_id), status="results are not available", ready=False)
    extra: dict[str, Any] = {"progress": record.progress}
    if record.status == TaskStatus.failed:
        extra["reason"] = record.error
    return TaskStatusResponse(task_id=str(task_id), status=record.status.value, ready=record.ready, **extra)


@router.get("/task/result", tags=["task"])
async def get_job_result(services: ServicesDep, user: User, task_id: TaskId) -> Any:
    """The result of any finished reading task."""
    record = await _record(services, user, task_id)
    if record is None or record.status != TaskStatus.finished:
        raise NotAcceptable(NOT_READY)
    return record.result
