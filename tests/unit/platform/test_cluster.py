from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]


def test_rayservice_embeds_serve_config_unchanged() -> None:
    manifest = yaml.safe_load((ROOT / "cluster" / "rayservice.yaml").read_text())
    assert manifest["kind"] == "RayService"
    embedded = yaml.safe_load(manifest["spec"]["serveConfigV2"])
    assert embedded == yaml.safe_load((ROOT / "serve_config.yaml").read_text()), (
        "run `python cluster/sync.py` after editing serve_config.yaml"
    )


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
