"""Reading the spec's request: task names, the dataset's files, the job's knobs."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from percept.correction import analysis
from percept.errors import BadRequest

TASK_KINDS = ("mislabeled_images", "class_splitting", "image_blur", "lighting_conditions")
ACTIONS = ("diagnose", "correct")


def parse_task_name(name: str) -> tuple[str, str] | None:
    """``("diagnose"|"correct", kind)`` for ``diagnose_x`` / ``ic::diagnose::x``; None if unknown."""
    text = str(name).strip()
    if text.startswith("ic::"):
        parts = text.split("::")
        if len(parts) == 3 and parts[1] in ACTIONS and parts[2] in TASK_KINDS:
            return parts[1], parts[2]
        return None
    for action in ACTIONS:
        prefix = action + "_"
        if text.startswith(prefix) and text[len(prefix):] in TASK_KINDS:
            return action, text[len(prefix):]
    return None


@dataclass
class JobConfig:
    """``config_params`` of the request (unknown keys are ignored, as the spec is open)."""

    models_path: str | None = None
    features: str = "auto"
    batch_size: int = 0  # 0: chosen by feature kind (see percept.correction.features.batch_size_for)
    concurrency: int = 0  # 0: as many Ray Data workers as the cluster's free CPUs (GPUs) allow
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    folds: int = 5
    seed: int = 0
    split_method: str = "graph"  # "graph" (find_graph_splits) or "mixture" (find_splits)
    split_max_cross: float = analysis.SPLIT_MAX_CROSS
    split_ratio: float = 2.0
    split_min_gain: float = 0.75
    split_min_fraction: float = 0.2
    # Defaults: percept.correction.analysis's own (chosen on the benchmark's tuning kinds), named,
    # not copied, so a refit constant cannot drift from the job's default.
    blur_threshold: float = analysis.BLUR_THRESHOLD
    blur_hopeless_sigma: float = analysis.BLUR_HOPELESS_SIGMA
    lighting_threshold: float = analysis.LIGHTING_THRESHOLD
    relabel_confidence: float = 0.5
    knn_weight: float = 0.7
    mislabel_margin: float = analysis.MISLABEL_MARGIN
    # 2: a second pass with the first pass's flagged images relabelled, averaged with the
    # first (analysis.relabelled_probabilities); 1: the first pass alone.
    label_passes: int = 2
    output_dir: str | None = None
    report_thumbnails: int = 8

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> JobConfig:
        params = dict(params or {})
        known = {k: params[k] for k in cls.__dataclass_fields__ if k in params and params[k] is not None}
        try:
            config = cls(**known)
        except TypeError as exc:
            raise BadRequest(f"config_params: {exc}") from None
        name = ""
        try:  # each conversion names its setting; 1e400 parses as inf, and int(inf) overflows
            for name, low, high in (("batch_size", 0, None), ("concurrency", 0, None), ("folds", 2, None),
                                    ("label_passes", 1, 2)):
                value = max(low, int(getattr(config, name)))
                setattr(config, name, value if high is None else min(high, value))
            for name in ("num_cpus", "num_gpus", *_FLOATS):
                setattr(config, name, float(getattr(config, name)))
        except (TypeError, ValueError, OverflowError) as exc:
            raise BadRequest(f"config_params.{name}: {exc}") from None
        for name in ("num_cpus", "num_gpus", *_FLOATS):
            if not math.isfinite(getattr(config, name)):
                raise BadRequest(f"config_params.{name} must be a finite number")
        config.num_cpus, config.num_gpus = max(0.0, config.num_cpus), max(0.0, config.num_gpus)
        for name in _FRACTIONS:
            if not 0 <= getattr(config, name) <= 1:
                raise BadRequest(f"config_params.{name} must be between 0 and 1")
        if config.split_method not in ("graph", "mixture"):
            raise BadRequest("config_params.split_method must be one of graph, mixture")
        if config.features not in ("auto", "pixels", "imagenet"):
            raise BadRequest("config_params.features must be one of auto, pixels, imagenet")
        return config


# The job's float settings (finite), and those of them that are fractions (0 to 1).
_FLOATS = ("split_max_cross", "split_ratio", "split_min_gain", "split_min_fraction", "blur_threshold",
           "blur_hopeless_sigma", "lighting_threshold", "relabel_confidence", "knn_weight", "mislabel_margin")
_FRACTIONS = ("split_max_cross", "split_min_fraction", "relabel_confidence", "knn_weight")


@dataclass
class ImageItem:
    path: str
    uuid: str
    cls: str
    meta: dict[str, Any]


@dataclass
class ParsedRequest:
    dataset: dict[str, Any]
    classes: list[str]
    items: list[ImageItem]
    tasks: list[dict[str, Any]]
    config: JobConfig
    warnings: list[str] = field(default_factory=list)


def parse_request(request: dict[str, Any]) -> ParsedRequest:
    """Validate the request's shape (400 on a malformed one); per-file faults come later."""
    if not isinstance(request, dict):
        raise BadRequest("the request must be a JSON object")
    dataset = request.get("dataset")
    if not isinstance(dataset, dict):
        raise BadRequest("dataset: required object")
    class_files = dataset.get("class_files")
    if not isinstance(class_files, dict) or not class_files:
        raise BadRequest("dataset.class_files: required non-empty object")
    classes = dataset.get("classes") or []
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise BadRequest("dataset.classes: must be a list of class names")
    tasks = request.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise BadRequest("tasks: required non-empty list of {\"name\": ...}")
    clean_tasks = []
    for task in tasks:
        name = task.get("name") if isinstance(task, dict) else task
        if not isinstance(name, str):
            raise BadRequest("tasks: every task needs a string name")
        clean_tasks.append({"name": name})
    warnings: list[str] = []
    classes = list(dict.fromkeys(classes))
    for cls in class_files:
        if cls not in classes:
            warnings.append(f"class {cls!r} has files but is not in dataset.classes: added")
            classes.append(cls)
    items: list[ImageItem] = []
    seen: set[str] = set()
    for cls, files in class_files.items():
        if not isinstance(files, dict):
            raise BadRequest(f"dataset.class_files.{cls}: must map file paths to metadata")
        for path, meta in files.items():
            meta = meta if isinstance(meta, dict) else {}
            uid = str(meta.get("uuid") or Path(path).stem)
            if uid in seen:
                warnings.append(f"duplicate uuid {uid!r} ({path}): suffixed")
                uid = f"{uid}#{len(items)}"
            seen.add(uid)
            items.append(ImageItem(path=os.fspath(path), uuid=uid, cls=cls, meta=meta))
    config = JobConfig.from_params(request.get("config_params"))
    return ParsedRequest(dataset=dataset, classes=classes, items=items, tasks=clean_tasks,
                         config=config, warnings=warnings)
