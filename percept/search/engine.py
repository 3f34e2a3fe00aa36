"""The search engine: catalog + in-memory vector indexes + colour search + blending + crawl.

Ray-free. The deployment gives it an :class:`Embedders` implementation that calls the
ResNet/CLIP deployments; tests give it local cores. Vector indexes are kept per (owner,
kind, model) and rebuilt whenever the owner's catalog version moved on (any replica's
writes bump it), so several replicas stay consistent without talking to each other.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from percept.errors import Unprocessable
from percept.imaging import shrink_to
from percept.schemas.search import SearchResponse
from percept.search import pyramid
from percept.search.background import border_mask
from percept.search.catalog import ImageCatalog, public_record
from percept.search.colour import ciede2000, complement_fraction, dominant_hue, rgb_to_hsv, rgb_to_lab
from percept.search.embedders import fallback_note
from percept.search.images import collage, decode_image, encode_png, feature_thumb, split_alpha
from percept.search.scrape import Crawler, ScrapedImage, ScrapeLimits
from percept.search.settings import SearchSettings
from percept.search.vectors import VectorIndex, make_index

logger = logging.getLogger(__name__)
Progress = Callable[[float, str], None]
EMBED_SIDE = 256  # images are shrunk to this short side before they go to the embedders


class Embedders(Protocol):
    """What the engine needs from the embedding models (deployments or local cores)."""

    async def images(self, kind: str, images: list[np.ndarray]) -> tuple[str, np.ndarray]:
        """(model name, unit vectors) for images with the ``resnet`` or ``clip`` model."""

    async def texts(self, texts: list[str]) -> tuple[str, np.ndarray]:
        """(model name, unit vectors) of texts with the CLIP model."""


@dataclass(frozen=True)
class SearchQuery:
    """One search, as the ingress sends it to the index: the method and its inputs."""

    method: Literal["complementary", "similar_by_lab", "similar_by_image", "similar_by_text"]
    k: int
    image: bytes | None = None  # the uploaded query image (every method but similar_by_text)
    text: str | None = None  # similar_by_text
    tolerance: float | None = None  # complementary: hue band in degrees
    min_fraction: float | None = None  # complementary: share of the foreground in the band


def query_thumb(image: np.ndarray) -> np.ndarray:
    """The query's colour thumbnail: its alpha as the mask, else the border-seeded mask."""
    rgb, alpha = split_alpha(image)
    mask = alpha if alpha is not None else border_mask(rgb)
    if mask.mean() < 0.02:
        mask = np.ones(rgb.shape[:2], dtype=bool)
    return feature_thumb(image, mask).reshape(-1, 4)


def on_white(thumbs: np.ndarray) -> np.ndarray:
    """RGB of (…, 4) thumbnails with the background (alpha 0) painted white."""
    rgb = thumbs[..., :3].copy()
    rgb[thumbs[..., 3] < 128] = 255
    return rgb


class SearchEngine:
    """Every search-service operation on one owner's images."""

    def __init__(self, catalog: ImageCatalog, config: SearchSettings, embedders: Embedders | None = None,
                 models_path: str | None = None) -> None:
        self.catalog = catalog
        self.config = config
        self.embedders = embedders
        self.models_path = models_path  # where a stand-in model's answers say the real weights go
        self._indexes: dict[tuple[str, str, str], tuple[int, VectorIndex]] = {}
        self._lock = threading.Lock()

    # vector indexes ---------------------------------------------------------------------
    def index(self, owner: str, kind: str, model: str) -> VectorIndex:
        """The owner's index of one model, rebuilt from the store when it is stale."""
        version = self.catalog.version(owner)
        with self._lock:
            cached = self._indexes.get((owner, kind, model))
            if cached is not None and cached[0] == version:
                return cached[1]
        ids, matrix = self.catalog.embeddings(owner, kind, model)
        index = make_index(ids, matrix, ann_threshold=self.config.ann_threshold)
        with self._lock:
            self._indexes[(owner, kind, model)] = (version, index)
        logger.info("index %s/%s/%s rebuilt: %d vectors (%s)", owner, kind, model, len(index), index.kind)
        return index

    def warm(self) -> int:
        """Build every stored index now (a replica's start); the number of indexes built."""
        built = 0
        for doc in self.catalog.state.list("search_images"):
            for kind in ("resnet", "clip"):
                entry = doc.get(f"embedding_{kind}")
                key = (str(doc["owner"]), kind, str(entry["model"])) if entry else None
                if key and key not in self._indexes:
                    self.index(*key)
                    built += 1
        return built

    # crawling ---------------------------------------------------------------------------
    async def scrape(self, owner: str, start_urls: list[str], limits: ScrapeLimits, progress: Progress) -> dict[str, Any]:
        """Crawl, store every new image; a report with the stored ids."""
        stored: list[str] = []
        duplicates = 0

        async def keep(image: ScrapedImage) -> bool:
            nonlocal duplicates
            try:
                record, created = await asyncio.to_thread(
                    self.catalog.add, owner, image.data, source_url=image.url, page_url=image.page_url, fmt=image.format
                )
            except Unprocessable:
                return False
            if created:
                stored.append(record["id"])
            else:
                duplicates += 1
            return created

        async def report(percent: float, message: str) -> None:
            await asyncio.to_thread(progress, percent, message)

        crawl = await Crawler(limits).crawl(start_urls, keep, report)
        return {
            "start_urls": start_urls,
            "pages": crawl.pages,
            "stored": len(stored),
            "duplicates": duplicates,
            "ids": stored,
            "skipped": crawl.skipped,
        }

    # colour searches --------------------------------------------------------------------
    def complementary(self, owner: str, data: bytes, k: int, tolerance: float | None = None,
                      min_fraction: float | None = None) -> dict[str, Any]:
        """Images whose foreground mostly lies around the hue opposite the query's dominant hue."""
        tol = tolerance or self.config.complement_tolerance_deg
        need = min_fraction or self.config.complement_min_fraction
        query = query_thumb(decode_image(data))
        hsv = rgb_to_hsv(query[:, :3])
        hue = dominant_hue(hsv, query[:, 3] >= 128)
        if hue is None:
            raise Unprocessable("The image has no dominant colour (its foreground is grey, black or white)")
        target = (hue + 180.0) % 360.0
        feats = self.catalog.colour_features(owner)
        scores = (
            complement_fraction(rgb_to_hsv(feats.thumbs[..., :3]), feats.thumbs[..., 3] >= 128, target, tol)
            if feats.ids else np.zeros(0)
        )
        order = [i for i in np.argsort(-scores, kind="stable") if scores[i] >= need][:k]
        return {
            "query": {"dominant_hue": round(hue, 2), "complementary_hue": round(target, 2), "tolerance": tol},
            "results": [{"id": feats.ids[i], "score": round(float(scores[i]), 4)} for i in order],
        }

    def similar_by_lab(self, owner: str, data: bytes, k: int) -> dict[str, Any]:
        """Images closest in colour: mean CIEDE2000 between 32×32 thumbnails (backgrounds white)."""
        query = rgb_to_lab(on_white(query_thumb(decode_image(data))))
        feats = self.catalog.colour_features(owner)
        if feats.ids:
            distances = ciede2000(rgb_to_lab(on_white(feats.thumbs)), query[None]).mean(axis=1)
        else:
            distances = np.zeros(0)
        order = np.argsort(distances, kind="stable")[:k]
        return {
            "query": {"metric": "mean CIEDE2000", "size": "32x32"},
            "results": [{"id": feats.ids[i], "score": round(float(distances[i]), 4)} for i in order],
        }

    # embeddings -------------------------------------------------------------------------
    def _require_embedders(self) -> Embedders:
        if self.embedders is None:
            raise RuntimeError("this engine has no embedders")
        return self.embedders

    async def embed_missing(self, owner: str, kind: str, progress: Progress) -> dict[str, Any]:
        """Embed every image of the owner that has no embedding of the current model."""
        embedders = self._require_embedders()
        model, _ = await embedders.images(kind, [np.zeros((8, 8, 3), dtype=np.uint8)])
        todo = await asyncio.to_thread(self.catalog.missing_embeddings, owner, kind, model)
        done, failed = 0, []
        size = self.config.embed_batch_size
        for start in range(0, len(todo), size):
            batch = todo[start : start + size]
            images, ids = [], []
            for doc in batch:
                try:
                    images.append(shrink_to(await asyncio.to_thread(self.catalog.read, doc), EMBED_SIDE))
                    ids.append(doc["id"])
                except Exception as exc:  # one broken file must not stop the others
                    failed.append({"id": doc["id"], "error": f"{type(exc).__name__}: {exc}"})
            if images:
                _, vectors = await embedders.images(kind, images)
                for image_id, vector in zip(ids, vectors, strict=True):
                    await asyncio.to_thread(self.catalog.save_embedding, owner, image_id, kind, model, vector)
                done += len(ids)
                await asyncio.to_thread(self.catalog.bump, owner)
            await asyncio.to_thread(progress, 100.0 * (start + len(batch)) / len(todo), f"{done} of {len(todo)} embedded")
        total = len(await asyncio.to_thread(self.catalog.list, owner))
        return {"model": model, **self._note(model), "column": f"embedding_{kind}", "embedded": done,
                "already": total - len(todo), "failed": failed, "total": total}

    def _note(self, model: str) -> dict[str, str]:
        """``{"note": ...}`` when ``model`` stands in for a missing one (EfficientNet for ResNet34)."""
        note = fallback_note(model, self.models_path) if self.models_path else None
        return {"note": note} if note else {}

    async def similar_by_image(self, owner: str, data: bytes, k: int) -> dict[str, Any]:
        """Top-k stored images by cosine similarity of ResNet embeddings."""
        image = decode_image(data)
        model, vectors = await self._require_embedders().images("resnet", [shrink_to(image, EMBED_SIDE)])
        index = await asyncio.to_thread(self.index, owner, "resnet", model)
        hits = index.search(vectors, k)[0]
        return {"query": {"model": model, **self._note(model), "index": index.kind, "indexed": len(index)},
                "results": [{"id": i, "score": round(s, 6)} for i, s in hits]}

    async def similar_by_text(self, owner: str, text: str, k: int) -> dict[str, Any]:
        """Top-k stored images by cosine similarity of CLIP text and image embeddings."""
        model, vectors = await self._require_embedders().texts([text])
        index = await asyncio.to_thread(self.index, owner, "clip", model)
        hits = index.search(vectors, k)[0]
        return {"query": {"model": model, "text": text, "index": index.kind, "indexed": len(index)},
                "results": [{"id": i, "score": round(s, 6)} for i, s in hits]}

    # one search, answered -----------------------------------------------------------------
    async def find(self, owner: str, query: SearchQuery, as_json: bool) -> SearchResponse | bytes:
        """Run ``query`` and answer it: the results described (JSON) or the PNG collage."""
        found = await self._search(owner, query)
        if as_json:
            return SearchResponse.model_validate(await asyncio.to_thread(self.describe, owner, found))
        return await asyncio.to_thread(self.render, owner, query.image, found)

    async def _search(self, owner: str, query: SearchQuery) -> dict[str, Any]:
        if query.method == "similar_by_text":
            return await self.similar_by_text(owner, query.text or "", query.k)
        if query.image is None:
            raise Unprocessable("This search needs an image")
        if query.method == "similar_by_image":
            return await self.similar_by_image(owner, query.image, query.k)
        if query.method == "complementary":
            return await asyncio.to_thread(self.complementary, owner, query.image, query.k, query.tolerance,
                                           query.min_fraction)
        return await asyncio.to_thread(self.similar_by_lab, owner, query.image, query.k)

    # rendering and blending -------------------------------------------------------------
    def describe(self, owner: str, found: dict[str, Any]) -> dict[str, Any]:
        """Add each result's path and source URL (what clients show next to the score)."""
        for hit in found["results"]:
            doc = self.catalog.get(owner, hit["id"])
            hit["img_path"] = doc["img_path"]
            hit["source_url"] = doc.get("source_url")
        return found

    def render(self, owner: str, query: bytes | None, found: dict[str, Any]) -> bytes:
        """The PNG collage: the query first (framed), then the results with their scores."""
        tiles = []
        for hit in found["results"]:
            doc = self.catalog.get(owner, hit["id"])
            tiles.append((self.catalog.read(doc, highlighted=True), f"{hit['score']:.3f}"))
        said = found.get("query") or {}
        footer = f"model: {said['model']}. {said['note']}" if said.get("note") else None
        return collage(decode_image(query) if query else None, tiles, footer=footer)

    def merge(self, owner: str, first: str, second: str, levels: int | None, direction: str) -> bytes:
        """Laplacian-pyramid blend of two stored images (left/top of the first), as PNG."""
        a = self.catalog.read(self.catalog.get(owner, first))
        b = self.catalog.read(self.catalog.get(owner, second))
        a_rgb, b_rgb = split_alpha(a)[0], split_alpha(b)[0]
        a_rgb, b_rgb = pyramid.fit_pair(a_rgb, b_rgb)
        mask = pyramid.seam_mask(a_rgb.shape, direction)
        return encode_png(pyramid.blend(a_rgb, b_rgb, mask, levels))

    def record(self, owner: str, ref: str) -> dict[str, Any]:
        return public_record(self.catalog.get(owner, ref))
