"""Wire models of the correction service (the spec's request; job status and listings)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class CorrectionTask(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(..., description="diagnose_|correct_ + mislabeled_images|class_splitting|image_blur|"
                                       "lighting_conditions (or ic::diagnose::…)")


class CorrectionJobRequest(BaseModel):
    """The spec's ``start_ic_processing_job`` request (image paths are server-side paths)."""

    model_config = ConfigDict(extra="allow")

    config_params: dict[str, Any] | None = Field(
        None, description="models_path, features (auto|pixels|imagenet), batch_size, concurrency, num_cpus, "
                          "num_gpus, folds, seed, split_ratio, blur_threshold, lighting_threshold, mislabel_margin, "
                          "relabel_confidence, label_passes (see docs/correction.md)")
    dataset: dict[str, Any] = Field(..., description="uuid, classes, class_files {class: {path: {uuid, …}}}")
    tasks: list[CorrectionTask] = Field(..., min_length=1)


JobStatus = Literal["pending", "running", "completed", "failed"]


class TaskSummary(BaseModel):
    """One task of a finished job: how many images it flagged, removed and corrected."""

    name: str
    outliers: int | None = None
    removed: int | None = None
    corrected: int | None = None
    error: str | None = None


class CorrectionJobSummary(BaseModel):
    """What the correction deployment answers for a finished job (kept in the task record)."""

    result_key: str = Field(description="blob key of the spec's output JSON")
    report_key: str | None = Field(None, description="blob key of the HTML report")
    images: int
    failed_images: int
    tasks: list[TaskSummary]


class CorrectionJobResponse(BaseModel):
    """A job's status (``completed`` is the spec's name for the platform's ``finished``)."""

    job_id: str
    status: JobStatus
    progress: float
    message: str = ""
    error: str | None = None
    created_at: float
    finished_at: float | None = None
    summary: dict[str, Any] | None = Field(None, description="a finished job's CorrectionJobSummary")


class ImageMetadataRequest(BaseModel):
    path: str = Field(..., min_length=1, description="server-side path inside the allowed roots")


class ImageMetadataResponse(BaseModel):
    channels: int
    height: int
    width: int
    mean: list[float]
    std_dev: list[float]
