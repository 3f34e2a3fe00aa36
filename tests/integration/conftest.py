"""One Ray session and one Serve application for the whole integration tier.

``percept_app`` runs the real ``build_app`` on a temporary data directory and an HTTP port
of its own, and yields an :class:`AppUnderTest` with the base URL. Set
``PERCEPT_TEST_SERVICES=tagger,search`` to start only some services while developing.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class AppUnderTest:
    url: str
    root: Path
    args: dict

    def client(self, timeout: float = 120.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)


def app_args(root: Path, services: list[str]) -> dict:
    return {
        "data_dir": str(root / "data"),
        "models_path": str(root / "models"),
        "plugins_dir": str(Path(__file__).resolve().parents[2] / "plugins"),
        "services": services,
        "accelerator": "cpu",
        "ingress": {"num_cpus": 0.1, "max_ongoing_requests": 64, "num_replicas": 1},
        "plugin_defaults": {"num_cpus": 0.1, "num_replicas": 1},
    }


def start(root: Path, services: list[str], port: int) -> AppUnderTest:
    from ray import serve

    from deployments.app import build_app

    args = app_args(root, services)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app(args), name="percept", route_prefix="/")
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return AppUnderTest(url=url, root=root, args=args)


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    import ray

    ray.init(num_cpus=8, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "PERCEPT_LOG_JSON": "false"}})
    yield
    from ray import serve

    serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="session")
def percept_app(ray_session: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppUnderTest]:
    wanted = os.environ.get("PERCEPT_TEST_SERVICES")
    services = [s for s in wanted.split(",") if s] if wanted else [
        "reading", "inspection", "tagger", "search", "correction"
    ]
    root = tmp_path_factory.mktemp("percept")
    yield start(root, services, free_port())
