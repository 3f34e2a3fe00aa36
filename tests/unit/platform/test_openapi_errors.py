"""The OpenAPI of the default app declares every status its routers answer, with each contract's model.

The walk calls every operation of the default application (all five services, no model
deployments: their calls answer 503) the way a careless client would — without a token,
with a token, with a body over the cap, with a JSON nested 100,000 deep, with made-up ids —
and checks that each answer's status is one the operation declares.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from percept.api.app import create_app
from percept.testing import make_services

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture(scope="module")
def app_and_spec(tmp_path_factory: pytest.TempPathFactory) -> tuple[TestClient, dict[str, Any], dict[str, str]]:
    services = make_services(tmp_path_factory.mktemp("openapi"))
    client = TestClient(create_app(services), raise_server_exceptions=False)
    client.put("/v1/auth/register", params={"username": "ann", "password": "pw"})
    token = client.post("/v1/auth/token", data={"username": "ann", "password": "pw"}).json()["access_token"]
    client_id, secret = services.clients.create("factory")
    api_token = client.post("/api/auth/token", json={"client_id": client_id, "client_secret": secret})
    tokens = {"user": token, "client": api_token.json()["data"]["access_token"]}
    return client, client.get("/openapi.json").json(), tokens


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in spec["paths"].items() for method, op in ops.items()]


def declared(op: dict[str, Any]) -> set[int]:
    return {int(code) for code in op["responses"]}


def test_required_codes_are_declared(app_and_spec: Any) -> None:
    _, spec, _ = app_and_spec
    ops = {(p, m): op for p, m, op in operations(spec)}
    assert {400, 401, 413, 429} <= declared(ops[("/api/v1/upload", "post")])
    assert {400, 413, 422} <= declared(ops[("/process", "post")])
    assert {409} <= declared(ops[("/v1/auth/register", "put")])
    assert {404, 409} <= declared(ops[("/correction/jobs/{job_id}/result", "get")])
    assert {401, 413, 422, 429, 503} <= declared(ops[("/v1/comparison/audio/text/task", "post")])
    assert {401, 429, 503} <= declared(ops[("/get_top_25_clip_similar", "post")])
    for path, method, op in operations(spec):
        codes = declared(op)
        if op.get("security") or path.startswith(("/api/v1/",)):
            assert {401, 429} <= codes, (method, path, codes)  # every authenticated route is rate limited
        if method in ("post", "put"):
            assert {400, 413} <= codes, (method, path, codes)
        if "{" in path and path not in ("/ui/{path}",):
            assert 404 in codes, (method, path, codes)


def test_error_bodies_use_each_contract_model(app_and_spec: Any) -> None:
    _, spec, _ = app_and_spec
    schemas = spec["components"]["schemas"]
    assert "errors" in schemas["InspectionError"]["properties"] and "detail" in schemas["ErrorDetail"]["properties"]
    for path, method, op in operations(spec):
        for code, response in op["responses"].items():
            if not code.startswith(("4", "5")) or code == "422" and "content" not in response:
                continue
            ref = response["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
            if code == "422" and ref == "HTTPValidationError":
                continue
            expected = ("InspectionError" if path.startswith("/api/") else
                        "TaggerResponse" if path in ("/process", "/test", "/health-check", "/work/status")
                        else "ErrorDetail")
            assert ref == expected, (method, path, code, ref)
        for code in ("429", "503"):
            if code in op["responses"]:
                assert "Retry-After" in op["responses"][code]["headers"]


def _fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def test_every_operation_answers_only_what_it_declares(app_and_spec: Any) -> None:
    client, spec, tokens = app_and_spec
    undeclared = []
    for path, method, op in operations(spec):
        if path.endswith("/events"):
            continue  # a stream: checked by the task tests
        url = _fill(path)
        token = tokens["client"] if path.startswith("/api/") else tokens["user"]
        auth = {"Authorization": f"Bearer {token}"}
        attempts: list[tuple[str, dict[str, Any]]] = [("anonymous", {}), ("authenticated", {"headers": auth})]
        if method in ("post", "put"):
            attempts += [
                ("too large", {"headers": {**auth, "Content-Length": str(2**31), "Content-Type": "application/json"},
                               "content": b"{}"}),
                ("deep json", {"headers": {**auth, "Content-Type": "application/json"}, "content": DEEP}),
                ("not json", {"headers": {**auth, "Content-Type": "application/json"}, "content": b"{nope"}),
            ]
        for name, kwargs in attempts:
            r = client.request(method.upper(), url, **kwargs)
            if r.status_code >= 400 and r.status_code not in declared(op):
                undeclared.append((method, path, name, r.status_code, r.text[:120]))
            if name == "too large":
                assert r.status_code == 413, (method, path, r.status_code)
            assert r.status_code != 500 or path in ("/process",), (method, path, name, r.text[:200])
    assert undeclared == [], undeclared
