"""What every model deployment shares: loading a core, availability, health, status,
batch knobs from ``user_config``, and binding a service's group of deployments."""

from __future__ import annotations

import copy
import logging
import os
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.serve import Application

from percept.config import AppArgs
from percept.errors import ServiceUnavailable, WeightsMissing
from percept.handles import HandleGroup, LocalHandle
from percept.logs import configure_logging
from percept.models.weights import use_models_dir

logger = logging.getLogger(__name__)
CoreT = TypeVar("CoreT")
G = TypeVar("G", bound=HandleGroup)


class ModelDeployment(Generic[CoreT]):
    """Base of the model deployments.

    A subclass calls :meth:`load` with a factory of its Ray-free core. Missing weights do
    not crash the replica: it stays healthy, reports ``available: false`` with the message
    naming the weights and the directory, and its routes answer 503 with that message.
    """

    model_label = "model"
    hosted = "replica"  # "ingress" when the ingress replica runs it in its own process (InIngress)

    def __init__(self, args: AppArgs) -> None:
        configure_logging()
        self.args = args
        self.models_path = use_models_dir(args.models_path)
        self.core: CoreT | None = None
        self.unavailable: str | None = "loading"
        self.startup_s: float | None = None

    def load(self, factory: Callable[[], CoreT]) -> None:
        try:
            self.core = factory()
            self.unavailable = None
        except WeightsMissing as exc:
            self.core = None
            self.unavailable = str(exc.detail)
            logger.warning("%s: %s", self.model_label, self.unavailable)
        if self.startup_s is None:
            self.startup_s = process_age_s()
            logger.info("%s ready %.1f s after its process started", self.model_label, self.startup_s)

    def require(self) -> CoreT:
        """The core, or 503 with the reason it is missing."""
        if self.core is None:
            raise ServiceUnavailable(self.unavailable or f"unavailable: {self.model_label}")
        return self.core

    def status(self) -> dict[str, Any]:
        return {
            "name": self.model_label,
            "available": self.core is not None,
            "message": self.unavailable or "ready",
            "device": str(getattr(self.core, "device", "cpu")),
            "pid": os.getpid(),
            "hosted": self.hosted,
            "startup_s": None if self.startup_s is None else round(self.startup_s, 2),
        }

    def check_health(self) -> None:
        """Serve's health check: a replica without weights is healthy but unavailable."""
        return None


_LOADED_AT = time.time()  # when this process loaded the deployments' code
POOLED_WORKER_S = 20.0


def process_age_s() -> float:
    """Seconds since this replica's process started: its cold start (worker process, imports,
    weights) when read at the end of its constructor. A worker Ray started ahead of need (its
    pool of idle workers) waited before it became this replica: for one that loaded the
    deployments' code more than ``POOLED_WORKER_S`` after it started, count from then."""
    import psutil

    created = psutil.Process().create_time()
    start = created if _LOADED_AT - created < POOLED_WORKER_S else _LOADED_AT
    return max(0.0, time.time() - start)


class DeviceBatchKnobs(BaseModel):
    """Batch knobs of one kind of device (``devices.cuda`` …), over the deployment's own."""

    model_config = ConfigDict(extra="forbid")

    max_batch_size: int | None = Field(None, ge=1)
    batch_wait_timeout_s: float | None = Field(None, ge=0)
    concurrent_batches: int | None = Field(None, ge=1)
    batching: bool | None = None  # e.g. off on the CPU, on for a GPU (serve_config.yaml's classifier)


class BatchKnobs(DeviceBatchKnobs):
    """A deployment's ``user_config`` batch knobs; a knob left out keeps its current value.

    ``devices`` overrides them per kind of device the replica's model runs on (``cpu``,
    ``cuda``, ``mps``): one config fits a laptop and a GPU node. ``concurrent_batches``:
    batches run at once (each forward pass then gets ``int(num_cpus) // concurrent_batches``
    threads, at least one; see :mod:`percept.tagger.threads`).
    """

    batching: bool = Field(True, description="false: one forward pass per call (no @serve.batch)")
    devices: dict[str, DeviceBatchKnobs] = Field(default_factory=dict)

    def for_device(self, device: str) -> BatchKnobs:
        """These knobs with the override of ``device`` (``cuda:0`` counts as ``cuda``) applied."""
        override = self.devices.get(str(device).split(":")[0])
        if override is None:
            return self
        return self.model_copy(update=override.model_dump(exclude_none=True))


class Batching:
    """Mixin: ``reconfigure(user_config)`` applies :class:`BatchKnobs` to every ``@serve.batch``
    method named in ``batched_methods``, without restarting the replica.

    The decorators carry no figures of their own: ``serve_config.yaml`` gives them (Serve's
    defaults apply to a deployment whose YAML entry has no ``user_config``). Only Serve's
    public API is used: ``set_max_batch_size`` / ``set_batch_wait_timeout_s`` on the method,
    and ``@serve.batch(max_concurrent_batches=...)``, which Serve fixes when it decorates, so
    a new value re-decorates the method for this replica (:meth:`_redecorate`).
    """

    batched_methods: ClassVar[tuple[str, ...]] = ()
    batching: bool = True
    concurrent_batches: int = 1  # Serve's defaults until user_config says otherwise
    batch_size: int = 10
    batch_wait_s: float = 0.0

    def batch_device(self) -> str:
        """The device the batches run on (the core's ``device``; cpu without a core)."""
        return str(getattr(getattr(self, "core", None), "device", "cpu"))

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        knobs = BatchKnobs.model_validate(user_config or {}).for_device(self.batch_device())
        self.batching = knobs.batching
        wanted = knobs.concurrent_batches
        cap = self.concurrent_cap()
        if wanted is not None and cap is not None and wanted > cap:
            logger.info("%s: %d batches at once capped at %d", type(self).__name__, wanted, cap)
            wanted = cap
        redecorate = wanted is not None and wanted != self.concurrent_batches
        if wanted is not None:
            self.concurrent_batches = wanted
        if knobs.max_batch_size is not None:
            self.batch_size = knobs.max_batch_size
        if knobs.batch_wait_timeout_s is not None:
            self.batch_wait_s = knobs.batch_wait_timeout_s
        for name in self.batched_methods:
            if redecorate:
                self._redecorate(name)
            method = getattr(self, name)
            if knobs.max_batch_size is not None:
                method.set_max_batch_size(knobs.max_batch_size)
            if knobs.batch_wait_timeout_s is not None:
                method.set_batch_wait_timeout_s(knobs.batch_wait_timeout_s)
        self.batches_configured(knobs)
        logger.info("%s batch knobs %s", type(self).__name__, knobs.model_dump(exclude_none=True))

    def _redecorate(self, name: str) -> None:
        """This replica's ``name`` decorated anew with ``max_concurrent_batches`` (the class's
        ``@serve.batch`` function unwrapped; requests already queued finish on the old queue)."""
        raw = getattr(type(self), name).__wrapped__
        batched = serve.batch(max_batch_size=self.batch_size, batch_wait_timeout_s=self.batch_wait_s,
                              max_concurrent_batches=self.concurrent_batches)(raw)
        setattr(self, name, types.MethodType(batched, self))

    def concurrent_cap(self) -> int | None:
        """Hook: the most batches this replica's model can usefully run at once (None: no cap)."""
        return None

    def batches_configured(self, knobs: BatchKnobs) -> None:
        """Hook: a subclass sizes its threads or parallel passes to the new knobs."""


@dataclass(frozen=True)
class InIngress:
    """A model the ingress replica runs in its own process instead of a deployment of its own.

    Bound in a handle group in place of the deployment (``bind_group``); the ingress replica
    builds ``cls(args)`` when it starts, applies the deployment's ``user_config`` as Serve
    would (``reconfigure``), and calls it through an :class:`InProcessHandle`: no proxy-to-
    replica hop, no serialisation, no replica of its own (see ``AppArgs.classifier_in_ingress``).
    """

    cls: type
    key: str


class InProcessHandle(LocalHandle):
    """The handle of a model living in this process (the ingress replica)."""

    retry_on_replica_loss = False  # no replica to lose: percept.retry leaves it unwrapped

    @property
    def target(self) -> Any:
        return self._target

    def __repr__(self) -> str:
        return f"InProcessHandle({type(self._target).__name__})"


def host_in_process(group: G, args: AppArgs) -> G:
    """A copy of ``group`` with every :class:`InIngress` model built in this process.

    A copy: Serve keeps the replica's constructor arguments (and pickles them to list the
    deployments it calls), which must not hold a live model."""
    group = copy.copy(group)
    for f in fields(group):
        part = getattr(group, f.name)
        if not isinstance(part, InIngress):
            continue
        started = time.monotonic()
        try:
            model = part.cls(args)
            model.hosted = "ingress"
            user_config = args.options_for_deployment(part.key).user_config
            if user_config and callable(getattr(model, "reconfigure", None)):
                model.reconfigure(user_config)
        except Exception as exc:  # noqa: BLE001 - one broken model must not take every route down
            # (missing weights are not an error here: the model loads as unavailable itself)
            logger.exception("%s failed to load in this ingress replica", part.key)
            model = FailedModel(part.key, f"{type(exc).__name__}: {exc}")
        setattr(group, f.name, InProcessHandle(model))
        logger.info("%s runs in this ingress replica (loaded in %.1f s)", part.key, time.monotonic() - started)
    return group


class FailedModel:
    """Stands in for an in-ingress model whose construction failed: its status says why and
    every other call answers 503, while the ingress's other routes keep working (as when a
    deployment of its own fails to start)."""

    hosted = "ingress"

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.message = f"unavailable: {key} failed to load: {reason}"

    def status(self) -> dict[str, Any]:
        return {"name": self.key, "available": False, "message": self.message, "hosted": self.hosted}

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_"):
            raise AttributeError(method)

        def unavailable(*_: Any, **__: Any) -> Any:
            raise ServiceUnavailable(self.message)

        return unavailable


def bind_group(group_type: type[G], args: AppArgs, gpu: bool, **parts: Any) -> G:
    """A service's handle group filled with its bound deployments.

    Each keyword is a field of ``group_type`` (the deployment's key) and its value a Serve
    ``Deployment`` or ``(Deployment, extra)``. The deployment's options come from
    ``args.deployments.<key>`` (``serve_config.yaml``), without GPUs when ``gpu`` is false,
    and it is bound with ``args`` first. ``(Deployment, extra)`` also passes
    ``extra(group)`` (the group bound so far), e.g. the embedders the search index calls.
    Serve swaps each bound deployment for a ``DeploymentHandle`` in the ingress. An
    :class:`InIngress` part is kept as it is: the ingress builds it (:func:`host_in_process`).
    """
    known = {f.name for f in fields(group_type)}
    unknown = sorted(set(parts) - known)
    if unknown:
        raise ValueError(f"{group_type.__name__} has no deployments {unknown}; it has {sorted(known)}")
    group = group_type()
    for key, part in parts.items():
        if isinstance(part, InIngress):
            setattr(group, key, part)
            continue
        deployment, extra = part if isinstance(part, tuple) else (part, _no_extra)
        options = args.options_for_deployment(key).serve_options(use_gpu=gpu)
        app: Application = deployment.options(**options).bind(args, *extra(group))
        setattr(group, key, app)
    return group


def _no_extra(_: Any) -> tuple[Any, ...]:
    return ()
