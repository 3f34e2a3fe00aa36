"""Reading assessment over real HTTP: real Whisper tiny.en, Tesseract, espeak-ng speech.

Light on purpose (two short clips): a substituted word and an added word must be reported
with the right ``found``/``expected`` and segment, and nothing else.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.synthetic.reading import espeak_available, render_page, speak_words

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed"),
]

# "boy" for "cat": unrelated and clearly said; the replaced-word evidence is ~30.7 nats against the
# default miscue_threshold 14 (the earlier "dog" scored 13.6: the fixture then decided where the
# default could sit).
SUBSTITUTED = ("my boy likes to play in the garden", "My cat likes to play in the garden.")
ADDED = ("the children are playing outside now", "The children are playing outside.")


def login(client: httpx.Client, name: str) -> dict[str, str]:
    assert client.put("/v1/auth/register", params={"username": name, "password": "pw"}).status_code == 200
    token = client.post("/v1/auth/token", data={"username": name, "password": "pw"}).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def upload_speech(client: httpx.Client, headers: dict[str, str], said: str) -> str:
    audio, _ = speak_words(said.split(), gap_ms=150)
    response = client.post("/v1/audio/upload", headers=headers,
                           files={"upload_file": ("reading.wav", audio.export(format="wav").read(), "audio/wav")})
    assert response.status_code == 200, response.text
    return str(response.json()["file_id"])


def finished(client: httpx.Client, headers: dict[str, str], task_ids: list[str], limit_s: float = 120) -> None:
    """Wait for the tasks one after the other (one status call a second: under the rate limit)."""
    deadline = time.monotonic() + limit_s
    for task_id in task_ids:
        while True:
            status = client.get("/v1/task/status", params={"task_id": task_id}, headers=headers).json()
            assert status["status"] != "failed", status
            if status["ready"]:
                break
            assert time.monotonic() < deadline, f"task {task_id} did not finish: {status}"
            time.sleep(1.0)


def errors_of(result: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["found"].lower(), e["expected"]) for e in result["errors"]]


def test_reading_assessment_over_http(percept_app: Any) -> None:
    with percept_app.client() as client:
        ann = login(client, "reader")
        models = client.get("/v1/audio/models", headers=ann).json()["models"]
        assert {"faster_whisper", "whisper"} <= {m["name"] for m in models}  # whisper: the original's name
        image_models = {m["name"] for m in client.get("/v1/image/models", headers=ann).json()["models"]}
        assert {"tesseract", "rapidocr", "eng_tesseract"} <= image_models

        sub_audio = upload_speech(client, ann, SUBSTITUTED[0])
        add_audio = upload_speech(client, ann, ADDED[0])
        page = client.post("/v1/image/upload", headers=ann,
                           files={"upload_file": ("page.png", render_page([SUBSTITUTED[1]]), "image/png")})
        image = page.json()["file_id"]
        downloaded = client.get("/v1/audio/download", params={"file": sub_audio}, headers=ann)
        assert downloaded.headers["content-type"] == "audio/mpeg"

        tasks = {
            "text_sub": client.post("/v1/comparison/audio/text/task", headers=ann, json={
                "audio_file": sub_audio, "audio_model": "faster_whisper", "text": [SUBSTITUTED[1]]}),
            "text_add": client.post("/v1/comparison/audio/text/task", headers=ann, json={
                "audio_file": add_audio, "audio_model": "faster_whisper", "text": ADDED[1].split(" ", 2)}),
            "image": client.post("/v1/comparison/audio/image/task", headers=ann, json={
                "audio_file": sub_audio, "image_file": image, "audio_model": "faster_whisper",
                "image_model": "tesseract"}),
        }
        ids = {name: r.json()["task_id"] for name, r in tasks.items()}
        finished(client, ann, list(ids.values()))

        sub = client.get("/v1/comparison/audio/text/result", params={"task_id": ids["text_sub"]}, headers=ann).json()
        assert errors_of(sub) == [("boy", "cat")]
        error = sub["errors"][0]
        segment = error["audio_segment"]
        assert segment["text"][error["at_char"]: error["at_char"] + 3].lower() == "boy"
        assert segment["start"] < 1.0 < segment["end"] and segment in [
            {k: s[k] for k in ("start", "end", "text", "file")} for s in sub["audio"]["segments"]]
        cat = sub["report"]["words"][1]
        assert (cat["word"], cat["status"], cat["spoken"].lower()) == ("cat", "substitution", "boy")
        assert 0.3 < cat["start"] < cat["end"] < 2.0  # "boy" is the second word, said around 0.9-1.4 s

        added = client.get("/v1/comparison/audio/text/result", params={"task_id": ids["text_add"]}, headers=ann).json()
        assert errors_of(added) == [("now", "")]
        assert [w["status"] for w in added["report"]["words"]][-1] == "insertion"

        page_result = client.get("/v1/comparison/audio/image/result", params={"task_id": ids["image"]},
                                 headers=ann).json()
        assert "garden" in page_result["image"]["text"].lower()
        assert errors_of(page_result) == [("boy", "cat")]
        view = client.get("/v1/comparison/audio/image/view", params={"task_id": ids["image"]}, headers=ann)
        assert view.status_code == 200 and view.headers["content-type"] == "image/png"

        stranger = login(client, "stranger")
        hidden = client.get("/v1/task/status", params={"task_id": ids["image"]}, headers=stranger).json()
        assert hidden["status"] == "results are not available" and hidden["ready"] is False
        assert client.get("/v1/audio/download", params={"file": sub_audio}, headers=stranger).status_code == 404
