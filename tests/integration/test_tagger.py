"""The tagger over real HTTP against the Serve application (``PERCEPT_TEST_SERVICES=tagger``)."""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

import httpx
import pytest
from skimage import data

from deployments.base import BatchKnobs
from percept.testing import AppUnderTest, serve_config_args
from tests.synthetic.tagger import document, encode_image, make_video, tiny_yolos

pytestmark = pytest.mark.integration
CAT_LABELS = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}
ENVELOPE = {"status", "data", "error", "number_documents_treated", "number_documents_non_treated",
            "list_id_not_treated", "memory_used", "ram_used"}


def test_probes_and_openapi(percept_app: AppUnderTest) -> None:
    with percept_app.client() as client:
        assert client.get("/test").json() == {"test endpoint is": "OK"}
        assert client.get("/health-check").json() == {"message": "OK"}
        assert "/process" in client.get("/openapi.json").json()["paths"]


def test_images_are_tagged(percept_app: AppUnderTest) -> None:
    docs = [
        document(encode_image(data.chelsea(), "JPEG"), "jpeg", "cat"),
        document(encode_image(data.coffee()), "png", "coffee"),
        document(b"%PDF-1.4 nope", "pdf", "pdf"),
    ]
    with percept_app.client() as client:
        r = client.post("/process", json={"documents": docs, "num_labels": "3"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == ENVELOPE and body["status"] == {"code": 200, "message": "Success"}
    assert body["number_documents_treated"] == 2 and body["list_id_not_treated"] == [{"pdf": "File type not valid"}]
    cat, coffee = body["data"]
    assert cat["id"] == "cat" and cat["source"]["content"][0]["label"] in CAT_LABELS
    assert len(cat["source"]["content"]) == 3 and cat["source"]["file_name"] == "file.jpeg"
    assert coffee["source"]["content"][0]["label"] in {"espresso", "cup", "coffee mug"}
    assert float(body["ram_used"]) > 0.1


def test_video_labels_timestamps_and_batching(percept_app: AppUnderTest) -> None:
    video = make_video([(data.chelsea(), 2.0), (data.coffee(), 2.0)], fps=8, size=(224, 160))
    with percept_app.client() as client:
        r = client.post("/process", json={"documents": [document(video, "mp4", "clip")], "num_labels": 8})
        models = client.get("/platform/models").json()["models"]
    assert r.status_code == 200, r.text
    source = r.json()["data"][0]["source"]
    assert source["media_type"] == "video" and 3.5 <= source["duration"] <= 4.5
    content = {c["label"]: c for c in source["content"]}
    cats = [t for label in CAT_LABELS & set(content) for t in content[label]["timestamps"]]
    assert cats and max(cats) < 2.0
    assert min(content["espresso"]["timestamps"]) >= 1.9
    # Batching as serve_config.yaml sets it for the classifier's device (CPU: off, one pass per
    # frame, docs/performance.md finding 31; CUDA: on): with @serve.batch the frames went in batches.
    classifier = models["tagger_classifier"]
    knobs = BatchKnobs.model_validate(serve_config_args()["deployments"]["tagger_classifier"]["user_config"])
    assert classifier["batching"] is knobs.for_device(classifier["device"]).batching
    if classifier["batching"]:
        assert classifier["largest_batch"] >= 2
    else:
        assert classifier["batches"] == 0


def test_concurrent_requests(percept_app: AppUnderTest) -> None:
    doc = document(encode_image(data.chelsea(), "JPEG"), "jpg", "cat")

    def one(_: int) -> httpx.Response:
        with percept_app.client() as client:
            return client.post("/process", json={"documents": [doc], "num_labels": 1})

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, range(8)))
    assert all(a.status_code == 200 for a in answers)
    assert {a.json()["data"][0]["source"]["content"][0]["label"] for a in answers} <= CAT_LABELS


def test_malformed_requests_are_4xx_envelopes(percept_app: AppUnderTest) -> None:
    with percept_app.client() as client:
        for payload in ({"documents": [], "num_labels": "lots"}, {"nothing": 1}, {"documents": [{"source": {}}]}):
            r = client.post("/process", json=payload)
            assert r.status_code == 422 and set(r.json()) == ENVELOPE
            assert r.json()["status"]["code"] == 422 and r.json()["error"].startswith("Malformed request")
        r = client.post("/process", content=b"garbage", headers={"content-type": "application/json"})
        assert r.status_code == 422 and "Traceback" not in r.text
        body = client.post("/process", json={"documents": [document(b"junk", "mp4", "v")]}).json()
        assert body["list_id_not_treated"] == [{"v": "No Image/Video suitable for tagging analysis"}]


def test_object_counts_once_a_detector_is_saved(percept_app: AppUnderTest) -> None:
    doc = document(encode_image(data.astronaut()), "png", "astro")
    clip = document(make_video([(data.astronaut(), 1.0), (data.coffee(), 1.0)], fps=8), "avi", "clip")
    request = {"documents": [doc, clip], "prompt": "<OD>", "detection_threshold": 0}
    with percept_app.client() as client:
        r = client.post("/process", json=request)
        assert r.status_code == 503 and "object detection unavailable" in r.json()["error"]
        assert client.post("/process", json={"documents": [doc]}).status_code == 200  # labels keep working

        tiny_yolos(percept_app.root / "models" / "tagger-detector")
        deadline = time.monotonic() + 90
        while (r := client.post("/process", json=request)).status_code == 503 and time.monotonic() < deadline:
            time.sleep(2)
        assert r.status_code == 200, r.text
        counts = r.json()["data"][0]["source"]["content"]
        assert sum(n for c in counts for n in c.values()) == 5  # every detection token at threshold 0
        assert {next(iter(c)) for c in counts} <= {"car", "person"}
        video = r.json()["data"][1]["source"]
        assert len(video["detections"]) == 8 and all(len(f["detections"]) == 5 for f in video["detections"])
        assert 5 <= sum(n for c in video["content"] for n in c.values()) <= 10  # most per frame, per label
        jobs = client.get("/work/status").json()
    assert any(j["type_job"] == "object_detection" and j["status"] == "failed" for j in jobs.values())
    assert any(j["type_job"] == "object_detection" and j["status"] == "finished" for j in jobs.values())


def test_bulk_tagging_on_ray_data(percept_app: AppUnderTest, tmp_path: Path) -> None:
    from pipelines.tagger_bulk import tag_directory

    (tmp_path / "sub").mkdir()
    (tmp_path / "cat.jpg").write_bytes(encode_image(data.chelsea(), "JPEG"))
    (tmp_path / "sub" / "coffee.png").write_bytes(encode_image(data.coffee()))
    (tmp_path / "notes.txt").write_text("not an image")
    rows = tag_directory(tmp_path, percept_app.root / "models", k=2, batch_size=2, num_cpus=0.1)
    assert [Path(r["path"]).name for r in rows] == ["cat.jpg", "coffee.png"]
    assert rows[0]["labels"][0]["label"] in CAT_LABELS and len(rows[0]["labels"]) == 2
    assert rows[1]["labels"][0]["label"] in {"espresso", "cup", "coffee mug"}
