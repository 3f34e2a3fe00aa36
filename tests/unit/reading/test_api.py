"""The /v1 reading routes through TestClient: real ReadingCore, fake speech/OCR models."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydub import AudioSegment
from pydub.generators import Sine

from percept.api.app import create_app
from percept.handles import ReadingHandles
from percept.plugins import PluginInfo
from percept.reading.core import ReadingCore
from percept.reading.files import ReadingFiles
from percept.reading.settings import ORIGINAL_MODEL_NAMES, ReadingSettings
from percept.reading.verdict import changes_between
from percept.reading.workflow import ReadingTools
from percept.services import Services
from percept.testing import LocalHandle, make_services
from tests.synthetic.reading import render_page

BOOK = [(" I", 0.1, 0.3), (" red", 0.4, 0.6), (" the", 0.7, 0.8), (" book", 0.9, 1.2)]


class FakeAsr:
    """Always hears " I red the book" (word times inside the piece)."""

    fail = False

    def process(self, key: str) -> dict[str, Any]:
        if self.fail:
            raise RuntimeError("the speech model broke")
        words = [{"word": w, "start": a, "end": b, "probability": 0.9} for w, a, b in BOOK]
        return {"text": "I red the book", "segments": [{"start": 0.0, "end": 1.3, "text": " I red the book",
                                                         "words": words}]}


class FakeOcr:
    def process(self, key: str) -> dict[str, Any]:
        boxes = []
        for n, word in enumerate(["I", "read", "the", "book."]):
            x = 10 + 60 * n
            corners = {"left_top": {"x": x, "y": 10}, "right_top": {"x": x + 50, "y": 10},
                       "right_bottom": {"x": x + 50, "y": 40}, "left_bottom": {"x": x, "y": 40}}
            boxes.append({"text": word, "coordinates": corners})
        return {"text": "I read the book.", "boxes": boxes}


class FakeAligner:
    """The audio supports every reference word except "read" (evidence well past the shipped
    operating point there, well below it elsewhere)."""

    def assess(self, key: str, reference: list[str], transcript: list[str], long_pause_s: float) -> dict[str, Any]:
        clear = ReadingSettings().miscue_threshold + 5.0
        candidates = [{**c, "llr": clear if reference[min(c["ref"], len(reference) - 1)] == "read" else -20.0,
                       "source": "transcript"} for c in changes_between(transcript, reference)]
        return {"base": [{"start": 0.1 * k, "end": 0.1 * k + 0.1, "logprob": -0.1} for k in range(len(reference))],
                "candidates": candidates, "prompted": "", "pauses": []}


def plugin(name: str, kind: str) -> PluginInfo:
    return PluginInfo(name=name, kind=kind, languages=["en"], description=f"fake {kind}", file="x.py",
                      class_name="X")  # type: ignore[arg-type]


def build(tmp_path: Path, **reading: Any) -> tuple[Services, FakeAsr]:
    config = {"max_audio_mb": 1, "max_image_mb": 1, **reading}
    asr = FakeAsr()
    services = make_services(tmp_path, services=["reading"], service_config={"reading": config},
                             plugins={"fake_asr": asr, "fake_ocr": FakeOcr()})
    services.reading.handles = ReadingHandles(
        reading=LocalHandle(ReadingTools(ReadingCore(services.blobs, ReadingSettings.model_validate(config)),
                                         LocalHandle(FakeAligner()), services.plugin_handle,
                                         ReadingFiles(services.state, services.blobs))),
    )
    services.plugins.update({"fake_asr": plugin("fake_asr", "audio"), "fake_ocr": plugin("fake_ocr", "image")})
    return services, asr


def login(client: TestClient, name: str) -> dict[str, str]:
    assert client.put("/v1/auth/register", params={"username": name, "password": "pw"}).status_code == 200
    token = client.post("/v1/auth/token", data={"username": name, "password": "pw"}).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def wav(ms: int = 1500) -> bytes:
    out = io.BytesIO()
    lead = AudioSegment.silent(duration=500)  # the recording's one segment starts at 0.45 s
    (lead + Sine(440).to_audio_segment(duration=ms).apply_gain(-6)).export(out, format="wav")
    return out.getvalue()


def upload(client: TestClient, headers: dict[str, str], kind: str, data: bytes, mime: str) -> Any:
    return client.post(f"/v1/{kind}/upload", headers=headers, files={"upload_file": (f"f.{mime.split('/')[1]}", data, mime)})


def wait(client: TestClient, headers: dict[str, str], task_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status = client.get("/v1/task/status", params={"task_id": task_id}, headers=headers).json()
        if status["status"] in ("finished", "failed"):
            return status  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} did not finish")


@pytest.fixture()
def app(tmp_path: Path) -> Iterator[tuple[TestClient, FakeAsr]]:
    services, asr = build(tmp_path)
    with TestClient(create_app(services)) as client:
        yield client, asr


def test_authentication_comes_before_validation(app: tuple[TestClient, FakeAsr]) -> None:
    client, _ = app
    for method, path in [("post", "/v1/audio/process/task"), ("post", "/v1/audio/upload"),
                         ("get", "/v1/task/status"), ("post", "/v1/comparison/audio/text/task")]:
        response = client.request(method, path, content=b"{not json")
        assert response.status_code == 401 and response.json() == {"detail": "Not authenticated"}
    bad = client.get("/v1/audio/models", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.json() == {"detail": "Could not validate credentials"}


def test_uploads_check_type_size_and_content(app: tuple[TestClient, FakeAsr]) -> None:
    client, _ = app
    ann = login(client, "ann")
    assert upload(client, ann, "audio", wav(), "image/png").json() == {"detail": "Only audio files uploads are allowed"}
    assert upload(client, ann, "image", b"x", "audio/wav").json() == {"detail": "Only image files uploads are allowed"}
    bad = upload(client, ann, "audio", b"not audio", "audio/wav")
    assert bad.status_code == 422 and bad.json() == {"detail": "Could not decode the audio file"}
    assert upload(client, ann, "image", b"not an image", "image/png").status_code == 422
    big = upload(client, ann, "audio", b"\0" * (2 * 2**20), "audio/wav")
    assert big.status_code == 413 and "File too large" in big.json()["detail"]
    missing = client.post("/v1/audio/upload", headers=ann, files={"other": ("a.wav", wav(), "audio/wav")})
    assert missing.status_code == 422


def test_upload_download_and_ownership(app: tuple[TestClient, FakeAsr]) -> None:
    client, _ = app
    ann, bob = login(client, "ann"), login(client, "bob")
    audio_id = upload(client, ann, "audio", wav(), "audio/wav").json()["file_id"]
    image_id = upload(client, ann, "image", render_page(["I read the book."]), "image/jpeg").json()["file_id"]
    got = client.get("/v1/audio/download", params={"file": audio_id}, headers=ann)
    assert got.status_code == 200 and got.headers["content-type"] == "audio/mpeg" and len(got.content) > 1000
    png = client.get("/v1/image/download", params={"file": image_id}, headers=ann)
    assert png.headers["content-type"] == "image/png" and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get("/v1/audio/download", params={"file": audio_id}, headers=bob).json() == {"detail": "File not found"}
    assert client.get("/v1/image/download", params={"file": audio_id}, headers=ann).status_code == 404
    assert client.get("/v1/audio/download", params={"file": "not-a-uuid"}, headers=ann).status_code == 422


def test_models_are_listed_by_kind(app: tuple[TestClient, FakeAsr]) -> None:
    client, _ = app
    ann = login(client, "ann")
    audio = client.get("/v1/audio/models", headers=ann).json()
    assert audio == {"models": [{"name": "fake_asr", "languages": ["en"], "description": "fake audio"}]}
    assert [m["name"] for m in client.get("/v1/image/models", headers=ann).json()["models"]] == ["fake_ocr"]


def test_task_creation_checks_model_then_file(app: tuple[TestClient, FakeAsr]) -> None:
    client, _ = app
    ann, bob = login(client, "ann"), login(client, "bob")
    unknown = "732b10bd-0006-4780-8f48-4319d2791290"
    body = {"audio_file": unknown, "audio_model": "nope"}
    assert client.post("/v1/audio/process/task", json=body, headers=ann).json() == {"detail": "No such audio model available"}
    body["audio_model"] = "fake_ocr"  # an image model is no audio model
    assert client.post("/v1/audio/process/task", json=body, headers=ann).json()["detail"] == "No such audio model available"
    body["audio_model"] = "fake_asr"
    assert client.post("/v1/audio/process/task", json=body, headers=ann).json() == {"detail": "No such audio file available"}
    audio_id = upload(client, ann, "audio", wav(), "audio/wav").json()["file_id"]
    body["audio_file"] = audio_id
    assert client.post("/v1/audio/process/task", json=body, headers=bob).json() == {"detail": "No such audio file available"}
    both = {"audio_file": unknown, "image_file": unknown, "audio_model": "nope", "image_model": "nope"}
    for fix, message in [(None, "No such image model available"), ("image_model", "No such audio model available"),
                         ("audio_model", "No such image file available")]:
        if fix:
            both[fix] = "fake_ocr" if fix == "image_model" else "fake_asr"
        answer = client.post("/v1/comparison/audio/image/task", json=both, headers=ann)
        assert answer.status_code == 404 and answer.json() == {"detail": message}
    invalid = client.post("/v1/audio/process/task", json={"audio_file": "x", "audio_model": "fake_asr"}, headers=ann)
    assert invalid.status_code == 422 and invalid.json()["detail"][0]["loc"] == ["body", "audio_file"]


def test_compare_with_text_end_to_end(app: tuple[TestClient, FakeAsr]) -> None:
    client, _ = app
    ann, bob = login(client, "ann"), login(client, "bob")
    audio_id = upload(client, ann, "audio", wav(), "audio/wav").json()["file_id"]
    body = {"audio_file": audio_id, "audio_model": "fake_asr", "text": ["I read", "the book."]}
    task_id = client.post("/v1/comparison/audio/text/task", json=body, headers=ann).json()["task_id"]
    assert wait(client, ann, task_id) == {"task_id": task_id, "status": "finished", "ready": True, "progress": 100.0}
    result = client.get("/v1/comparison/audio/text/result", params={"task_id": task_id}, headers=ann).json()
    assert [(e["at_char"], e["found"], e["expected"]) for e in result["errors"]] == [(3, "red", "read")]
    segment = result["errors"][0]["audio_segment"]
    assert segment["text"] == " I red the book" and segment == {k: result["audio"]["segments"][0][k]
                                                                 for k in ("start", "end", "text", "file")}
    assert client.get("/v1/audio/download", params={"file": segment["file"]}, headers=ann).status_code == 200
    words = result["report"]["words"]
    assert [(w["word"], w["status"]) for w in words] == [("i", "correct"), ("read", "substitution"),
                                                          ("the", "correct"), ("book", "correct")]
    assert result["report"]["summary"]["forced_scoring"] is True
    assert client.get("/v1/task/result", params={"task_id": task_id}, headers=ann).json() == result
    # Another user sees nothing; other result routes refuse the wrong kind.
    unknown = {"task_id": task_id, "status": "results are not available", "ready": False}
    assert client.get("/v1/task/status", params={"task_id": task_id}, headers=bob).json() == unknown
    not_ready = client.get("/v1/comparison/audio/text/result", params={"task_id": task_id}, headers=bob)
    assert not_ready.status_code == 406
    assert not_ready.json() == {"detail": "Results are not ready yet or no task with such id exist"}
    wrong = client.get("/v1/audio/process/result", params={"task_id": task_id}, headers=ann)
    assert wrong.status_code == 422 and wrong.json() == {"detail": "There is no such audio processing task"}
    gone = client.get("/v1/audio/extract/result", params={"task_id": audio_id}, headers=ann)
    assert gone.status_code == 406 and gone.json() == {"detail": "The job is non-existent or not done"}


def test_process_extract_and_failure(app: tuple[TestClient, FakeAsr]) -> None:
    client, asr = app
    ann = login(client, "ann")
    audio_id = upload(client, ann, "audio", wav(), "audio/wav").json()["file_id"]
    task = client.post("/v1/audio/process/task", json={"audio_file": audio_id, "audio_model": "fake_asr"},
                       headers=ann).json()["task_id"]
    wait(client, ann, task)
    processed = client.get("/v1/audio/process/result", params={"task_id": task}, headers=ann).json()
    assert processed["text"] == "I red the book" and len(processed["segments"]) == 1
    assert processed["segments"][0]["words"][1] == {"word": " red", "start": pytest.approx(0.85, abs=0.1),
                                                    "end": pytest.approx(1.05, abs=0.1), "probability": 0.9}
    body = {"audio_file": audio_id, "audio_model": "fake_asr", "phrases": ["the book", "an elephant", "", "red"]}
    task = client.post("/v1/audio/extract/task", json=body, headers=ann).json()["task_id"]
    wait(client, ann, task)
    data = client.get("/v1/audio/extract/result", params={"task_id": task}, headers=ann).json()["data"]
    assert [(d["phrase"], d["found"]) for d in data] == [("the book", True), ("an elephant", False), ("", False),
                                                         ("red", True)]
    assert data[0]["audio_segment"]["text"] == " I red the book" and data[1]["audio_segment"] is None
    asr.fail = True
    task = client.post("/v1/audio/process/task", json={"audio_file": audio_id, "audio_model": "fake_asr"},
                       headers=ann).json()["task_id"]
    status = wait(client, ann, task)
    assert status["status"] == "failed" and status["ready"] is False and "the speech model broke" in status["reason"]
    failed = client.get("/v1/audio/process/result", params={"task_id": task}, headers=ann)
    assert failed.status_code == 406


def test_compare_with_image_and_view(app: tuple[TestClient, FakeAsr]) -> None:
    client, _ = app
    ann = login(client, "ann")
    audio_id = upload(client, ann, "audio", wav(), "audio/wav").json()["file_id"]
    image_id = upload(client, ann, "image", render_page(["I read the book."]), "image/png").json()["file_id"]
    body = {"audio_file": audio_id, "image_file": image_id, "audio_model": "fake_asr", "image_model": "fake_ocr"}
    task = client.post("/v1/comparison/audio/image/task", json=body, headers=ann).json()["task_id"]
    assert wait(client, ann, task)["status"] == "finished"
    result = client.get("/v1/comparison/audio/image/result", params={"task_id": task}, headers=ann).json()
    assert result["image"]["text"] == "I read the book." and len(result["image"]["boxes"]) == 4
    assert [(e["found"], e["expected"]) for e in result["errors"]] == [("red", "read")]
    assert [w["box"] for w in result["report"]["words"]] == [0, 1, 2, 3]
    view = client.get("/v1/comparison/audio/image/view", params={"task_id": task}, headers=ann)
    assert view.status_code == 200 and view.content[:4] == b"\x89PNG"
    wrong = client.get("/v1/comparison/audio/text/result", params={"task_id": task}, headers=ann)
    assert wrong.json() == {"detail": "There is no such task consists of the both audio and text"}


def test_rate_limit_is_per_user(tmp_path: Path) -> None:
    services, _ = build(tmp_path, rate_limit_per_minute=10)  # the original's limit
    with TestClient(create_app(services)) as client:
        ann, bob = login(client, "ann"), login(client, "bob")
        codes = [client.get("/v1/audio/models", headers=ann).status_code for _ in range(11)]
        assert codes == [200] * 10 + [429]
        limited = client.get("/v1/audio/models", headers={**ann, "X-Forwarded-For": "1.2.3.4"})
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        assert client.get("/v1/audio/models", headers=bob).status_code == 200


def test_the_original_model_names_are_aliases(tmp_path: Path) -> None:
    assert ORIGINAL_MODEL_NAMES == {"whisper": "faster_whisper", "eng_tesseract": "tesseract"}
    assert ReadingSettings().plugin_name("whisper") == "faster_whisper"
    services, _ = build(tmp_path, model_aliases={"whisper": "fake_asr", "eng_tesseract": "fake_ocr"})
    with TestClient(create_app(services)) as client:
        ann = login(client, "ann")
        audio = client.get("/v1/audio/models", headers=ann).json()["models"]
        assert [(m["name"], m["description"]) for m in audio] == [("fake_asr", "fake audio"),
                                                                  ("whisper", "alias of fake_asr: fake audio")]
        image = client.get("/v1/image/models", headers=ann).json()["models"]
        assert [m["name"] for m in image] == ["fake_ocr", "eng_tesseract"]
        audio_id = upload(client, ann, "audio", wav(), "audio/wav").json()["file_id"]
        body = {"audio_file": audio_id, "audio_model": "whisper", "text": ["I read the book."]}
        task_id = client.post("/v1/comparison/audio/text/task", json=body, headers=ann).json()["task_id"]
        assert wait(client, ann, task_id)["status"] == "finished"
        result = client.get("/v1/comparison/audio/text/result", params={"task_id": task_id}, headers=ann).json()
        assert [(e["found"], e["expected"]) for e in result["errors"]] == [("red", "read")]
        wrong_kind = {"audio_file": audio_id, "audio_model": "eng_tesseract", "text": ["I read"]}
        answer = client.post("/v1/comparison/audio/text/task", json=wrong_kind, headers=ann)
        assert answer.status_code == 404 and answer.json() == {"detail": "No such audio model available"}


def test_an_upload_body_that_is_not_one_file_or_is_over_the_cap(app: tuple[TestClient, FakeAsr]) -> None:
    client, _ = app
    ann = login(client, "ann")
    two = [("upload_file", ("a.wav", wav(), "audio/wav")), ("upload_file", ("b.wav", wav(), "audio/wav"))]
    answer = client.post("/v1/audio/upload", headers=ann, files=two)
    assert answer.status_code == 422
    assert answer.json() == {"detail": "Send the file as multipart/form-data in the field upload_file"}
    garbage = client.post("/v1/audio/upload", content=b"garbage",
                          headers={**ann, "content-type": "multipart/form-data; boundary=zz"})
    assert garbage.status_code == 422

    def chunked() -> Any:  # no Content-Length: the body cap counts what arrives
        yield b"x" * (4 * 2**20)

    big = client.post("/v1/audio/upload", content=chunked(),
                      headers={**ann, "content-type": "multipart/form-data; boundary=zz"})
    assert big.status_code == 413 and "the limit of this route" in big.json()["detail"]
