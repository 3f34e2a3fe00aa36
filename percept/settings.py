"""Process-level settings (environment variables with the ``PERCEPT_`` prefix), and the base
of every service's settings model.

Read through :func:`get_settings`, never at import time. Application-level configuration
(what ``serve_config.yaml`` says) lives in :mod:`percept.config`; these settings only supply
defaults that an operator may want to change without editing the config file.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseModel):
    """Base of every service's settings model (``service_config.<service>``; all optional)."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def from_section(cls, section: dict[str, Any] | None) -> Self:
        """Validate the free-form YAML section (absent: every default)."""
        return cls.model_validate(section or {})


class Settings(BaseSettings):
    """Environment knobs. ``PERCEPT_DATA_DIR=/srv/percept`` and so on."""

    model_config = SettingsConfigDict(env_prefix="PERCEPT_", extra="ignore")

    data_dir: Path = Path("data")
    models_path: Path = Path("models")
    plugins_dir: Path = Path("plugins")
    state_url: str | None = None
    blob_url: str | None = None
    log_level: str = "INFO"
    log_json: bool = True
    # PERCEPT_SEARCH_ALLOW_PRIVATE_NETWORKS=1: the crawler may reach loopback/private hosts (labs, tests)
    search_allow_private_networks: bool = False


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()
