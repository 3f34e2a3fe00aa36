"""The in-memory state of one job: its images, their measures and labels, and its output sink."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from percept.correction.images import decode, encode_png, native_array
from percept.correction.request import ImageItem, JobConfig
from percept.correction.sinks import OutputSink

logger = logging.getLogger(__name__)

Emit = Callable[[float, str], None]


@dataclass
class ImageRecord:
    """One image of the job, with what the featurizer measured (``error`` when it failed)."""

    item: ImageItem
    row: dict[str, Any]
    current_class: str
    features: np.ndarray
    probs: list[float] = field(default_factory=list)
    projection: list[float] | None = None
    removed_by: str | None = None
    corrected_path: str | None = None
    corrections: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.row.get("error")


@dataclass
class JobState:
    """Everything the task handlers read and change."""

    job_id: str
    classes: list[str]
    records: list[ImageRecord]
    config: JobConfig
    sink: OutputSink
    warnings: list[str] = field(default_factory=list)
    working: dict[str, np.ndarray] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def good(self) -> list[ImageRecord]:
        return [r for r in self.records if r.ok]

    def class_index(self, name: str) -> int:
        return self.classes.index(name)

    def pixels(self, record: ImageRecord) -> np.ndarray:
        """The image as corrected so far (float [0,1], native channels)."""
        if record.item.uuid not in self.working:
            self.working[record.item.uuid] = native_array(decode(record.item.path))
        return self.working[record.item.uuid]

    def save_corrected(self, record: ImageRecord, array: np.ndarray, what: str) -> None:
        """Write the corrected image as a new file; the original is never touched."""
        self.working[record.item.uuid] = array
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in record.item.uuid)
        record.corrected_path = self.sink.write(f"images/{safe}.png", encode_png(array))
        if what not in record.corrections:
            record.corrections.append(what)

    def entry(self, record: ImageRecord) -> dict[str, Any]:
        """The spec's per-image output object."""
        out: dict[str, Any] = dict(record.item.meta)
        out["uuid"] = record.item.uuid
        out["current_class"] = record.current_class
        out["original_class"] = record.item.cls
        if record.ok:
            row = record.row
            out.update(width=int(row["width"]), height=int(row["height"]), channels=int(row["channels"]),
                       mean=json.loads(row["mean"]), std_dev=json.loads(row["std_dev"]))
            out["projections"] = {"pca": record.projection} if record.projection is not None else {}
            out["confidence_vectors"] = [record.probs] if record.probs else []
            out["sharpness"] = round(float(row["sharpness"]), 4)
            out["brightness"] = round(float(row["brightness"]), 4)
        else:
            out["projections"] = {}
            out["confidence_vectors"] = []
            out["error"] = record.row.get("error")
        if record.removed_by:
            out["removed"] = True
            out["removed_by"] = record.removed_by
        if record.corrected_path:
            out["corrected_path"] = record.corrected_path
            out["corrections"] = list(record.corrections)
        return out
