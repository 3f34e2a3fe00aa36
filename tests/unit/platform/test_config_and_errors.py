from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from pydantic import ValidationError

from deployments.base import ModelDeployment
from percept.api.app import create_app
from percept.config import AppArgs, DeploymentOptions
from percept.errors import NotFound, WeightsMissing
from percept.handles import SearchHandles
from percept.testing import LocalHandle, make_services

ROOT = Path(__file__).resolve().parents[3]


def test_serve_config_args_validate() -> None:
    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    (app,) = config["applications"]
    assert app["import_path"] == "deployments.app:build_app"
    args = AppArgs.model_validate(app["args"])
    assert args.accelerator == "auto"
    assert set(args.services) == {"reading", "inspection", "tagger", "search", "correction"}


@pytest.mark.parametrize(
    "bad",
    [
        {"services": ["nope"]},
        {"accelerator": "tpu"},
        {"unknown_key": 1},
        {"deployments": {"x": {"num_gpus": -1}}},
        {"deployments": {"x": {"max_ongoing_requests": 0}}},
        {"deployments": {"x": {"num_cpu": 1}}},
    ],
)
def test_bad_args_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        AppArgs.model_validate(bad)


def test_paths_are_made_absolute(tmp_path: Path) -> None:
    args = AppArgs(data_dir=Path("d"), models_path=Path("m")).resolved(tmp_path)
    assert args.data_dir == tmp_path / "d"
    assert args.state_url == f"sqlite:///{tmp_path / 'd' / 'state.db'}"
    assert args.blob_url == str(tmp_path / "d" / "blobs")
    redis = AppArgs(state_url="redis://h:6379/0", blob_url="s3://b/p").resolved(tmp_path)
    assert redis.state_url == "redis://h:6379/0" and redis.blob_url == "s3://b/p"


def test_gpu_shares_are_dropped_without_gpus() -> None:
    options = DeploymentOptions(num_cpus=1, num_gpus=0.25, max_ongoing_requests=4)
    assert options.serve_options(use_gpu=True)["ray_actor_options"]["num_gpus"] == 0.25
    assert options.serve_options(use_gpu=False)["ray_actor_options"]["num_gpus"] == 0
    fixed = DeploymentOptions(num_replicas=3).serve_options(use_gpu=False)
    assert fixed["num_replicas"] == 3 and "autoscaling_config" not in fixed


class MissingModel(ModelDeployment[object]):
    model_label = "resnet-34"

    def __init__(self, models: Path) -> None:
        super().__init__(AppArgs(models_path=models))

        def factory() -> object:
            raise WeightsMissing("ResNet34", str(models), hint="save_pretrained() it to resnet-34")

        self.load(factory)

    def embed(self) -> list[float]:
        self.require()
        return [1.0]


def test_missing_weights_deployment_is_healthy_unavailable_and_answers_503(tmp_path: Path) -> None:
    model = MissingModel(tmp_path / "models")
    model.check_health()  # healthy: it must not be restarted in a loop
    status = model.status()
    assert status["available"] is False
    assert status["message"].startswith(f"unavailable: weights for ResNet34 not found in {tmp_path / 'models'}")

    services = make_services(tmp_path, SearchHandles(search_resnet=LocalHandle(model)))
    app = create_app(services)

    @app.get("/embed-test")
    async def embed_test() -> list[float]:
        return await services.search.handles.search_resnet.embed.remote()  # type: ignore[no-any-return]

    client = TestClient(app)
    resp = client.get("/embed-test")
    assert resp.status_code == 503
    assert resp.json()["detail"].startswith("unavailable: weights for ResNet34 not found")
    health = client.get("/platform/health").json()
    assert health["status"] == "degraded" and health["unavailable"] == ["search_resnet"]


def test_errors_render_per_contract_and_hide_tracebacks(tmp_path: Path) -> None:
    app = create_app(make_services(tmp_path))

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    @app.get("/missing")
    def missing() -> None:
        raise NotFound("File not found")

    @app.get("/custom/thing")
    def custom() -> None:
        raise NotFound("nothing here")

    from fastapi.responses import JSONResponse

    from percept.api.errors import register_error_renderer

    register_error_renderer(
        app, "/custom", lambda request, info: JSONResponse({"errors": {"status": info.status}}, info.status)
    )
    client = TestClient(app, raise_server_exceptions=False)
    resp = client.get("/boom")
    assert resp.status_code == 500
    assert "secret internals" not in resp.text and "Traceback" not in resp.text
    assert resp.json()["request_id"]
    assert client.get("/missing").json() == {"detail": "File not found"}
    assert client.get("/custom/thing").json() == {"errors": {"status": 404}}
    assert client.get("/custom/unknown-route").json() == {"errors": {"status": 404}}
    assert client.get("/platform/tasks/x").status_code == 401


def test_openapi_is_served(tmp_path: Path) -> None:
    client = TestClient(create_app(make_services(tmp_path)))
    spec = client.get("/openapi.json").json()
    assert "/v1/auth/token" in spec["paths"] and "/platform/health" in spec["paths"]
    assert client.get("/docs").status_code == 200


def test_the_config_models_do_not_import_the_api_layer() -> None:
    """percept.config sits below percept.api: loading the app args pulls in no route or web code."""
    import subprocess
    import sys

    code = ("import sys, percept.config; "
            "print(sorted(m for m in sys.modules if m.startswith('percept.api') or m in ('fastapi', 'starlette')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
