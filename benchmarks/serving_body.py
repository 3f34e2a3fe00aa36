"""What a request body costs on the serving path: Serve's fetch of the body vs the body in the scope.

Serve's proxy sends a replica the request's scope; the replica fetches the body with an actor
call back to the proxy before the app can read it. ``percept.retry`` sends the body of a
replayable request (up to ``PERCEPT_PROXY_INLINE_MAX_KB``) with the scope instead. This
script starts the tagger as ``benchmarks/serving.py`` does (the proxy middleware on) and
measures, at concurrency 1, beside each other in the same run:

  * ``GET /test`` (no body: the floor of the path);
  * ``POST /process`` with the benchmark's 224x224 JPEG document (15 KB of JSON) whose file
    type is refused before decoding (the body's path without the model);
  * ``POST /process`` with that document as a JPEG (the model too).

    flock /tmp/percept-ray.lock .venv/bin/python -m benchmarks.serving_body [--inline on|off] [--rounds 2]

Run it once per setting (the proxy reads the setting when Ray starts it).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import statistics
import tempfile
from pathlib import Path

from benchmarks import serving as bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inline", choices=("on", "off"), default="on")
    parser.add_argument("--rounds", type=int, default=2)
    opts = parser.parse_args()
    import ray
    from ray import serve

    from percept.testing import free_port

    os.environ.update(bench.NODE_ENV)
    if opts.inline == "off":
        os.environ["PERCEPT_PROXY_INLINE_MAX_KB"] = "0"
    app_env = (bench.serve_config()["applications"][0].get("runtime_env") or {}).get("env_vars", {})
    ray.init(include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", **app_env}})
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port},
                logging_config=bench.serve_config().get("logging_config"),
                controller_options=bench.serve_config().get("controller_options"))
    try:
        bench.deploy(Path(tempfile.mkdtemp(prefix="percept-body-")), "cpu", True, port)
        doc = bench.tagger_document(bench.test_jpeg())
        refused = copy.deepcopy(doc)
        refused["documents"][0]["source"].update(file_type="txt", file_name="cat.txt")
        requests = {"GET /test": (("GET", "/test", b"", {}), 100),
                    "POST /process, 15 KB, refused before decoding": (bench.json_request("/process", refused), 100),
                    "POST /process, 15 KB, one JPEG": (bench.json_request("/process", doc), 40)}
        runs: dict[str, list[bench.Run]] = {name: [] for name in requests}
        for _ in range(opts.rounds):
            for name, (request, n) in requests.items():
                runs[name].append(asyncio.run(bench.closed_loop(port, request, lambda s, _: s == 200, 1, n, 8,
                                                                warmup=5)))
        print(f"inline body {opts.inline}, c=1, medians over {opts.rounds} rounds:")
        for name, rs in runs.items():
            p50 = statistics.median(r.p50_ms for r in rs)
            cpu = statistics.median(r.cpu_ms_per_request for r in rs)
            print(f"  {name:48s} p50 {p50:6.2f} ms  CPU {cpu:5.1f} core-ms  errors {sum(r.errors for r in rs)}")
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
