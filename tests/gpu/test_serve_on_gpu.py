"""The Serve application on a GPU machine (skipped without CUDA, so on CPU machines and in CI).

The tagger is deployed by the real ``build_app`` with ``accelerator: auto`` (serve_config.yaml's):
its model deployments must hold the fractional GPU shares that serve_config.yaml gives them, the
classifier's replica must run its model on CUDA (the ingress, with no GPU share, stays on the CPU),
and ``POST /process`` must answer with the cat's labels from that replica. What was seen (the
deployments, the shares, nvidia-smi's processes, the answer) is written to
``$GPU_CHECK_OUT/serve_gpu_<accelerator>.json`` when that variable is set (scripts/gpu_check.sh sets it).

``PERCEPT_GPU_TEST_ACCELERATOR`` overrides the app's ``accelerator`` (default ``auto``): with ``cpu``
the shares are dropped and this test must fail on its ``gpu_lent`` assertion (scripts/gpu_check.sh
checks that it does, with ``GPU_CHECK_OUT`` a folder of its own, so that its
``serve_gpu_cpu.json`` does not overwrite the cpu test's).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.integration,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
logger = logging.getLogger(__name__)
CAT_LABELS = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}
TAGGER_MODELS = ("tagger_classifier", "tagger_detector")


def gpu_processes() -> list[dict[str, Any]]:
    """nvidia-smi's compute processes, each with its command line (Ray's process title)."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as error:
        return [{"error": str(error)}]
    found = []
    for line in out.splitlines():
        pid, _, mib = (part.strip() for part in line.partition(","))
        if not pid.isdigit():
            continue
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            title = "?"
        found.append({"pid": int(pid), "used_mib": mib, "process": title})
    return found


def wait_for_classifier(url: str, timeout_s: float = 240) -> dict[str, Any]:
    import httpx

    deadline = time.monotonic() + timeout_s
    models: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            models = httpx.get(f"{url}/platform/models", timeout=10).json()["models"]
            if models.get("tagger_classifier", {}).get("available"):
                return models
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"the tagger classifier did not become available: {models}")


def run_tagger_app(tmp_path: Path, accelerator: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, float]]:
    """Start the tagger with ``accelerator``, tag the cat twice; what was seen, the answer, the shares."""
    ray = pytest.importorskip("ray")
    import httpx
    from ray import serve
    from skimage import data

    from percept.testing import free_port, serve_config_args, start_app
    from tests.synthetic.tagger import document, encode_image

    shares = {key: float(serve_config_args()["deployments"][key]["num_gpus"]) for key in TAGGER_MODELS}
    plugins = tmp_path / "plugins"  # no plugin: only the tagger's own deployments
    plugins.mkdir()
    report: dict[str, Any] = {"accelerator": accelerator, "config_num_gpus": shares}
    ray.init(include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "PERCEPT_LOG_JSON": "false"}})
    try:
        report["cluster_gpus"] = ray.cluster_resources().get("GPU", 0.0)
        app = start_app(tmp_path, ["tagger"], free_port(), accelerator=accelerator, plugins_dir=str(plugins))
        models = wait_for_classifier(app.url)
        report["models"] = {k: models[k] for k in TAGGER_MODELS if k in models}
        status = serve.status().applications["percept"]
        report["serve_status"] = {"app": str(status.status),
                                  "deployments": {name: str(d.status) for name, d in status.deployments.items()}}
        # One replica each (the test app keeps min_replicas >= 1) and no load: what the cluster has
        # lent out is the sum of the tagger deployments' shares (none with accelerator cpu).
        expected = 0.0 if accelerator == "cpu" else sum(shares.values())
        used = 0.0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            used = report["cluster_gpus"] - ray.available_resources().get("GPU", 0.0)
            if abs(used - expected) < 1e-3:
                break
            time.sleep(0.5)
        report["gpu_lent"] = round(used, 4)

        cat = document(encode_image(data.chelsea(), "JPEG"), "jpeg", "cat")
        with httpx.Client(base_url=app.url, timeout=120) as client:
            client.post("/process", json={"documents": [cat], "num_labels": 3}).raise_for_status()  # warm-up
            started = time.perf_counter()
            answer = client.post("/process", json={"documents": [cat], "num_labels": 3})
            report["process_ms"] = round((time.perf_counter() - started) * 1000, 1)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        report["process"] = {"labels": body["data"][0]["source"]["content"], "memory_used": body["memory_used"],
                             "ram_used": body["ram_used"]}
        report["nvidia_smi_processes"] = gpu_processes()
    finally:
        out = os.environ.get("GPU_CHECK_OUT")
        if out:
            Path(out).mkdir(parents=True, exist_ok=True)
            Path(out, f"serve_gpu_{accelerator}.json").write_text(json.dumps(report, indent=2, default=str))
        logger.info("serve on GPU: %s", json.dumps(report, default=str))
        serve.shutdown()
        ray.shutdown()

    return report, body, shares


def test_tagger_deployments_take_their_gpu_shares_and_answer_from_cuda(tmp_path: Path) -> None:
    accelerator = os.environ.get("PERCEPT_GPU_TEST_ACCELERATOR", "auto")
    report, body, shares = run_tagger_app(tmp_path, accelerator)
    assert report["serve_status"]["app"].endswith("RUNNING"), report["serve_status"]
    assert report["gpu_lent"] == pytest.approx(sum(shares.values()), abs=1e-3), report
    classifier = report["models"]["tagger_classifier"]
    assert classifier.get("hosted", "replica") == "replica" and str(classifier["device"]).startswith("cuda"), classifier
    assert body["data"][0]["source"]["content"][0]["label"] in CAT_LABELS, body["data"]
    assert float(body["memory_used"]) > 0.0  # the replica that answered holds CUDA memory
    pids = [p["pid"] for p in report["nvidia_smi_processes"] if "pid" in p]
    if pids:  # nvidia-smi lists processes on this machine: the classifier's replica is one of them
        assert classifier["pid"] in pids, report["nvidia_smi_processes"]


def test_accelerator_cpu_keeps_every_model_off_the_gpu(tmp_path: Path) -> None:
    """With ``accelerator: cpu`` no share is lent and no model may sit on the GPU anyway.

    Ray leaves the GPU visible to a replica that asked for none; before ``pick_device`` asked Ray
    what it lent, the ingress-hosted classifier ran on ``cuda`` here (754 MiB never reserved).
    Every tagger model's reported device is checked (the classifier and the detector).
    """
    report, body, _ = run_tagger_app(tmp_path, "cpu")
    assert report["gpu_lent"] == pytest.approx(0.0, abs=1e-6), report
    assert set(report["models"]) == set(TAGGER_MODELS), report["models"]
    for name, model in report["models"].items():
        assert "device" in model, (name, model)
        assert str(model["device"]) == "cpu", (name, model)
    assert body["data"][0]["source"]["content"][0]["label"] in CAT_LABELS, body["data"]
    assert not [p for p in report["nvidia_smi_processes"] if "ServeReplica" in str(p.get("process"))], report
