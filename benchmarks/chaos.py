"""Chaos: steady load on the tagger and on OCR tasks while replicas are killed by PID.

Brings up the two-node cluster of ``cluster/local.sh`` (Redis state, S3 blobs), deploys the
tagger and reading services (two ingress replicas, two classifier replicas), then runs the
same load twice in one run:

* **baseline**: no kills, ``--phase-s`` seconds;
* **chaos**: every ``--kill-every-s`` seconds one replica (ingress, tagger classifier, or the
  OCR plugin, in turn) is killed with SIGKILL by its PID.

Load: ``--clients`` threads POST ``/process`` (one image each, success = 200 with the document
tagged) and one thread runs OCR tasks (``/v1/image/process/task`` with tesseract and an
``Idempotency-Key``, success = the task finished with text). No client retries: a 503 counts
as a failure. Printed: per phase, requests, success rate, 500s, 503s, other
failures, p50/p99 latency of the tagger, OCR tasks finished/failed (with reasons).

    flock /tmp/percept-ray.lock .venv/bin/python -m benchmarks.chaos --phase-s 60
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "cluster"))
import derive  # noqa: E402 - cluster/derive.py

TARGETS = {"ingress": "IngressDeployment", "tagger_classifier": "TaggerClassifier",
           "ocr": "Plugin_tesseract"}


@dataclass
class Phase:
    name: str
    latencies: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    ocr: Counter[str] = field(default_factory=Counter)
    ocr_reasons: Counter[str] = field(default_factory=Counter)
    ocr_http: Counter[int] = field(default_factory=Counter)  # every non-2xx answer of the OCR loop's calls
    kills: list[str] = field(default_factory=list)
    began: float = field(default_factory=time.monotonic)
    kill_at: list[float] = field(default_factory=list)  # seconds into the phase
    started_at: list[float] = field(default_factory=list)  # each tagger request, seconds into the phase


def image_doc() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    img = (rng.random((96, 128, 3)) * 255).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG")
    return {"id": "doc", "source": {"content": base64.b64encode(buf.getvalue()).decode(), "file_type": "png",
                                    "file_name": "doc.png"}}


def page_png() -> bytes:
    from tests.synthetic.reading import render_page

    return render_page(["the cat sat on the mat"])


class Load:
    def __init__(self, url: str, clients: int) -> None:
        self.url = url
        self.clients = clients
        self.phase: Phase | None = None
        self.stop = threading.Event()
        self.doc = image_doc()

    def tagger(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            while not self.stop.is_set():
                phase = self.phase
                started = time.perf_counter()
                offset = time.monotonic() - phase.began if phase is not None else 0.0
                try:
                    r = client.post("/process", json={"documents": [self.doc], "num_labels": 3})
                    ok = r.status_code == 200 and r.json().get("number_documents_treated") == 1
                    outcome = "ok" if ok else (f"http {r.status_code}" if r.status_code != 200 else
                                               "200 not tagged: " + str(r.json().get("list_id_not_treated"))[:80])
                except httpx.HTTPError as exc:
                    outcome = f"transport {type(exc).__name__}"
                if phase is not None:
                    phase.latencies.append(time.perf_counter() - started)
                    phase.started_at.append(offset)
                    phase.outcomes[outcome] += 1

    def ocr(self) -> None:
        def seen(response: httpx.Response) -> None:
            phase = self.phase
            if phase is not None and response.status_code >= 300:
                phase.ocr_http[response.status_code] += 1

        with httpx.Client(base_url=self.url, timeout=60, event_hooks={"response": [seen]}) as client:
            name = f"chaos-{secrets.token_hex(3)}"
            client.put("/v1/auth/register", params={"username": name, "password": "pw"})
            token = client.post("/v1/auth/token", data={"username": name, "password": "pw"}).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            up = client.post("/v1/image/upload", headers=headers,
                             files={"upload_file": ("page.png", page_png(), "image/png")})
            image_id = up.json()["file_id"]
            while not self.stop.is_set():
                phase = self.phase
                try:
                    # a careful client: one key per task it wants, so a replay cannot make two
                    r = client.post("/v1/image/process/task",
                                    headers={**headers, "Idempotency-Key": secrets.token_hex(8)},
                                    json={"image_file": image_id, "image_model": "tesseract"})
                    if r.status_code != 200:
                        outcome, reason = "failed", f"submit http {r.status_code}"
                    else:
                        task_id = r.json()["task_id"]
                        outcome, reason = "failed", "timeout"
                        deadline = time.monotonic() + 120
                        while time.monotonic() < deadline:
                            status = client.get("/v1/task/status", params={"task_id": task_id}, headers=headers)
                            body = status.json() if status.status_code == 200 else {}
                            if body.get("ready"):
                                outcome, reason = "finished", ""
                                break
                            if body.get("status") == "failed" or status.status_code >= 500:
                                # the platform's view of the task carries its recorded error
                                record = client.get(f"/platform/tasks/{task_id}", headers=headers)
                                error = record.json().get("error") if record.status_code == 200 else record.text
                                reason = f"{status.status_code} {body.get('status')}: {str(error)[:100]}"
                                break
                            time.sleep(0.3)
                except httpx.HTTPError as exc:
                    outcome, reason = "failed", f"transport {type(exc).__name__}"
                if phase is not None:
                    phase.ocr[outcome] += 1
                    if reason:
                        phase.ocr_reasons[reason] += 1


def cluster_pids(env: dict[str, str]) -> list[int]:
    out = subprocess.run(["bash", str(ROOT / "cluster" / "local.sh"), "pids"], env=env, capture_output=True,
                         text=True, check=True)
    return [int(p) for p in out.stdout.split()]


def replica_pids(env: dict[str, str], deployment: str) -> list[int]:
    found = []
    for pid in cluster_pids(env):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f"ServeReplica:percept:{deployment}" in title and "defunct" not in title:
            found.append(pid)
    return sorted(found)


def run_phase(load: Load, phase: Phase, seconds: float, env: dict[str, str] | None, kill_every: float,
              targets: list[str]) -> Phase:
    phase.began = time.monotonic()
    load.phase = phase
    end = time.monotonic() + seconds
    turn = 0
    next_kill = time.monotonic() + kill_every
    while time.monotonic() < end:
        time.sleep(0.2)
        if env is not None and time.monotonic() >= next_kill:
            target = targets[turn % len(targets)]
            turn += 1
            pids = replica_pids(env, TARGETS[target])
            if pids:
                pid = pids[turn % len(pids)]
                os.kill(pid, signal.SIGKILL)
                phase.kills.append(f"{target}:{pid}")
                phase.kill_at.append(time.monotonic() - phase.began)
            next_kill += kill_every
    load.phase = None
    time.sleep(2)  # let in-flight requests land in this phase's counts
    return phase


def report(phase: Phase) -> None:
    total = sum(phase.outcomes.values())
    ok = phase.outcomes["ok"]
    lat = sorted(phase.latencies)
    p50 = statistics.median(lat) * 1000 if lat else float("nan")
    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1000 if lat else float("nan")
    http500 = sum(n for k, n in phase.outcomes.items() if k.startswith("http 500"))
    http503 = sum(n for k, n in phase.outcomes.items() if k.startswith("http 503"))
    ocr_total = sum(phase.ocr.values())
    print(f"| {phase.name} | {len(phase.kills)} | {total} | {100 * ok / max(1, total):.2f} % | {http500} | "
          f"{http503} | {total - ok - http500 - http503} | {p50:.0f} | {p99:.0f} | "
          f"{phase.ocr['finished']}/{ocr_total} | {phase.ocr_http[500]} / {phase.ocr_http[503]} |")


def cluster_env() -> dict[str, str]:
    directory = f"/tmp/pcl-chaos-{secrets.token_hex(2)}"
    return {**os.environ, "PERCEPT_CLUSTER_DIR": directory, "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": f"{directory}/auth_token", "PY": sys.executable,
            "PERCEPT_CLUSTER_BUCKET": f"chaos-{secrets.token_hex(3)}"}


def after_kills(phase: Phase, window: float) -> None:
    """Per kill: the tagger requests started in the next ``window`` seconds and the slowest of them."""
    if not phase.kill_at:
        return
    print(f"\n{phase.name}: requests started within {window:.0f} s after each kill")
    print("| s into phase | killed | requests | slowest ms |")
    print("|---|---|---|---|")
    for at, kill in zip(phase.kill_at, phase.kills, strict=True):
        lat = [lt for st, lt in zip(phase.started_at, phase.latencies, strict=True) if at <= st < at + window]
        print(f"| {at:.0f} | {kill.split(':')[0]} | {len(lat)} | {max(lat) * 1000 if lat else float('nan'):.0f} |")


def proxy_log_counts(env: dict[str, str]) -> dict[str, int]:
    """What the proxies' replay middleware did (percept.retry): its warnings, on the proxy
    processes' stderr (Ray keeps each worker's as ``logs/worker-*.err``)."""
    counts = {"replayed": 0, "503 (not replayable or every attempt lost)": 0}
    for log in Path(env["PERCEPT_CLUSTER_DIR"], "ray").glob("session_*/logs/worker-*.err"):
        text = log.read_text(errors="replace")
        counts["replayed"] += text.count("sending it again")
        counts["503 (not replayable or every attempt lost)"] += text.count("no replica answered; 503")
    return counts


def bring_up(env: dict[str, str]) -> str:
    directory = env["PERCEPT_CLUSTER_DIR"]
    subprocess.run(["bash", str(ROOT / "cluster" / "local.sh"), "up"], env=env, check=True, timeout=300)
    root = Path(directory) / "app"
    root.mkdir(parents=True, exist_ok=True)
    port = int(env.get("PERCEPT_CLUSTER_HTTP_PORT", "8123"))
    layer = {"http_options": {"port": port}, "applications": {"percept": {"args": {
        "data_dir": str(root / "data"), "models_path": str(root / "models"), "plugins_dir": str(ROOT / "plugins"),
        "state_url": os.environ.get("PERCEPT_CLUSTER_REDIS_URL", "redis://127.0.0.1:6379/14"),
        "blob_url": f"s3://{env['PERCEPT_CLUSTER_BUCKET']}/blobs",
        "services": ["tagger", "reading"], "rate_limit_per_minute": 1_000_000,
        "service_config": {"reading": {"rate_limit_per_minute": 1_000_000}},
        "plugins": {"tesseract": {"num_cpus": 0.05, "num_replicas": 2, "autoscaling_config": None},
                    "faster_whisper": {"num_cpus": 0.05, "num_replicas": 1, "autoscaling_config": None}},
    }}}}
    config = derive.derive(derive.load(derive.CLUSTER_OVERRIDES), derive.load(derive.LOCAL_OVERRIDES), layer)
    app = config["applications"][0]["args"]
    app["deployments"]["tagger_classifier"].update({"num_replicas": 2, "autoscaling_config": None})
    path = root / "serve_config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    subprocess.run(["bash", str(ROOT / "cluster" / "local.sh"), "deploy", str(path)], env=env, check=True,
                   timeout=600)
    return f"http://127.0.0.1:{port}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phase-s", type=float, default=60.0)
    parser.add_argument("--kill-every-s", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--targets", default="ingress,tagger_classifier,ocr")
    opts = parser.parse_args()
    targets = [t for t in opts.targets.split(",") if t]
    env = cluster_env()
    try:
        url = bring_up(env)  # inside the try: a cluster half brought up is taken down too
        load = Load(url, opts.clients)
        threads = [threading.Thread(target=load.tagger, daemon=True) for _ in range(opts.clients)]
        threads.append(threading.Thread(target=load.ocr, daemon=True))
        for t in threads:
            t.start()
        time.sleep(5)  # warm-up, not counted
        baseline = run_phase(load, Phase("baseline (no kills)"), opts.phase_s, None, opts.kill_every_s, targets)
        chaos = run_phase(load, Phase(f"kill every {opts.kill_every_s:.0f} s"), opts.phase_s, env,
                          opts.kill_every_s, targets)
        load.stop.set()
        for t in threads:
            t.join(timeout=130)
        print(f"\nchaos: tagger {opts.clients} clients + 1 OCR task loop, two-node cluster, targets {targets}\n")
        print("| phase | kills | tagger requests | success | 500 | 503 | other failures | p50 ms | p99 ms | OCR tasks ok "
              "| OCR calls 500 / 503 |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for phase in (baseline, chaos):
            report(phase)
        after_kills(chaos, opts.kill_every_s)
        print(f"\nproxy replay middleware (whole run): {proxy_log_counts(env)}")
        for phase in (baseline, chaos):
            bad = {k: n for k, n in phase.outcomes.items() if k != "ok"}
            print(f"\n{phase.name}: kills {phase.kills}\n  tagger failures {bad}\n  OCR failures "
                  f"{dict(phase.ocr_reasons)}\n  OCR calls answered non-2xx {dict(phase.ocr_http)}")
    finally:
        subprocess.run(["bash", str(ROOT / "cluster" / "local.sh"), "down"], env=env, timeout=120)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
