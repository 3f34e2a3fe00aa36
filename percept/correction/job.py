"""One image-correction job from request to the spec's output JSON (Ray-free).

The per-image work is done by an *executor* (Ray Data in production, in-process in unit
tests); the dataset-level analysis and the task handlers run here, in the caller.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from percept.correction import analysis
from percept.correction.features import Featurizer, batch_size_for, choose_kind, run_local
from percept.correction.handlers import HANDLERS
from percept.correction.images import pooled_stats
from percept.correction.job_state import Emit, ImageRecord, JobState
from percept.correction.report import build_report
from percept.correction.request import JobConfig, ParsedRequest, parse_request, parse_task_name
from percept.correction.sinks import OutputSink

logger = logging.getLogger(__name__)

# executor(items, feature_kind, config, allowed_roots, progress(done, total)) -> rows
Executor = Callable[[list[dict[str, Any]], str, JobConfig, "list[str] | None", Callable[[int, int], None]],
                    list[dict[str, Any]]]


def local_executor(items: list[dict[str, Any]], kind: str, config: JobConfig,
                   allowed_roots: list[str] | None, progress: Callable[[int, int], None]) -> list[dict[str, Any]]:
    """Featurize in this process (tests and tiny datasets)."""
    featurizer = Featurizer(kind, config.models_path, allowed_roots)
    return run_local(items, featurizer, batch_size_for(kind, config.batch_size), progress)


def _no_emit(percent: float, message: str) -> None:
    return None


def run_job(
    request: dict[str, Any],
    *,
    job_id: str,
    sink: OutputSink,
    executor: Executor = local_executor,
    emit: Emit = _no_emit,
    allowed_roots: list[str] | None = None,
) -> dict[str, Any]:
    """Run every task of ``request``; per-image and per-task faults land in the result."""
    started = time.monotonic()
    parsed = parse_request(request)
    config = parsed.config
    emit(1.0, f"{len(parsed.items)} images, {len(parsed.tasks)} tasks")
    items = [{"path": i.path, "uuid": i.uuid} for i in parsed.items]
    kind = choose_kind(config.features, [i.path for i in parsed.items])

    def progress(done: int, total: int) -> None:
        emit(2.0 + 68.0 * done / max(total, 1), f"measured {done}/{total} images")

    stages: dict[str, float] = {"prepare": time.monotonic() - started}
    mark = time.monotonic()
    rows = executor(items, kind, config, allowed_roots, progress)
    stages["featurize"] = time.monotonic() - mark
    mark = time.monotonic()
    by_uuid = {str(r["uuid"]): r for r in rows}
    records: list[ImageRecord] = []
    for item in parsed.items:
        row = by_uuid.get(item.uuid, {"error": "not processed"})
        feats = row.get("features")
        records.append(ImageRecord(item=item, row=row, current_class=item.cls,
                                   features=np.asarray(feats if feats is not None else [], np.float32)))
    state = JobState(job_id=job_id, classes=list(parsed.classes), records=records, config=config,
                     sink=sink, warnings=list(parsed.warnings))
    stages["records"] = time.monotonic() - mark
    # BLAS thread pools oversubscribe a shared machine badly (14 s instead of 1 s here).
    # BLAS's thread count is process-wide: one_blas_thread keeps it at 1 while any job of the
    # process is inside (reference-counted, so overlapping jobs of one replica do not lift
    # each other's limit) and loads scipy's own OpenBLAS and scikit-learn's OpenMP first
    # (threadpoolctl reaches only the libraries already loaded). OpenMP's count is per
    # calling thread: limited here for this one.
    with analysis.one_blas_thread(), threadpool_limits(1, user_api="openmp"):
        return _analyse(parsed, state, kind, started, emit, stages)


def _analyse(parsed: ParsedRequest, state: JobState, kind: str, started: float, emit: Emit,
             stages: dict[str, float]) -> dict[str, Any]:
    """Probabilities, projections, the tasks, the report and the output; ``stages`` gets
    the seconds each took."""
    job_id, records = state.job_id, state.records
    emit(72.0, "out-of-sample probabilities")
    cache: dict[str, Any] = {}
    mark = time.monotonic()
    _probabilities(state, cache)
    stages["probabilities"] = time.monotonic() - mark
    emit(80.0, "running tasks")
    original_classes = list(state.classes)
    task_results: list[dict[str, Any]] = []
    for n, task in enumerate(parsed.tasks):
        name = task["name"]
        parsed_name = parse_task_name(name)
        if parsed_name is None:
            task_results.append({"name": name, "error": "unknown task name; expected diagnose_|correct_ + "
                                 "mislabeled_images|class_splitting|image_blur|lighting_conditions"})
            continue
        action, task_kind = parsed_name
        mark = time.monotonic()
        try:
            outcome = HANDLERS[task_kind](state, action, cache)
        except Exception as exc:  # one task's failure is reported, the others still run
            logger.exception("task %s failed", name)
            outcome = {"error": f"{type(exc).__name__}: {exc}"}
        stages[f"task {name}"] = stages.get(f"task {name}", 0.0) + time.monotonic() - mark
        task_results.append({"name": name, **outcome})
        emit(80.0 + 15.0 * (n + 1) / len(parsed.tasks), f"task {name} done")
    emit(96.0, "writing the report")
    report = None
    mark = time.monotonic()
    try:
        report = build_report(state, task_results, original_classes)
    except Exception:
        logger.exception("report of job %s failed", job_id)
        state.warnings.append("the report could not be drawn")
    stages["report"] = time.monotonic() - mark
    mark = time.monotonic()
    output = _output(parsed.dataset, state, task_results, kind)
    stages["output"] = time.monotonic() - mark
    output["job"] = {
        "id": job_id,
        "features": kind,
        "images": len(records),
        "failed_images": sum(1 for r in records if not r.ok),
        "errors": [{"uuid": r.item.uuid, "path": r.item.path, "error": r.row.get("error")}
                   for r in records if not r.ok],
        "warnings": state.warnings,
        "report": report,
        "seconds": round(time.monotonic() - started, 3),
        "stages": {k: round(v, 3) for k, v in stages.items()},
    }
    return output


def _probabilities(state: JobState, cache: dict[str, Any]) -> None:
    """Fill every good image's ``probs`` (cross-validated) and ``projection``."""
    good = state.good
    if not good:
        state.warnings.append("no image could be read: nothing to analyse")
        return
    labels = np.array([state.class_index(r.item.cls) for r in good])
    feats = np.stack([r.features for r in good])
    # One PCA for every later use (probabilities, neighbours, sub-classes, the scatter).
    reduced = analysis.reduce_features(feats, dims=50, seed=state.config.seed) if len(good) >= 3 else None
    cache["reduced"] = reduced
    if len(good) >= 2 and len(set(labels.tolist())) >= 2:
        parts: dict[str, np.ndarray] = {}
        probs, small = analysis.out_of_sample_probabilities(
            feats, labels, len(state.classes), folds=state.config.folds, seed=state.config.seed,
            knn_weight=min(max(state.config.knn_weight, 0.0), 1.0), reduced=reduced, parts=parts, cache=cache)
        if "without_lda" in parts:  # the reference classes of the blur and lighting checks
            cache["reference_probs"] = parts["without_lda"]
        if state.config.label_passes >= 2:
            probs = analysis.relabelled_probabilities(
                feats, labels, len(state.classes), probs, state.config.mislabel_margin, folds=state.config.folds,
                seed=state.config.seed, knn_weight=min(max(state.config.knn_weight, 0.0), 1.0), reduced=reduced,
                cache=cache)
    else:
        probs = np.zeros((len(good), len(state.classes)))
        probs[np.arange(len(good)), labels] = 1.0
        small = sorted(set(labels.tolist()))
        state.warnings.append("fewer than two classes with images: no label model was fitted")
    cache["untrainable"] = small
    for c in small:
        state.warnings.append(f"class {state.classes[c]!r} has fewer than two readable images: "
                              "its images are not checked for label errors")
    coords = analysis.project_2d(feats, seed=state.config.seed, reduced=reduced)
    for r, p, xy in zip(good, np.round(probs, 5).tolist(), np.round(coords, 5).tolist(), strict=True):
        r.probs = p
        r.projection = xy[:2]


def _output(dataset: dict[str, Any], state: JobState, tasks: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The spec's output: the dataset annotated per image, then the task results."""
    good = state.good
    mean, std = pooled_stats([_StatsView(r.row) for r in good])
    class_files: dict[str, dict[str, Any]] = {}
    stats = state.parsed_stats()
    for r in state.records:
        class_files.setdefault(r.item.cls, {})[r.item.path] = state.entry(r, stats.get(id(r)))
    out_dataset = {k: v for k, v in dataset.items() if k != "class_files"}
    out_dataset.update(classes=state.classes, mean=mean, std_dev=std, class_files=class_files)
    return {"dataset": out_dataset, "tasks": tasks}


class _StatsView:
    """Adapts a featurizer row to what :func:`pooled_stats` reads."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.rgb_sum = np.asarray(row["rgb_sum"], np.float64)
        self.rgb_sq_sum = np.asarray(row["rgb_sq_sum"], np.float64)
        self.pixels = int(row["pixels"])
