"""One hop per step: a request of each service calls each deployment behind the ingress once.

Every deployment is a recording fake behind ``LocalHandle``; the tests count the calls the
ingress makes while serving one request (what the deployments call among themselves is
their own business: the search index calls the embedder, the reading tools the plugins).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from percept.api.app import create_app
from percept.handles import CorrectionHandles, InspectionHandles, ReadingHandles, SearchHandles
from percept.plugins import PluginInfo
from percept.reading.files import ReadingFiles
from percept.schemas.correction import CorrectionJobSummary
from percept.schemas.search import SearchResponse
from percept.services import Services
from percept.testing import LocalHandle, make_services, user_headers


class Recorder:
    """A deployment that answers every method with ``answers[method]`` and records the calls."""

    def __init__(self, **answers: Any) -> None:
        self.answers = answers
        self.calls: list[str] = []

    def __getattr__(self, method: str) -> Any:
        if method.startswith("_") or method not in self.answers:
            raise AttributeError(method)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(method)
            answer = self.answers[method]
            return answer(*args) if callable(answer) else answer

        return call


def _finished(services: Services, task_id: str) -> Any:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        record = services.tasks.get(task_id)
        if record is not None and record.status.done:
            return record
        time.sleep(0.05)
    raise AssertionError("the task did not end")


def test_a_search_is_one_call_to_the_index(tmp_path: Path) -> None:
    found = SearchResponse(query={"metric": "mean CIEDE2000"}, results=[])
    index = Recorder(find=found)
    services = make_services(tmp_path, SearchHandles(search=LocalHandle(index)), services=["search"])
    with TestClient(create_app(services)) as client:
        answer = client.post("/find_all_similar_by_lab", files={"image": ("q.png", b"png", "image/png")},
                             params={"format": "json"}, headers=user_headers(client))
    assert answer.status_code == 200 and answer.json()["results"] == []
    assert index.calls == ["find"]


def test_a_reading_comparison_is_one_call_to_the_reading_tools(tmp_path: Path) -> None:
    report = {"audio": {"text": "", "segments": []}, "errors": [], "report": {"words": []}}
    tools = Recorder(compare_text=report)
    services = make_services(tmp_path, ReadingHandles(reading=LocalHandle(tools)), services=["reading"])
    services.plugins["asr"] = PluginInfo(name="asr", kind="audio", languages=["en"], description="",
                                         file="x.py", class_name="X")
    ReadingFiles(services.state, services.blobs).register("audio", "user:ann", "f1", "reading/user_ann/f1.mp3")
    with TestClient(create_app(services)) as client:
        created = client.post("/v1/comparison/audio/text/task", headers=user_headers(client),
                              json={"audio_file": "00000000-0000-0000-0000-000000000000", "audio_model": "asr",
                                    "text": ["a"]})
        assert created.status_code == 404  # an unknown file: nothing was called
        assert tools.calls == []
        ReadingFiles(services.state, services.blobs).register(
            "audio", "user:ann", "11111111-1111-1111-1111-111111111111", "reading/user_ann/x.mp3")
        created = client.post("/v1/comparison/audio/text/task", headers=user_headers(client),
                              json={"audio_file": "11111111-1111-1111-1111-111111111111", "audio_model": "asr",
                                    "text": ["a"]})
        assert created.status_code == 200, created.text
        assert _finished(services, created.json()["task_id"]).result == report
    assert tools.calls == ["compare_text"]


def test_training_is_one_call_to_the_trainer(tmp_path: Path) -> None:
    trainer = Recorder(train={"model_key": "k"})
    services = make_services(tmp_path, InspectionHandles(inspection_trainer=LocalHandle(trainer)),
                             services=["inspection"])
    from percept.inspection import jobs
    from percept.inspection.store import InspectionRepo

    records = InspectionRepo(services.state)
    model = {"model_id": 1, "algorithm_id": "OC", "params": {}, "image_keys": ["a"], "name": "m"}
    records.put_model({**model, "owner": "client:c", "status": "creating"})

    async def train() -> Any:
        jobs.submit_training(services.runner, services.blobs, services.inspection.handles.inspection_trainer,
                             records, "client:c", model)
        for _ in range(400):
            record = services.tasks.get(str(model["task_id"]))
            if record is not None and record.status.done:
                return record
            await asyncio.sleep(0.05)
        raise AssertionError("the task did not end")

    record = asyncio.run(train())
    assert record.status.value == "finished", record.error
    assert trainer.calls == ["train"]


def test_a_correction_job_is_one_call(tmp_path: Path) -> None:
    runner = Recorder(run_job=CorrectionJobSummary(result_key="r", images=0, failed_images=0, tasks=[]))
    services = make_services(tmp_path, CorrectionHandles(correction=LocalHandle(runner)), services=["correction"])
    image = services.args.data_dir / "a" / "x.png"
    request = {"dataset": {"uuid": "d", "classes": ["a"], "class_files": {"a": {str(image): {"uuid": "u1"}}}},
               "tasks": [{"name": "diagnose_image_blur"}]}
    with TestClient(create_app(services)) as client:
        created = client.post("/correction/jobs", json=request, headers=user_headers(client))
        assert created.status_code == 202, created.text
        assert _finished(services, created.json()["job_id"]).status.value == "finished"
    assert runner.calls == ["run_job"]
