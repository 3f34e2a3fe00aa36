"""The real application under Serve, over HTTP: platform routes, tasks, restarts."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from percept.testing import AppUnderTest, app_args

from .conftest import DEBUG_ADMIN

pytestmark = pytest.mark.integration


def _user(client: httpx.Client, name: str) -> dict[str, str]:
    client.put("/v1/auth/register", params={"username": name, "password": "pw"})
    token = client.post("/v1/auth/token", data={"username": name, "password": "pw"}).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def test_openapi_health_and_plugins(percept_app: AppUnderTest) -> None:
    with percept_app.client() as client:
        spec = client.get("/openapi.json").json()
        assert "/platform/health" in spec["paths"] and "/v1/auth/token" in spec["paths"]
        assert client.get("/docs").status_code == 200
        assert client.get("/healthz").json() == {"status": "ok"}
        health = client.get("/platform/health").json()
        assert health["deployments"]["echo"]["available"] is True
        for name, status in health["deployments"].items():
            # every deployment answers: available, or unavailable with the reason
            assert status["available"] or status["message"].startswith("unavailable"), (name, status)
        plugins = client.get("/platform/plugins").json()
        assert plugins["errors"] == []
        assert {p["name"] for p in plugins["plugins"]} == {
            n.split(":", 1)[1] for n in health["deployments"] if n.startswith("plugin:")
        }


def test_missing_weights_are_reported_with_their_directory(percept_app: AppUnderTest) -> None:
    with percept_app.client() as client:
        health = client.get("/platform/health").json()
    missing = {n: s for n, s in health["deployments"].items() if not s["available"]}
    models_dir = str(percept_app.root / "models")
    for status in missing.values():
        assert status["message"].startswith("unavailable: weights for ")
        assert models_dir in status["message"]


def test_task_is_followed_to_its_end(percept_app: AppUnderTest) -> None:
    with percept_app.client() as client:
        ann = _user(client, DEBUG_ADMIN)
        created = client.post("/platform/tasks/selftest", params={"steps": 4, "step_s": 0.6}, headers=ann)
        assert created.status_code == 202
        task_id = created.json()["task_id"]
        events = []
        with client.stream("GET", f"/platform/tasks/{task_id}/events", headers=ann) as stream:
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
        assert events[-1]["status"] == "finished"
        assert any(0 < e["progress"] < 100 for e in events), events
        record = client.get(f"/platform/tasks/{task_id}", headers=ann).json()
        assert record["result"]["steps"] == 4
        assert client.get(f"/platform/tasks/{task_id}", headers=_user(client, "task-bob")).status_code == 404


def test_ingress_to_model_hop(percept_app: AppUnderTest) -> None:
    with percept_app.client() as client:
        assert client.get("/platform/echo/hop", headers=_user(client, DEBUG_ADMIN)).json() == {"echo": "ok"}


def test_state_survives_an_application_restart(percept_app: AppUnderTest, tmp_path: Path) -> None:
    """Users, tokens and task results outlive the replicas (a second app on its own data dir)."""
    from ray import serve

    from deployments.app import build_app

    args = app_args(tmp_path, services=[], debug_routes=True, admins=["user:ann"])
    prefix = "/restart"

    def deploy() -> None:
        serve.run(build_app(args), name="restart-check", route_prefix=prefix)

    deploy()
    with httpx.Client(base_url=percept_app.url + prefix, timeout=60) as client:
        ann = _user(client, "ann")
        task_id = client.post("/platform/tasks/selftest", params={"steps": 2, "step_s": 0.05},
                              headers=ann).json()["task_id"]
        deadline = time.monotonic() + 60
        while client.get(f"/platform/tasks/{task_id}", headers=ann).json()["status"] != "finished":
            assert time.monotonic() < deadline
            time.sleep(0.2)

    serve.delete("restart-check")
    deploy()
    with httpx.Client(base_url=percept_app.url + prefix, timeout=60) as client:
        assert client.get("/v1/auth/users/me", headers=ann).json()["username"] == "ann"
        record = client.get(f"/platform/tasks/{task_id}", headers=ann).json()
        assert record["status"] == "finished" and record["result"]["steps"] == 2
        fresh = client.post("/v1/auth/token", data={"username": "ann", "password": "pw"})
        assert fresh.status_code == 200
    serve.delete("restart-check")


def test_scale_to_zero_and_cold_start_on_health(percept_app: AppUnderTest, tmp_path: Path) -> None:
    """A deployment with ``min_replicas: 0`` starts with no replica, /platform/health says so
    without waking it, its first request starts one, and health then shows its cold start."""
    from ray import serve

    from deployments.app import build_app

    args = app_args(tmp_path, services=["tagger"])
    detector = dict(args["deployments"]["tagger_detector"])
    detector["autoscaling_config"] = {**detector.get("autoscaling_config", {}), "min_replicas": 0}
    args["deployments"] = {**args["deployments"], "tagger_detector": detector}
    prefix = "/zero"
    serve.run(build_app(args), name="zero-check", route_prefix=prefix)
    try:
        with httpx.Client(base_url=percept_app.url + prefix, timeout=120) as client:
            zero = client.get("/platform/health").json()["deployments"]["tagger_detector"]
            assert zero["scaled_to_zero"] is True and zero["replicas"] == 0 and zero["available"] is True
            assert client.get("/platform/health").json()["deployments"]["tagger_detector"]["replicas"] == 0

            started = time.monotonic()
            doc = {"id": "d", "source": {"content": "aGVsbG8=", "file_type": "png", "file_name": "x.png"}}
            answer = client.post("/process", json={"documents": [doc], "prompt": "<OD>"})
            cold_s = time.monotonic() - started
            assert answer.status_code == 503  # no detector weights here: the replica started and said so

            woken = client.get("/platform/health").json()["deployments"]["tagger_detector"]
            assert not woken.get("scaled_to_zero") and 0 < woken["startup_s"] <= cold_s + 1, (woken, cold_s)
            assert woken["message"].startswith("unavailable: weights for ")
    finally:
        serve.delete("zero-check")
