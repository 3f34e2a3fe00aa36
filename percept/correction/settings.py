"""``service_config.correction``: the correction service's settings, validated once."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from percept.settings import ServiceSettings


class JobDefaults(BaseModel):
    """``config_params`` a job gets unless its request says otherwise."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(0, ge=0, description="images per Ray Data batch; 0: by feature kind "
                            "(512 for pixel features, 32 for EfficientNet)")
    concurrency: int = Field(0, ge=0, description="parallel Ray Data workers of the per-image step; "
                             "0: as many as the cluster's CPUs (GPUs for EfficientNet on GPUs) allow")
    num_cpus: float = Field(1.0, gt=0, description="CPUs each of those workers reserves")


class CorrectionSettings(ServiceSettings):
    """Where jobs may read images from, how many, and the job defaults."""

    allowed_roots: list[str] = Field(
        default_factory=list, description="server-side folders jobs may read (default: the data_dir)"
    )
    max_images: int = Field(200_000, ge=1, description="images per job (413 past it)")
    max_upload_mb: float = Field(
        512.0, gt=0, description="one dataset folder uploaded from the console (413 past it; written to disk, "
        "not held in memory)"
    )
    defaults: JobDefaults = Field(default_factory=JobDefaults)

    def roots(self, data_dir: Path) -> list[str]:
        """The allowed roots, or the data directory when none are configured."""
        return [str(r) for r in self.allowed_roots] or [str(data_dir)]
