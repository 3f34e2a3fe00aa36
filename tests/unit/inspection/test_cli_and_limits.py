"""The operators' CLI, the deployments' binding and the upload limits."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from percept.api.app import create_app
from percept.auth import ClientStore
from percept.cli import main as cli
from percept.config import AppArgs
from percept.inspection.license import issue_license, verify_license
from percept.sdk import APIError
from percept.storage import open_state_store
from percept.testing import make_services

from .conftest import make_sdk, write_images


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = cli(list(argv))
    return code, out.getvalue()


def test_clients_and_licenses_from_the_command_line(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    code, out = run("--data-dir", data, "clients", "create", "Factory A")
    client_id, secret = out.split()
    assert code == 0 and client_id.startswith("ci_")
    store = open_state_store(f"sqlite:///{tmp_path / 'data' / 'state.db'}")
    assert ClientStore(store).verify(client_id, secret)
    code, out = run("--data-dir", data, "clients", "list")
    listed = json.loads(out.splitlines()[0])
    assert listed["client_id"] == client_id and "secret_hash" not in listed
    lic = tmp_path / "f.key"
    assert run("--data-dir", data, "license", "issue", client_id, "-o", str(lic))[0] == 0
    assert verify_license(store, lic.read_text(), client_id)["client_id"] == client_id
    assert run("--data-dir", data, "license", "issue", "ci_unknown", "-o", str(lic))[0] == 1
    assert run("--data-dir", data, "clients", "delete", client_id)[0] == 0
    assert ClientStore(store).get(client_id) is None


def test_bind_returns_the_three_deployments(tmp_path: Path) -> None:
    from deployments.inspection import bind

    args = AppArgs(data_dir=tmp_path, models_path=tmp_path / "m", plugins_dir=tmp_path / "p").resolved(tmp_path)
    group = bind(args, False)
    assert {key for key, _ in group.items()} == {"inspection_trainer", "inspection_predictor", "inspection_backbone"}


def test_upload_limit_is_413_in_the_envelope(tmp_path: Path) -> None:
    services = make_services(tmp_path, services=["inspection"],
                             service_config={"inspection": {"max_upload_mb": 0.001}})
    client_id, secret = services.clients.create("small")
    with TestClient(create_app(services), base_url="http://testserver/api") as http:
        sdk = make_sdk(http, (client_id, secret))
        lic = tmp_path / "l.key"
        lic.write_text(issue_license(services.state, client_id))
        sdk.activate_license(str(lic))
        noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
        try:
            sdk.upload(write_images(tmp_path / "big", "big_", [noise]), True)
        except APIError as err:
            assert err.status == 413 and err.title == "Payload Too Large"
        else:
            raise AssertionError("a file over the limit was accepted")
