"""The Ray Data callable of the bulk-embedding pipeline, run without Ray."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from skimage import data

from percept.search.catalog import ImageCatalog
from percept.search.embedders import ResNetEmbedder, model_name
from percept.testing import make_services
from pipelines.search_embeddings import EmbedBatch
from tests.unit.search.synthetic import png_bytes


def test_embed_batch_matches_the_embedder(tmp_path: Path, tiny_models: Path) -> None:
    services = make_services(tmp_path, models_path=tiny_models)
    catalog = ImageCatalog(services.state, services.blobs)
    docs = [catalog.add("user:ann", png_bytes(cv2.resize(p, (64, 64))))[0] for p in (data.astronaut(), data.coffee())]
    batch = {"id": np.array([d["id"] for d in docs]), "img_path": np.array([d["img_path"] for d in docs])}
    out = EmbedBatch(str(tiny_models), str(services.args.blob_url), "resnet")(batch)
    assert list(out["id"]) == [d["id"] for d in docs]
    direct = ResNetEmbedder(tiny_models).embed_images([catalog.read(d) for d in docs])
    np.testing.assert_allclose(out["embedding"], direct, atol=1e-5)
    assert model_name(tiny_models, "resnet") == ResNetEmbedder(tiny_models).name
