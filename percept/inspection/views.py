"""The vendor's JSON shapes of items, images, models and the items summary."""

from __future__ import annotations

from typing import Any

from percept.inspection.store import http_date, iso

Doc = dict[str, Any]


def verdict(algorithm_id: str, good: bool) -> str:
    return f"[{algorithm_id}] {'Good' if good else 'Defected'} product"


def latest_assessment(item: Doc) -> Doc | None:
    assessments = item.get("assessments") or {}
    last = item.get("last_model_id")
    if last is not None and str(last) in assessments:
        return assessments[str(last)]  # type: ignore[no-any-return]
    return None


def item_entry(item: Doc, image_url: str | None) -> Doc:
    """One entry of ``GET /api/v1/items`` lists."""
    latest = latest_assessment(item)
    return {
        "assessment": latest["assessment_result"] if latest else None,
        "confirmed_assessment": item.get("good") is not None,
        "date": http_date(item["created_at"]),
        "default_image": image_url,
        "description": None,
        "detected_objects": latest["detected_objects"] if latest else 0,
        "finished_date": http_date(item["finished_at"]) if item.get("finished_at") else None,
        "good": item["good"] if item.get("good") is not None else (latest["good"] if latest else None),
        "is_training_data": item["is_training_data"],
        "item_id": item["item_id"],
        "label": f"Job id is {item['item_id']}",
        "override_assessment": item.get("good") is not None,
        "status": item["status"],
        "thumbnail_image": image_url,
    }


def summary(items: list[Doc]) -> Doc:
    """Counts over the client's items; ``detection_accuracy`` is the percentage of labelled,
    analysed items whose computed verdict matches their label (0 when there are none)."""
    predict = [i for i in items if not i["is_training_data"]]
    analysed = [i for i in items if latest_assessment(i) is not None]
    analysed_predict = [i for i in predict if latest_assessment(i) is not None]
    defects = [i for i in analysed_predict if not latest_assessment(i)["good"]]  # type: ignore[index]
    labelled = [i for i in analysed if i.get("good") is not None]
    agree = sum(1 for i in labelled if (latest_assessment(i) or {}).get("good") == i["good"])
    training = [i for i in items if i["is_training_data"]]
    return {
        "adjusted": 0,
        "analysed": len(analysed_predict),
        "archived_defects": 0,
        "assessment": "Bad Product" if defects else "Good Product",
        "confirmed": len([i for i in items if i.get("good") is not None]),
        "defects_detected": len(defects),
        "detection_accuracy": round(100.0 * agree / len(labelled)) if labelled else 0,
        "items_archived": 0,
        "items_for_review": len(defects),
        "title": "Context #1",
        "training": {
            "defect": sum(1 for i in training if i.get("good") is False),
            "good": sum(1 for i in training if i.get("good") is not False),
        },
    }


def annotation_view(image_id: int, annotation: Doc) -> Doc:
    return {"image_id": image_id, **annotation}


def image_view(image: Doc, base_url: str, latest: Doc | None, show_annotations: bool) -> Doc:
    """One image of an item's detail; ``url`` is the anomaly map once the image is processed."""
    image_id = image["image_id"]
    raw_url = f"{base_url}/api/v1/image/{image_id}/raw"
    result = (latest or {}).get("images", {}).get(str(image_id))
    view: Doc = {
        "content_type": image["content_type"],
        "defect_counted": len(result["boxes"]) if result else 0,
        "detected_boxes": result["boxes"] if result else [],
        "exif_metadata": {},
        "file_size": image["file_size"],
        "height": image["height"],
        "image_id": image_id,
        "is_raw_uploaded": True,
        "position": None,
        "processed": result is not None,
        "raw_url": raw_url,
        "url": f"{base_url}/api/v1/image/{image_id}/anomaly_map" if result else raw_url,
        "width": image["width"],
    }
    if show_annotations:
        view["annotations"] = [annotation_view(image_id, a) for a in image.get("annotations", [])]
    return view


def assessment_view(assessment: Doc) -> Doc:
    """A per-model assessment: OK/NG, counts, confidence and the detected boxes per image."""
    return {
        "model_id": assessment["model_id"],
        "model_version": assessment["model_version"],
        "algorithm_id": assessment["algorithm_id"],
        "label": "OK" if assessment["good"] else "NG",
        "assessment_result": assessment["assessment_result"],
        "good": assessment["good"],
        "score": assessment["score"],
        "detected_objects": assessment["detected_objects"],
        "detection_accuracy": assessment["detection_accuracy"],
        "date": iso(assessment["created_at"]),
        "images": [
            {"image_id": int(image_id), "annotations": r["boxes"], "score": r["score"]}
            for image_id, r in assessment.get("images", {}).items()
        ],
    }


def item_detail(
    item: Doc, images: list[Doc], base_url: str, show_annotations: bool, show_assessments: bool
) -> Doc:
    """``GET /api/v1/item/{item_id}``."""
    latest = latest_assessment(item)
    label = item.get("good")
    detail: Doc = {
        "computed_assessment": {
            "assessment_result": latest["assessment_result"] if latest else None,
            "detected_objects": latest["detected_objects"] if latest else None,
            "detection_accuracy": latest["detection_accuracy"] if latest else None,
            "good": latest["good"] if latest else None,
        },
        "confirmed_assessment": label is not None,
        "images": [image_view(img, base_url, latest, show_annotations) for img in images],
        "is_training_data": item["is_training_data"],
        "item_id": item["item_id"],
        "label": f"Job id is {item['item_id']}",
        "manual_assessment": {
            "assessment_result": None if label is None else ("Good product" if label else "Defected product"),
            "detected_objects": None,
            "detection_accuracy": None,
            "good": label,
            "override_assessment": False,
        },
        "status": item["status"],
    }
    if show_assessments:
        detail["assessments"] = [assessment_view(a) for a in (item.get("assessments") or {}).values()]
    return detail


def model_view(model: Doc) -> Doc:
    """A model as ``/api/v1/models`` and ``/api/v1/train`` return it."""
    return {
        "active": bool(model.get("active")),
        "algorithm_id": model["algorithm_id"],
        "context_default": False,
        "context_id": 1000,
        "created_at": iso(model["created_at"]),
        "model_id": model["model_id"],
        "name": model["name"],
        "status": model["status"],
        "updated_at": iso(model["updated_at"]),
        "version": model["version"],
        "error": model.get("error"),
        "item_ids": model.get("item_ids", []),
        "metrics": model.get("metrics", {}),
    }
