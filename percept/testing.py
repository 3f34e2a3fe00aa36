"""Test seams: stand-ins for Serve deployment handles, and an app on a temp directory.

``LocalHandle(obj)`` (from :mod:`percept.handles`) answers ``handle.method.remote(*args)``
like a DeploymentHandle, by calling ``obj.method`` (sync methods in a thread), so routers can be tested through
``TestClient`` with real cores or fakes and no Ray. A test builds the container with the
handle groups it needs::

    services = make_services(tmp_path, TaggerHandles(tagger_classifier=LocalHandle(fake)),
                             services=["tagger"])
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from percept.config import AppArgs
from percept.handles import HandleGroup
from percept.handles import LocalHandle as LocalHandle  # re-exported: the tests' seam lives beside Handle
from percept.services import Services, build_services

SERVE_CONFIG = Path(__file__).resolve().parents[1] / "serve_config.yaml"


def make_services(
    tmp_path: Path, *handles: HandleGroup, plugins: dict[str, object] | None = None, **overrides: Any
) -> Services:
    """Services on a temporary data directory (SQLite + local blobs).

    ``handles``: the handle groups under test (a service without one answers 503 on every
    deployment call); ``plugins``: plugin name → an object served as its deployment;
    ``overrides``: :class:`AppArgs` fields.
    """
    args = AppArgs(
        data_dir=tmp_path / "data",
        models_path=overrides.pop("models_path", tmp_path / "models"),
        plugins_dir=overrides.pop("plugins_dir", tmp_path / "plugins"),
        **overrides,
    ).resolved(tmp_path)
    return build_services(args, handles, plugin_handles={
        name: obj if isinstance(obj, LocalHandle) else LocalHandle(obj) for name, obj in (plugins or {}).items()
    })


def user_headers(client: Any, name: str = "ann", password: str = "pw") -> dict[str, str]:
    """Register ``name`` through the reading contract's auth routes (a no-op when the user
    exists) and return its bearer header, for a ``TestClient`` or an ``httpx.Client``."""
    client.put("/v1/auth/register", params={"username": name, "password": password})
    token = client.post("/v1/auth/token", data={"username": name, "password": password}).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}



async def read_body(receive: Any) -> bytes:
    """An ASGI app's whole request body, read message by message (``more_body``)."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return body

def serve_config_args() -> dict[str, Any]:
    """The ``args`` of the application in ``serve_config.yaml`` (the one source of every default)."""
    config = yaml.safe_load(SERVE_CONFIG.read_text())
    return dict(config["applications"][0]["args"])


# Integration tier: the real application under Serve on a free port.


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class AppUnderTest:
    """A running application: its base URL, its temp root and the args it was built with."""

    url: str
    root: Path
    args: dict

    def client(self, timeout: float = 120.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)


def app_args(root: Path, services: list[str], **extra: Any) -> dict:
    """Args of a small test application on ``root``; ``extra`` merged in.

    The deployments' resources and batch knobs are those of ``serve_config.yaml``; the test
    app runs on the CPU with one ingress and one replica per plugin, and keeps one replica of
    every deployment that ``serve_config.yaml`` lets scale to zero (a test that wants the
    cold start asks for it).
    """
    config = serve_config_args()
    return {
        "data_dir": str(root / "data"),
        "models_path": str(root / "models"),
        "plugins_dir": str(Path(__file__).resolve().parents[1] / "plugins"),
        "services": services,
        "accelerator": "cpu",
        "deployments": {key: _warm(options) for key, options in config["deployments"].items()},
        "ingress": {"num_cpus": 0.1, "max_ongoing_requests": 64, "num_replicas": 1},
        "plugin_defaults": {**config["plugin_defaults"], "num_cpus": 0.1, "num_replicas": 1},
        **extra,
    }


def _warm(options: dict[str, Any]) -> dict[str, Any]:
    """Deployment options with at least one replica at all times (``min_replicas`` >= 1)."""
    scaling = options.get("autoscaling_config")
    if not isinstance(scaling, dict) or scaling.get("min_replicas", 1) >= 1:
        return options
    return {**options, "autoscaling_config": {**scaling, "min_replicas": 1}}


def start_app(root: Path, services: list[str], port: int, **extra: Any) -> AppUnderTest:
    """``serve.run`` the real ``build_app`` (Ray must be initialised) and wait for /healthz."""
    from ray import serve

    from deployments.app import build_app

    args = app_args(root, services, **extra)
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
    else:
        raise RuntimeError(f"the application did not answer /healthz at {url}")
    return AppUnderTest(url=url, root=root, args=args)
