from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]


sys.path.insert(0, str(ROOT / "cluster"))
import derive  # noqa: E402 - cluster/derive.py, a script


def _app(config: dict) -> dict:
    return next(a for a in config["applications"] if a["name"] == "percept")


def test_rayservice_embeds_serve_config_with_the_cluster_overrides() -> None:
    manifest = yaml.safe_load((ROOT / "cluster" / "rayservice.yaml").read_text())
    assert manifest["kind"] == "RayService"
    embedded = yaml.safe_load(manifest["spec"]["serveConfigV2"])
    base = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    overrides = yaml.safe_load((ROOT / "cluster" / "overrides.yaml").read_text())
    assert embedded == derive.derive(overrides, base=base), (
        "run `python cluster/sync.py` after editing serve_config.yaml or cluster/overrides.yaml"
    )
    # The cluster stores: every node shares one state and one blob store.
    args = _app(embedded)["args"]
    assert args["state_url"].startswith("redis://") and args["blob_url"].startswith("s3://")
    assert args["ingress"]["autoscaling_config"]["min_replicas"] >= 2
    # Everything else is serve_config.yaml's, untouched (one serve config).
    for key in ("deployments", "plugins", "plugin_defaults", "services", "accelerator"):
        assert args[key] == _app(base)["args"][key]
    # The S3 endpoint and credentials come from each pod's environment (a Secret), never the config.
    spec = manifest["spec"]["rayClusterConfig"]
    for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
        env = {e["name"]: e for e in group["template"]["spec"]["containers"][0]["env"]}
        assert "secretKeyRef" in env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]
        assert env["AWS_ENDPOINT_URL"]["value"].startswith("http")


def test_derive_merges_mappings_replaces_the_rest_and_matches_applications_by_name() -> None:
    base: dict[str, Any] = {"proxy_location": "HeadOnly", "http_options": {"host": "0.0.0.0", "port": 8000},
            "applications": [{"name": "a", "args": {"x": 1, "ingress": {"num_cpus": 0.1, "max": 4}, "l": [1, 2]}},
                             {"name": "b", "args": {"y": 2}}]}
    out = derive.derive({"http_options": {"port": 9}, "applications": {"a": {"args": {"ingress": {"max": 8},
                                                                                      "l": [3]}}}},
                        derive.dotted("args.state_url=redis://h:1/0", app="b"), base=base)
    assert out["http_options"] == {"host": "0.0.0.0", "port": 9}
    assert out["applications"][0]["args"] == {"x": 1, "ingress": {"num_cpus": 0.1, "max": 8}, "l": [3]}
    assert out["applications"][1]["args"] == {"y": 2, "state_url": "redis://h:1/0"}
    assert base["applications"][0]["args"]["ingress"]["max"] == 4  # the base is never modified
    with pytest.raises(ValueError, match="unknown applications"):
        derive.derive({"applications": {"nope": {}}}, base=base)


def test_the_local_two_node_config_is_derived_the_same_way() -> None:
    local = derive.derive(derive.load(derive.CLUSTER_OVERRIDES), derive.load(derive.LOCAL_OVERRIDES))
    args = _app(local)["args"]
    assert args["state_url"].startswith("redis://") and args["blob_url"].startswith("s3://")
    assert args["ingress"]["num_replicas"] == 2 and local["http_options"]["host"] == "127.0.0.1"
    base = _app(yaml.safe_load((ROOT / "serve_config.yaml").read_text()))["args"]["deployments"]
    classifier = dict(args["deployments"]["tagger_classifier"])
    assert classifier.pop("resources") == {"percept_worker": 1}  # pinned to the second node
    assert {**args["deployments"], "tagger_classifier": classifier} == base
    from percept.config import AppArgs

    options = AppArgs.model_validate(args).options_for_deployment("tagger_classifier")  # build_app accepts it
    assert options.serve_options(use_gpu=False)["ray_actor_options"]["resources"] == {"percept_worker": 1}


def test_dashboards_bind_to_loopback() -> None:
    manifest = yaml.safe_load((ROOT / "cluster" / "rayservice.yaml").read_text())
    head = manifest["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParams"]
    assert head["dashboard-host"] == "127.0.0.1"
    launcher = (ROOT / "cluster" / "ray-cluster.yaml").read_text()
    assert "--dashboard-host=127.0.0.1" in launcher


def test_dockerfile_pins_a_ray_gpu_image_and_cuda_torch() -> None:
    text = (ROOT / "Dockerfile").read_text()
    base = next(line for line in text.splitlines() if line.startswith("FROM "))
    assert "rayproject/ray:2.60.0" in base and "gpu" in base
    assert "download.pytorch.org/whl/cu" in text or "torch==" in text


def test_every_node_installs_the_proxy_middleware_for_dead_ingress_replicas() -> None:
    """Serve's proxies read RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH from their node's environment."""
    from ray._common.utils import import_attr

    from percept.retry import proxy_middlewares

    manifest = yaml.safe_load((ROOT / "cluster" / "rayservice.yaml").read_text())
    spec = manifest["spec"]["rayClusterConfig"]
    paths = set()
    for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
        env = {e["name"]: e.get("value") for e in group["template"]["spec"]["containers"][0]["env"]}
        paths.add(env["RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"])
    local = (ROOT / "cluster" / "local.sh").read_text()
    (path,) = paths
    assert f"export RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH={path}\n" in local
    assert import_attr(path) is proxy_middlewares
