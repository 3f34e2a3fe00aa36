"""The HTTP routes through TestClient, with the real deployment class run in-process."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from deployments.correction import CorrectionDeployment
from percept.api.app import create_app
from percept.correction.job import local_executor
from percept.handles import CorrectionHandles
from percept.testing import LocalHandle, make_services, user_headers
from tests.synthetic.correction import make_digits_dataset


@pytest.fixture()
def app_env(tmp_path: Path) -> Any:
    services = make_services(tmp_path)
    deployment = CorrectionDeployment.func_or_class(  # type: ignore[attr-defined]  # Serve's decorator
        services.args, executor=local_executor)
    services.correction.handles.correction = LocalHandle(deployment)
    data = make_digits_dataset(services.args.data_dir / "digits", seed=2, per_class=15, classes=[0, 1, 6],
                               merge=None, n_blur=1, n_dark=1, n_bright=1)
    with TestClient(create_app(services)) as client:
        yield client, data, services


def _wait(client: TestClient, job_id: str, headers: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = client.get(f"/correction/jobs/{job_id}", headers=headers).json()
        if body["status"] in ("completed", "failed"):
            return body
        time.sleep(0.2)
    raise AssertionError("job did not finish")


def test_job_lifecycle_and_ownership(app_env: Any) -> None:
    client, data, _ = app_env
    ann, bob = user_headers(client, "ann"), user_headers(client, "bob")
    request = data.request(["diagnose_lighting_conditions", "correct_image_blur", "diagnose_mislabeled_images"])
    created = client.post("/correction/jobs", json=request, headers=ann)
    assert created.status_code == 202, created.text
    job_id = created.json()["job_id"]
    early = client.get(f"/correction/jobs/{job_id}/result", headers=ann)
    assert early.status_code in (200, 409)
    status = _wait(client, job_id, ann)
    assert status["status"] == "completed", status
    result = client.get(f"/correction/jobs/{job_id}/result", headers=ann).json()
    assert [t["name"] for t in result["tasks"]][0] == "diagnose_lighting_conditions"
    assert set(result["tasks"][0]["outliers"]) == data.dark | data.bright
    report = client.get(f"/correction/jobs/{job_id}/report", headers=ann)
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    entry = next(e for files in result["dataset"]["class_files"].values() for e in files.values()
                 if e.get("corrected_path"))
    image = client.get(f"/correction/jobs/{job_id}/files/{entry['corrected_path']}", headers=ann)
    assert image.status_code == 200 and image.content[:4] == b"\x89PNG"
    assert client.get(f"/correction/jobs/{job_id}/files/../../state.db", headers=ann).status_code == 404
    for path in ("", "/result", "/report"):
        assert client.get(f"/correction/jobs/{job_id}{path}", headers=bob).status_code == 404
    assert [j["job_id"] for j in client.get("/correction/jobs", headers=ann).json()] == [job_id]
    assert client.get("/correction/jobs", headers=bob).json() == []
    token = ann["Authorization"].split()[1]
    with client.websocket_connect(f"/correction/jobs/{job_id}/events?token={token}") as ws:
        event = ws.receive_json()
    assert event["status"] == "completed" and event["event"] == "status"


def test_bad_requests(app_env: Any) -> None:
    client, data, services = app_env
    ann = user_headers(client, "ann")
    assert client.post("/correction/jobs", json=data.request(["diagnose_image_blur"])).status_code == 401
    assert client.post("/correction/jobs", json={"tasks": []}, headers=ann).status_code == 422
    bad = client.post("/correction/jobs", json={"dataset": {"class_files": {}}, "tasks": [{"name": "x"}]},
                      headers=ann)
    assert bad.status_code == 400 and "class_files" in bad.json()["detail"]
    escape = {"dataset": {"class_files": {"a": {"/etc/passwd": {}}}}, "tasks": [{"name": "diagnose_image_blur"}]}
    assert client.post("/correction/jobs", json=escape, headers=ann).status_code == 403
    sneaky = {"dataset": {"class_files": {"a": {str(services.args.data_dir / ".." / ".." / "x.png"): {}}}},
              "tasks": [{"name": "diagnose_image_blur"}]}
    assert client.post("/correction/jobs", json=sneaky, headers=ann).status_code == 403
    assert client.get("/correction/jobs/nope", headers=ann).status_code == 404
    meta = client.post("/correction/metadata", json={"path": next(iter(data.paths.values()))}, headers=ann)
    assert meta.status_code == 200 and meta.json()["channels"] == 3
    assert client.post("/correction/metadata", json={"path": "/etc/passwd"}, headers=ann).status_code == 403
    missing = client.post("/correction/metadata", json={"path": str(services.args.data_dir / "no.png")}, headers=ann)
    assert missing.status_code == 404 and "detail" in missing.json()
    with pytest.raises(WebSocketDisconnect):
        with client.websocket_connect("/correction/jobs/x/events?token=bad") as ws:
            ws.receive_json()


class _Exploding:
    """A correction deployment whose job dies half way (e.g. a lost Ray Data actor)."""

    def run_job(self, job_id: str, owner: str, request: dict[str, Any], reporter: Any) -> dict[str, Any]:
        reporter(30.0, "measured some images")
        raise RuntimeError("actor died")


def test_failed_job_fails_cleanly(tmp_path: Path) -> None:
    services = make_services(tmp_path, CorrectionHandles(correction=LocalHandle(_Exploding())))
    data = make_digits_dataset(services.args.data_dir / "d", seed=0, per_class=3, classes=[0, 1], merge=None,
                               n_blur=0, n_dark=0, n_bright=0, flip_fraction=0)
    with TestClient(create_app(services)) as client:
        ann = user_headers(client, "ann")
        job_id = client.post("/correction/jobs", json=data.request(["diagnose_image_blur"]), headers=ann).json()["job_id"]
        status = _wait(client, job_id, ann)
        assert status["status"] == "failed" and "actor died" in status["error"]
        result = client.get(f"/correction/jobs/{job_id}/result", headers=ann)
        assert result.status_code == 409 and "failed" in result.json()["detail"]
