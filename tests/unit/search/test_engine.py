"""The engine on a real catalog (SQLite + blobs) with tiny embedders: planted matches first."""

from __future__ import annotations

import asyncio
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from percept.errors import NotFound, Unprocessable
from percept.search.catalog import ImageCatalog
from percept.search.embedders import ClipEmbedder, ResNetEmbedder
from percept.search.engine import SearchEngine
from percept.search.images import decode_image
from percept.search.settings import SearchSettings
from percept.testing import make_services
from tests.unit.search.synthetic import composite, png_bytes, rgba_cutout

ANN, BOB = "user:ann", "user:bob"


class LocalEmbedders:
    """The engine's embedders on local cores (no Ray)."""

    def __init__(self, models: Path) -> None:
        self.cores = {"resnet": ResNetEmbedder(models), "clip": ClipEmbedder(models)}

    async def images(self, kind: str, images: list[np.ndarray]) -> tuple[str, np.ndarray]:
        core = self.cores[kind]
        return core.name, core.embed_images(images)

    async def texts(self, texts: list[str]) -> tuple[str, np.ndarray]:
        core = self.cores["clip"]
        return core.name, core.embed_texts(texts)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def embedders(tiny_models: Path) -> LocalEmbedders:
    return LocalEmbedders(tiny_models)


@pytest.fixture
def engine(tmp_path: Path, embedders: LocalEmbedders) -> SearchEngine:
    services = make_services(tmp_path)
    return SearchEngine(ImageCatalog(services.state, services.blobs), SearchSettings(), embedders)


def _store(engine: SearchEngine, owner: str, image: np.ndarray, url: str = "") -> str:
    record, created = engine.catalog.add(owner, png_bytes(image), source_url=url or None)
    assert created
    return str(record["id"])


def _noop(_p: float, _m: str) -> None:
    return None


def test_complementary_returns_the_planted_matches_first(engine: SearchEngine) -> None:
    colours = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 60, 210), "yellow": (230, 210, 40),
               "cyan1": (30, 200, 210), "cyan2": (50, 215, 200)}
    ids = {name: _store(engine, ANN, composite("ellipse", rgb, (240, 240, 240), seed=i)[0])
           for i, (name, rgb) in enumerate(colours.items())}
    query, mask = composite("rectangle", (225, 35, 45), (240, 240, 240), seed=9)
    found = engine.complementary(ANN, png_bytes(rgba_cutout(query, mask)), 10)
    assert found["query"]["dominant_hue"] == pytest.approx(0, abs=8) or found["query"]["dominant_hue"] > 352
    assert {r["id"] for r in found["results"]} == {ids["cyan1"], ids["cyan2"]}
    assert all(r["score"] >= 0.5 for r in found["results"])
    assert engine.complementary(BOB, png_bytes(query), 10)["results"] == []


def test_complementary_refuses_a_grey_query(engine: SearchEngine) -> None:
    with pytest.raises(Unprocessable):
        engine.complementary(ANN, png_bytes(np.full((40, 40, 3), 128, dtype=np.uint8)), 5)


def test_lab_search_finds_the_closest_colour_first(engine: SearchEngine) -> None:
    planted = _store(engine, ANN, composite("ellipse", (200, 120, 60), (245, 245, 245), seed=1)[0])
    for i, rgb in enumerate([(60, 120, 200), (200, 60, 120), (120, 200, 60), (180, 180, 180)]):
        _store(engine, ANN, composite("ellipse", rgb, (245, 245, 245), seed=10 + i)[0])
    query, mask = composite("ellipse", (205, 115, 65), (20, 20, 20), seed=5)
    found = engine.similar_by_lab(ANN, png_bytes(rgba_cutout(query, mask)), 3)
    assert found["results"][0]["id"] == planted
    scores = [r["score"] for r in found["results"]]
    assert scores == sorted(scores) and len(scores) == 3


def test_embeddings_nearest_neighbour_is_itself_and_text_search(engine: SearchEngine) -> None:
    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.immunohistochemistry()]
    ids = [_store(engine, ANN, cv2.resize(p, (96, 96))) for p in photos]
    first = asyncio.run(engine.embed_missing(ANN, "resnet", _noop))
    assert first["embedded"] == 5 and first["column"] == "embedding_resnet"
    again = asyncio.run(engine.embed_missing(ANN, "resnet", _noop))
    assert again["embedded"] == 0 and again["already"] == 5
    for image_id in ids:
        doc = engine.catalog.get(ANN, image_id)
        raw = engine.catalog.blobs.get_bytes(doc["img_path"])
        hits = asyncio.run(engine.similar_by_image(ANN, raw, 24))["results"]
        assert hits[0]["id"] == image_id and hits[0]["score"] == pytest.approx(1.0, abs=1e-5)
        assert len(hits) == 5
    asyncio.run(engine.embed_missing(ANN, "clip", _noop))
    found = asyncio.run(engine.similar_by_text(ANN, "a red car", 25))
    assert sorted(r["id"] for r in found["results"]) == sorted(ids)
    assert asyncio.run(engine.similar_by_text(BOB, "a red car", 25))["results"] == []


def test_index_is_rebuilt_after_new_embeddings(engine: SearchEngine) -> None:
    _store(engine, ANN, composite(seed=1)[0])
    asyncio.run(engine.embed_missing(ANN, "resnet", _noop))
    model = engine.embedders.cores["resnet"].name  # type: ignore[union-attr]
    assert len(engine.index(ANN, "resnet", model)) == 1
    _store(engine, ANN, composite("triangle", seed=2)[0])
    asyncio.run(engine.embed_missing(ANN, "resnet", _noop))
    assert len(engine.index(ANN, "resnet", model)) == 2
    fresh = SearchEngine(engine.catalog, engine.config, engine.embedders)
    assert fresh.warm() == 1


def test_merge_records_ownership_and_clear(engine: SearchEngine) -> None:
    a = _store(engine, ANN, data.astronaut()[::2, ::2])
    b = _store(engine, ANN, data.coffee())
    merged = decode_image(engine.merge(ANN, a, b, None, "vertical"))
    assert merged.shape == (256, 256, 3)
    record = engine.record(ANN, engine.catalog.get(ANN, a)["img_path"])
    assert record["id"] == a and "features" not in record and record["width"] == 256
    assert record["embedding_resnet"] is None and record["dominant_colours"]
    with pytest.raises(NotFound):
        engine.record(BOB, a)
    with pytest.raises(NotFound):
        engine.merge(BOB, a, b, None, "vertical")
    with pytest.raises(NotFound):
        engine.record(ANN, "../../etc/passwd")
    same, created = engine.catalog.add(ANN, engine.catalog.blobs.get_bytes(record["img_path"]))
    assert not created and same["id"] == a
    assert engine.catalog.clear(ANN) == 2
    assert engine.catalog.list(ANN) == [] and engine.catalog.blobs.list("search/user_ann") == []


def test_large_collections_use_hnsw_through_the_same_interface(engine: SearchEngine) -> None:
    engine.config = SearchSettings(ann_threshold=2)
    photos = [data.astronaut(), data.coffee(), data.chelsea()]
    ids = [_store(engine, ANN, cv2.resize(p, (64, 64))) for p in photos]
    asyncio.run(engine.embed_missing(ANN, "resnet", _noop))
    raw = engine.catalog.blobs.get_bytes(engine.catalog.get(ANN, ids[1])["img_path"])
    found = asyncio.run(engine.similar_by_image(ANN, raw, 24))
    assert found["query"]["index"] == "hnsw" and found["results"][0]["id"] == ids[1]
