"""Typed groups of deployment handles, one dataclass per service.

A field's name is the deployment's key everywhere: ``args.deployments.<key>`` in
``serve_config.yaml``, the key in ``/platform/health``, and the attribute the routers and
workflows call (``services.tagger.handles.tagger_classifier.classify.remote(...)``), so a
typo is a type error, not a ``KeyError`` at run time. ``deployments/<service>.py`` fills a
group with bound deployments (Serve swaps each for a ``DeploymentHandle`` on the ingress);
tests fill it with :class:`LocalHandle` over real cores or fakes.

A deployment this application does not run is :data:`ABSENT`: any call on it answers 503
("unavailable: deployment ... is not running in this application").
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from percept.errors import ServiceUnavailable


class RemoteMethod(Protocol):
    """``handle.method``: ``.remote(...)`` returns an awaitable of the method's result."""

    def remote(self, *args: Any, **kwargs: Any) -> Any: ...


class Handle(Protocol):
    """What the ingress needs of a Serve ``DeploymentHandle`` (or a local stand-in)."""

    def options(self, **kwargs: Any) -> Handle: ...

    def __getattr__(self, name: str) -> RemoteMethod: ...


class Absent:
    """The handle of a deployment that is not part of this application."""

    def __init__(self, name: str = "") -> None:
        self.name = name

    def options(self, **_: Any) -> Absent:
        return self

    def __getattr__(self, method: str) -> RemoteMethod:
        if method.startswith("_"):
            raise AttributeError(method)
        raise self.error()

    def error(self) -> ServiceUnavailable:
        return ServiceUnavailable(f"unavailable: deployment {self.name!r} is not running in this application")

    def __repr__(self) -> str:
        return f"Absent({self.name!r})"


def absent(idempotent: tuple[str, ...] = ()) -> Any:
    """Default of a handle field; :class:`HandleGroup` names it after the field.

    ``idempotent`` lists the deployment's methods that are pure functions of their
    arguments: the ingress sends them once more when the replica serving them dies
    (``percept.retry``).
    """
    return field(default_factory=Absent, metadata={"idempotent": frozenset(idempotent)})


class _Call:
    def __init__(self, target: Any, name: str) -> None:
        self._target = target
        self._name = name

    def remote(self, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        method = getattr(self._target, self._name)

        async def run() -> Any:
            if inspect.iscoroutinefunction(method):
                return await method(*args, **kwargs)
            result = await asyncio.to_thread(method, *args, **kwargs)
            if inspect.isawaitable(result):
                return await result
            return result

        return asyncio.ensure_future(run())


class LocalHandle:
    """A DeploymentHandle look-alike over an object in this process: ``handle.method.remote()``
    runs a coroutine method on the caller's loop and a plain one in a thread (it may block).
    Tests put real cores or fakes behind it; the ingress hosts a model with it
    (``deployments.base.InProcessHandle``)."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def options(self, **_: Any) -> LocalHandle:
        return self

    def __getattr__(self, name: str) -> _Call:
        if name.startswith("_"):
            raise AttributeError(name)
        return _Call(self._target, name)


def is_running(handle: Handle) -> bool:
    """False for :class:`Absent` (not deployed here), True for a real or local handle."""
    return not isinstance(handle, Absent)


def require(handle: Handle) -> Handle:
    """The handle, or 503 before any work starts when it is not deployed here."""
    if isinstance(handle, Absent):
        raise handle.error()
    return handle


@dataclass
class HandleGroup:
    """Base of the per-service groups: every field is a :class:`Handle`, absent by default."""

    def __setattr__(self, key: str, value: Handle) -> None:
        if isinstance(value, Absent) and not value.name:
            value.name = key  # its 503 names the deployment
        super().__setattr__(key, value)

    def items(self) -> Iterator[tuple[str, Handle]]:
        """``(key, handle)`` of every deployment of the group that runs here."""
        for f in fields(self):
            handle: Handle = getattr(self, f.name)
            if is_running(handle):
                yield f.name, handle


@dataclass
class ReadingHandles(HandleGroup):
    """Reading assessment; speech and OCR run on the plugin deployments (``services.plugins``)."""

    reading: Handle = absent()  # ReadingTools: conversion, cutting, alignment, page view
    reading_aligner: Handle = absent(idempotent=("assess",))  # ReadingAligner: forced scoring with Whisper


@dataclass
class InspectionHandles(HandleGroup):
    inspection_trainer: Handle = absent()
    inspection_predictor: Handle = absent(idempotent=("predict",))  # multiplexed by model key
    inspection_backbone: Handle = absent()  # PatchCore's feature maps, batched (trainer and predictor call it)


@dataclass
class TaggerHandles(HandleGroup):
    tagger_classifier: Handle = absent(idempotent=("tag", "classify", "usage"))
    tagger_detector: Handle = absent(idempotent=("detect", "usage"))


@dataclass
class SearchHandles(HandleGroup):
    search: Handle = absent()  # SearchIndex: catalog, vector indexes, colour search, crawler
    search_resnet: Handle = absent(idempotent=("embed_single", "embed_images"))
    search_clip: Handle = absent(idempotent=("embed_single", "embed_images", "embed_text"))
    search_background: Handle = absent()


@dataclass
class CorrectionHandles(HandleGroup):
    correction: Handle = absent()  # runs jobs (Ray Data inside) and metadata look-ups


@dataclass
class DebugHandles(HandleGroup):
    """Bound only with ``debug_routes: true``."""

    echo: Handle = absent()
