"""Out of the box: EfficientNet-Lite0 stands in for missing ResNet34 weights and says so; CLIP
has no stand-in (a clear WeightsMissing naming both places its weights may go); open_clip is an
alternative CLIP loader (the [card] extra), tested on a tiny model built here when installed."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from percept.errors import WeightsMissing
from percept.search.embedders import (
    EFFICIENTNET_NAME,
    ClipEmbedder,
    EfficientNetEmbedder,
    ResNetEmbedder,
    fallback_note,
    load_clip_embedder,
    load_image_embedder,
    model_name,
)


def _image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)


def test_efficientnet_stands_in_and_says_where_resnet_weights_go(tmp_path: Path) -> None:
    embedder = load_image_embedder(tmp_path)
    assert isinstance(embedder, EfficientNetEmbedder) and embedder.name == EFFICIENTNET_NAME
    assert embedder.fallback is not None and str(tmp_path / "resnet-34") in embedder.fallback
    assert embedder.fallback == fallback_note(embedder.name, tmp_path)
    vectors = embedder.embed_images([_image(0), _image(1)])
    assert vectors.shape == (2, 1280) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    with pytest.raises(WeightsMissing) as err:
        load_image_embedder(tmp_path, fallback="none")
    assert "ResNet34" in str(err.value.detail)
    # the bulk pipeline records the same model name without loading it
    assert model_name(tmp_path, "resnet") == EFFICIENTNET_NAME
    with pytest.raises(WeightsMissing):
        model_name(tmp_path, "resnet", fallback="none")


def test_resnet_is_used_when_its_weights_are_there(tiny_models: Path) -> None:
    embedder = load_image_embedder(tiny_models)
    assert isinstance(embedder, ResNetEmbedder)
    assert fallback_note(embedder.name, tiny_models) is None


def test_clip_has_no_stand_in(tmp_path: Path, tiny_models: Path) -> None:
    with pytest.raises(WeightsMissing) as err:
        load_clip_embedder(tmp_path)
    detail = str(err.value.detail)
    assert detail.startswith(f"unavailable: weights for CLIP not found in {tmp_path}")
    assert str(tmp_path / "clip") in detail and str(tmp_path / "open_clip") in detail
    assert isinstance(load_clip_embedder(tiny_models), ClipEmbedder)


@pytest.mark.skipif(importlib.util.find_spec("open_clip") is not None, reason="open-clip-torch is installed")
def test_an_open_clip_folder_without_the_library_says_which_extra(tmp_path: Path) -> None:
    (tmp_path / "open_clip").mkdir()
    (tmp_path / "open_clip" / "open_clip_config.json").write_text("{}")
    with pytest.raises(WeightsMissing) as err:
        load_clip_embedder(tmp_path)
    assert "[card]" in str(err.value.detail)


def test_open_clip_loads_a_tiny_local_model(tmp_path: Path) -> None:
    open_clip = pytest.importorskip("open_clip")
    import torch

    model_cfg = {
        "embed_dim": 8,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    folder = tmp_path / "open_clip"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({
        "model_cfg": model_cfg,
        "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]},
    }))
    torch.manual_seed(0)
    model = open_clip.CLIP(**model_cfg)
    torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")

    embedder = load_clip_embedder(tmp_path)
    assert embedder.name == "open_clip:open_clip" and embedder.dim == 8
    images = embedder.embed_images([_image(0), _image(1)])
    texts = embedder.embed_texts(["a red dress", "a blue shoe"])
    assert images.shape == texts.shape == (2, 8)
    assert np.allclose(np.linalg.norm(texts, axis=1), 1, atol=1e-4)
    again = embedder.embed_texts(["a red dress"])
    assert np.allclose(again[0], texts[0], atol=1e-5)


class StandInEmbedders:
    """The engine's embedders with EfficientNet-Lite0 standing in for ResNet34 (no Ray)."""

    def __init__(self, models: Path) -> None:
        self.core = load_image_embedder(models)

    async def images(self, kind: str, images: list[np.ndarray]) -> tuple[str, np.ndarray]:
        return self.core.name, self.core.embed_images(images)

    async def texts(self, texts: list[str]) -> tuple[str, np.ndarray]:
        raise WeightsMissing("CLIP", "nowhere")


def test_every_search_answer_names_the_stand_in(tmp_path: Path) -> None:
    import asyncio
    import io

    from PIL import Image

    from percept.search.catalog import ImageCatalog
    from percept.search.engine import SearchEngine, SearchQuery
    from percept.search.settings import SearchSettings
    from percept.testing import make_services
    from tests.unit.search.synthetic import composite, png_bytes

    services = make_services(tmp_path)
    models = tmp_path / "models"
    engine = SearchEngine(ImageCatalog(services.state, services.blobs), SearchSettings(),
                          StandInEmbedders(models), str(models))
    for seed in range(3):
        engine.catalog.add("user:ann", png_bytes(composite(seed=seed)[0]))
    embedded = asyncio.run(engine.embed_missing("user:ann", "resnet", lambda _p, _m: None))
    assert embedded["model"] == EFFICIENTNET_NAME and embedded["embedded"] == 3
    assert str(models / "resnet-34") in embedded["note"]

    query = SearchQuery(method="similar_by_image", k=24, image=png_bytes(composite(seed=0)[0]))
    answer = asyncio.run(engine.find("user:ann", query, as_json=True))
    assert answer.query["model"] == EFFICIENTNET_NAME and "ResNet34 weights are not installed" in answer.query["note"]
    assert len(answer.results) == 3 and answer.results[0].score > 0.999

    with_note = Image.open(io.BytesIO(asyncio.run(engine.find("user:ann", query, as_json=False))))
    plain = Image.open(io.BytesIO(asyncio.run(
        SearchEngine(engine.catalog, engine.config, engine.embedders).find("user:ann", query, as_json=False))))
    assert with_note.width == plain.width and with_note.height > plain.height  # the note is written under it
