"""The cluster tier: the application deployed on a real two-node Ray cluster.

``cluster/local.sh up`` starts a Ray head and a second Ray node (its own CPUs and a custom
resource), Redis as the state store and an S3 server (moto) as the blob store; the serve
config is ``serve_config.yaml`` with ``cluster/overrides.yaml`` and ``cluster/local.yaml``
merged over it, plus this run's paths (``cluster/derive.py``). ``percept_app`` has the same
shape as the integration tier's, so that tier's smoke tests run unchanged against it.
Everything is torn down at the end of the session (``cluster/local.sh down``).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from percept.testing import AppUnderTest, free_port

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "cluster"))

import derive  # noqa: E402 - cluster/derive.py is a script, not a package

pytestmark = pytest.mark.cluster
SERVICES = ["reading", "inspection", "tagger", "search", "correction"]


@pytest.fixture(scope="package")
def cluster_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    if shutil.which("redis-server") is None and shutil.which("redis-cli") is None:
        pytest.skip("Redis is not installed") if not os.environ.get("CI") else pytest.fail("CI needs Redis")
    # A short directory: Ray's unix socket paths live under it (at most 107 bytes).
    directory = f"/tmp/pcl-{secrets.token_hex(3)}"
    env = {
        **os.environ,
        "PERCEPT_CLUSTER_DIR": directory,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": f"{directory}/auth_token",
        "PERCEPT_CLUSTER_RAY_PORT": str(free_port()),
        "PERCEPT_CLUSTER_S3_PORT": str(free_port()),
        "PERCEPT_CLUSTER_HTTP_PORT": str(free_port()),
        "PERCEPT_CLUSTER_API_PORT": str(free_port()),  # Ray's state API (ray.util.state)
        "PERCEPT_CLUSTER_BUCKET": f"percept-{secrets.token_hex(3)}",
        "PY": sys.executable,
    }
    up = subprocess.run(["bash", str(ROOT / "cluster" / "local.sh"), "up"], env=env, capture_output=True,
                        text=True, timeout=240)
    try:
        assert up.returncode == 0, up.stderr + up.stdout
        yield env
    finally:
        down = subprocess.run(["bash", str(ROOT / "cluster" / "local.sh"), "down"], env=env,
                              capture_output=True, text=True, timeout=120)
        assert down.returncode == 0, down.stderr


def run_in_cluster(env: dict[str, str], code: str) -> str:
    """Run Python code in a driver connected to the cluster (a subprocess: this process keeps no Ray)."""
    prelude = ("import ray\nray.init(address='127.0.0.1:" + env["PERCEPT_CLUSTER_RAY_PORT"]
               + "', logging_level='ERROR', log_to_driver=False)\n")
    # RAY_ADDRESS: Ray's state API (ray.util.state) otherwise looks for "the" local cluster and
    # fails when another Ray runs on the machine
    address = {"RAY_ADDRESS": "127.0.0.1:" + env["PERCEPT_CLUSTER_RAY_PORT"]}
    out = subprocess.run([sys.executable, "-c", prelude + code], env={**env, **address}, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.fixture(scope="package")
def percept_app(cluster_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppUnderTest]:
    root = tmp_path_factory.mktemp("percept-cluster")
    env = cluster_env
    redis_url = os.environ.get("PERCEPT_CLUSTER_REDIS_URL", "redis://127.0.0.1:6379/14")
    run_layer: dict[str, Any] = {
        "http_options": {"port": int(env["PERCEPT_CLUSTER_HTTP_PORT"])},
        "applications": {"percept": {"args": {
            "data_dir": str(root / "data"),
            "models_path": str(root / "models"),
            "plugins_dir": str(ROOT / "plugins"),
            "state_url": redis_url,
            "blob_url": f"s3://{env['PERCEPT_CLUSTER_BUCKET']}/blobs",
            "services": SERVICES,
            # The search crawler must reach the tests' own web servers on 127.0.0.1.
            "service_config": {"search": {"allow_private_networks": True}},
        }}},
    }
    config = derive.derive(derive.load(derive.CLUSTER_OVERRIDES), derive.load(derive.LOCAL_OVERRIDES), run_layer)
    path = root / "serve_config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    deployed = subprocess.run(["bash", str(ROOT / "cluster" / "local.sh"), "deploy", str(path)], env=env,
                              capture_output=True, text=True, timeout=600)
    assert deployed.returncode == 0, deployed.stderr[-5000:]
    # Operator commands of the smoke tests (the inspection CLI) reach the cluster's store too.
    from percept.settings import get_settings

    saved = {k: os.environ.get(k) for k in ("PERCEPT_STATE_URL",)}
    os.environ["PERCEPT_STATE_URL"] = redis_url
    get_settings.cache_clear()
    try:
        yield AppUnderTest(url=f"http://127.0.0.1:{env['PERCEPT_CLUSTER_HTTP_PORT']}", root=root,
                           args=config["applications"][0]["args"])
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()
