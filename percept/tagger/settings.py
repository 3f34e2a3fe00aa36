"""The tagger's configuration: ``service_config.tagger`` in ``serve_config.yaml``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from percept.settings import ServiceSettings


class TaggerSettings(ServiceSettings):
    """Knobs of the tagger service; every field has a default so the section may be absent."""

    classifier: str = Field(
        "efficientnet-lite0",
        description="efficientnet-lite0 (offline default) or a transformers image classifier: "
        "a save_pretrained folder name under models_path",
    )
    classifier_repo: str = Field("microsoft/resnet-50", description="hub cache repo id of `classifier`")
    classifier_graph: Literal["frozen", "eager"] = Field(
        "frozen",
        description="efficientnet-lite0 on the CPU: frozen (a TorchScript graph, batch norms folded, "
        "the GIL released during the pass) or eager (plain PyTorch)",
    )
    detector: str = Field("tagger-detector", description="save_pretrained folder under models_path")
    detector_repo: str = Field("facebook/detr-resnet-50", description="hub cache repo id of the detector")
    detection_threshold: float = Field(0.5, ge=0.0, le=1.0)
    video_frames: int = Field(8, ge=1, le=256, description="frames tagged per video")
    video_probe_fps: float = Field(4.0, gt=0, description="frames per second examined for scene changes")
    video_max_probe_frames: int = Field(600, ge=1)
    video_keyframes_after_s: float = Field(120.0, ge=0, description="longer videos are probed on key frames only")
    scene_threshold: float = Field(0.25, gt=0, le=1, description="mean abs difference that counts as a cut")
    label_min_probability: float = Field(0.05, ge=0, le=1, description="a label 'appears' in a frame above this")
    max_document_mb: float = Field(50.0, gt=0, description="decoded size limit of one document")
    max_documents: int = Field(64, ge=1, description="documents per request")
    max_num_labels: int = Field(100, ge=1)
    max_jobs: int = Field(200, ge=1, description="jobs kept for /work/status (oldest evicted)")
    job_ttl_s: float = Field(3600.0, gt=0, description="jobs older than this are evicted")

