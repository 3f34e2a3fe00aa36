"""Overhead of one ingress → model deployment hop.

Runs the platform alone under Serve on this machine and times, sequentially:
  * baseline A: a direct DeploymentHandle call to the no-op deployment (no HTTP, no ingress);
  * baseline B: the no-op route answered by the ingress itself (HTTP, no hop);
  * ours: the route that goes ingress → no-op deployment → back (HTTP + one hop).
The hop's cost is (ours − B). Prints p50/p99 in milliseconds.

    python benchmarks/platform_hop.py [--n 300]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return statistics.median(ordered) * 1000, p99 * 1000


def timed(fn: Callable[[], object], n: int) -> list[float]:
    for _ in range(min(20, n)):  # warm-up
        fn()
    out = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300)
    n = parser.parse_args().n

    import ray
    from ray import serve

    from percept.testing import free_port, start_app

    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    root = Path(tempfile.mkdtemp(prefix="percept-bench-"))
    started = time.perf_counter()
    # The echo routes are debug routes: on only with debug_routes, for the admins named.
    app = start_app(root, [], free_port(), debug_routes=True, admins=["user:bench"])
    cold = time.perf_counter() - started
    handle = serve.get_deployment_handle("EchoDeployment", app_name="percept")

    with httpx.Client(base_url=app.url, timeout=30) as client:
        client.put("/v1/auth/register", params={"username": "bench", "password": "bench-pw"})
        token = client.post("/v1/auth/token", data={"username": "bench", "password": "bench-pw"}).json()
        client.headers["Authorization"] = f"Bearer {token['access_token']}"
        direct = timed(lambda: handle.ping.remote().result(), n)
        noop = timed(lambda: client.get("/platform/echo").raise_for_status(), n)
        hop = timed(lambda: client.get("/platform/echo/hop").raise_for_status(), n)

    print(f"platform app cold start (serve.run → /healthz 200, platform only): {cold:.1f} s")
    print(f"{'path':48s} {'p50 ms':>8s} {'p99 ms':>8s}")
    for label, samples in (
        ("baseline A: direct handle call (no HTTP)", direct),
        ("baseline B: HTTP no-op at the ingress", noop),
        ("ours: HTTP ingress -> model deployment hop", hop),
    ):
        p50, p99 = percentiles(samples)
        print(f"{label:48s} {p50:8.2f} {p99:8.2f}")
    hop50 = percentiles(hop)[0] - percentiles(noop)[0]
    hop99 = percentiles(hop)[1] - percentiles(noop)[1]
    print(f"one hop costs: p50 +{hop50:.2f} ms, p99 +{hop99:.2f} ms over the ingress alone (n={n})")
    serve.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    main()
