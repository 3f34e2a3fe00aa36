"""The search routes through TestClient, with the real deployment classes behind local handles."""

from __future__ import annotations

import asyncio
import io
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from deployments.search import (
    BackgroundDeployment,
    ClipEmbedderDeployment,
    ResNetEmbedderDeployment,
    SearchIndexDeployment,
)
from percept.api.app import create_app
from percept.handles import SearchHandles
from percept.testing import LocalHandle, make_services
from tests.unit.search.conftest import Site, serve_site, shop_site
from tests.unit.search.synthetic import composite, png_bytes, rgba_cutout


def _plain(deployment: Any) -> Any:
    """The deployment's class without Serve; ``@serve.batch`` methods need a replica, so the
    single-item methods go straight to the batch methods here (integration tests batch)."""
    cls = deployment.func_or_class

    class Unbatched(cls):  # type: ignore[misc, valid-type]
        async def embed_single(self, image: Any) -> Any:
            name, vectors = await self.embed_images([image])
            return name, vectors[:1]

        async def embed_text(self, text: str) -> Any:
            core = await self.ready()
            return core.name, core.embed_texts([text])

    return Unbatched


@pytest.fixture
def site() -> Iterator[Site]:
    yield from serve_site(Site())


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, tiny_models: Path) -> Iterator[TestClient]:
    services = make_services(
        tmp_path_factory.mktemp("api"), models_path=tiny_models,
        service_config={"search": {"allow_private_networks": True, "max_upload_bytes": 400_000}},
    )
    args = services.args
    resnet = LocalHandle(_plain(ResNetEmbedderDeployment)(args))
    clip = LocalHandle(_plain(ClipEmbedderDeployment)(args))
    services.search.handles = SearchHandles(
        search=LocalHandle(_plain(SearchIndexDeployment)(args, resnet, clip)),
        search_resnet=resnet,
        search_clip=clip,
        search_background=LocalHandle(_plain(BackgroundDeployment)(args)),
    )
    with TestClient(create_app(services)) as test_client:
        yield test_client


def _login(client: TestClient, name: str) -> dict[str, str]:
    client.put("/v1/auth/register", params={"username": name, "password": "pw"})
    token = client.post("/v1/auth/token", data={"username": name, "password": "pw"}).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def _wait(client: TestClient, task_id: str, headers: dict[str, str], limit_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        task = client.get(f"/platform/tasks/{task_id}", headers=headers).json()
        if task["status"] in ("finished", "failed"):
            return task  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} did not end in {limit_s} s")


def _run(client: TestClient, path: str, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    created = client.get(path, headers=headers, params=params)
    assert created.status_code == 202, created.text
    task = _wait(client, created.json()["task_id"], headers)
    assert task["status"] == "finished", task
    return task["result"]  # type: ignore[no-any-return]


def _png(response: Any) -> Image.Image:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return Image.open(io.BytesIO(response.content))


def test_whole_flow(client: TestClient, site: Site) -> None:
    shop_site(site)
    ann, bob = _login(client, "ann"), _login(client, "bob")
    scraped = _run(client, "/scrape", ann, url=site.url + "/")
    assert scraped["stored"] == 3 and len(scraped["ids"]) == 3
    red = next(i for i in scraped["ids"]
               if client.post("/hello", json={"img_path": i}, headers=ann).json()["source_url"].endswith("red.png"))
    record = client.post("/hello", json={"img_path": red}, headers=ann).json()
    assert record["img_path"].endswith(".png") and record["width"] == 200
    assert client.post("/hello", json={"img_path": record["img_path"]}, headers=ann).json()["id"] == red
    assert client.post("/hello", json={"img_path": red}, headers=bob).status_code == 404

    cut = _png(client.post("/highlight_particular_image", json={"img_path": red}, headers=ann))
    assert cut.mode == "RGBA"
    alpha = np.asarray(cut)[..., 3]
    assert 0.1 < (alpha > 128).mean() < 0.6
    highlighted = _run(client, "/highlight_all_images", ann)
    assert len(highlighted["highlighted"]) == 3 and highlighted["failed"] == []

    merged = _png(client.post("/merge_imgs", json={"img_path_1": scraped["ids"][0], "img_path_2": scraped["ids"][1]},
                              headers=ann))
    assert merged.size == (200, 160)

    query, mask = composite("rectangle", (225, 35, 45), (240, 240, 240), seed=9)
    files = {"image": ("q.png", png_bytes(rgba_cutout(query, mask)), "image/png")}
    found = client.post("/find_all_complementary", files=files, headers={**ann, "Accept": "application/json"})
    assert found.status_code == 200 and found.json()["results"][0]["source_url"].endswith("cyan.jpg")
    collage = _png(client.post("/find_all_complementary", files=files, headers=ann))
    assert collage.width > 160
    lab = client.post("/find_all_similar_by_lab", files=files, headers=ann, params={"format": "json"}).json()
    assert lab["results"][0]["id"] == red

    resnet = _run(client, "/get_all_resnet_embeddings", ann)
    assert resnet["embedded"] == 3 and resnet["column"] == "embedding_resnet"
    assert _run(client, "/get_all_clip_embeddings", ann)["embedded"] == 3
    assert client.post("/hello", json={"img_path": red}, headers=ann).json()["embedding_clip"]["dim"] == 8
    raw = {"image": ("r.png", client.app.state.services.blobs.get_bytes(record["img_path"]), "image/png")}  # type: ignore[attr-defined]
    top = client.post("/get_top_24_resnet_similar", files=raw, headers=ann, params={"format": "json"}).json()
    assert top["results"][0]["id"] == red and len(top["results"]) == 3
    _png(client.post("/get_top_24_resnet_similar", files=raw, headers=ann))
    text = client.post("/get_top_25_clip_similar", json={"text_query": "red ball"}, headers=ann,
                       params={"format": "json"}).json()
    assert len(text["results"]) == 3
    assert client.post("/get_top_25_clip_similar", json={"text_query": "red"}, headers=bob,
                       params={"format": "json"}).json()["results"] == []

    assert client.get("/clear_all", headers=bob).json() == {"deleted": 0}
    assert client.get("/clear_all", headers=ann).json() == {"deleted": 3}
    assert client.post("/hello", json={"img_path": red}, headers=ann).status_code == 404


def test_errors_are_4xx_with_detail(client: TestClient) -> None:
    ann = _login(client, "cat")
    assert client.get("/clear_all").status_code == 401
    assert client.post("/hello", json={}).json() == {"detail": "Not authenticated"}
    bad = client.post("/hello", json={}, headers=ann)
    assert bad.status_code == 422 and "detail" in bad.json()
    assert client.post("/hello", json={"img_path": "../../etc/passwd"}, headers=ann).status_code == 404
    assert client.get("/scrape", headers=ann).json()["detail"].startswith("No start URLs")
    assert client.get("/scrape", headers=ann, params={"url": "file:///etc/passwd"}).status_code == 422
    not_image = {"image": ("x.png", b"hello, not an image", "image/png")}
    answer = client.post("/find_all_similar_by_lab", files=not_image, headers=ann)
    assert answer.status_code == 422 and answer.json()["detail"] == "The file is not a readable image"
    huge = {"image": ("x.png", b"0" * 500_000, "image/png")}
    assert client.post("/find_all_complementary", files=huge, headers=ann).status_code == 413
    assert client.post("/find_all_complementary", headers=ann).status_code == 422
    grey = {"image": ("g.png", png_bytes(np.full((30, 30, 3), 90, dtype=np.uint8)), "image/png")}
    assert client.post("/find_all_complementary", files=grey, headers=ann).status_code == 422
    missing = client.post("/merge_imgs", json={"img_path_1": "a" * 32, "img_path_2": "b" * 32}, headers=ann)
    assert missing.status_code == 404 and missing.json() == {"detail": "Image not found"}
    assert client.post("/get_top_25_clip_similar", json={"text_query": ""}, headers=ann).status_code == 422
    assert client.post("/highlight_particular_image", json={"img_path": "x", "method": "magic"},
                       headers=ann).status_code == 422


def test_missing_weights_answer_503_until_they_arrive(tmp_path: Path, tiny_models: Path) -> None:
    services = make_services(tmp_path, service_config={"search": {"resnet_fallback": "none"}})
    args = services.args
    resnet = LocalHandle(_plain(ResNetEmbedderDeployment)(args))
    clip = LocalHandle(_plain(ClipEmbedderDeployment)(args))
    services.search.handles.search = LocalHandle(_plain(SearchIndexDeployment)(args, resnet, clip))
    with TestClient(create_app(services)) as client:
        ann = _login(client, "dan")
        files = {"image": ("q.png", png_bytes(composite(seed=1)[0]), "image/png")}
        answer = client.post("/get_top_24_resnet_similar", files=files, headers=ann)
        assert answer.status_code == 503
        assert answer.json()["detail"].startswith("unavailable: weights for ResNet34 not found in ")
        assert str(args.models_path) in answer.json()["detail"]
        text = client.post("/get_top_25_clip_similar", json={"text_query": "x"}, headers=ann)
        assert text.status_code == 503 and "CLIP" in text.json()["detail"]
        task = _wait(client, client.get("/get_all_clip_embeddings", headers=ann).json()["task_id"], ann)
        assert task["status"] == "failed" and task["error_status"] == 503
        shutil.copytree(tiny_models, args.models_path, dirs_exist_ok=True)
        found = client.post("/get_top_24_resnet_similar", files=files, headers=ann, params={"format": "json"})
        assert found.status_code == 200 and found.json()["results"] == []


def test_efficientnet_stands_in_for_resnet_by_default(tmp_path: Path) -> None:
    services = make_services(tmp_path)
    embedder = _plain(ResNetEmbedderDeployment)(services.args)
    status = embedder.status()
    assert status["available"] and embedder.core.name == "efficientnet-lite0"
    assert status["model"] == "efficientnet-lite0" and "resnet-34" in status["fallback"]
    name, vectors = asyncio.run(embedder.embed_images([composite(seed=1)[0]]))
    assert name == "efficientnet-lite0" and vectors.shape == (1, 1280)
    assert np.linalg.norm(vectors[0]) == pytest.approx(1.0, abs=1e-4)
