"""Dataset correction over real HTTP: a job on Ray Data inside the Serve app, end to end."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest

from tests.synthetic.correction import make_digits_dataset

pytestmark = pytest.mark.integration


def _headers(client: httpx.Client, name: str) -> dict[str, str]:
    client.put("/v1/auth/register", params={"username": name, "password": "pw"})
    token = client.post("/v1/auth/token", data={"username": name, "password": "pw"}).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


async def _events(url: str, job_id: str, token: str) -> list[dict[str, Any]]:
    import websockets

    events: list[dict[str, Any]] = []
    ws_url = url.replace("http://", "ws://") + f"/correction/jobs/{job_id}/events?token={token}"
    async with websockets.connect(ws_url, open_timeout=30) as ws:
        async for message in ws:
            events.append(json.loads(message))
            if events[-1]["status"] in ("completed", "failed"):
                break
    return events


def test_correction_job_over_http(percept_app: Any) -> None:
    data = make_digits_dataset(percept_app.root / "data" / "digits", seed=5, per_class=30,
                               classes=[0, 1, 3, 6, 7], merge=(7, 1), n_blur=3, n_dark=2, n_bright=2)
    tasks = ["diagnose_mislabeled_images", "correct_class_splitting", "ic::diagnose::image_blur",
             "correct_lighting_conditions"]
    with percept_app.client(timeout=120) as client:
        ann, bob = _headers(client, "corr-ann"), _headers(client, "corr-bob")
        created = client.post("/correction/jobs", headers=ann,
                              json=data.request(tasks, batch_size=25, concurrency=2))
        assert created.status_code == 202, created.text
        job_id = created.json()["job_id"]
        events = asyncio.run(asyncio.wait_for(
            _events(percept_app.url, job_id, ann["Authorization"].split()[1]), timeout=140))
        assert events[-1]["status"] == "completed", events[-1]
        progress = [e["progress"] for e in events]
        # The websocket sends what the watcher sees at each poll: a 150-image job now runs in
        # well under a second, so the stages in between may fall between two polls (the
        # same watcher's intermediate events are checked on a slow task in test_platform.py).
        assert progress == sorted(progress) and len(progress) >= 2 and progress[-1] == 100
        status = client.get(f"/correction/jobs/{job_id}", headers=ann).json()
        assert status["status"] == "completed" and status["progress"] == 100
        result = client.get(f"/correction/jobs/{job_id}/result", headers=ann).json()
        by_name = {t["name"]: t for t in result["tasks"]}
        assert by_name["correct_class_splitting"]["outliers"] == ["1"]
        blurred = set(by_name["ic::diagnose::image_blur"]["outliers"])
        # A blurred 7 filed under the merged class 1 is judged against a two-headed class and
        # can be missed; the benchmark measures recall, here the finding must be sound.
        assert len(blurred & data.blurred) >= len(data.blurred) - 1 and len(blurred - data.blurred) <= 2
        fixed = set(by_name["correct_lighting_conditions"]["corrected"])
        assert fixed >= data.dark | data.bright and len(fixed) <= len(data.dark | data.bright) + 2
        found = set(by_name["diagnose_mislabeled_images"]["outliers"])
        assert len(found & data.flipped) >= 0.5 * len(data.flipped)
        entry = next(iter(next(iter(result["dataset"]["class_files"].values())).values()))
        assert len(entry["confidence_vectors"][0]) == 4 and "pca" in entry["projections"]
        report = client.get(f"/correction/jobs/{job_id}/report", headers=ann)
        assert report.status_code == 200 and "<img" in report.text
        assert client.get(f"/correction/jobs/{job_id}/result", headers=bob).status_code == 404
        meta = client.post("/correction/metadata", headers=ann, json={"path": next(iter(data.paths.values()))})
        assert meta.status_code == 200 and meta.json()["height"] == 32
        assert client.post("/correction/metadata", headers=ann, json={"path": "/etc/passwd"}).status_code == 403
        bad = client.post("/correction/jobs", headers=ann, json={"dataset": {}, "tasks": [{"name": "x"}]})
        assert bad.status_code == 400 and "detail" in bad.json()
        assert time.time() - status["created_at"] < 150
