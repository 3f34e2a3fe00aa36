"""Training and prediction as tasks: model records, task submission and their outcomes.

The router calls these; the heavy work runs on the trainer / predictor deployments, awaited
by a task on the ingress event loop so the request returns at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from percept.errors import BadRequest, Forbidden, NotFound, unwrap_remote_error
from percept.handles import Handle
from percept.inspection.errors import api_error
from percept.inspection.store import InspectionRepo
from percept.inspection.views import verdict
from percept.storage import BlobStore, owner_prefix
from percept.tasks import ProgressReporter, TaskManager, TaskRunner, TaskStatus

logger = logging.getLogger(__name__)
TRAIN_KIND = "inspection.train"
PREDICT_KIND = "inspection.predict"
Doc = dict[str, Any]


def _mark_failed(reason: str) -> Any:
    def apply(doc: Doc) -> None:
        doc.update(status="failed", error=reason, updated_at=time.time())

    return apply


def create_model(
    records: InspectionRepo, owner: str, algorithm_id: str, name: str | None,
    params: dict[str, Any], item_ids: list[str],
) -> Doc:
    """Check the items (403 if any is not the caller's) and record a ``creating`` model."""
    items = [records.get_item(owner, i) for i in item_ids]
    if any(i is None for i in items):
        raise api_error(Forbidden, "You do not have access to one or more item ids provided")
    # Reading chosen: good-labelled items, and training items without a label, are the good examples.
    good = [i for i in items if i and (i.get("good") is True or (i["is_training_data"] and i.get("good") is None))]
    image_keys = [img["blob_key"] for i in good for img_id in i["image_ids"]
                  if (img := records.get_image(img_id)) is not None]
    # Items labelled defective never enter the model; they place its threshold.
    defect_keys = [img["blob_key"] for i in items if i and i.get("good") is False for img_id in i["image_ids"]
                   if (img := records.get_image(img_id)) is not None]
    if not image_keys:
        raise api_error(BadRequest, "Invalid Request", "No good training images among the item ids")
    now = time.time()
    model_id = records.next_id("model", start=100)
    doc = {
        "owner": owner, "model_id": model_id, "algorithm_id": algorithm_id,
        "name": name or time.strftime("%m/%d/%y %H:%M:%S", time.gmtime(now)),
        "params": {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()},
        "item_ids": list(item_ids), "image_keys": image_keys, "defect_keys": defect_keys, "status": "creating", "active": False,
        "created_at": now, "updated_at": now,
        "version": "model-" + time.strftime("%Y%m%d%H:%M:%S", time.gmtime(now)) + f"-{model_id}",
        "task_id": None, "model_key": None, "error": None, "metrics": {},
    }
    records.put_model(doc)
    return doc


def submit_training(runner: TaskRunner, blobs: BlobStore, trainer: Handle, records: InspectionRepo, owner: str,
                    model: Doc) -> None:
    """A task that trains ``model`` on the trainer deployment and records the outcome."""
    model_id = model["model_id"]

    async def work(reporter: ProgressReporter) -> Doc:
        try:
            meta = await trainer.train.remote(
                owner, model_id, model["algorithm_id"], model["params"], model["image_keys"], reporter,
                model.get("defect_keys") or [],
            )
        except Exception as exc:
            cause = unwrap_remote_error(exc)  # the trainer's own error, not Ray's traceback around it
            reason = str(getattr(cause, "detail", None) or f"{type(cause).__name__}: {cause}")[:500]
            logger.warning("training of model %s failed: %s", model_id, reason)
            await asyncio.to_thread(records.update_model, model_id, _mark_failed(reason))
            raise

        def finish(doc: Doc) -> None:
            doc.update(status="active", active=True, model_key=meta["model_key"], updated_at=time.time(), metrics=meta)

        done = await asyncio.to_thread(records.update_model, model_id, finish)
        if done is not None:  # deleted while training: keep nothing active
            await asyncio.to_thread(records.set_active, owner, model_id)
        else:
            await asyncio.to_thread(blobs.delete, meta["model_key"])
        return {"model_id": model_id, **meta}

    record = runner.submit(TRAIN_KIND, owner, work, {"model_id": model_id, "name": model["name"],
                                                              "algorithm_id": model["algorithm_id"]})
    records.update_model(model_id, lambda d: d.__setitem__("task_id", record.id))
    model["task_id"] = record.id


def refresh_models(records: InspectionRepo, tasks: TaskManager, owner: str) -> list[Doc]:
    """The client's models; a ``creating`` model whose task died is reported ``failed``."""
    models = records.list_models(owner)
    for model in models:
        if model["status"] == "creating" and model.get("task_id"):
            task = tasks.get(model["task_id"])
            if task is not None and task.status == TaskStatus.failed:
                reason = task.error or "training failed"
                records.update_model(model["model_id"], _mark_failed(reason))
                model.update(status="failed", error=reason)
    return models


def delete_models(records: InspectionRepo, blobs: BlobStore, owner: str, models: list[Doc]) -> None:
    was_active = any(m.get("active") for m in models)
    for model in models:
        records.delete_model(model["model_id"])
        if model.get("model_key"):
            blobs.delete(model["model_key"])
    if was_active:
        remaining = [m for m in records.list_models(owner) if m["status"] == "active"]
        if remaining:
            records.set_active(owner, remaining[-1]["model_id"])


def prepare_prediction(
    records: InspectionRepo, owner: str, item_ids: list[str], model_id: int | str | None
) -> tuple[list[Doc], Doc]:
    """The caller's items (404 "Cannot find items") and a usable model (400 otherwise)."""
    items = [records.get_item(owner, i) for i in dict.fromkeys(item_ids)]
    if any(i is None for i in items):
        raise api_error(NotFound, "Cannot find items")
    if model_id in (None, ""):
        model = records.active_model(owner)
    else:
        model = records.get_model(owner, int(model_id)) if str(model_id).isdigit() else None
    if model is None or model["status"] != "active" or not model.get("model_key"):
        raise api_error(BadRequest, "There is no available model")
    for item in items:
        assert item is not None
        records.update_item(owner, item["item_id"], lambda d: d.__setitem__("status", "processing"))
    return [i for i in items if i is not None], model


def submit_prediction(runner: TaskRunner, predictor: Handle, records: InspectionRepo, owner: str, items: list[Doc],
                      model: Doc) -> None:
    """A task that scores the items' images on the predictor deployment and records the verdicts."""
    images = [{"image_id": img_id, "blob_key": img["blob_key"], "item_id": item["item_id"]}
              for item in items for img_id in item["image_ids"]
              if (img := records.get_image(img_id)) is not None]
    prefix = f"{owner_prefix('inspection', owner)}/maps/{model['model_id']}"

    async def work(reporter: ProgressReporter) -> Doc:
        try:
            results = await predictor.options(multiplexed_model_id=model["model_key"]).predict.remote(
                model["model_key"], prefix, [{"image_id": i["image_id"], "blob_key": i["blob_key"]} for i in images]
            )
        except Exception:
            for item in items:
                await asyncio.to_thread(records.update_item, owner, item["item_id"],
                                        lambda d: d.__setitem__("status", "failed"))
            raise
        await asyncio.to_thread(record_results, records, owner, items, images, model, results)
        return {"model_id": model["model_id"], "items": len(items)}

    runner.submit(PREDICT_KIND, owner, work, {"model_id": model["model_id"], "name": model["name"],
                                                       "model_version": model["version"]})


def record_results(
    records: InspectionRepo, owner: str, items: list[Doc], images: list[Doc], model: Doc, results: list[Doc]
) -> None:
    """Write each item's assessment by this model (NG when any of its images is NG)."""
    by_image = {r["image_id"]: r for r in results}
    now = time.time()
    for item in items:
        mine = [by_image[i["image_id"]] for i in images if i["item_id"] == item["item_id"] and i["image_id"] in by_image]
        good = all(r["good"] for r in mine)
        assessment = {
            "model_id": model["model_id"], "model_version": model["version"], "algorithm_id": model["algorithm_id"],
            "good": good, "assessment_result": verdict(model["algorithm_id"], good),
            "score": max((r["score"] for r in mine), default=0.0),
            "detected_objects": sum(r["detected_objects"] for r in mine),
            "detection_accuracy": min((r["detection_accuracy"] for r in mine), default=0.0),
            "created_at": now,
            "images": {str(r["image_id"]): {"boxes": r["boxes"], "score": r["score"],
                                             "heatmap_key": r["heatmap_key"]} for r in mine},
        }

        def apply(doc: Doc, a: Doc = assessment) -> None:
            doc.setdefault("assessments", {})[str(model["model_id"])] = a
            doc.update(last_model_id=model["model_id"], status="done", finished_at=now)

        records.update_item(owner, item["item_id"], apply)


def latest_heatmap_key(records: InspectionRepo, owner: str, image: Doc) -> str | None:
    item = records.get_item(owner, image["item_id"])
    if not item or item.get("last_model_id") is None:
        return None
    result = item["assessments"].get(str(item["last_model_id"]), {}).get("images", {}).get(str(image["image_id"]))
    return result["heatmap_key"] if result else None


def running(tasks: TaskManager, owner: str) -> dict[str, list[str]]:
    """``{"predicting": [...], "training": [...]}``: names of the client's unfinished tasks."""
    out: dict[str, list[str]] = {"predicting": [], "training": []}
    for task in tasks.list(owner=owner):
        if task.status.done:
            continue
        if task.kind == TRAIN_KIND:
            out["training"].append(f"{task.params.get('name')} ({task.params.get('algorithm_id')})")
        elif task.kind == PREDICT_KIND:
            out["predicting"].append(str(task.params.get("model_version")))
    return out
