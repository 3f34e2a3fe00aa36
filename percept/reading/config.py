"""``service_config.reading``: the reading service's settings, validated once."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from percept.config import AppArgs


class ReadingConfig(BaseModel):
    """Limits and knobs of the reading service (all optional in serve_config.yaml)."""

    model_config = ConfigDict(extra="forbid")

    rate_limit_per_minute: int = Field(120, ge=1, description="per user and path (429 + Retry-After past it)")
    max_audio_mb: float = Field(50, gt=0, description="upload size limit of a recording (413 past it)")
    max_audio_duration_s: float = Field(1800, gt=0, description="longest recording accepted (422 past it)")
    max_image_mb: float = Field(20, gt=0, description="upload size limit of a photo (413 past it)")
    max_image_pixels: int = Field(50_000_000, gt=0, description="largest photo accepted (422 past it)")
    segment_max_s: float = Field(30.0, gt=1, description="longest audio segment cut on silence")
    silence_percent: float = Field(5.0, gt=0, lt=100, description="silence: below this % of the loudest sample")
    long_pause_s: float = Field(1.0, gt=0, description="a gap between words at least this long is a long pause")
    forced_scoring: bool = Field(True, description="re-score transcript verdicts against the reference")
    accept_substitution: float = Field(0.2, ge=0, le=1, description="forced probability that clears a substitution")
    accept_omission: float = Field(0.5, ge=0, le=1, description="forced probability that clears an omission")
    max_phrases: int = Field(200, ge=1, description="phrases per extraction request")
    max_text_chars: int = Field(100_000, ge=1, description="reference text per comparison request")

    @classmethod
    def from_args(cls, args: AppArgs) -> ReadingConfig:
        return cls.model_validate(args.service_section("reading"))

    @classmethod
    def of(cls, extras: dict[str, Any], args: AppArgs) -> ReadingConfig:
        """The config cached in a services container's ``extras`` (validated once)."""
        config = extras.get("reading_config")
        if not isinstance(config, cls):
            config = extras["reading_config"] = cls.from_args(args)
        return config
