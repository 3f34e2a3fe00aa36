"""Idempotent calls retried once when the replica serving them dies.

A model replica killed mid-request (OOM, node loss, ``kill -9``) fails its in-flight calls
with ``RayActorError``. For calls that are pure functions of their arguments (tag an image,
embed a text, recognise a page) the ingress sends the call once more: Serve routes it to a
live replica (or waits for the restarted one), and the caller sees an answer instead of an
error. Calls with effects (training, task work, uploads) are never retried here; a task
whose replica dies ends failed with its reason (``percept.tasks``).

Each handle field of a group names its idempotent methods (``absent(idempotent=...)`` in
``percept.handles``); :func:`retry_idempotent` wraps the handles of a group in place.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import fields
from typing import Any

logger = logging.getLogger(__name__)

def _dead_replica_errors() -> tuple[type[BaseException], ...]:
    from ray.exceptions import ActorUnavailableError, RayActorError

    return (RayActorError, ActorUnavailableError)


class _RetryingMethod:
    def __init__(self, handle: Any, name: str) -> None:
        self._handle = handle
        self._name = name

    def remote(self, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        first = getattr(self._handle, self._name).remote(*args, **kwargs)

        async def run() -> Any:
            try:
                return await first
            except _dead_replica_errors() as exc:
                logger.warning("%s: replica died during the call (%s); sending it once more",
                               self._name, type(exc).__name__)
                return await getattr(self._handle, self._name).remote(*args, **kwargs)

        return asyncio.ensure_future(run())


class RetryingHandle:
    """A DeploymentHandle whose idempotent methods are sent once more on a dead replica."""

    def __init__(self, handle: Any, methods: frozenset[str]) -> None:
        self._handle = handle
        self._methods = methods

    def options(self, **kwargs: Any) -> RetryingHandle:
        return RetryingHandle(self._handle.options(**kwargs), self._methods)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self._methods:
            return _RetryingMethod(self._handle, name)
        return getattr(self._handle, name)


def retry_idempotent(group: Any) -> Any:
    """Wrap the real handles of a handle group (dataclass) whose field lists idempotent methods."""
    from percept.handles import Absent

    for field in fields(group):
        methods = field.metadata.get("idempotent")
        handle = getattr(group, field.name)
        if methods and not isinstance(handle, (Absent, RetryingHandle)):
            setattr(group, field.name, RetryingHandle(handle, methods))
    return group
