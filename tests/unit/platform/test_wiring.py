"""The wiring: one registry of services, typed handles, every default in serve_config.yaml,
debug routes off by default and admin-only when on."""

from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import fields
from pathlib import Path

from fastapi.testclient import TestClient

from deployments.echo import Echo
from percept.api.app import create_app
from percept.config import AppArgs, DeploymentOptions
from percept.handles import DebugHandles, HandleGroup
from percept.registry import SERVICE_NAMES, SERVICES
from percept.services import Services
from percept.settings import ServiceSettings
from percept.testing import LocalHandle, make_services, serve_config_args, user_headers

DEBUG_PATHS = ("/platform/echo", "/platform/echo/hop", "/platform/tasks/selftest")
ROOT = Path(__file__).resolve().parents[3]


def test_the_container_has_one_typed_field_per_registered_service() -> None:
    typed = {f.name for f in fields(Services)}
    assert set(SERVICE_NAMES) <= typed
    assert AppArgs().services == list(SERVICE_NAMES)
    for spec in SERVICES:
        assert issubclass(spec.handles, HandleGroup) and issubclass(spec.settings, ServiceSettings)
        assert hasattr(importlib.import_module(spec.router), "include")
        bind = importlib.import_module(spec.deployments).bind
        assert inspect.signature(bind).return_annotation in (spec.handles.__name__, spec.handles)


def test_serve_config_lists_every_deployment_and_is_valid() -> None:
    args = AppArgs.model_validate(serve_config_args())
    keys = {f.name for spec in SERVICES for f in fields(spec.handles)} | {f.name for f in fields(DebugHandles)}
    assert keys <= set(args.deployments), sorted(keys - set(args.deployments))
    assert set(args.deployments) <= keys, sorted(set(args.deployments) - keys)
    assert args.debug_routes is False
    for spec in SERVICES:
        spec.load_settings(args)


def test_no_per_deployment_figure_in_the_deployment_code() -> None:
    """Resources and batch knobs come from serve_config.yaml only."""
    pattern = re.compile(r"(num_cpus|num_gpus|max_ongoing_requests|max_batch_size|batch_wait_timeout_s)\s*=\s*[\d.]+")
    for path in sorted((ROOT / "deployments").glob("*.py")):
        assert not pattern.search(path.read_text()), path.name
    assert DeploymentOptions().num_gpus == 0  # the generic default asks for no GPU


def test_default_app_serves_no_debug_route(tmp_path: Path) -> None:
    services = make_services(tmp_path)
    paths = set(create_app(services).openapi()["paths"])
    assert not any(p.startswith("/platform/echo") for p in paths)
    assert "/platform/tasks/selftest" not in paths
    assert not any(key == "echo" for key, _ in services.deployments())


def test_debug_routes_when_enabled_are_for_admins_only(tmp_path: Path) -> None:
    services = make_services(tmp_path, DebugHandles(echo=LocalHandle(Echo())), debug_routes=True,
                             admins=["user:root"])
    assert set(DEBUG_PATHS) <= set(create_app(services).openapi()["paths"])
    with TestClient(create_app(services)) as client:
        assert client.get("/platform/echo").status_code == 401
        mallory = user_headers(client, "mallory")
        assert client.get("/platform/echo/hop", headers=mallory).status_code == 403
        assert client.post("/platform/tasks/selftest", headers=mallory).status_code == 403
        root = user_headers(client, "root")
        assert client.get("/platform/echo", headers=root).json() == {"echo": "ok"}
        assert client.get("/platform/echo/hop", headers=root).json() == {"echo": "ok"}


def test_a_deployment_not_running_here_answers_503(tmp_path: Path) -> None:
    services = make_services(tmp_path, services=["correction"])
    with TestClient(create_app(services)) as client:
        answer = client.post("/correction/metadata", json={"path": str(services.args.data_dir / "x.png")},
                             headers=user_headers(client, "ann"))
    assert answer.status_code == 503
    assert answer.json()["detail"] == "unavailable: deployment 'correction' is not running in this application"


def _module_imports(path: Path, known: set[str]) -> set[str]:
    """The project modules a file imports at module level (``TYPE_CHECKING`` blocks left out)."""
    import ast

    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            continue
        for sub in ast.walk(node) if isinstance(node, (ast.Import, ast.ImportFrom, ast.Try, ast.If)) else ():
            if isinstance(sub, ast.Import):
                found |= {a.name for a in sub.names}
            elif isinstance(sub, ast.ImportFrom) and sub.module and sub.level == 0:
                found |= {sub.module} | {f"{sub.module}.{a.name}" for a in sub.names}
    return found & known


def test_no_import_circles() -> None:
    modules: dict[str, Path] = {}
    for package in ("percept", "deployments", "pipelines"):
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {name: _module_imports(path, set(modules)) for name, path in modules.items()}
    state: dict[str, int] = {}
    trail: list[str] = []
    circles: list[list[str]] = []

    def visit(name: str) -> None:
        state[name] = 1
        trail.append(name)
        for dep in sorted(graph[name]):
            if state.get(dep) == 1:
                circles.append(trail[trail.index(dep):] + [dep])
            elif dep not in state:
                visit(dep)
        trail.pop()
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
    assert circles == []
