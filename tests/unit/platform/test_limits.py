"""Limits at the edge: body caps per route (before the body is read), JSON depth, file names."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from percept.api.app import create_app
from percept.api.limits import BodyLimitMiddleware, check_filename
from percept.handles import TaggerHandles
from percept.inspection.license import issue_license
from percept.testing import LocalHandle, make_services, user_headers
from tests.synthetic.tagger import document, encode_image
from tests.unit.tagger.conftest import FakeClassifier, solid

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture
def app_client(tmp_path: Path) -> TestClient:
    handles = TaggerHandles(tagger_classifier=LocalHandle(FakeClassifier()))
    services = make_services(tmp_path, handles, service_config={"tagger": {"max_document_mb": 0.05}},
                             request_limits={"routes": {"/process": 0.5}})
    return TestClient(create_app(services))


def test_json_nested_100000_deep_is_a_4xx_on_every_json_route(app_client: TestClient) -> None:
    ann = user_headers(app_client)
    json_headers = {**ann, "Content-Type": "application/json"}
    for path in ("/v1/comparison/audio/text/task", "/process", "/correction/jobs", "/hello", "/merge_imgs"):
        r = app_client.post(path, content=DEEP, headers=json_headers)
        assert 400 <= r.status_code < 500, (path, r.status_code, r.text[:200])
    r = app_client.post("/process", content=DEEP, headers=json_headers)
    assert r.json()["status"]["code"] == r.status_code == 400 and r.json()["error"]  # the Detect envelope


def test_tagger_one_oversized_document_is_reported_and_an_oversized_request_is_413(app_client: TestClient) -> None:
    small = encode_image(solid((200, 20, 20)))
    big = encode_image((__import__("numpy").random.default_rng(0).integers(0, 255, (200, 200, 3))).astype("uint8"))
    assert 0.05 * 2**20 < len(big) < 0.3 * 2**20
    r = app_client.post("/process", json={"documents": [document(small, "png", "ok"), document(big, "png", "big")]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["number_documents_treated"] == 1
    assert body["list_id_not_treated"][0]["big"].startswith("File too large")
    huge = {"documents": [document(big, "png", f"d{i}") for i in range(4)]}  # > 0.5 MB request
    r = app_client.post("/process", json=huge)
    assert r.status_code == 413 and r.json()["status"]["code"] == 413 and "limit of this route" in r.json()["error"]


def test_the_cap_holds_without_a_content_length(app_client: TestClient) -> None:
    ann = user_headers(app_client)

    def chunks() -> Any:
        for _ in range(40):
            yield b" " * 65536  # 2.5 MB of JSON whitespace, streamed (chunked)

    r = app_client.post("/hello", content=chunks(), headers={**ann, "Content-Type": "application/json"})
    assert r.status_code == 413 and "limit of this route" in r.json()["detail"]


def test_a_declared_oversized_body_is_refused_before_it_is_read(app_client: TestClient) -> None:
    ann = user_headers(app_client)
    sent: list[int] = []

    def body() -> Any:
        for _ in range(3):
            sent.append(1)
            yield b"x" * 10

    r = app_client.post("/v1/auth/token", content=body(),
                        headers={"Content-Length": str(50 * 2**20), "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413
    r = app_client.post("/hello", json={"img_path": "x" * (2 * 2**20)}, headers=ann)
    assert r.status_code == 413


def test_the_body_cap_answers_before_reading_a_declared_oversized_body() -> None:
    reached: list[str] = []
    sent: list[Any] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        reached.append("app")

    async def receive() -> dict[str, Any]:
        reached.append("receive")
        return {"type": "http.request", "body": b"x", "more_body": True}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/hello", "root_path": "", "query_string": b"",
             "headers": [(b"content-length", str(50 * 2**20).encode())], "app": FastAPI()}
    asyncio.run(BodyLimitMiddleware(inner, {}, default_mb=1.0)(scope, receive, send))
    assert reached == []  # neither the body nor the app was touched
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 413
    assert b"larger than 1.0 MB" in sent[1]["body"]


def test_upload_routes_keep_their_own_finer_limits(app_client: TestClient) -> None:
    ann = user_headers(app_client)
    # 3 MB of audio: above the 1 MB default, below the reading upload's own cap: the service answers.
    r = app_client.post("/v1/audio/upload", headers=ann,
                        files={"upload_file": ("a.wav", b"RIFF" + b"\0" * (3 * 2**20), "audio/wav")})
    assert r.status_code != 413


def test_inspection_upload_refuses_a_path_as_file_name(tmp_path: Path) -> None:
    services = make_services(tmp_path, services=["inspection"])
    client_id, secret = services.clients.create("factory")
    with TestClient(create_app(services)) as http:
        token = http.post("/api/auth/token", json={"client_id": client_id, "client_secret": secret})
        assert token.status_code == 200, token.text
        headers = {"Authorization": f"Bearer {token.json()['data']['access_token']}"}
        lic = issue_license(services.state, client_id)
        assert http.post("/api/v1/license", headers=headers, files={"license": ("l.key", lic.encode())}).status_code == 200
        png = io.BytesIO()
        Image.new("RGB", (32, 32), (90, 90, 90)).save(png, "PNG")
        r = http.post("/api/v1/upload", headers=headers, data={"training": "true", "good": "true"},
                      files={"files[0]": ("../../etc/evil.png", png.getvalue(), "image/png")})
        assert r.status_code == 400, r.text
        error = r.json()["errors"]
        assert error["title"] == "Invalid Request" and error["status"] == 400 and "file name" in error["detail"]
        ok = http.post("/api/v1/upload", headers=headers, data={"training": "true", "good": "true"},
                       files={"files[0]": ("good.png", png.getvalue(), "image/png")})
        assert ok.status_code == 200, ok.text


@pytest.mark.parametrize(("name", "ok"), [
    ("photo.png", True), ("写真 1.png", True), (None, True), ("../../etc/evil.png", False), ("a/b.png", False),
    ("..\\evil.png", False), ("..", False), ("bad\x00.png", False), ("x" * 300, False),
])
def test_file_names(name: str | None, ok: bool) -> None:
    assert (check_filename(name) is None) is ok


def _png() -> bytes:
    png = io.BytesIO()
    Image.new("RGB", (32, 32), (90, 90, 90)).save(png, "PNG")
    return png.getvalue()


EVIL = "../../etc/evil.png"


@pytest.mark.parametrize(("path", "field", "ctype"), [
    ("/v1/image/upload", "upload_file", "image/png"),
    ("/v1/audio/upload", "upload_file", "audio/wav"),
    ("/find_all_complementary", "image", "image/png"),
    ("/find_all_similar_by_lab", "image", "image/png"),
    ("/get_top_24_resnet_similar", "image", "image/png"),
])
def test_every_upload_route_refuses_a_path_as_file_name(app_client: TestClient, path: str, field: str,
                                                         ctype: str) -> None:
    ann = user_headers(app_client)
    r = app_client.post(path, headers=ann, files={field: (EVIL, _png(), ctype)})
    assert r.status_code == 400, r.text
    assert "file name" in r.json()["detail"]


def test_the_inspection_license_upload_refuses_a_path_as_file_name(tmp_path: Path) -> None:
    services = make_services(tmp_path, services=["inspection"])
    client_id, secret = services.clients.create("factory")
    with TestClient(create_app(services)) as http:
        token = http.post("/api/auth/token", json={"client_id": client_id, "client_secret": secret})
        headers = {"Authorization": f"Bearer {token.json()['data']['access_token']}"}
        lic = issue_license(services.state, client_id)
        r = http.post("/api/v1/license", headers=headers, files={"license": ("../l.key", lic.encode())})
        assert r.status_code == 400, r.text
        error = r.json()["errors"]
        assert error["title"] == "Invalid Request" and "file name" in error["detail"]
        assert http.post("/api/v1/license", headers=headers, files={"license": ("l.key", lic.encode())}).status_code == 200


def test_the_upload_routes_are_all_covered(app_client: TestClient) -> None:
    """Every route that takes a file (an UploadFile parameter or ``request.form()``) is checked
    above, by the inspection upload's test, or named here with its reason."""
    import inspect

    from percept.api.openapi import api_routes

    takes_files = set()
    for path, route in api_routes(getattr(app_client.app, "routes", [])):
        source = inspect.getsource(route.endpoint)
        if "request.form(" in source or "UploadFile" in source:
            takes_files.add(path)
    covered = {"/v1/image/upload", "/v1/audio/upload", "/find_all_complementary", "/find_all_similar_by_lab",
               "/get_top_24_resnet_similar", "/api/v1/upload", "/api/v1/license"}
    # The console's dataset upload takes <class>/<image> relative names by design (a browser
    # folder pick) and keeps only their last two segments, each sanitised (percept.api.ui).
    by_design = {"/ui/api/correction/datasets"}
    assert takes_files == covered | by_design


def test_a_body_cap_refusal_carries_the_request_id(app_client: TestClient) -> None:
    r = app_client.post("/hello", content=b" " * (2 * 2**20), headers={"X-Request-ID": "rid-413",
                                                                      "Content-Type": "application/json"})
    assert r.status_code == 413 and r.headers["X-Request-ID"] == "rid-413"
