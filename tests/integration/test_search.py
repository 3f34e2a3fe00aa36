"""Image search over real HTTP against the Serve application (tiny models, local web site).

The crawler must reach this test's own web server on 127.0.0.1: the shared fixture sets
``service_config.search.allow_private_networks: true`` in the app args.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from percept.testing import AppUnderTest
from tests.unit.search.conftest import Site, serve_site, shop_site
from tests.unit.search.synthetic import composite, png_bytes, rgba_cutout
from tests.unit.search.tiny_models import build_tiny_models

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    yield from serve_site(Site())


def _user(client: httpx.Client, name: str) -> dict[str, str]:
    client.put("/v1/auth/register", params={"username": name, "password": "pw"})
    token = client.post("/v1/auth/token", data={"username": name, "password": "pw"}).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def _finish(client: httpx.Client, path: str, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    created = client.get(path, headers=headers, params=params)
    assert created.status_code == 202, created.text
    task_id = created.json()["task_id"]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        task = client.get(f"/platform/tasks/{task_id}", headers=headers).json()
        if task["status"] in ("finished", "failed"):
            assert task["status"] == "finished", task
            return task["result"]  # type: ignore[no-any-return]
        time.sleep(0.25)
    raise AssertionError(f"{path} did not finish")


def _png(response: httpx.Response) -> Image.Image:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return Image.open(io.BytesIO(response.content))


def test_search_end_to_end(percept_app: AppUnderTest, site: Site) -> None:
    shop_site(site)
    with percept_app.client() as client:
        ann, bob = _user(client, "search-ann"), _user(client, "search-bob")
        health = client.get("/platform/health").json()["deployments"]
        assert health["search"]["available"] and health["search_background"]["available"]

        query = {"image": ("q.png", png_bytes(composite(seed=4)[0]), "image/png")}
        # a fresh install: EfficientNet-Lite0 stands in for ResNet34, and every answer says so
        stand_in = client.post("/get_top_24_resnet_similar", files=query, headers=ann, params={"format": "json"})
        assert stand_in.status_code == 200 and stand_in.json()["query"]["model"] == "efficientnet-lite0"
        assert "ResNet34 weights are not installed" in stand_in.json()["query"]["note"]
        # ... and so does health once the embedder has run (with serve_config's scale-to-zero it
        # is not started by a health check, as on the cluster tier)
        health = client.get("/platform/health").json()["deployments"]
        assert health["search_resnet"]["model"] == "efficientnet-lite0"
        assert str(percept_app.root / "models" / "resnet-34") in health["search_resnet"]["fallback"]
        text_missing = client.post("/get_top_25_clip_similar", json={"text_query": "red"}, headers=ann)
        assert text_missing.status_code == 503 and "CLIP" in text_missing.json()["detail"]

        scraped = _finish(client, "/scrape", ann, url=site.url + "/")
        assert scraped["stored"] == 3, scraped
        records = {client.post("/hello", json={"img_path": i}, headers=ann).json()["source_url"].rsplit("/", 1)[-1]: i
                   for i in scraped["ids"]}
        assert set(records) == {"red.png", "cyan.jpg", "blue.png"}
        assert client.post("/hello", json={"img_path": records["red.png"]}, headers=bob).status_code == 404

        cut = _png(client.post("/highlight_particular_image", json={"img_path": records["red.png"]}, headers=ann))
        assert cut.mode == "RGBA" and 0.1 < (np.asarray(cut)[..., 3] > 128).mean() < 0.6
        assert len(_finish(client, "/highlight_all_images", ann)["highlighted"]) == 3
        merged = _png(client.post("/merge_imgs", headers=ann,
                                  json={"img_path_1": records["red.png"], "img_path_2": records["blue.png"]}))
        assert merged.size == (200, 160)

        red_query, mask = composite("rectangle", (225, 35, 45), (240, 240, 240), seed=9)
        files = {"image": ("q.png", png_bytes(rgba_cutout(red_query, mask)), "image/png")}
        complementary = client.post("/find_all_complementary", files=files,
                                    headers={**ann, "Accept": "application/json"}).json()
        assert complementary["results"][0]["id"] == records["cyan.jpg"]
        _png(client.post("/find_all_complementary", files=files, headers=ann))
        lab = client.post("/find_all_similar_by_lab", files=files, headers=ann, params={"format": "json"}).json()
        assert lab["results"][0]["id"] == records["red.png"]

        fallback = _finish(client, "/get_all_resnet_embeddings", ann)
        assert fallback["model"] == "efficientnet-lite0" and fallback["embedded"] == 3 and "note" in fallback
        collage = _png(client.post("/get_top_24_resnet_similar", files=query, headers=ann))
        assert collage.width >= 4 * 160  # a collage on a fresh install (with the model named under it)
        build_tiny_models(percept_app.root / "models")  # ResNet34 weights arrive: used without a restart
        resnet = _finish(client, "/get_all_resnet_embeddings", ann)
        assert resnet["model"].startswith("resnet:") and resnet["embedded"] == 3 and "note" not in resnet
        assert _finish(client, "/get_all_clip_embeddings", ann)["embedded"] == 3
        own = {"image": ("red.png", site.routes["/img/red.png"][2], "image/png")}
        top = client.post("/get_top_24_resnet_similar", files=own, headers=ann, params={"format": "json"}).json()
        assert top["results"][0]["id"] == records["red.png"] and top["results"][0]["score"] > 0.9999
        collage = _png(client.post("/get_top_24_resnet_similar", files=own, headers=ann))
        assert collage.width >= 4 * 160
        text = client.post("/get_top_25_clip_similar", json={"text_query": "red ball"}, headers=ann,
                           params={"format": "json"}).json()
        assert {r["id"] for r in text["results"]} == set(records.values())
        _png(client.post("/get_top_25_clip_similar", json={"text_query": "red ball"}, headers=ann))
        other = client.post("/get_top_25_clip_similar", json={"text_query": "red"}, headers=bob,
                            params={"format": "json"}).json()
        assert other["results"] == []

        assert client.get("/clear_all", headers=ann).json() == {"deleted": 3}
        assert client.post("/hello", json={"img_path": records["red.png"]}, headers=ann).status_code == 404
        assert client.get("/clear_all").status_code == 401
