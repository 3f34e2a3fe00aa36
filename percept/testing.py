"""Test seams: stand-ins for Serve deployment handles, and an app on a temp directory.

``LocalHandle(obj)`` answers ``handle.method.remote(*args)`` like a DeploymentHandle, by
calling ``obj.method`` (sync methods in a thread), so routers can be tested through
``TestClient`` with real cores or fakes and no Ray.
"""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from typing import Any

from percept.config import AppArgs
from percept.services import Services, build_services


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
    """A DeploymentHandle look-alike over a local object."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def options(self, **_: Any) -> LocalHandle:
        return self

    def __getattr__(self, name: str) -> _Call:
        if name.startswith("_"):
            raise AttributeError(name)
        return _Call(self._target, name)


def make_services(tmp_path: Path, handles: dict[str, Any] | None = None, **overrides: Any) -> Services:
    """Services on a temporary data directory (SQLite + local blobs) with the given handles."""
    args = AppArgs(
        data_dir=tmp_path / "data",
        models_path=overrides.pop("models_path", tmp_path / "models"),
        plugins_dir=overrides.pop("plugins_dir", tmp_path / "plugins"),
        **overrides,
    ).resolved(tmp_path)
    return build_services(args, {k: LocalHandle(v) if not isinstance(v, LocalHandle) else v
                                 for k, v in (handles or {}).items()})
