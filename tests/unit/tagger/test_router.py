"""The routes through TestClient with fake models (no Ray): envelope, edge cases, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from percept.api.app import create_app
from percept.handles import TaggerHandles
from percept.tagger.media import FILE_TYPE_NOT_VALID, NOT_SUITABLE
from percept.testing import LocalHandle, make_services
from tests.synthetic.tagger import document, encode_image, make_video

from .conftest import FakeClassifier, FakeDetector, solid

ENVELOPE = {"status", "data", "error", "number_documents_treated", "number_documents_non_treated",
            "list_id_not_treated", "memory_used", "ram_used"}


def client_for(tmp_path: Path, detector: Any = None, **config: Any) -> TestClient:
    handles = TaggerHandles(tagger_classifier=LocalHandle(FakeClassifier()))
    if detector is not None:
        handles.tagger_detector = LocalHandle(detector)
    services = make_services(tmp_path, handles, services=["tagger"], service_config={"tagger": config})
    return TestClient(create_app(services))


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    return client_for(tmp_path, FakeDetector(), max_documents=4)


def red_png() -> bytes:
    return encode_image(solid((230, 10, 10)))


def test_probes(client: TestClient) -> None:
    assert client.get("/test").json() == {"test endpoint is": "OK"}
    assert client.get("/health-check").json() == {"message": "OK"}


def test_labels_envelope_and_echo(client: TestClient) -> None:
    doc = document(red_png(), "png", "doc-1")
    r = client.post("/process", json={"documents": [doc], "num_labels": "2"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == ENVELOPE
    assert body["status"] == {"code": 200, "message": "Success"}
    assert body["error"] == "" and body["number_documents_treated"] == 1
    assert body["number_documents_non_treated"] == 0 and body["list_id_not_treated"] == []
    assert float(body["ram_used"]) == pytest.approx(0.5) and body["memory_used"] == "0.00"
    entry = body["data"][0]
    assert entry["id"] == "doc-1" and entry["index"] == "test-doc"
    source = entry["source"]
    assert source["file_name"] == "file.png" and source["fs"]["uri"].endswith("file.png")
    assert source["embedded_depth"] == 0 and source["file_type"] == "png"
    assert [c["label"] for c in source["content"]] == ["fire engine", "other"]
    assert all(set(c) == {"label", "probability"} for c in source["content"])


def test_per_document_failures_are_listed(client: TestClient) -> None:
    docs = [
        document(red_png(), "png", "good"),
        document(b"%PDF-1.4", "pdf", "pdf"),
        document(b"not an image at all", "jpg", "broken"),
        {"id": "empty", "source": {"file_type": "png", "content": ""}},
    ]
    body = client.post("/process", json={"documents": docs}).json()
    assert body["number_documents_treated"] == 1 and body["number_documents_non_treated"] == 3
    assert body["list_id_not_treated"] == [
        {"pdf": FILE_TYPE_NOT_VALID}, {"broken": NOT_SUITABLE}, {"empty": NOT_SUITABLE}]
    assert [d["id"] for d in body["data"]] == ["good"]


def test_oversized_document(tmp_path: Path) -> None:
    client = client_for(tmp_path, max_document_mb=0.001)
    body = client.post("/process", json={"documents": [document(b"\0" * 5000, "png", "big")]}).json()
    assert list(body["list_id_not_treated"][0]) == ["big"]
    assert body["list_id_not_treated"][0]["big"].startswith("File too large")


@pytest.mark.parametrize(
    ("payload", "status", "needle"),
    [
        ({"documents": [], "num_labels": "many"}, 422, "num_labels"),
        ({"num_labels": 3}, 422, "documents"),
        ({"documents": [{"source": {}}]}, 422, "documents.0.id"),
        ({"documents": "x"}, 422, "documents"),
        ({"documents": [], "num_labels": 500}, 422, "at most"),
        ({"documents": [{"id": str(i)} for i in range(5)]}, 413, "Too many documents"),
    ],
)
def test_malformed_requests_answer_4xx_in_envelope(
    client: TestClient, payload: dict[str, Any], status: int, needle: str
) -> None:
    r = client.post("/process", json=payload)
    assert r.status_code == status
    body = r.json()
    assert set(body) == ENVELOPE and body["status"]["code"] == status
    assert needle in body["error"] and "Traceback" not in body["error"]


def test_invalid_json_and_wrong_method(client: TestClient) -> None:
    r = client.post("/process", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["status"]["code"] == 422 and r.json()["error"]
    r = client.get("/process")
    assert r.status_code == 405 and set(r.json()) == ENVELOPE


def test_empty_document_list(client: TestClient) -> None:
    body = client.post("/process", json={"documents": []}).json()
    assert body["status"]["code"] == 200 and body["data"] == [] and body["number_documents_treated"] == 0


def test_object_counts(client: TestClient) -> None:
    docs = [document(red_png(), "png", "img"), document(encode_image(solid((0, 0, 250))), "jpg", "blue")]
    body = client.post("/process", json={"documents": docs, "prompt": "<OD>"}).json()
    assert body["status"]["code"] == 200
    assert body["data"][0]["source"]["content"] == [{"car": 5}, {"person": 2}]  # 230 // 40 cars
    assert body["data"][1]["source"]["content"] == [{"person": 2}]
    assert len(body["data"][0]["source"]["detections"]) == 7
    assert float(body["ram_used"]) == pytest.approx(0.75)
    body = client.post("/process", json={"documents": docs[:1], "prompt": "<OD>",
                                         "detection_threshold": 0.85}).json()
    assert body["data"][0]["source"]["content"] == [{"car": 5}]


def test_video_counts_and_labels(client: TestClient) -> None:
    video = make_video([((250, 0, 0), 1.0), ((90, 0, 200), 1.0)], fps=10)
    doc = document(video, "mp4", "vid")
    body = client.post("/process", json={"documents": [doc], "prompt": "<OD>"}).json()
    assert body["data"][0]["source"]["content"] == [{"car": 6}, {"person": 2}]
    body = client.post("/process", json={"documents": [doc], "num_labels": 2}).json()
    source = body["data"][0]["source"]
    assert source["media_type"] == "video" and 1.8 <= source["duration"] <= 2.2
    labels = {c["label"]: c for c in source["content"]}
    assert set(labels) == {"fire engine", "lakeside"}
    assert min(labels["fire engine"]["timestamps"]) == 0.0
    assert min(labels["lakeside"]["timestamps"]) >= 0.9  # blue only after the cut at 1 s


def test_detection_unavailable_keeps_labels(tmp_path: Path) -> None:
    client = client_for(tmp_path, FakeDetector(available=False))
    doc = document(red_png(), "png", "d")
    r = client.post("/process", json={"documents": [doc], "prompt": "<OD>"})
    assert r.status_code == 503
    assert "object detection unavailable" in r.json()["error"] and set(r.json()) == ENVELOPE
    assert client.post("/process", json={"documents": [doc]}).json()["number_documents_treated"] == 1


def test_detector_not_deployed(tmp_path: Path) -> None:
    client = client_for(tmp_path)
    r = client.post("/process", json={"documents": [], "prompt": "<OD>"})
    assert r.status_code == 503 and "not running" in r.json()["error"]


def test_work_status_lists_recent_jobs(tmp_path: Path) -> None:
    client = client_for(tmp_path, FakeDetector(), max_jobs=2)
    for _ in range(3):
        client.post("/process", json={"documents": [document(red_png(), "png")]})
    client.post("/process", json={"documents": [], "prompt": "<OD>"})
    jobs = client.get("/work/status").json()
    assert len(jobs) == 2
    for uid, job in jobs.items():
        assert job["uid"] == uid and job["status"] == "finished"
    assert {j["type_job"] for j in jobs.values()} == {"tagging", "object_detection"}


def test_failed_job_is_recorded(tmp_path: Path) -> None:
    client = client_for(tmp_path, FakeDetector(available=False))
    client.post("/process", json={"documents": [], "prompt": "<OD>"})
    (job,) = client.get("/work/status").json().values()
    assert job["status"] == "failed" and "unavailable" in job["error"]


def test_odd_metadata_fails_only_its_document(client: TestClient) -> None:
    docs = [
        {"id": "num-type", "index": 3, "source": {"content": "aGVsbG8=", "file_type": 5, "embedded_depth": "x"}},
        {"id": "no-source"},
        {"id": "number-content", "source": {"content": 12345, "file_type": "png"}},
        document(red_png(), "png", "ok", file_name=None),
    ]
    body = client.post("/process", json={"documents": docs}).json()
    assert body["status"]["code"] == 200 and body["number_documents_treated"] == 1
    assert body["list_id_not_treated"] == [
        {"num-type": FILE_TYPE_NOT_VALID}, {"no-source": NOT_SUITABLE}, {"number-content": NOT_SUITABLE}]


class BackPressureError(Exception):
    """Stands for ray.serve.exceptions.BackPressureError (matched by name)."""


class OverloadedClassifier(FakeClassifier):
    def classify(self, image: Any, k: int) -> list[tuple[str, float]]:
        raise BackPressureError("queue full")


class BrokenClassifier(FakeClassifier):
    def classify(self, image: Any, k: int) -> list[tuple[str, float]]:
        raise RuntimeError("boom")


def test_overload_is_503_and_crashes_fail_only_the_document(tmp_path: Path) -> None:
    for classifier, status in ((OverloadedClassifier(), 503), (BrokenClassifier(), 200)):
        services = make_services(tmp_path / str(status), TaggerHandles(tagger_classifier=LocalHandle(classifier)),
                                 services=["tagger"])
        r = TestClient(create_app(services)).post("/process", json={"documents": [document(red_png(), "png", "x")]})
        assert r.status_code == status and set(r.json()) == ENVELOPE
        if status == 503:
            assert "overloaded" in r.json()["error"] and r.headers["retry-after"] == "1"
        else:
            assert r.json()["list_id_not_treated"] == [{"x": "Tagging failed (internal error)"}]
            assert "boom" not in r.text
