"""Tagger over HTTP on this machine: image latency/throughput with and without batching,
and video tagging speed relative to real time.

Starts the application with only the tagger (one classifier replica) on a free port and
measures, in the same run:
  * baseline: ``batching: false`` (one forward pass per image, as the original served it);
  * ours: ``@serve.batch`` on (documents and concurrent requests batched);
  each with single-image requests at concurrency 1 and 16, and with requests of 8 images
  at concurrency 1 (batches form inside one request); skimage's cat as JPEG; p50/p99
  latency and throughput. Also the model called in-process (no HTTP, no Serve), alone and
  in a batch of 16, for scale.
  * video: a generated 30 s 320x240 25 fps clip with 4 scenes, tagged with 8 frames:
  seconds of video per second of processing.

    python -m benchmarks.tagger_http [--n1 30] [--n16 96] [--n8 10]   (from the repository root)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from skimage import data

from tests.synthetic.tagger import document, encode_image, make_video


def pct(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p99 * 1000


async def load(url: str, body: dict[str, Any], n: int, concurrency: int) -> tuple[list[float], float]:
    """Latencies of ``n`` POST /process and the wall time, ``concurrency`` in flight."""
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=300,
                                 limits=httpx.Limits(max_connections=concurrency)) as client:
        async def one() -> None:
            async with gate:
                started = time.perf_counter()
                r = await client.post("/process", json=body)
                r.raise_for_status()
                assert r.json()["number_documents_treated"] == len(body["documents"])
                latencies.append(time.perf_counter() - started)

        for _ in range(min(concurrency, 8)):  # warm-up
            await one()
        latencies.clear()
        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        wall = time.perf_counter() - started
    return latencies, wall


def deploy(root: Path, port_url: str | None, batching: bool) -> str:
    """(Re)deploy the tagger-only app with batching on or off; returns the base URL."""
    from ray import serve

    from deployments.app import build_app
    from percept.testing import app_args

    args = app_args(root, ["tagger"])
    args["plugins_dir"] = str(root / "no-plugins")
    args["deployments"] = {"tagger_classifier": {
        "num_cpus": 0.1, "num_replicas": 1, "max_ongoing_requests": 128,
        "user_config": {"batching": batching, "max_batch_size": 16, "batch_wait_timeout_s": 0.01},
    }}
    serve.run(build_app(args), name="percept", route_prefix="/")
    url = port_url or ""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/platform/models", timeout=10).json()["models"]["tagger_classifier"]["available"]:
                break
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        time.sleep(0.5)
    return url


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n1", type=int, default=30, help="requests at concurrency 1")
    parser.add_argument("--n16", type=int, default=96, help="requests at concurrency 16")
    parser.add_argument("--n8", type=int, default=10, help="8-image requests at concurrency 1")
    opts = parser.parse_args()

    # Reference first, before Ray starts: the model called in-process, one image, 1 thread.
    import torch

    from percept.imaging import shrink_to
    from percept.tagger.classifier import ImageNetClassifier
    from percept.tagger.media import FRAME_SHORT_SIDE

    torch.set_num_threads(1)
    core = ImageNetClassifier(None, "cpu")
    pixels = shrink_to(data.chelsea(), FRAME_SHORT_SIDE)
    direct: dict[int, float] = {}
    for size in (1, 16):
        core.predict([pixels] * size)
        started = time.perf_counter()
        for _ in range(3):
            core.predict([pixels] * size)
        direct[size] = (time.perf_counter() - started) / 3 / size
    del core

    import ray
    from ray import serve

    from percept.testing import free_port

    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "PERCEPT_LOG_JSON": "false"}})
    root = Path(tempfile.mkdtemp(prefix="percept-tagger-bench-"))
    (root / "no-plugins").mkdir()
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    url = f"http://127.0.0.1:{port}"

    image = {"documents": [document(encode_image(data.chelsea(), "JPEG"), "jpg", "cat")], "num_labels": 5}
    eight = {"documents": [document(encode_image(data.chelsea(), "JPEG"), "jpg", f"cat{i}") for i in range(8)],
             "num_labels": 5}
    rows = []
    multi = []
    for label, batching in (("baseline (batching off)", False), ("ours (@serve.batch on)", True)):
        deploy(root, url, batching)
        for concurrency, n in ((1, opts.n1), (16, opts.n16)):
            latencies, wall = asyncio.run(load(url, image, n, concurrency))
            p50, p99 = pct(latencies)
            rows.append((label, concurrency, n, p50, p99, n / wall))
        latencies, wall = asyncio.run(load(url, eight, opts.n8, 1))
        multi.append((label, *pct(latencies), 8 * opts.n8 / wall))
        if batching:
            models = httpx.get(f"{url}/platform/models", timeout=10).json()["models"]["tagger_classifier"]
            largest = models.get("largest_batch")

    scenes = [(data.chelsea(), 7.5), (data.coffee(), 7.5), (data.astronaut(), 7.5), (data.rocket(), 7.5)]
    clip = make_video(scenes, fps=25, size=(320, 240))
    video = {"documents": [document(clip, "mp4", "clip")], "num_labels": 5}
    video_times, _ = asyncio.run(load(url, video, 5, 1))
    video_p50 = statistics.median(video_times)

    print("\nTagger POST /process, one JPEG (451x300) per request, this machine (2 shared cores, CPU)")
    print(f"{'mode':<26}{'conc':>5}{'n':>5}{'p50 ms':>10}{'p99 ms':>10}{'req/s':>8}")
    for label, concurrency, n, p50, p99, rps in rows:
        print(f"{label:<26}{concurrency:>5}{n:>5}{p50:>10.1f}{p99:>10.1f}{rps:>8.2f}")
    print("8 images per request, concurrency 1:")
    for label, p50, p99, ips in multi:
        print(f"{label:<26}{'':>10}{p50:>10.1f}{p99:>10.1f}{ips:>8.2f} images/s")
    print(f"largest batch seen with batching on: {largest}")
    print(f"in-process model, 1 CPU thread (no HTTP/Serve): {direct[1] * 1000:.1f} ms/image alone, "
          f"{direct[16] * 1000:.1f} ms/image in a batch of 16")
    print(f"video: 30.0 s 320x240 25 fps, 4 scenes, 8 frames tagged: p50 {video_p50:.2f} s per request "
          f"= {30.0 / video_p50:.1f}x real time ({len(clip) / 2**20:.1f} MB)")
    serve.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    main()
