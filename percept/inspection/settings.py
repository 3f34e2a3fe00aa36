"""``service_config.inspection``: the inspection service's settings, validated once."""

from __future__ import annotations

from pydantic import Field

from percept.config import ServiceSettings


class InspectionSettings(ServiceSettings):
    """Limits and knobs of the inspection service (all optional in serve_config.yaml)."""

    work_size: int = Field(256, ge=16, description="images are resized to this square before training/scoring")
    max_files_per_upload: int = Field(100, ge=1, description="files[i] parts per upload request")
    max_upload_mb: float = Field(20, gt=0, description="size limit of one uploaded image (413 past it)")
