"""Each service's integration smoke test, through the application on a two-node cluster.

The tests imported below are the integration tier's own, unchanged: they run against the
``percept_app`` of ``tests/cluster/conftest.py`` (Redis state, S3 blobs, replicas spread
over two Ray nodes). The tests written here check what makes it a cluster run.
"""

from __future__ import annotations

import json

import boto3
import pytest
import redis

from percept.testing import AppUnderTest
from tests.cluster.conftest import run_in_cluster
from tests.integration.test_correction import test_correction_job_over_http  # noqa: F401
from tests.integration.test_inspection import test_inspection_flow_over_http  # noqa: F401
from tests.integration.test_reading import test_reading_assessment_over_http  # noqa: F401
from tests.integration.test_search import site, test_search_end_to_end  # noqa: F401
from tests.integration.test_tagger import test_images_are_tagged  # noqa: F401

pytestmark = pytest.mark.cluster


def test_replicas_run_on_both_nodes(percept_app: AppUnderTest, cluster_env: dict[str, str]) -> None:
    found = json.loads(run_in_cluster(cluster_env, """
import json
from ray.util.state import list_actors
nodes = {n["NodeID"]: n["Resources"] for n in ray.nodes() if n["Alive"]}
replicas = {}
for actor in list_actors(filters=[("state", "=", "ALIVE")], limit=10_000, raise_on_missing_output=False):
    if actor.class_name.startswith("ServeReplica:"):
        replicas.setdefault(actor.node_id, []).append(actor.class_name)
print(json.dumps({"nodes": nodes, "replicas": replicas}))
"""))
    assert len(found["nodes"]) == 2
    assert set(found["replicas"]) == set(found["nodes"]), found["replicas"]  # replicas on each node
    ingress = [node for node, names in found["replicas"].items() for n in names if "Ingress" in n]
    assert len(ingress) == 2, found["replicas"]
    kinds = sorted(r for node in found["nodes"].values() for r in node if r.startswith("percept_"))
    assert kinds == ["percept_head", "percept_worker"]
    # cluster/local.yaml pins the tagger's classifier to the worker node by its custom resource
    worker = next(node for node, res in found["nodes"].items() if "percept_worker" in res)
    assert any("TaggerClassifier" in n for n in found["replicas"][worker]), found["replicas"]


def test_state_is_in_redis_and_files_are_in_s3(percept_app: AppUnderTest, cluster_env: dict[str, str]) -> None:
    with percept_app.client() as client:
        client.put("/v1/auth/register", params={"username": "cluster-ann", "password": "pw"})
        token = client.post("/v1/auth/token", data={"username": "cluster-ann", "password": "pw"})
        assert token.status_code == 200, token.text
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        wav = _tone_wav()
        up = client.post("/v1/audio/upload", headers=headers, files={"upload_file": ("tone.wav", wav, "audio/wav")})
        assert up.status_code == 200, up.text
        mp3 = client.get("/v1/audio/download", headers=headers, params={"file": up.json()["file_id"]})
        assert mp3.status_code == 200 and len(mp3.content) > 100
    store = redis.Redis.from_url(percept_app.args["state_url"])
    assert any(b"cluster-ann" in (store.get(k) or b"") for k in store.scan_iter("percept:d:*", count=1000))
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{cluster_env['PERCEPT_CLUSTER_S3_PORT']}",
                      aws_access_key_id="percept-local", aws_secret_access_key="percept-local",
                      region_name="us-east-1")
    bucket = cluster_env["PERCEPT_CLUSTER_BUCKET"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    stored = [s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys]
    assert mp3.content in stored, keys  # the converted upload lives on the S3 server


def _tone_wav() -> bytes:
    import io
    import wave

    import numpy as np

    t = np.arange(16000) / 16000
    samples = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(samples.tobytes())
    return buf.getvalue()


def test_a_killed_ingress_replica_costs_no_500(percept_app: AppUnderTest, cluster_env: dict[str, str]) -> None:
    """kill -9 of an ingress replica under load: the requests in flight on it are sent again by
    Serve's proxy (percept.retry.ReplicaLossMiddleware), none is answered 500. Runs last."""
    import os
    import signal
    import subprocess
    import threading
    import time
    from collections import Counter
    from pathlib import Path

    import httpx

    statuses: Counter[int] = Counter()
    stop = threading.Event()

    def load() -> None:
        with percept_app.client() as client:
            while not stop.is_set():
                try:
                    statuses[client.get("/platform/health").status_code] += 1
                except httpx.HTTPError:
                    statuses[0] += 1  # no answer at all: a failure too

    root = Path(__file__).resolve().parents[2]

    def ingress_pids() -> list[int]:
        found = []
        for pid in subprocess.run(["bash", "cluster/local.sh", "pids"], env=cluster_env, capture_output=True,
                                  text=True, check=True, cwd=root).stdout.split():
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "ServeReplica:percept:IngressDeployment" in title:
                found.append(int(pid))
        return found

    ingress = ingress_pids()
    assert len(ingress) == 2, ingress
    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(2)
    before = sum(statuses.values())
    os.kill(ingress[0], signal.SIGKILL)
    time.sleep(8)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert sum(statuses.values()) > before  # answers kept coming after the kill
    assert statuses[500] == 0 and set(statuses) <= {200, 503}, statuses
    # Serve starts a new replica in its place (the tests after this one, if any, see two again).
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and len([p for p in ingress_pids() if p != ingress[0]]) < 2:
        time.sleep(2)
