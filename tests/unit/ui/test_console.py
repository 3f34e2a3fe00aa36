"""The console's router: pages and modules served, offline docs, dataset folders, search images."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from percept.api import ui
from percept.api.app import create_app
from percept.testing import make_services

SERVICES = ["inspection", "tagger", "correction"]  # the console's helpers need no model


def console_app(tmp_path: Path, **service_config: Any) -> tuple[FastAPI, TestClient]:
    extra = {"service_config": service_config} if service_config else {}
    app = create_app(make_services(tmp_path, services=SERVICES, **extra))
    return app, TestClient(app)  # the factory installs the console


def signed_in(client: TestClient, name: str = "ann") -> dict[str, str]:
    client.put("/v1/auth/register", params={"username": name, "password": "pw"})
    token = client.post("/v1/auth/token", data={"username": name, "password": "pw"}).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def test_console_page_and_every_module_it_imports_are_served(tmp_path: Path) -> None:
    _, client = console_app(tmp_path)
    first = client.get("/ui", follow_redirects=False)
    assert first.status_code == 307 and first.headers["location"] == "/ui/"
    page = client.get("/ui/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert '<script type="module" src="/ui/static/js/main.js">' in page.text
    assert 'name="viewport"' in page.text  # phones
    # every module reachable from main.js (static and dynamic imports) answers 200
    todo, seen = ["/ui/static/js/main.js"], set()
    while todo:
        url = todo.pop()
        if url in seen:
            continue
        seen.add(url)
        resp = client.get(url)
        assert resp.status_code == 200, url
        assert "javascript" in resp.headers["content-type"], url
        for rel in re.findall(r"""(?:from|import\()\s*["'](\.{1,2}/[^"']+)["']""", resp.text):
            todo.append(str(Path(url).parent.joinpath(rel)).replace("\\", "/"))
    names = {Path(u).name for u in seen}
    assert {"reading.js", "inspection.js", "correction.js", "search.js", "tagger.js", "status.js", "signin.js"} <= names
    assert client.get("/ui/static/console.css").status_code == 200
    assert client.get("/ui/static/nope.js").status_code == 404


def test_docs_and_redoc_load_their_assets_from_the_app(tmp_path: Path) -> None:
    _, client = console_app(tmp_path)
    for path, asset in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        html = client.get(path).text
        assert f"/ui/docs-assets/{asset}" in html
        assert "cdn.jsdelivr" not in html and "fonts.googleapis" not in html
        js = client.get(f"/ui/docs-assets/{asset}")
        assert js.status_code == 200 and len(js.content) > 100_000
    assert client.get("/ui/docs-assets/swagger-ui.css").status_code == 200
    assert client.get("/docs/oauth2-redirect").status_code == 200
    assert client.get("/openapi.json").json()["info"]["title"] == "Percept"


def test_config_names_the_services_and_the_dashboard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, client = console_app(tmp_path)
    config = client.get("/ui/api/config").json()
    assert config["services"] == SERVICES
    assert config["dashboard_url"] == "http://testserver:8265"
    monkeypatch.setenv(ui.DASHBOARD_ENV, "https://ray.example.com/")
    assert client.get("/ui/api/config").json()["dashboard_url"] == "https://ray.example.com/"


def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8)).save(path)


def test_dataset_folder_becomes_the_spec_request(tmp_path: Path) -> None:
    app, client = console_app(tmp_path)
    headers = signed_in(client)
    data_dir = Path(app.state.services.args.data_dir)
    folder = data_dir / "datasets" / "toys"
    for cls in ("cat", "dog"):
        for i in range(3):
            _png(folder / cls / f"img{i}.png", 40 * i)
    (folder / "cat" / "notes.txt").write_text("not an image")
    (folder / "empty").mkdir()

    assert client.post("/ui/api/correction/folder", json={"path": str(folder)}).status_code == 401
    answer = client.post("/ui/api/correction/folder", json={"path": str(folder)}, headers=headers).json()
    assert answer["classes"] == ["cat", "dog"] and answer["images"] == 6
    assert answer["class_files"]["cat"][str(folder / "cat" / "img0.png")] == {"uuid": "cat-img0"}
    roots = client.get("/ui/api/correction/roots", headers=headers).json()
    assert str(folder) in roots["folders"] and roots["allowed_roots"] == [str(data_dir)]

    # the request it builds is one the correction route accepts as far as the edge checks go
    from percept.correction.request import parse_request

    parsed = parse_request({"dataset": answer, "tasks": [{"name": "diagnose_mislabeled_images"}]})
    assert len({i.uuid for i in parsed.items}) == 6

    outside = tmp_path / "elsewhere"
    _png(outside / "a" / "x.png", 1)
    refused = client.post("/ui/api/correction/folder", json={"path": str(outside)}, headers=headers)
    assert refused.status_code == 403 and "outside" in refused.json()["detail"]
    sneaky = client.post("/ui/api/correction/folder", json={"path": f"{data_dir}/../elsewhere"}, headers=headers)
    assert sneaky.status_code == 403
    missing = client.post("/ui/api/correction/folder", json={"path": str(data_dir / "nope")}, headers=headers)
    assert missing.status_code == 404
    empty = client.post("/ui/api/correction/folder", json={"path": str(folder / "empty")}, headers=headers)
    assert empty.status_code == 422 and "No class folders" in empty.json()["detail"]


def test_original_and_search_images_are_the_callers_own(tmp_path: Path) -> None:
    app, client = console_app(tmp_path)
    ann, bob = signed_in(client, "ann"), signed_in(client, "bob")
    services = app.state.services
    from percept.search.catalog import ImageCatalog

    catalog = ImageCatalog(services.state, services.blobs)
    from io import BytesIO

    buf = BytesIO()
    Image.fromarray(np.full((8, 8, 3), 200, dtype=np.uint8)).save(buf, format="PNG")
    doc, _ = catalog.add("user:ann", buf.getvalue(), source_url="http://x/a.png", page_url="http://x/")
    got = client.get(f"/ui/api/search/images/{doc['id']}", headers=ann)
    assert got.status_code == 200 and got.headers["content-type"] == "image/png"
    assert got.content == buf.getvalue()
    assert client.get(f"/ui/api/search/images/{doc['id']}", headers=bob).status_code == 404
    assert client.get(f"/ui/api/search/images/{doc['id']}").status_code == 401
    assert client.get("/ui/api/correction/jobs/nope/original/x", headers=ann).status_code == 404


def test_a_dataset_folder_uploaded_from_the_browser_lands_inside_the_data_dir(tmp_path: Path) -> None:
    app, client = console_app(tmp_path)
    headers = signed_in(client)
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 90, dtype=np.uint8)).save(buf, format="PNG")
    png = buf.getvalue()
    files = [("files", ("pets/cat/a.png", png, "image/png")), ("files", ("pets/dog/b.png", png, "image/png")),
             ("files", ("pets/readme.txt", b"x", "text/plain")),  # not <class>/<image>: skipped
             ("files", ("../../../evil/c.png", png, "image/png"))]  # cannot climb out of the upload
    answer = client.post("/ui/api/correction/datasets", data={"name": "pets"}, files=files, headers=headers)
    assert answer.status_code == 200, answer.text
    folder = Path(answer.json()["path"])
    data_dir = Path(app.state.services.args.data_dir)
    assert folder == data_dir / "uploads" / "user_ann" / "pets" and answer.json()["images"] == 3
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png")) == ["cat/a.png", "dog/b.png",
                                                                                      "evil/c.png"]
    scanned = client.post("/ui/api/correction/folder", json={"path": str(folder)}, headers=headers).json()
    assert scanned["classes"] == ["cat", "dog", "evil"]
    empty = client.post("/ui/api/correction/datasets", data={"name": "x"},
                        files=[("files", ("x/notes.txt", b"x", "text/plain"))], headers=headers)
    assert empty.status_code == 422 and "class folders" in empty.json()["detail"]
    assert client.post("/ui/api/correction/datasets", files=files).status_code == 401


def test_a_bad_dataset_upload_is_a_clear_4xx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, client = console_app(tmp_path)
    headers = signed_in(client)
    url = "/ui/api/correction/datasets"
    image = ("files", ("pets/cat/a.png", b"\x89PNG", "image/png"))

    def refused(resp: object, status: int, words: str) -> None:
        assert resp.status_code == status, resp.text  # type: ignore[attr-defined]
        assert words in resp.json()["detail"]  # type: ignore[attr-defined]

    refused(client.post(url, json={"files": []}, headers=headers), 422, "class folders")  # not a form
    refused(client.post(url, content=b"x", headers={**headers, "content-type": "multipart/form-data"}),
            400, "boundary")
    refused(client.post(url, data={f"f{i}": "x" for i in range(6)}, files=[image], headers=headers),
            400, "Too many fields")
    monkeypatch.setattr(ui, "MAX_UPLOAD_FILES", 2)
    refused(client.post(url, files=[image] * 3, headers=headers), 400, "Too many files")
    big = [("files", ("pets/cat/big.png", b"x" * (5 * 2**20), "image/png"))]
    # a folder of several MB is taken (the console's cap is service_config.correction.max_upload_mb) ...
    taken = client.post(url, files=big, headers=headers)
    assert taken.status_code == 200 and taken.json()["images"] == 1, taken.text
    # ... and one past that cap is refused before it is read
    _, capped = console_app(tmp_path / "capped", correction={"max_upload_mb": 1})
    refused(capped.post(url, files=big, headers=signed_in(capped)), 413, "larger than")
    # uploads are off when the data directory is not one of the allowed roots
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    app = create_app(make_services(tmp_path / "other", services=SERVICES,
                                   service_config={"correction": {"allowed_roots": [str(outside)]}}))
    other = TestClient(app)
    refused(other.post(url, files=[image], headers=signed_in(other)), 403, "Uploads are off")
