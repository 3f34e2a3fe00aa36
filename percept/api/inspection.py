"""The visual-inspection API (the vendor's paths under ``/api``): routes only.

Decode and validate at the edge, keep records through :class:`InspectionRepo`, and await
the ``inspection_trainer`` / ``inspection_predictor`` deployments inside tasks. Success
bodies are ``{"data": ...}``; errors are rendered by :mod:`percept.api.inspection_deps`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, cast

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi import UploadFile as FastUpload
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from percept.api.deps import CLIENT_AUDIENCE, ServicesDep
from percept.api.errors import register_error_renderer
from percept.api.inspection_deps import ClientDep, LicensedClient, RepoDep, render_error
from percept.api.limits import check_filename
from percept.api.uploads import read_limited
from percept.auth import Principal
from percept.errors import BadRequest, Forbidden, NotFound, Unauthorized
from percept.handles import require
from percept.inspection import jobs
from percept.inspection.algorithms import ALGORITHMS, DEFAULT_ALGORITHM
from percept.inspection.errors import api_error
from percept.inspection.license import LicenseError, verify_license
from percept.inspection.uploads import parse_bool, store_uploads
from percept.inspection.views import item_detail, item_entry, model_view, summary
from percept.retry import error_contract
from percept.schemas.inspection import (
    AnnotationRequest,
    DeleteModelsRequest,
    ServeRequest,
    TokenRequest,
    TrainRequest,
)

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api", tags=["inspection"])
APP_VERSION = "1.0.0.0"
TOKEN_TTL_S = 2592000
LICENSE_LIMIT = 64 * 1024


def data(value: Any) -> dict[str, Any]:
    return {"data": value}


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@router.post("/auth/token")
def token(body: TokenRequest, services: ServicesDep) -> dict[str, Any]:
    """Client credentials -> a bearer token valid for 30 days."""
    client = services.clients.get(body.client_id)
    if client is None or client.get("disabled"):
        raise api_error(Unauthorized, "Cannot find client information")
    if not services.clients.verify(body.client_id, body.client_secret):
        raise api_error(Unauthorized, "Client id and secret mismatch")
    access = services.tokens.issue(Principal("client", body.client_id), CLIENT_AUDIENCE, TOKEN_TTL_S)
    return data({"access_token": access, "expires": TOKEN_TTL_S})


@router.get("/auth/app_version")
def app_version(_: ClientDep) -> dict[str, Any]:
    return data(APP_VERSION)


@router.post("/v1/license")
async def activate_license(request: Request, owner: ClientDep, records: RepoDep, services: ServicesDep) -> dict[str, Any]:
    """Activate the license file (multipart part ``license``) for the calling client."""
    form = await request.form(max_files=2, max_fields=10)
    part = form.get("license")
    if not isinstance(part, UploadFile):
        raise api_error(Forbidden, "Invalid license!", "No license file")
    text = (await read_limited(cast(FastUpload, part), LICENSE_LIMIT)).decode("utf-8", errors="replace")
    try:
        payload = await asyncio.to_thread(verify_license, services.state, text, owner.partition(":")[2])
    except LicenseError as exc:
        raise api_error(Forbidden, "Invalid license!", str(exc)) from None
    if not await asyncio.to_thread(records.activate_license, owner, payload):
        raise api_error(Forbidden, "Invalid license!", "License already exists")
    return data({"status": "ok"})


@router.get("/v1/items")
def items(request: Request, owner: LicensedClient, records: RepoDep) -> dict[str, Any]:
    """The client's training and predict items with a summary."""
    docs = records.list_items(owner)
    root = base_url(request)

    def entry(item: dict[str, Any]) -> dict[str, Any]:
        first = item["image_ids"][0] if item.get("image_ids") else None
        return item_entry(item, f"{root}/api/v1/image/{first}/raw" if first is not None else None)

    return data({
        "archived": [],
        "predict": [entry(i) for i in docs if not i["is_training_data"]],
        "summary": summary(docs),
        "training": [entry(i) for i in docs if i["is_training_data"]],
    })


@router.get("/v1/algorithms")
def algorithms(_: LicensedClient) -> dict[str, Any]:
    return data([a.describe() for a in ALGORITHMS.values()])


@router.get("/v1/models")
def models(owner: LicensedClient, records: RepoDep, services: ServicesDep) -> dict[str, Any]:
    return data([model_view(m) for m in jobs.refresh_models(records, services.tasks, owner)])


@router.delete("/v1/model")
def delete_models(body: DeleteModelsRequest, owner: LicensedClient, records: RepoDep, services: ServicesDep) -> dict[str, Any]:
    """Delete models by id; 404 "No model found" (and nothing deleted) if any is unknown."""
    docs = []
    for raw in body.model_ids:
        model = records.get_model(owner, int(raw)) if str(raw).isdigit() else None
        if model is None:
            raise api_error(NotFound, "", "No model found")
        docs.append(model)
    jobs.delete_models(records, services.blobs, owner, docs)
    return data({"status": "ok"})


@router.post("/v1/train")
async def train(body: TrainRequest, owner: LicensedClient, records: RepoDep, services: ServicesDep) -> dict[str, Any]:
    """Start training; the model is ``creating`` until the task makes it ``active`` or ``failed``."""
    algorithm = ALGORITHMS.get(body.algorithm_id or DEFAULT_ALGORITHM)  # "" = the default (patchcore)
    if algorithm is None:
        raise api_error(NotFound, "No algorithms found", f"Unknown algorithm {body.algorithm_id}")
    if not body.item_ids:
        raise api_error(BadRequest, "Invalid Request", "No item ids given")
    try:
        params = algorithm.resolve([(p.algorithm_parameter_id, p.value) for p in body.override_params or []])
    except ValueError as exc:
        raise api_error(BadRequest, "Invalid Request", exc.args[0]) from None
    trainer = require(services.inspection.handles.inspection_trainer)  # 503 before recording anything
    model = await asyncio.to_thread(jobs.create_model, records, owner, algorithm.algorithm_id, body.name, params, body.item_ids)
    jobs.submit_training(services.runner, services.blobs, trainer, records, owner, model)
    return data(model_view(model))


@router.post("/v1/upload")
async def upload(request: Request, owner: LicensedClient, records: RepoDep, services: ServicesDep) -> dict[str, Any]:
    """Multipart ``files[i]`` parts plus ``training`` / ``good`` form fields -> new items."""
    settings = services.inspection.settings
    max_files = settings.max_files_per_upload
    form = await request.form(max_files=max_files + 1, max_fields=20)
    files = [(k, v) for k, v in form.multi_items() if isinstance(v, UploadFile) and k.startswith("files")]
    if not files:
        raise api_error(BadRequest, "No images to upload")
    if len(files) > max_files:
        raise api_error(BadRequest, "Invalid Request", "Too many files in one upload")
    good = parse_bool(form.get("good"), "good")
    training_field = form.get("training")
    training = parse_bool(training_field, "training") if training_field not in (None, "") else good is not None
    limit = int(settings.max_upload_mb * 2**20)
    for _, part in files:
        if (reason := check_filename(part.filename)) is not None:
            raise api_error(BadRequest, "Invalid Request", reason)
    payloads = [(part.filename or "", await read_limited(cast(FastUpload, part), limit)) for _, part in files]
    item_ids = await asyncio.to_thread(store_uploads, records, services.blobs, owner, payloads, bool(training), good)
    return data({"item_ids": item_ids})


@router.post("/v1/image/{image_id}/annotation")
def annotate(image_id: str, body: AnnotationRequest, owner: LicensedClient, records: RepoDep) -> dict[str, Any]:
    """Replace the image's bounding-box annotations."""
    image = records.get_image(int(image_id)) if image_id.isdigit() else None
    if image is None or image["owner"] != owner:
        raise api_error(NotFound, "Cannot find image")
    boxes = []
    for a in body.annotations:
        if a.x_min > a.x_max or a.y_min > a.y_max or a.x_max >= image["width"] or a.y_max >= image["height"]:
            raise api_error(BadRequest, "Invalid Request", "The annotation box is outside the image or inverted")
        boxes.append({"annotation_id": records.next_id("annotation"), "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **a.model_dump()})
    records.update_image(image["image_id"], lambda d: d.__setitem__("annotations", boxes))
    return data({"item_ids": [image["item_id"]]})


def _owned_image(records: Any, owner: str, image_id: str) -> dict[str, Any]:
    image = records.get_image(int(image_id)) if image_id.isdigit() else None
    if image is None or image["owner"] != owner:
        raise api_error(NotFound, "Cannot find image")
    return image  # type: ignore[no-any-return]


@router.get("/v1/image/{image_id}/raw")
def raw_image(image_id: str, owner: LicensedClient, records: RepoDep, services: ServicesDep) -> Response:
    """The uploaded image as it was sent."""
    image = _owned_image(records, owner, image_id)
    return Response(services.blobs.get_bytes(image["blob_key"]), media_type=image["content_type"])


@router.get("/v1/image/{image_id}/anomaly_map")
def anomaly_map(image_id: str, owner: LicensedClient, records: RepoDep, services: ServicesDep) -> Response:
    """The latest prediction's anomaly map of the image (PNG, red = defect)."""
    image = _owned_image(records, owner, image_id)
    key = jobs.latest_heatmap_key(records, owner, image)
    if key is None or not services.blobs.exists(key):
        raise api_error(NotFound, "Cannot find image", "The image has not been predicted yet")
    return Response(services.blobs.get_bytes(key), media_type="image/png")


@router.get("/v1/item/{item_id}")
def item(
    request: Request, item_id: str, owner: LicensedClient, records: RepoDep,
    show_annotations: str | None = Query(None), show_assessments: str | None = Query(None),
) -> dict[str, Any]:
    """An item with its images, annotations and per-model assessments."""
    annotations = parse_bool(show_annotations, "show_annotations")
    assessments = parse_bool(show_assessments, "show_assessments")
    doc = records.get_item(owner, item_id)
    if doc is None:
        if records.item_owners(item_id):
            raise api_error(Unauthorized, "No permission to view item!")
        raise api_error(NotFound, "No match for item_id!")
    images = [img for i in doc.get("image_ids", []) if (img := records.get_image(i)) is not None]
    return data(item_detail(doc, images, base_url(request), annotations is not False, assessments is not False))


@router.post("/v1/serve")
async def serve_items(body: ServeRequest, owner: LicensedClient, records: RepoDep, services: ServicesDep) -> dict[str, Any]:
    """Predict items with the given model or the active one (runs as a task)."""
    predictor = require(services.inspection.handles.inspection_predictor)  # 503 before touching the items
    items, model = await asyncio.to_thread(jobs.prepare_prediction, records, owner, body.item_ids, body.model_id)
    jobs.submit_prediction(services.runner, predictor, records, owner, items, model)
    return data({"item_ids": [i["item_id"] for i in items], "model_version": model["version"]})


@router.get("/v1/workers")
def workers(owner: LicensedClient, services: ServicesDep) -> dict[str, Any]:
    """The client's running training and prediction tasks."""
    return data(jobs.running(services.tasks, owner))


def include(app: FastAPI) -> None:
    """Add the inspection routes and render every error under ``/api`` as ``{"errors": ...}``."""
    app.include_router(router)
    register_error_renderer(app, lambda path: error_contract(path) == "inspection", render_error)
