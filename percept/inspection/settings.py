"""``service_config.inspection``: the inspection service's settings, validated once."""

from __future__ import annotations

from pydantic import Field

from percept.settings import ServiceSettings


class InspectionSettings(ServiceSettings):
    """Limits and knobs of the inspection service (all optional in serve_config.yaml)."""

    work_size: int = Field(256, ge=16, description="images are resized to this square before training/scoring")
    max_files_per_upload: int = Field(100, ge=1, description="files[i] parts per upload request")
    max_upload_mb: float = Field(20, gt=0, description="size limit of one uploaded image (413 past it)")
    backbone: str = Field(
        "efficientnet-lite0",
        description="PatchCore's feature backbone: efficientnet-lite0 (offline ImageNet weights) or the stem "
        "of a TorchScript file <models_path>/<name>.pt returning a list of feature maps",
    )
    predict_batch: int = Field(8, ge=1, le=64, description="images scored per backbone call by the predictor")
