"""Cold start and idle memory of the whole application, as `serve run serve_config.yaml` starts it.

Starts `serve run` on a copy of serve_config.yaml whose data directory is a fresh temp dir,
waits until /platform/health answers with every deployment reporting (available or not),
then measures the resident memory of the process tree (driver, raylet, GCS, Serve controller,
proxy and every replica) after 10 s of idleness. Baseline printed beside it: the same
measurements for a bare `ray start` cluster (the floor any Ray Serve app pays).

    python benchmarks/platform_startup.py     # note: runs `ray stop --force` first and last
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # ray and serve of this environment


def tree_rss(pid: int) -> float:
    """Resident memory (GiB) of a process and all its descendants."""
    try:
        parent = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for proc in [parent, *parent.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**30


def ray_rss() -> float:
    """Resident memory (GiB) of every Ray process on the machine (workers are not our children)."""
    total = 0
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            line = " ".join(proc.info["cmdline"] or [])
            if "ray" in (proc.info["name"] or "") or "ray/" in line or "serve run" in line or "ray::" in line:
                total += proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total / 2**30


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="percept-start-"))
    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    config["http_options"]["port"] = 8123
    config["applications"][0]["args"]["data_dir"] = str(tmp / "data")
    path = tmp / "serve_config.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}

    subprocess.run([str(BIN / "ray"), "stop", "--force"], capture_output=True, env=env)
    started = time.perf_counter()
    base = subprocess.run([str(BIN / "ray"), "start", "--head", "--port", "6390", "--disable-usage-stats"], capture_output=True, env=env)
    if base.returncode == 0:
        time.sleep(10)
        bare_rss = ray_rss()
        bare_start = time.perf_counter() - started - 10
    else:
        bare_rss, bare_start = float("nan"), float("nan")
    subprocess.run([str(BIN / "ray"), "stop", "--force"], capture_output=True, env=env)

    log = open(tmp / "serve.log", "w")
    started = time.perf_counter()
    proc = subprocess.Popen([str(BIN / "serve"), "run", str(path)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env=env, start_new_session=True)
    ready_at = None
    deadline = time.monotonic() + 540
    health = {}
    while time.monotonic() < deadline:
        try:
            response = httpx.get("http://127.0.0.1:8123/platform/health", timeout=10)
            if response.status_code == 200:
                health = response.json()
                if not any("loading" in s.get("message", "") for s in health["deployments"].values()):
                    ready_at = time.perf_counter() - started
                    break
        except httpx.HTTPError:
            pass
        time.sleep(1)
    time.sleep(10)
    idle = ray_rss()
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    subprocess.run([str(BIN / "ray"), "stop", "--force"], capture_output=True, env=env)

    if ready_at is None:
        print(f"the application did not become ready; see {tmp / 'serve.log'}")
        sys.exit(1)
    available = sorted(n for n, s in health["deployments"].items() if s.get("available"))
    unavailable = sorted(n for n, s in health["deployments"].items() if not s.get("available"))
    print(f"{'':40s} {'start s':>8s} {'idle RSS GiB':>13s}")
    print(f"{'baseline: bare Ray head (ray start)':40s} {bare_start:8.1f} {bare_rss:13.2f}")
    print(f"{'Percept: serve run serve_config.yaml':40s} {ready_at:8.1f} {idle:13.2f}")
    print(f"deployments available ({len(available)}): {', '.join(available)}")
    print(f"deployments unavailable ({len(unavailable)}): {', '.join(unavailable)}")


if __name__ == "__main__":
    main()
