"""A model the ingress runs in its own process (``classifier_in_ingress``): which placement
each setting picks, and that the hosted model answers the same routes as a replica would,
with its user_config applied and without the replica-loss retry wrapper."""

from __future__ import annotations

import asyncio
import pickle
import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from skimage import data

import deployments.tagger as tagger_deployments
from deployments.base import InIngress, InProcessHandle, ModelDeployment, host_in_process
from percept.api.app import create_app
from percept.config import AppArgs
from percept.handles import TaggerHandles
from percept.retry import RetryingHandle, retry_idempotent
from percept.testing import make_services
from tests.synthetic.tagger import document, encode_image

CAT_LABELS = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}


@pytest.mark.parametrize(("setting", "gpu", "in_ingress"), [
    ("auto", False, True), ("auto", True, False), ("always", True, True), ("never", False, False),
])
def test_placement_follows_the_setting_and_the_cluster(tmp_path: Path, setting: str, gpu: bool,
                                                       in_ingress: bool) -> None:
    args = AppArgs(data_dir=tmp_path, classifier_in_ingress=setting)  # type: ignore[arg-type]
    group = tagger_deployments.bind(args, gpu)
    placed = group.tagger_classifier
    assert isinstance(placed, InIngress) is in_ingress
    if in_ingress:
        assert placed == InIngress(tagger_deployments.TaggerClassifier, "tagger_classifier")
    assert not isinstance(group.tagger_detector, InIngress)  # the detector keeps its replicas (scale to zero)


class Model(ModelDeployment[str]):
    model_label = "fake model"

    def __init__(self, args: AppArgs) -> None:
        super().__init__(args)
        self.knobs: dict[str, Any] = {}
        self.load(lambda: "core")

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        self.knobs = dict(user_config)

    async def tag(self, value: int) -> tuple[int, str]:
        return value * 2, threading.current_thread().name

    def usage(self) -> str:
        return threading.current_thread().name


def test_hosted_model_gets_its_user_config_and_answers_through_the_handle(tmp_path: Path) -> None:
    args = AppArgs(data_dir=tmp_path, deployments={"tagger_classifier": {"user_config": {"max_batch_size": 3}}})
    bound = TaggerHandles(tagger_classifier=InIngress(Model, "tagger_classifier"))  # type: ignore[arg-type]
    group = host_in_process(bound, args)
    # Serve pickles the replica's constructor arguments after __init__: they keep the marker
    assert isinstance(bound.tagger_classifier, InIngress)
    assert isinstance(pickle.loads(pickle.dumps(bound)).tagger_classifier, InIngress)
    handle = group.tagger_classifier
    assert isinstance(handle, InProcessHandle)
    model = handle.target
    assert model.knobs == {"max_batch_size": 3}
    assert model.status()["hosted"] == "ingress" and model.status()["available"]

    async def calls() -> tuple[Any, Any]:
        return await handle.tag.remote(21), await handle.usage.remote()

    (doubled, loop_thread), usage_thread = asyncio.run(calls())
    assert doubled == 42
    assert loop_thread == threading.current_thread().name  # a coroutine runs on the caller's loop
    assert usage_thread != threading.current_thread().name  # a plain method in a thread (it may block)
    # no replica to lose: the retry wrapper leaves it alone, and still wraps a real handle
    assert retry_idempotent(group).tagger_classifier is handle
    other = retry_idempotent(TaggerHandles(tagger_classifier=object()))  # type: ignore[arg-type]
    assert isinstance(other.tagger_classifier, RetryingHandle)


def test_classifier_in_the_ingress_tags_over_http(tmp_path: Path) -> None:
    """The real classifier hosted in the app's process serves ``/process`` and its status."""
    args = AppArgs(data_dir=tmp_path / "data", models_path=tmp_path / "models",
                   deployments={"tagger_classifier": {"user_config": {"batching": False}}})
    group = host_in_process(TaggerHandles(tagger_classifier=InIngress(tagger_deployments.TaggerClassifier,
                                                                      "tagger_classifier")), args)  # type: ignore[arg-type]
    services = make_services(tmp_path, group, services=["tagger"])
    client = TestClient(create_app(services))
    doc = document(encode_image(data.chelsea(), "JPEG"), "jpg", "cat")
    body = client.post("/process", json={"documents": [doc], "num_labels": 3}).json()
    assert body["number_documents_treated"] == 1, body
    labels = [c["label"] for c in body["data"][0]["source"]["content"]]
    assert len(labels) == 3 and labels[0] in CAT_LABELS
    assert float(body["ram_used"]) > 0
    status = client.get("/platform/models").json()["models"]["tagger_classifier"]
    assert status["hosted"] == "ingress" and status["available"] and status["batching"] is False


class Broken(ModelDeployment[Any]):
    def __init__(self, args: AppArgs) -> None:
        raise OSError("the weights file is corrupt")


def test_a_hosted_model_that_fails_to_load_answers_503_and_the_rest_keeps_working(tmp_path: Path) -> None:
    """A broken classifier must cost its own route, not the ingress: before, the error ended
    the ingress's constructor and every route with it."""
    args = AppArgs(data_dir=tmp_path / "data")
    group = host_in_process(TaggerHandles(tagger_classifier=InIngress(Broken, "tagger_classifier")), args)  # type: ignore[arg-type]
    client = TestClient(create_app(make_services(tmp_path, group, services=["tagger"])))
    doc = document(encode_image(data.chelsea(), "JPEG"), "jpg", "cat")
    answer = client.post("/process", json={"documents": [doc], "num_labels": 3})
    body = answer.json()
    assert answer.status_code == 503, body  # the tagger contract's retryable answer, with the reason
    assert "failed to load" in body["error"] and "corrupt" in body["error"]
    status = client.get("/platform/models").json()["models"]["tagger_classifier"]
    assert status["available"] is False and "failed to load" in status["message"]
    assert client.get("/healthz").status_code == 200
    health = client.get("/platform/health").json()
    assert health["status"] == "degraded" and "tagger_classifier" in health["unavailable"]
