"""Typed application arguments: what ``serve_config.yaml`` passes to ``build_app``.

Configuration flows one way: the YAML ``args`` are validated into :class:`AppArgs` by
``deployments.app.build_app``; each deployment receives the parts it needs. Paths are made
absolute once, here, so every replica (whatever its working directory) sees the same files.

Every per-deployment figure (resources, scaling, batch knobs in ``user_config``) lives in
``serve_config.yaml`` only; a deployment missing there gets the generic
:class:`DeploymentOptions` defaults. Each service's own settings are a
:class:`percept.settings.ServiceSettings` model (``service_config.<service>``), named in the
service registry (:mod:`percept.registry`), which also gives the service and deployment names
``AppArgs`` accepts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from percept.registry import DEPLOYMENT_KEYS, SERVICE_NAMES
from percept.settings import get_settings
from percept.tasks import TaskQuotas


class AutoscalingOptions(BaseModel):
    """A subset of Serve's ``autoscaling_config`` that we set for every model."""

    model_config = ConfigDict(extra="allow")

    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(2, ge=1)
    target_ongoing_requests: float = Field(4, gt=0)
    upscale_delay_s: float = 10.0
    downscale_delay_s: float = 120.0


class DeploymentOptions(BaseModel):
    """Resources and scaling of one deployment (model or ingress)."""

    model_config = ConfigDict(extra="forbid")

    num_cpus: float = Field(0.1, ge=0)
    num_gpus: float = Field(0.0, ge=0)
    memory: int | None = Field(None, ge=0, description="bytes reserved for each replica")
    max_ongoing_requests: int = Field(8, ge=1)
    num_replicas: int | None = Field(None, ge=1, description="fixed count; disables autoscaling")
    autoscaling_config: AutoscalingOptions | None = Field(default_factory=AutoscalingOptions)
    health_check_period_s: float = Field(10.0, gt=0)
    health_check_timeout_s: float = Field(30.0, gt=0)
    graceful_shutdown_timeout_s: float = Field(20.0, ge=0)
    user_config: dict[str, Any] = Field(default_factory=dict)
    resources: dict[str, float] = Field(
        default_factory=dict, description="custom Ray resources per replica: places replicas on the nodes offering them"
    )

    def serve_options(self, *, use_gpu: bool) -> dict[str, Any]:
        """The keyword arguments for ``Deployment.options``."""
        actor: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus if use_gpu else 0}
        if self.memory:
            actor["memory"] = self.memory
        if self.resources:
            actor["resources"] = dict(self.resources)
        opts: dict[str, Any] = {
            "ray_actor_options": actor,
            "max_ongoing_requests": self.max_ongoing_requests,
            "health_check_period_s": self.health_check_period_s,
            "health_check_timeout_s": self.health_check_timeout_s,
            "graceful_shutdown_timeout_s": self.graceful_shutdown_timeout_s,
        }
        if self.num_replicas is not None or self.autoscaling_config is None:
            opts["num_replicas"] = self.num_replicas or 1
        else:
            opts["autoscaling_config"] = self.autoscaling_config.model_dump()
        if self.user_config:
            opts["user_config"] = self.user_config
        return opts


class BodyLimits(BaseModel):
    """``request_limits`` in the application args (applied by ``percept.api.limits``)."""

    default_mb: float = Field(1.0, gt=0, description="routes without a cap of their own (JSON, small forms)")
    routes: dict[str, float] = Field(
        default_factory=dict, description="path (exact, or a prefix ending in /) -> MB; overrides the derived caps"
    )


class AppArgs(BaseModel):
    """Everything the application needs to start, validated once by ``build_app``."""

    model_config = ConfigDict(extra="forbid")

    data_dir: Path = Field(default_factory=lambda: get_settings().data_dir)
    models_path: Path = Field(default_factory=lambda: get_settings().models_path)
    plugins_dir: Path = Field(default_factory=lambda: get_settings().plugins_dir)
    state_url: str | None = Field(
        default_factory=lambda: get_settings().state_url,
        description="sqlite:///path/state.db (default, under data_dir) or redis://host:port/db",
    )
    blob_url: str | None = Field(
        default_factory=lambda: get_settings().blob_url,
        description="a local directory (default data_dir/blobs) or any fsspec URI such as s3://bucket/percept",
    )
    accelerator: Literal["auto", "cpu", "gpu"] = Field(
        "auto",
        description="auto: keep num_gpus where the cluster has GPUs, drop them where it has none",
    )
    services: list[str] = Field(default_factory=lambda: list(SERVICE_NAMES))
    classifier_in_ingress: Literal["auto", "always", "never"] = Field(
        "auto",
        description="run the tagger's classifier inside the ingress replica (one hop and one replica less; "
        "its user_config still applies): auto = when the models run without GPUs",
    )
    ingress: DeploymentOptions = Field(default_factory=DeploymentOptions)
    deployments: dict[str, DeploymentOptions] = Field(
        default_factory=dict, description="per deployment key (a handle field of percept.handles)"
    )
    plugin_defaults: DeploymentOptions = Field(default_factory=DeploymentOptions)
    plugins: dict[str, DeploymentOptions] = Field(default_factory=dict)
    rate_limit_per_minute: int = Field(600, ge=1, description="default per principal and path")
    request_limits: BodyLimits = Field(
        default_factory=BodyLimits, description="request body caps: default_mb, routes {path: MB} (413 past them)"
    )
    task_quotas: TaskQuotas = Field(
        default_factory=TaskQuotas,
        description="per principal and task kind: max_running, max_queued (429 with Retry-After past both)",
    )
    service_config: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="one section per service, validated by its settings model"
    )
    debug_routes: bool = Field(
        False, description="bind the echo deployment and serve /platform/echo, /platform/echo/hop and "
        "/platform/tasks/selftest (to the principals in admins only)",
    )
    admins: list[str] = Field(
        default_factory=list, description="principal ids (user:ann, client:ci_...) allowed to the debug routes"
    )

    @field_validator("services")
    @classmethod
    def _known_services(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(SERVICE_NAMES))
        if unknown:
            raise ValueError(f"unknown services {unknown}; known: {list(SERVICE_NAMES)}")
        return value

    @field_validator("deployments")
    @classmethod
    def _known_deployments(cls, value: dict[str, DeploymentOptions]) -> dict[str, DeploymentOptions]:
        unknown = sorted(set(value) - set(DEPLOYMENT_KEYS))
        if unknown:  # a misspelt key would silently leave its deployment on the generic defaults
            raise ValueError(f"unknown deployments {unknown}; known: {sorted(DEPLOYMENT_KEYS)}")
        return value

    def resolved(self, root: Path | None = None) -> AppArgs:
        """A copy with absolute paths and the store URLs filled in."""
        base = (root or Path.cwd()).resolve()

        def absolute(path: Path) -> Path:
            return path if path.is_absolute() else (base / path).resolve()

        data_dir = absolute(self.data_dir)
        state_url = self.state_url or f"sqlite:///{data_dir / 'state.db'}"
        blob_url = self.blob_url or str(data_dir / "blobs")
        if "://" not in blob_url:
            blob_url = str(absolute(Path(blob_url)))
        return self.model_copy(
            update={
                "data_dir": data_dir,
                "models_path": absolute(self.models_path),
                "plugins_dir": absolute(self.plugins_dir),
                "state_url": state_url,
                "blob_url": blob_url,
            }
        )

    def options_for_deployment(self, key: str) -> DeploymentOptions:
        """Resources of a model deployment by its key (generic defaults if the YAML has none)."""
        return self.deployments.get(key) or DeploymentOptions()

    def options_for_plugin(self, name: str) -> DeploymentOptions:
        return self.plugins.get(name) or self.plugin_defaults

    def service_section(self, service: str) -> dict[str, Any]:
        return dict(self.service_config.get(service, {}))
