"""/platform/health over deployments scaled to zero: reported from Serve's replica count with
their last cold start, never woken up by the health check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from percept.api import platform
from percept.api.app import create_app
from percept.handles import TaggerHandles
from percept.testing import LocalHandle, make_services


class Replica:
    def __init__(self, name: str) -> None:
        self.name = name
        self.asked = 0

    def status(self) -> dict[str, Any]:
        self.asked += 1
        return {"name": self.name, "available": True, "message": "ready", "startup_s": 7.25}


class NamedHandle(LocalHandle):
    """A local handle carrying the Serve names a DeploymentHandle has."""

    def __init__(self, target: Any, deployment: str) -> None:
        super().__init__(target)
        self.app_name = "percept"
        self.deployment_name = deployment


def test_health_reports_scaled_to_zero_without_waking_it(tmp_path: Path, monkeypatch: Any) -> None:
    classifier, detector = Replica("classifier"), Replica("detector")
    handles = TaggerHandles(tagger_classifier=NamedHandle(classifier, "TaggerClassifier"),
                            tagger_detector=NamedHandle(detector, "TaggerDetector"))
    client = TestClient(create_app(make_services(tmp_path, handles, services=["tagger"])))
    running = {("percept", "TaggerClassifier"): 1, ("percept", "TaggerDetector"): 1}

    async def replicas() -> dict[tuple[str, str], int]:
        return dict(running)

    monkeypatch.setattr(platform, "live_replicas", replicas)
    monkeypatch.setattr(platform, "_LAST_STATUS", {})
    first = client.get("/platform/health").json()
    assert first["deployments"]["tagger_detector"]["startup_s"] == 7.25 and detector.asked == 1

    running[("percept", "TaggerDetector")] = 0  # Serve scaled it down
    health = client.get("/platform/health").json()
    zero = health["deployments"]["tagger_detector"]
    assert detector.asked == 1 and classifier.asked == 2  # not asked: asking would start a replica
    assert health["status"] == "ok" and zero["available"] is True
    assert zero["scaled_to_zero"] is True and zero["replicas"] == 0 and zero["cold_start_s"] == 7.25
    assert "last cold start 7.2 s" in zero["message"]


def test_never_seen_deployment_at_zero(tmp_path: Path, monkeypatch: Any) -> None:
    detector = Replica("detector")
    handles = TaggerHandles(tagger_classifier=LocalHandle(Replica("classifier")),
                            tagger_detector=NamedHandle(detector, "TaggerDetector"))
    client = TestClient(create_app(make_services(tmp_path, handles, services=["tagger"])))

    async def replicas() -> dict[tuple[str, str], int]:
        return {("percept", "TaggerDetector"): 0}

    monkeypatch.setattr(platform, "live_replicas", replicas)
    monkeypatch.setattr(platform, "_LAST_STATUS", {})
    zero = client.get("/platform/health").json()["deployments"]["tagger_detector"]
    assert detector.asked == 0 and zero["cold_start_s"] is None
    assert zero["message"] == "scaled to zero: starts on its next request (cold start not measured yet)"


def test_starting_replicas_are_not_scaled_to_zero(monkeypatch: Any) -> None:
    """Serve's replica states: a deployment whose replica is starting (or running) is asked as
    before; only one with no replica but stopping ones counts as scaled to zero."""
    import asyncio
    from types import SimpleNamespace

    import ray
    from ray import serve

    def deployment(**states: int) -> SimpleNamespace:
        return SimpleNamespace(replica_states=states)

    status = SimpleNamespace(applications={"percept": SimpleNamespace(deployments={
        "TaggerClassifier": deployment(STARTING=1),
        "TaggerDetector": deployment(STOPPING=1),
        "IngressDeployment": deployment(RUNNING=2, STARTING=1),
        "SearchClipEmbedder": deployment(),
    })})
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(serve, "status", lambda: status)
    counts = asyncio.run(platform.live_replicas())
    assert counts == {("percept", "TaggerClassifier"): 1, ("percept", "TaggerDetector"): 0,
                      ("percept", "IngressDeployment"): 3, ("percept", "SearchClipEmbedder"): 0}
