"""The search service's deployments: the index (engine), two embedders, background removal.

The keys of :class:`percept.handles.SearchHandles` (also ``deployments.<key>`` in serve_config.yaml):

* ``search`` — :class:`SearchIndexDeployment`: catalog, in-memory vector indexes, colour
  search, blending, crawling, bulk embedding; calls the embedders through their handles.
* ``search_resnet`` — ResNet34 image embedder (EfficientNet-Lite0 stands in while its weights are missing).
* ``search_clip`` — CLIP image and text embedder.
* ``search_background`` — background removal (U²-Net ONNX or GrabCut).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

import numpy as np
from ray import serve

from deployments.base import Batching, ModelDeployment, bind_group
from percept.config import AppArgs
from percept.errors import WeightsMissing, unwrap_remote_error
from percept.handles import Handle, SearchHandles
from percept.models.weights import find_hf_model
from percept.registry import SEARCH
from percept.schemas.search import SearchResponse
from percept.search.catalog import ImageCatalog
from percept.search.embedders import RESNET_DIR, RESNET_REPO, load_clip_embedder, load_image_embedder
from percept.search.engine import SearchEngine, SearchQuery
from percept.search.highlight import BackgroundRemover
from percept.storage import BlobStore, open_state_store
from percept.tasks import ProgressReporter

logger = logging.getLogger(__name__)


def _catalog(args: AppArgs) -> ImageCatalog:
    assert args.state_url and args.blob_url
    return ImageCatalog(open_state_store(args.state_url), BlobStore(args.blob_url))


class _Batched(Batching, ModelDeployment[Any]):
    """Shared batching of single-image queries (``@serve.batch`` knobs via user_config).

    Weights may arrive after the replica started: while the core is missing, each request
    looks for them again (a few file checks) before answering 503.
    """

    _factory: Any = None
    batched_methods: ClassVar[tuple[str, ...]] = ("embed_single",)

    def load(self, factory: Any) -> None:
        self._factory = factory
        super().load(factory)

    async def ready(self) -> Any:
        """The core, loading it now if its weights appeared since the last try (also when a
        stand-in serves and the real model's weights have arrived)."""
        stale = self.core is not None and getattr(self.core, "fallback", None) and self.upgrade_available()
        if (self.core is None or stale) and self._factory is not None:
            await asyncio.to_thread(super().load, self._factory)
        return self.require()

    def upgrade_available(self) -> bool:
        """Whether the weights a stand-in replaces are there now (a few file checks)."""
        return False

    def status(self) -> dict[str, Any]:
        status = super().status()
        if self.core is not None:
            status["model"] = self.core.name
            if getattr(self.core, "fallback", None):
                status["fallback"] = self.core.fallback
        return status

    async def embed_images(self, images: list[np.ndarray]) -> tuple[str, np.ndarray]:
        """(model name, unit vectors) of a batch of images."""
        core = await self.ready()
        return core.name, await asyncio.to_thread(core.embed_images, images)

    @serve.batch
    async def embed_single(self, images: list[np.ndarray]) -> list[tuple[str, np.ndarray]]:
        """One image per call; concurrent calls are embedded together."""
        core = await self.ready()
        vectors = await asyncio.to_thread(core.embed_images, images)
        return [(core.name, v[None, :]) for v in vectors]


@serve.deployment(name="SearchResNetEmbedder")
class ResNetEmbedderDeployment(_Batched):
    model_label = "ResNet34"

    def __init__(self, args: AppArgs) -> None:
        super().__init__(args)
        fallback = SEARCH.load_settings(args).resnet_fallback
        self.load(lambda: load_image_embedder(self.models_path, fallback))

    def upgrade_available(self) -> bool:
        try:
            find_hf_model(self.models_path, RESNET_DIR, RESNET_REPO, "ResNet34")
        except WeightsMissing:
            return False
        return True


@serve.deployment(name="SearchClipEmbedder")
class ClipEmbedderDeployment(_Batched):
    model_label = "CLIP"
    batched_methods = ("embed_single", "embed_text")

    def __init__(self, args: AppArgs) -> None:
        super().__init__(args)
        self.load(lambda: load_clip_embedder(self.models_path))

    @serve.batch
    async def embed_text(self, texts: list[str]) -> list[tuple[str, np.ndarray]]:
        """One text per call; concurrent calls are embedded together."""
        core = await self.ready()
        vectors = await asyncio.to_thread(core.embed_texts, texts)
        return [(core.name, v[None, :]) for v in vectors]


@serve.deployment(name="SearchBackgroundRemover")
class BackgroundDeployment(ModelDeployment[BackgroundRemover]):
    model_label = "background removal"

    def __init__(self, args: AppArgs) -> None:
        super().__init__(args)
        self.catalog = _catalog(args)
        method = SEARCH.load_settings(args).background_method
        self.load(lambda: BackgroundRemover(self.models_path, method))

    def status(self) -> dict[str, Any]:
        status = super().status()
        if self.core is not None:
            status["methods"] = self.core.methods()
            status["u2net"] = "loaded" if self.core.u2net is not None else self.core.u2net_missing
        return status

    async def highlight(self, owner: str, ref: str, method: str | None) -> tuple[dict[str, Any], bytes]:
        return await asyncio.to_thread(self.require().highlight, self.catalog, owner, ref, method)

    async def highlight_all(self, owner: str, method: str | None, only_missing: bool,
                            reporter: ProgressReporter) -> dict[str, Any]:
        """Cut out every image of the owner (or only those not cut out yet)."""
        core = self.require()
        docs = await asyncio.to_thread(self.catalog.list, owner)
        todo = [d for d in docs if not (only_missing and d.get("highlighted_path"))]
        done, failed = [], []
        for i, doc in enumerate(todo):
            try:
                record, _ = await asyncio.to_thread(core.highlight, self.catalog, owner, doc["id"], method)
                done.append({"id": record["id"], "highlighted_path": record["highlighted_path"],
                             "foreground_fraction": record["foreground_fraction"]})
            except Exception as exc:
                failed.append({"id": doc["id"], "error": f"{type(exc).__name__}: {exc}"})
            await asyncio.to_thread(reporter, 100.0 * (i + 1) / len(todo), f"{i + 1} of {len(todo)} images")
        return {"method": method or core.default, "highlighted": done, "failed": failed,
                "skipped": len(docs) - len(todo)}


class HandleEmbedders:
    """The engine's embedders, served by the ResNet and CLIP deployments."""

    def __init__(self, resnet: Handle, clip: Handle) -> None:
        self.resnet = resnet
        self.clip = clip

    async def images(self, kind: str, images: list[np.ndarray]) -> tuple[str, np.ndarray]:
        handle = self.clip if kind == "clip" else self.resnet
        try:
            if len(images) == 1:
                return tuple(await handle.embed_single.remote(images[0]))  # type: ignore[return-value]
            return tuple(await handle.embed_images.remote(images))  # type: ignore[return-value]
        except Exception as exc:
            raise unwrap_remote_error(exc) from None

    async def texts(self, texts: list[str]) -> tuple[str, np.ndarray]:
        try:
            if len(texts) == 1:
                return tuple(await self.clip.embed_text.remote(texts[0]))  # type: ignore[return-value]
            raise ValueError("one text at a time")
        except Exception as exc:
            raise unwrap_remote_error(exc) from None


@serve.deployment(name="SearchIndex")
class SearchIndexDeployment(ModelDeployment[SearchEngine]):
    """Holds the engine; every call is scoped to the owner the ingress authenticated."""

    model_label = "search index"

    def __init__(self, args: AppArgs, resnet: Handle, clip: Handle) -> None:
        super().__init__(args)
        self.config = SEARCH.load_settings(args)
        engine = SearchEngine(_catalog(args), self.config, HandleEmbedders(resnet, clip), str(self.models_path))
        self.load(lambda: engine)
        try:
            built = engine.warm()
            logger.info("search index warm: %d indexes rebuilt from the store", built)
        except Exception:  # a broken record must not keep the replica from starting
            logger.exception("could not rebuild the indexes at start; they build on first use")

    async def scrape(self, owner: str, start_urls: list[str], reporter: ProgressReporter) -> dict[str, Any]:
        urls = start_urls or self.config.start_urls
        return await self.require().scrape(owner, urls, self.config.limits(), reporter)

    async def find(self, owner: str, query: SearchQuery, as_json: bool) -> SearchResponse | bytes:
        """One search, answered in the same call: the described results or the PNG collage."""
        return await self.require().find(owner, query, as_json)

    async def merge(self, owner: str, first: str, second: str, levels: int | None, direction: str) -> bytes:
        """Laplacian-pyramid blend of two stored images (PNG)."""
        return await asyncio.to_thread(self.require().merge, owner, first, second, levels, direction)

    async def embed_missing(self, owner: str, kind: str, reporter: ProgressReporter) -> dict[str, Any]:
        return await self.require().embed_missing(owner, kind, reporter)


def bind(args: AppArgs, gpu: bool) -> SearchHandles:
    """The embedders, background removal and the index that calls the embedders."""
    return bind_group(
        SearchHandles, args, gpu,
        search_resnet=ResNetEmbedderDeployment,
        search_clip=ClipEmbedderDeployment,
        search_background=BackgroundDeployment,
        search=(SearchIndexDeployment, lambda group: (group.search_resnet, group.search_clip)),
    )
