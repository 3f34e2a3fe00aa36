"""The generic plugin deployment: one replica set per plugin found in ``plugins/``.

Receives blob keys (uploads stored by the ingress), hands the plugin a local filename, and
returns the plugin's result as a plain dict. A plugin's ``load()`` runs once per replica;
its batch hook, when present, serves concurrent requests in one call.
"""

from __future__ import annotations

import asyncio
import logging
import os
from contextlib import ExitStack
from typing import Any

from ray import serve

from deployments.base import Batching, ModelDeployment
from percept.config import AppArgs
from percept.plugins import (
    AudioProcessingResult,
    ImageProcessingResult,
    PluginInfo,
    load_plugin_class,
    plugin_kind,
)
from percept.storage import BlobStore

logger = logging.getLogger(__name__)


class PluginRunner:
    """Ray-free: runs one plugin class on files (tests use it directly)."""

    def __init__(self, plugin_cls: type) -> None:
        self.plugin = plugin_cls
        self.kind = plugin_kind(plugin_cls)
        self.device = getattr(plugin_cls, "device", "cpu")
        loader = getattr(plugin_cls, "load", None)
        if callable(loader):
            loader()
            self.device = getattr(plugin_cls, "device", self.device)

    def process(self, filenames: list[str]) -> list[dict[str, Any] | Exception]:
        """One result per file; a file that fails yields its exception, not the batch's."""
        model = AudioProcessingResult if self.kind == "audio" else ImageProcessingResult
        batch = getattr(self.plugin, f"process_{self.kind}_batch", None)
        if callable(batch) and len(filenames) > 1:
            try:
                return [model.model_validate(r, from_attributes=True).model_dump() for r in batch(filenames)]
            except Exception:
                logger.warning("batch call of %s failed; retrying file by file", self.plugin.__name__)
        method = getattr(self.plugin, f"process_{self.kind}")
        results: list[dict[str, Any] | Exception] = []
        for filename in filenames:
            try:
                results.append(model.model_validate(method(filename), from_attributes=True).model_dump())
            except Exception as exc:
                results.append(exc)
        return results


def plugin_deployment_name(plugin: str) -> str:
    """The Serve name of a plugin's deployment (one per plugin found)."""
    return f"Plugin_{plugin}"


@serve.deployment(name="PluginDeployment")
class PluginDeployment(Batching, ModelDeployment[PluginRunner]):
    """Batch knobs from ``user_config`` (``plugin_defaults`` / ``plugins.<name>`` in serve_config.yaml)."""

    batched_methods = ("_batched",)

    def __init__(self, args: AppArgs, info: dict[str, Any]) -> None:
        super().__init__(args)
        self.info = PluginInfo.model_validate(info)
        self.model_label = f"plugin:{self.info.name}"
        self.blobs = BlobStore(args.blob_url or str(args.data_dir / "blobs"))
        self.load(lambda: PluginRunner(load_plugin_class(self.info.file, self.info.class_name)))

    def _run(self, keys: list[str]) -> list[dict[str, Any] | Exception]:
        runner = self.require()
        with ExitStack() as stack:
            paths = [str(stack.enter_context(self.blobs.local_path(k))) for k in keys]
            return runner.process(paths)

    @serve.batch
    async def _batched(self, keys: list[str]) -> list[dict[str, Any] | Exception]:
        return await asyncio.to_thread(self._run, keys)

    async def process(self, key: str) -> dict[str, Any]:
        """Run the plugin on a stored file (blob key); the spec's result model as a dict."""
        self.require()
        result = await self._batched(key)
        if isinstance(result, Exception):
            raise result
        return result

    def status(self) -> dict[str, Any]:
        status = super().status()
        status.update(kind=self.info.kind, languages=self.info.languages, pid=os.getpid())
        return status
