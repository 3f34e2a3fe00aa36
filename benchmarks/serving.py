"""The serving path against the bare model: what the application adds on this machine.

Every figure is printed beside a baseline measured in the same run, alternating with the
load (round by round), and the table gives medians over the rounds and their ratios:

  * ``GET /test`` (no model) at concurrency 1 vs Serve's own ``/-/healthz`` on the same proxy;
  * ``POST /process`` with one 224x224 JPEG at concurrency 1, 4 and 16, with the classifier's
    batching off and on, vs the same EfficientNet-Lite0 called in this process: one image
    (JPEG decode + preprocessing + forward, the work a request needs) and the best batch
    size's images per second, over one pass at a time and several one-thread passes at once
    (the replica's ``concurrent_batches``); the line under the table names the winner;
  * the floor at concurrency 16: the same ``/process`` body with its document refused before
    decoding (proxy + ingress + validation + envelope; checked to come back refused), its
    CPU per request beside the bare best's CPU per image, and the ceiling ratio those two
    leave on this machine's cores (an estimate: the refused request skips the base64 decode,
    the batch queue, the thread hop and the tags of the response; CPU only: on CUDA the path's
    figures are printed without the estimate, which would add CPU core-ms to a GPU forward);
  * OCR round trip (upload + task + status polls + result) at concurrency 4 vs the RapidOCR
    plugin called in this process on the same page;
  * idle: CPU (cores busy) and memory (RSS and PSS) of the whole application as
    ``serve run serve_config.yaml`` starts it, vs a bare Ray head (``ray.init`` alone).

The HTTP part starts the tagger and the reading service (RapidOCR as the only plugin) with
the resources, batching and autoscaling of ``serve_config.yaml``. The load generator is a
closed loop over loopback on a minimal HTTP/1.1 keep-alive client (so the client's own cost
stays well under the server's). The device is picked at run time (``--device auto``: CUDA
when torch sees one); on a GPU machine the model figures are the CUDA ones.

Beside each latency it prints the CPU per request of every process of the serving side
(core-ms), the steadier figure on a shared machine. The bare baselines run at the Ray
workers' niceness (15), as the replicas do. ``--compare-placement`` also measures the
classifier in its other place (its own replica on the CPU, in the ingress on a GPU) in the
same run, before the configured one (``classifier_in_ingress``). ``--classifier-graph
frozen|eager`` sets the tagger's ``classifier_graph`` for the app and the bare baseline alike
(default: serve_config.yaml's); the run aborts when the app's classifier reports another graph
than the baseline runs (on CUDA both run the eager model).

    .venv/bin/python -m benchmarks.serving [--quick] [--part http|idle|all] [--device auto|cpu|cuda]
                                           [--compare-placement] [--classifier-graph frozen|eager]
                                           [--ingress serve|haproxy]

``--ingress haproxy`` (the default, as in ``scripts/run.sh``) runs every part behind Serve's HAProxy
ingress with percept's replica-loss rules (``percept/haproxy.py``: requests HAProxy may not send
twice go to the replica over a server connection of their own, docs/performance.md findings 28 and
30); ``/-/healthz`` is then answered by HAProxy itself. ``--ingress serve``: Serve's Python proxy
alone. When ``python -m percept.haproxy --check`` fails, a warning and Serve's Python proxy (as in
``scripts/run.sh``); the first line printed names the ingress measured.

Run it under the shared lock (``flock /tmp/percept-ray.lock ...``): it starts Ray.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import importlib.util
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
GOAL_TEST_OVER_PROXY_MS = 2.0  # issue 14: GET /test at most 2 ms (p50) over the proxy's own /-/healthz
GOAL_SINGLE_RATIO = 1.3
GOAL_THROUGHPUT_RATIO = 0.9
GOAL_OCR_RATIO = 0.8
GOAL_IDLE_CORES = 0.05
GOAL_IDLE_GIB = 3.0
OCR_POLL_S = 0.1  # a client polling /v1/task/status ten times a second
# What every node of a deployment exports before Ray starts (scripts/run.sh, cluster/local.sh, the
# RayService): Serve's proxy runs percept.retry's middleware (replay of safe requests, the 503
# contract), so the proxy's cost per request is measured with it.
NODE_ENV = {"RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH": "percept.retry.proxy_middlewares"}


WALL: dict[str, float] = {}  # wall seconds spent per part of the run (printed last: --quick's budget)
WALL_PARENT: dict[str, str | None] = {}  # the part each part ran inside (None: the run itself)
_OPEN_PARTS: list[str] = []


@contextlib.contextmanager
def timed(part: str) -> Iterator[None]:
    """Add the wall time of the block to ``part`` (nested in the innermost part open around it)."""
    WALL_PARENT.setdefault(part, _OPEN_PARTS[-1] if _OPEN_PARTS else None)
    _OPEN_PARTS.append(part)
    started = time.perf_counter()
    try:
        yield
    finally:
        _OPEN_PARTS.pop()
        WALL[part] = WALL.get(part, 0.0) + time.perf_counter() - started


def wall_summary(parent: str | None = None) -> str:
    """``http part 300 s (of which app start 20 s, OCR 40 s), idle part 90 s``: each part with its
    nested parts in parentheses after it (they are inside its time, not beside it)."""
    cells = []
    for part, seconds in WALL.items():
        if WALL_PARENT.get(part) != parent:
            continue
        inner = wall_summary(part)
        cells.append(f"{part} {seconds:.0f} s" + (f" (of which {inner})" if inner else ""))
    return ", ".join(cells)


def env_pair(text: str) -> tuple[str, str]:
    """argparse type: ``NAME=VALUE``."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    return name.strip(), value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer (at least one round)")
    return value


# ---------------------------------------------------------------- a minimal HTTP/1.1 client


class Connection:
    """One keep-alive HTTP/1.1 connection (Content-Length or chunked responses)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
            self.reader = self.writer = None

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        fields = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name:
                fields[name.strip().lower()] = value.strip()
        if "content-length" in fields:
            data = await self.reader.readexactly(int(fields["content-length"]))
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(chunk[:-2])
            data = b"".join(parts)
        else:
            data = await self.reader.read()
            fields["connection"] = "close"
        if fields.get("connection", "").lower() == "close":
            await self.close()
        return status, data


Request = tuple[str, str, bytes, dict[str, str]]


@dataclass
class Run:
    """Latencies (s) of one closed-loop run and its wall time."""

    latencies: list[float]
    wall: float
    errors: int = 0
    cpu_s: float = float("nan")  # CPU seconds the serving side spent on the run (every process)

    @property
    def cpu_ms_per_request(self) -> float:
        return self.cpu_s * 1000 / len(self.latencies) if self.latencies else float("nan")

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies) * 1000 if self.latencies else float("nan")

    @property
    def p99_ms(self) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))] * 1000

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall if self.wall > 0 else float("nan")


async def closed_loop(port: int, request: Request, check: Callable[[int, bytes], bool], concurrency: int,
                      n: int, max_s: float, warmup: int = 2) -> Run:
    """``n`` requests (or ``max_s`` seconds), ``concurrency`` connections each one in flight."""
    conns = [Connection("127.0.0.1", port) for _ in range(concurrency)]
    method, path, body, headers = request

    async def warm(conn: Connection) -> None:
        for _ in range(warmup):
            await conn.request(method, path, body, headers)

    await asyncio.gather(*(warm(c) for c in conns))
    cpu_before = serving_cpu_s()
    latencies: list[float] = []
    errors = 0
    issued = 0
    started = time.perf_counter()
    deadline = started + max_s

    async def worker(conn: Connection) -> None:
        nonlocal issued, errors
        while issued < n and time.perf_counter() < deadline:
            issued += 1
            t0 = time.perf_counter()
            status, data = await conn.request(method, path, body, headers)
            latencies.append(time.perf_counter() - t0)
            if not check(status, data):
                errors += 1
                if errors == 1:
                    print(f"  unexpected answer {status}: {data[:300]!r}", file=sys.stderr)

    await asyncio.gather(*(worker(c) for c in conns))
    wall = time.perf_counter() - started
    cpu = serving_cpu_s() - cpu_before
    await asyncio.gather(*(c.close() for c in conns))
    return Run(latencies, wall, errors, cpu)


def serving_cpu_s() -> float:
    """CPU seconds (user + system) of every process this one started (the Ray cluster of
    ``ray.init``: proxy, replicas, raylet, GCS …), not counting this process (the client and
    the bare baselines): per request, the steadier figure on a machine shared with other jobs."""
    import psutil

    total = 0.0
    for proc in psutil.Process().children(recursive=True):
        try:
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            pass
    return total


def json_request(path: str, payload: Any) -> Request:
    return ("POST", path, json.dumps(payload).encode(), {"Content-Type": "application/json"})


def refused_request(request: Request) -> Request:
    """``request`` (a tagger /process) with its documents' file type changed to one the route
    refuses before decoding: the same body size and path, no decode, no model."""
    method, path, body, headers = request
    payload = json.loads(body)
    for doc in payload["documents"]:
        doc["source"].update(file_type="txt", file_name="doc.txt")
    return (method, path, json.dumps(payload).encode(), headers)


# ---------------------------------------------------------------- inputs and bare baselines


def pick_device(wanted: str) -> str:
    import torch

    if wanted == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return wanted


def test_jpeg() -> bytes:
    """One 224x224 JPEG (skimage's cat, resized)."""
    import cv2
    from skimage import data

    rgb = cv2.resize(data.chelsea(), (224, 224), interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return bytes(encoded)


def tagger_document(jpeg: bytes) -> dict[str, Any]:
    """A Detect ``/process`` body with one JPEG document."""
    source = {"content": base64.b64encode(jpeg).decode("ascii"), "file_type": "jpg", "file_name": "cat.jpg",
              "fs": {"uri": "file:///tmp/cat.jpg"}, "embedded_depth": 0}
    return {"documents": [{"id": "cat", "index": "bench", "source": source}], "num_labels": 5}


class BareTagger:
    """The classifier core called in this process, as a request needs it: decode, forward, top-k.

    Each figure is the better of torch's default thread count and one thread (on a shared
    machine the default pool can be many times slower): the baseline is the bare model's best.
    The best batch also tries the replica's own strategy, several one-thread passes at once.
    """

    def __init__(self, device: str, graph: str = "frozen") -> None:
        import torch

        from percept.tagger.classifier import ImageNetClassifier

        self.core = ImageNetClassifier(None, device, graph=graph)  # the same core the replica builds
        self.device = device
        self.graph = graph
        self._parallel: dict[int, Any] = {}
        self.torch = torch
        self.thread_options = sorted({torch.get_num_threads(), 1})
        self.chosen: list[int] = []

    def one(self, jpeg: bytes) -> list[tuple[str, float]]:
        from percept.tagger.classifier import top_k
        from percept.tagger.media import decode_image

        probs = self.core.predict([decode_image(jpeg)])[0]
        return top_k(probs, self.core.labels, 5)

    def _single(self, jpeg: bytes, n: int) -> Run:
        self.one(jpeg)
        latencies = []
        started = time.perf_counter()
        cpu = time.process_time()
        for _ in range(n):
            t0 = time.perf_counter()
            self.one(jpeg)
            latencies.append(time.perf_counter() - t0)
        return Run(latencies, time.perf_counter() - started, cpu_s=time.process_time() - cpu)

    def single(self, jpeg: bytes, n: int) -> Run:
        """One image at a time (the best thread setting)."""
        default = self.torch.get_num_threads()
        runs = {}
        for threads in self.thread_options:
            self.torch.set_num_threads(threads)
            runs[threads] = self._single(jpeg, n)
        self.torch.set_num_threads(default)
        best = min(runs, key=lambda t: runs[t].p50_ms)
        self.chosen.append(best)
        return runs[best]

    def _rate(self, jpeg: bytes, core: Any, size: int, passes: int, images: int) -> tuple[float, float]:
        """(images/s, CPU ms per image) of ``passes`` threads each decoding ``size`` images and
        running them as one forward pass, over and over (the CPU of every thread of this process)."""
        from concurrent.futures import ThreadPoolExecutor

        from percept.tagger.media import decode_image

        reps = max(1 if passes > 1 else 2, images // (size * passes))

        def work(n: int) -> None:
            for _ in range(n):
                core.predict([decode_image(jpeg) for _ in range(size)])

        with ThreadPoolExecutor(passes) as pool:
            list(pool.map(work, [1] * passes))  # warm-up of this shape in every thread
            started, cpu = time.perf_counter(), time.process_time()
            list(pool.map(work, [reps] * passes))
            wall, cpu_s = time.perf_counter() - started, time.process_time() - cpu
        count = reps * size * passes
        return count / wall, cpu_s * 1000 / count

    def best_batch(self, jpeg: bytes, sizes: tuple[int, ...], images: int) -> tuple[int, float, float, str]:
        """(batch size, images/s, CPU ms per image, strategy) of the fastest strategy: one pass at a
        time with each thread setting, or N passes at once with one torch thread each (N in 1,
        cores, 2 x cores, 4: what the replica does with ``concurrent_batches``; the frozen graph
        releases the GIL during a pass), every batch size each."""
        from percept.tagger.threads import available_cores

        default = self.torch.get_num_threads()
        best = (0, 0.0, float("nan"), "")
        candidates = [(threads, 1) for threads in self.thread_options]
        cores = available_cores()
        candidates += [(1, n) for n in sorted({cores, 2 * cores, 4}) if n > 1]
        for threads, passes in candidates:
            self.torch.set_num_threads(threads)
            core = self.core if passes == 1 else self.parallel_core(passes)
            for size in sizes:
                rate, cpu_ms = self._rate(jpeg, core, size, passes, images)
                if rate > best[1]:
                    label = (f"{passes} passes at once x 1 thread" if passes > 1
                             else f"one pass at a time x {threads} thread{'s' if threads > 1 else ''}")
                    best = (size, rate, cpu_ms, label)
        self.torch.set_num_threads(default)
        return best

    def parallel_core(self, passes: int) -> Any:
        """The same classifier allowing ``passes`` forward passes at once (as the replica's core)."""
        from percept.tagger.classifier import ImageNetClassifier

        if passes not in self._parallel:
            self._parallel[passes] = ImageNetClassifier(None, self.device, parallel=passes, graph=self.graph)
        return self._parallel[passes]


def load_rapidocr() -> Any:
    spec = importlib.util.spec_from_file_location("bench_rapidocr_plugin", ROOT / "plugins" / "rapidocr_plugin.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plugin = module.RapidOcrPlugin
    plugin.load()
    return plugin


def ocr_page() -> bytes:
    try:
        from tests.synthetic.reading import render_page
    except ImportError:  # before the generators moved out of the library
        from percept.reading.synth import render_page  # type: ignore[no-redef]

    return render_page(["The quick brown fox jumps over the lazy dog.",
                        "My cat likes to play in the garden.",
                        "Reading every word aloud takes practice."])


RAY_WORKER_NICENESS = int(os.environ.get("RAY_worker_niceness", "15"))  # Ray's default for its workers


@contextlib.contextmanager
def worker_priority() -> Iterator[None]:
    """Run the bare baselines at the scheduling priority of the Ray workers they are compared
    with (Ray starts every worker, replicas and proxy included, at nice 15). On a machine
    shared with other jobs a baseline at nice 0 takes the cores from the application's
    processes; on an idle machine this changes nothing. Restored after (as root; otherwise
    the process stays at the workers' niceness, which keeps the comparison fair too)."""
    # Linux keeps a niceness per thread: every thread of this process (torch's and OpenCV's
    # pools included), not only the caller.
    tasks = Path("/proc/self/task")
    tids = [int(t) for t in os.listdir(tasks)] if tasks.is_dir() else [0]
    before = {}
    for tid in tids:
        with contextlib.suppress(OSError):
            before[tid] = os.getpriority(os.PRIO_PROCESS, tid)
            os.setpriority(os.PRIO_PROCESS, tid, max(before[tid], RAY_WORKER_NICENESS))
    try:
        yield
    finally:
        for tid, nice in before.items():
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, tid, nice)


def bare_ocr(plugin: Any, path: str, n: int) -> Run:
    plugin.process_image(path)
    latencies = []
    started = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        result = plugin.process_image(path)
        latencies.append(time.perf_counter() - t0)
        assert "garden" in result.text.lower(), result.text
    return Run(latencies, time.perf_counter() - started)


# ---------------------------------------------------------------- the application over HTTP


def serve_config() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "serve_config.yaml").read_text()))


def config_args() -> dict[str, Any]:
    return dict(serve_config()["applications"][0]["args"])


def classifier_graph(opts: argparse.Namespace) -> str:
    """The tagger's ``classifier_graph`` for the app and the bare model alike: ``--classifier-graph``,
    else serve_config.yaml's ``service_config.tagger``, else the setting's default."""
    from percept.tagger.settings import TaggerSettings

    if getattr(opts, "classifier_graph", None):
        return str(opts.classifier_graph)
    section = (config_args().get("service_config") or {}).get("tagger") or {}
    return str(TaggerSettings.model_validate(section).classifier_graph)


def bench_app_args(root: Path, device: str, batching: bool, placement: str = "auto",
                   graph: str | None = None) -> dict[str, Any]:
    """serve_config.yaml's args with the tagger and reading only, RapidOCR the only plugin;
    ``placement``: the classifier's ``classifier_in_ingress`` (auto: serve_config.yaml's own);
    ``graph``: the tagger's ``classifier_graph`` (None: serve_config.yaml's own)."""
    args = config_args()
    if placement != "auto":
        args["classifier_in_ingress"] = placement
    plugins = root / "plugins"
    plugins.mkdir(exist_ok=True)
    (plugins / "rapidocr_plugin.py").write_text((ROOT / "plugins" / "rapidocr_plugin.py").read_text())
    args.update(data_dir=str(root / "data"), models_path=str(root / "models"), plugins_dir=str(plugins),
                services=["tagger", "reading"], accelerator="gpu" if device == "cuda" else "cpu")
    args["plugins"] = {k: v for k, v in (args.get("plugins") or {}).items() if k == "rapidocr"}
    deployments = {k: dict(v) for k, v in (args.get("deployments") or {}).items()}
    classifier = deployments.setdefault("tagger_classifier", {})
    user_config = dict(classifier.get("user_config") or {})
    # the row's batching on every device: a per-device override (devices.cuda.batching) would win
    devices = {k: {kk: vv for kk, vv in v.items() if kk != "batching"} for k, v in (user_config.get("devices") or {}).items()}
    classifier["user_config"] = {**user_config, "batching": batching, **({"devices": devices} if devices else {})}
    args["deployments"] = deployments
    section = dict(args.get("service_config") or {})
    section["reading"] = {**section.get("reading", {}), "rate_limit_per_minute": 1_000_000}
    if graph is not None:
        section["tagger"] = {**section.get("tagger", {}), "classifier_graph": graph}
    args["service_config"] = section
    return args


class GraphMismatch(RuntimeError):
    """The app's classifier and the bare baseline run different graphs."""


def deploy(root: Path, device: str, batching: bool, port: int, placement: str = "auto", graph: str | None = None,
           expect_graph: str | None = None) -> str:
    """(Re)deploy; a change of user_config only reconfigures the running replicas. Returns
    where the classifier runs (``ingress`` or ``replica``). ``graph``: the configured
    ``classifier_graph``; ``expect_graph``: the graph the bare baseline runs on this device
    (``frozen`` only on the CPU): a ready classifier reporting another one aborts the run,
    since the app and its baseline would not run the same model code."""
    import httpx
    from ray import serve

    from deployments.app import build_app

    serve.run(build_app(bench_app_args(root, device, batching, placement, graph)), name="percept", route_prefix="/",
              logging_config=serve_config().get("logging_config"))
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            models = httpx.get(f"http://127.0.0.1:{port}/platform/models", timeout=10).json()["models"]
            classifier = models["tagger_classifier"]
            wanted = {"always": "ingress", "never": "replica"}.get(placement, classifier.get("hosted"))
            if classifier["available"] and classifier.get("batching") == batching and classifier.get("hosted") == wanted:
                if expect_graph is not None and classifier.get("graph") != expect_graph:
                    raise GraphMismatch(f"the app's classifier runs the {classifier.get('graph')} graph, the bare "
                                        f"baseline the {expect_graph} one (configured: {graph})")
                return str(classifier.get("hosted", "replica"))
        except (httpx.HTTPError, KeyError, ValueError, TypeError):
            pass
        time.sleep(0.5)
    raise RuntimeError("the tagger classifier did not become available")


async def ocr_round_trips(url: str, page: bytes, concurrency: int, n: int, max_s: float, warmup: bool = True) -> Run:
    """Upload + task + status polls + result, ``concurrency`` users' loops in flight (``warmup``:
    one untimed round trip per user first; later rounds of a run find the path warm)."""
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        async def login(name: str) -> dict[str, str]:
            await client.put("/v1/auth/register", params={"username": name, "password": "pw"})
            token = (await client.post("/v1/auth/token", data={"username": name, "password": "pw"})).json()
            return {"Authorization": f"Bearer {token['access_token']}"}

        users = [await login(f"bench{i}-{os.getpid()}-{time.monotonic_ns()}") for i in range(concurrency)]

        async def trip(headers: dict[str, str]) -> None:
            up = await client.post("/v1/image/upload", headers=headers,
                                   files={"upload_file": ("page.png", page, "image/png")})
            up.raise_for_status()
            task = await client.post("/v1/image/process/task", headers=headers,
                                     json={"image_file": up.json()["file_id"], "image_model": "rapidocr"})
            task.raise_for_status()
            task_id = task.json()["task_id"]
            while True:
                status = (await client.get("/v1/task/status", params={"task_id": task_id}, headers=headers)).json()
                if status.get("status") == "failed":
                    raise RuntimeError(f"OCR task failed: {status}")
                if status.get("ready"):
                    break
                await asyncio.sleep(OCR_POLL_S)
            result = await client.get("/v1/image/process/result", params={"task_id": task_id}, headers=headers)
            result.raise_for_status()
            assert "garden" in result.json()["text"].lower(), result.text

        if warmup:
            await asyncio.gather(*(trip(h) for h in users))
        latencies: list[float] = []
        issued = 0
        started = time.perf_counter()

        async def worker(headers: dict[str, str]) -> None:
            nonlocal issued
            while issued < n and time.perf_counter() < started + max_s:
                issued += 1
                t0 = time.perf_counter()
                await trip(headers)
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker(h) for h in users))
        return Run(latencies, time.perf_counter() - started)


@dataclass
class Samples:
    """Per-round figures, keyed by row name."""

    runs: dict[str, list[Run]] = field(default_factory=dict)
    best: list[tuple[int, float]] = field(default_factory=list)
    best_cpu_ms: list[float] = field(default_factory=list)  # the bare best batch's CPU per image
    best_strategy: list[str] = field(default_factory=list)  # which strategy won, per round
    replicas: list[str] = field(default_factory=list)  # replicas up after each round's load (autoscaling)

    def add(self, key: str, run: Run) -> None:
        self.runs.setdefault(key, []).append(run)

    def p50(self, key: str) -> float:
        return statistics.median(r.p50_ms for r in self.runs[key])

    def p99(self, key: str) -> float:
        return statistics.median(r.p99_ms for r in self.runs[key])

    def rate(self, key: str) -> float:
        return statistics.median(r.rate for r in self.runs[key])

    def cpu_ms(self, key: str) -> float:
        """Median CPU milliseconds per request (all processes of the serving side)."""
        return statistics.median(r.cpu_ms_per_request for r in self.runs[key])

    def errors(self, key: str) -> int:
        return sum(r.errors for r in self.runs[key])


def http_part(opts: argparse.Namespace, device: str) -> tuple[Samples, dict[str, Any]]:
    import ray
    from ray import serve

    from percept.testing import free_port

    # --quick: one round of every row (each still beside its baseline of the same round) to stay
    # within about 4 minutes with the idle part on an idle 2-core machine; --rounds N for medians
    rounds = opts.rounds if opts.rounds is not None else (1 if opts.quick else 3)
    n_noop = 150 if opts.quick else 400
    n1 = 12 if opts.quick else 30
    n_conc = 24 if opts.quick else 64
    # --quick: batch sizes up to the replica's own max_batch_size on the device (4 on the CPU, 32 on
    # CUDA: serve_config.yaml), the ones the app can use, and twice that, so that the bare best is
    # still the bare model's best and not one capped where the app is; a full run tries more
    if opts.quick:
        sizes: tuple[int, ...] = (1, 2, 4, 8) if device == "cpu" else (1, 8, 32, 64)
    else:
        sizes = (1, 2, 4, 8, 16) if device == "cpu" else (1, 4, 16, 32, 64)
    jpeg = test_jpeg()
    body = json_request("/process", tagger_document(jpeg))

    def tagged(status: int, data: bytes) -> bool:
        return status == 200 and json.loads(data).get("number_documents_treated") == 1

    samples = Samples()
    bare = BareTagger(device, classifier_graph(opts))
    ocr_plugin = load_rapidocr()
    root = Path(tempfile.mkdtemp(prefix="percept-serving-"))
    page = ocr_page()
    page_path = root / "page.png"
    page_path.write_bytes(page)

    # The application's runtime_env (serve_config.yaml) applies to its replicas, as under `serve run`;
    # the node's environment of a deployment (scripts/run.sh, cluster/) to Serve's proxy.
    os.environ.update(NODE_ENV)
    app_env = (serve_config()["applications"][0].get("runtime_env") or {}).get("env_vars", {})
    # --app-env: the replicas' environment only (not this process's bare baselines), set when each
    # worker starts, so before its libraries load (an A/B of a variable such as OMP_WAIT_POLICY)
    ray.init(include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", **app_env, **dict(opts.app_env)}})
    port = free_port()
    # serve_config.yaml's controller options (its loop period) apply, as under `serve run`.
    serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config=serve_config().get("logging_config"),
                controller_options=serve_config().get("controller_options"))
    info: dict[str, Any] = {"bare_sizes": sizes}
    try:
        # the configured placement last: its figures are the ones held against the goals
        placements = ["never" if device == "cpu" else "always", "auto"] if opts.compare_placement else ["auto"]
        info["placements"] = []
        for placement in placements:
            started = time.perf_counter()
            with timed("app start"):
                hosted = deploy(root, device, True, port, placement, classifier_graph(opts), bare.core.graph)
            info["placements"].append(hosted)
            info.setdefault("start_s", {})[hosted] = time.perf_counter() - started
            _tagger_rounds(opts, port, rounds, hosted, placement, placement == placements[-1], samples, bare,
                           root, device, body, jpeg, sizes, n_noop, n1, n_conc, tagged,
                           info.setdefault("pass_threads", {}))
        info["bare_threads"] = bare.chosen
        models = __import__("httpx").get(f"http://127.0.0.1:{port}/platform/models", timeout=10).json()["models"]
        info["graph"] = (f"{models['tagger_classifier'].get('graph')} (the app reports), {bare.core.graph} (bare), "
                         f"{classifier_graph(opts)} (configured)")
        info["largest_batch"] = models["tagger_classifier"].get("largest_batch")
        for r in range(rounds):
            with worker_priority(), timed("OCR"):
                samples.add("ocr-bare", bare_ocr(ocr_plugin, str(page_path), 2 if opts.quick else 6))
            with timed("OCR"):
                samples.add("ocr", asyncio.run(ocr_round_trips(f"http://127.0.0.1:{port}", page, 4,
                                                               8 if opts.quick else 16, 90, warmup=r == 0)))
    finally:
        serve.shutdown()
        ray.shutdown()
    return samples, info


def _tagger_rounds(opts: argparse.Namespace, port: int, rounds: int, hosted: str, placement: str, noop: bool,
                   samples: Samples, bare: BareTagger, root: Path, device: str, body: Request, jpeg: bytes,
                   sizes: tuple[int, ...], n_noop: int, n1: int, n_conc: int,
                   tagged: Callable[[int, bytes], bool], pass_threads: dict[str, Any] | None = None) -> None:
    """The /process rows (and, with ``noop``, the no-op rows) of one classifier placement; the
    classifier's PassThreads figures of each batching mode go into ``pass_threads`` (mode: state),
    read at the end of that mode (each redeploy builds a new chooser)."""
    refused_ids = [doc["id"] for doc in json.loads(refused_request(body)[2])["documents"]]

    def refused(status: int, data: bytes) -> bool:  # the floor counts only requests the route refused
        answer = json.loads(data) if status == 200 else {}
        return [k for entry in answer.get("list_id_not_treated", []) for k in entry] == refused_ids
    for batching in (False, True):
        with timed("redeploy"):
            deploy(root, device, batching, port, placement, classifier_graph(opts), bare.core.graph)
        mode = f"{'on' if batching else 'off'}-{hosted}"
        for r in range(rounds):
            print(f"round {r + 1}/{rounds}, batching {mode}", file=sys.stderr)
            if batching and noop:  # the no-op paths once per round
                ok = lambda s, d: s == 200  # noqa: E731
                samples.add("healthz", asyncio.run(closed_loop(port, ("GET", "/-/healthz", b"", {}), ok, 1,
                                                               n_noop, 20, warmup=20)))
                samples.add("test", asyncio.run(closed_loop(port, ("GET", "/test", b"", {}), ok, 1,
                                                            n_noop, 20, warmup=20)))
                # the floor: the same /process request with its document refused before decoding
                # (the proxy, the ingress, validation, the envelope; no decode, no model), c=16
                samples.add("path16", asyncio.run(closed_loop(port, refused_request(body), refused, 16, n_noop,
                                                              20, warmup=2)))
            with worker_priority():
                samples.add(f"bare1-{mode}", bare.single(jpeg, n1))
            samples.add(f"c1-{mode}", asyncio.run(closed_loop(port, body, tagged, 1, n1, 60)))
            with worker_priority(), timed("bare best batch"):
                size, rate, cpu_ms, strategy = bare.best_batch(jpeg, sizes, 16 if opts.quick else 32)
                samples.best.append((size, rate))
                samples.best_cpu_ms.append(cpu_ms)
                samples.best_strategy.append(f"b={size} {strategy}: {rate:.1f}/s, {cpu_ms:.1f} core-ms/img")
            for c in (4, 16):
                samples.add(f"c{c}-{mode}", asyncio.run(closed_loop(port, body, tagged, c, n_conc, 60)))
            samples.replicas.append(f"{mode} round {r + 1}: {replica_counts()}")
        if pass_threads is not None:
            models = __import__("httpx").get(f"http://127.0.0.1:{port}/platform/models", timeout=10).json()["models"]
            pass_threads[mode] = models["tagger_classifier"].get("pass_threads")


def replica_counts() -> dict[str, int]:
    """Replicas of each deployment of the app now (starting ones included): whether the load
    made the autoscaler add any (on a one-node CPU cluster they share the same cores)."""
    import ray
    from ray import serve

    if not ray.is_initialized():  # serve.status() would start a local Ray instance
        return {}
    try:
        deployments = serve.status().applications["percept"].deployments
        return {name: sum(dep.replica_states.values()) for name, dep in deployments.items()
                if sum(dep.replica_states.values())}
    except Exception as exc:  # noqa: BLE001 - informative only
        return {"?": 0, type(exc).__name__: 0}


# ---------------------------------------------------------------- idle footprint


def tree(pid: int) -> list[Any]:
    import psutil

    try:
        parent = psutil.Process(pid)
        return [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def process_label(proc: Any) -> str:
    """A short name: the Ray actor title (``ServeReplica:percept:TaggerClassifier``) or the program."""
    try:
        line = " ".join(proc.cmdline())
    except Exception:
        return "?"
    if "ray::" in line:
        return line.split("ray::", 1)[1].split()[0].split("#")[0]
    parts = line.split()
    return Path(parts[0]).name + (" " + Path(parts[1]).name if len(parts) > 1 and parts[1].endswith(".py") else "")


@dataclass
class Footprint:
    cores: float
    rss_gib: float
    pss_gib: float
    procs: int
    by_process: dict[str, tuple[float, float]]  # label -> (cores, PSS GiB), summed


def footprint(pid: int, window_s: float) -> Footprint:
    """Cores busy, RSS and PSS of a process tree over ``window_s``, and per process."""
    import psutil

    def cpu(procs: list[Any]) -> dict[int, float]:
        out = {}
        for p in procs:
            try:
                t = p.cpu_times()
                out[p.pid] = t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return out

    before = cpu(tree(pid))
    time.sleep(window_s)
    procs = tree(pid)
    after = cpu(procs)
    rss = pss = 0
    by: dict[str, tuple[float, float]] = {}
    for p in procs:
        busy = (after[p.pid] - before[p.pid]) / window_s if p.pid in after and p.pid in before else 0.0
        try:
            full = p.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss += full.rss
        mine = getattr(full, "pss", full.rss)
        pss += mine
        label = process_label(p)
        old = by.get(label, (0.0, 0.0))
        by[label] = (old[0] + busy, old[1] + mine / 2**30)
    cores = sum(after[p] - before[p] for p in after if p in before) / window_s
    return Footprint(cores, rss / 2**30, pss / 2**30, len(procs), by)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT the process group (Ray tears down what it started), then make sure."""
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def idle_part(opts: argparse.Namespace) -> dict[str, Any]:


    settle, window = (10.0, 12.0) if opts.quick else (30.0, 30.0)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1", **NODE_ENV}
    out: dict[str, Any] = {}

    # Baseline: a bare Ray head, started the way `serve run` starts its local cluster.
    head = subprocess.Popen([sys.executable, "-c", "import ray, time; ray.init(); time.sleep(3600)"],
                            env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(settle)
        out["bare"] = footprint(head.pid, window)
    finally:
        stop(head)

    # the configured placement last: its figures are the ones held against the goals
    placements = ["never", "auto"] if opts.compare_placement else ["auto"]
    for placement in placements:
        out["app_runs"] = [*out.get("app_runs", []), idle_app(env, placement, settle, window)]
    out.update(out["app_runs"][-1])
    return out


def idle_app(env: dict[str, str], placement: str, settle: float, window: float) -> dict[str, Any]:
    """``serve run serve_config.yaml`` (``placement``: its ``classifier_in_ingress``, auto: as
    configured) idle: readiness, footprint, and a cold start of a deployment at zero."""
    import httpx

    from percept.testing import free_port

    out: dict[str, Any] = {"placement": placement}
    tmp = Path(tempfile.mkdtemp(prefix="percept-idle-"))
    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    port = free_port()
    config["http_options"]["port"] = port
    config["applications"][0]["args"]["data_dir"] = str(tmp / "data")
    if placement != "auto":
        config["applications"][0]["args"]["classifier_in_ingress"] = placement
    path = tmp / "serve_config.yaml"
    path.write_text(yaml.safe_dump(config))
    log = open(tmp / "serve.log", "w")  # noqa: SIM115 (closed below)
    started = time.perf_counter()
    app = subprocess.Popen([str(BIN / "serve"), "run", str(path)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                           env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 420
        while time.monotonic() < deadline:
            if app.poll() is not None:
                raise RuntimeError(f"serve run exited with {app.returncode}; see {tmp / 'serve.log'}")
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/platform/health", timeout=10)
                if response.status_code == 200:
                    health = response.json()
                    if not any("loading" in str(s.get("message", "")) for s in health["deployments"].values()):
                        out["ready_s"] = time.perf_counter() - started
                        out["health"] = health
                        break
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(1)
        else:
            raise RuntimeError(f"the application did not become ready; see {tmp / 'serve.log'}")
        time.sleep(settle)
        out["app"] = footprint(app.pid, window)
        out["cold"] = cold_start(f"http://127.0.0.1:{port}")
    finally:
        stop(app)
        log.close()
    return out


def cold_start(url: str) -> dict[str, Any]:
    """The tagger's detector (scaled to zero in serve_config.yaml) woken by a request: the
    client's wait for the answer, and the startup /platform/health shows afterwards."""
    import httpx

    name = "tagger_detector"
    before = httpx.get(f"{url}/platform/health", timeout=30).json()["deployments"].get(name, {})
    if not before.get("scaled_to_zero"):
        return {"skipped": f"{name} is not scaled to zero ({before.get('message')})"}
    doc = {"id": "cold", "source": {"content": base64.b64encode(test_jpeg()).decode(), "file_type": "jpg",
                                    "file_name": "cat.jpg"}}
    started = time.perf_counter()
    answer = httpx.post(f"{url}/process", json={"documents": [doc], "prompt": "<OD>"}, timeout=300)
    waited = time.perf_counter() - started
    after = httpx.get(f"{url}/platform/health", timeout=30).json()["deployments"].get(name, {})
    return {"deployment": name, "status": answer.status_code, "client_s": waited,
            "startup_s": after.get("startup_s"), "message": after.get("message")}


# ---------------------------------------------------------------- report


def verdict(ok: bool) -> str:
    return "yes" if ok else "NO"


def report(device: str, samples: Samples | None, info: dict[str, Any], idle: dict[str, Any] | None) -> None:
    import torch

    from percept.tagger.threads import available_cores

    print(f"\nPercept serving path vs the bare model, device {device} "
          f"(torch {torch.__version__}, {os.cpu_count()} CPUs), medians over rounds")
    print(f"{'path':44s} {'Percept':>22s} {'baseline (same run)':>28s} {'ratio':>7s} {'goal':>12s} {'met':>4s}")

    def row(path: str, ours: str, base: str, ratio: float, goal: str, ok: bool | None) -> None:
        met = "" if ok is None else verdict(ok)
        print(f"{path:44s} {ours:>22s} {base:>28s} {ratio:7.2f} {goal:>12s} {met:>4s}")

    if samples is not None:
        s = samples
        print(f"GET /test costs {s.p50('test') - s.p50('healthz'):.2f} ms (p50) more than the proxy's own /-/healthz")
        row("GET /test, c=1 (p50; req/s)", f"{s.p50('test'):.2f} ms {s.rate('test'):6.0f}/s",
            f"/-/healthz {s.p50('healthz'):.2f} ms {s.rate('healthz'):5.0f}/s",
            s.p50("test") / s.p50("healthz"), f"<= +{GOAL_TEST_OVER_PROXY_MS:g} ms",
            s.p50("test") - s.p50("healthz") <= GOAL_TEST_OVER_PROXY_MS)
        best_size = statistics.median_low(b for b, _ in s.best)
        best_rate = statistics.median(r for _, r in s.best)
        placements = info.get("placements", ["replica"])
        for hosted in placements:
            goals = hosted == placements[-1]  # the configured placement (a comparison's first is the other)
            print(f"classifier in the {hosted}{' (configured)' if goals else ''}:")
            for batching in ("off", "on"):
                mode = f"{batching}-{hosted}"
                ratio = s.p50(f"c1-{mode}") / s.p50(f"bare1-{mode}")
                row(f"POST /process 224 JPEG, c=1, batching {batching} (p50)",
                    f"{s.p50(f'c1-{mode}'):.1f} ms (p99 {s.p99(f'c1-{mode}'):.0f})",
                    f"bare 1 image {s.p50(f'bare1-{mode}'):.1f} ms", ratio, f"<= {GOAL_SINGLE_RATIO:g}x",
                    ratio <= GOAL_SINGLE_RATIO if batching == "on" and goals else None)
                for c in (4, 16):
                    key = f"c{c}-{mode}"
                    ratio = s.rate(key) / best_rate
                    goal_ok = ratio >= GOAL_THROUGHPUT_RATIO if (c == 16 and batching == "on" and goals) else None
                    row(f"POST /process, c={c}, batching {batching} (img/s)",
                        f"{s.rate(key):.1f}/s (p99 {s.p99(key):.0f} ms)", f"bare best b={best_size} {best_rate:.1f}/s*",
                        ratio, f">= {GOAL_THROUGHPUT_RATIO:g}x" if goal_ok is not None else "", goal_ok)
        print(f"* bare best: the fastest of batch sizes {', '.join(map(str, info.get('bare_sizes', ())))} (every "
              "strategy, below)")
        print("CPU per request, every process of the serving side (core-ms; steadier than the latencies on a "
              f"shared machine): GET /test {s.cpu_ms('test'):.1f}, /-/healthz {s.cpu_ms('healthz'):.1f}")
        for hosted in placements:
            cells = [f"c={c} batching {b} {s.cpu_ms(f'c{c}-{b}-{hosted}'):.1f}" for b in ("off", "on") for c in (1, 4, 16)]
            print(f"  POST /process, classifier in the {hosted}: {', '.join(cells)}; the bare model in one process "
                  f"(decode + forward + top-k) {s.cpu_ms(f'bare1-on-{hosted}'):.1f}")
        print(f"bare best per round (batch size, strategy, rate, CPU per image): {'; '.join(s.best_strategy)}; "
              f"batch sizes tried: {', '.join(map(str, info.get('bare_sizes', ())))}")
        print(f"replicas after each round's load: {'; '.join(s.replicas)}")
        if "path16" in s.runs and device != "cpu":
            print(f"floor at c=16: the path alone (the same /process body refused before decoding) "
                  f"{s.cpu_ms('path16'):.1f} core-ms per request ({s.rate('path16'):.0f} req/s, p50 "
                  f"{s.p50('path16'):.1f} ms); no ceiling estimate on {device}: it adds CPU core-ms only "
                  "(the forward runs on the GPU)")
        elif "path16" in s.runs and s.best_cpu_ms:
            path_ms, model_ms = s.cpu_ms("path16"), statistics.median(s.best_cpu_ms)
            cores = available_cores()
            ceiling = cores * 1000 / (path_ms + model_ms)
            print(f"floor at c=16: the path alone (the same /process body refused before decoding) "
                  f"{path_ms:.1f} core-ms per request ({s.rate('path16'):.0f} req/s, p50 {s.p50('path16'):.1f} ms); "
                  f"the bare best batch {model_ms:.1f} core-ms per image; so at most {cores} x 1000 / "
                  f"({path_ms:.1f} + {model_ms:.1f}) = {ceiling:.1f} img/s on {cores} cores (no client, no Ray "
                  f"background counted) = {ceiling / best_rate:.2f}x the bare best {best_rate:.1f}/s")
        ocr_ratio = s.rate("ocr") / s.rate("ocr-bare")
        row("OCR round trip, c=4 (pages/s)", f"{s.rate('ocr'):.2f}/s (p50 {s.p50('ocr'):.0f} ms)",
            f"engine {s.rate('ocr-bare'):.2f}/s ({s.p50('ocr-bare'):.0f} ms)", ocr_ratio,
            f">= {GOAL_OCR_RATIO:g}x", ocr_ratio >= GOAL_OCR_RATIO)
        errors = {k: s.errors(k) for k in s.runs if s.errors(k)}
        print(f"tagger+reading app ready in (s) {info.get('start_s')}; largest classifier batch "
              f"seen: {info.get('largest_batch')}; bare best batch sizes per round: {[b for b, _ in s.best]} "
              f"(of {list(info.get('bare_sizes', ()))}); "
              f"bare single-image threads chosen: {info.get('bare_threads')}; classifier graph: {info.get('graph')}; "
              f"errors: {errors or 'none'}")
        # PassThreads (percept/tagger/threads.py): the width a pass alone got, per batching mode
        # (each mode's redeploy starts a new chooser, so each figure covers that mode only)
        for mode, state in (info.get("pass_threads") or {"all modes": None}).items():
            print(f"classifier threads per pass, batching {mode} (narrow / wide when alone, the mean wall ms "
                  f"of passes alone per width, passes per width): {state or 'off (one width)'}")
    if idle is not None:
        bare = idle["bare"]
        for other in idle.get("app_runs", [])[:-1]:  # a comparison's other placement first
            run = other["app"]
            print(f"classifier_in_ingress: {other['placement']} (for comparison): {run.cores:.3f} cores idle "
                  f"({run.cores - bare.cores:.3f} above the bare Ray head), PSS {run.pss_gib:.2f} GiB, "
                  f"{run.procs} procs, ready in {other.get('ready_s', float('nan')):.0f} s")
        print("classifier_in_ingress as configured:")
        app = idle["app"]
        deployments = idle.get("health", {}).get("deployments", {})
        row(f"whole app idle ({len(deployments)} deployments, {app.procs} procs): cores",
            f"{app.cores:.3f} cores", f"bare Ray head {bare.cores:.3f} ({bare.procs} procs)",
            app.cores / max(bare.cores, 1e-3), f"<= {GOAL_IDLE_CORES:g}", app.cores <= GOAL_IDLE_CORES)
        row("  the same, above the bare Ray head", f"{app.cores - bare.cores:.3f} cores", "", float("nan"),
            f"<= {GOAL_IDLE_CORES:g}", app.cores - bare.cores <= GOAL_IDLE_CORES)
        row("whole app idle: memory (PSS; RSS)", f"{app.pss_gib:.2f} GiB ({app.rss_gib:.2f})",
            f"bare Ray head {bare.pss_gib:.2f} GiB ({bare.rss_gib:.2f})", app.pss_gib / max(bare.pss_gib, 1e-3),
            f"<= {GOAL_IDLE_GIB:g} GiB", app.pss_gib <= GOAL_IDLE_GIB)
        scaled = sorted(n for n, st in deployments.items() if st.get("scaled_to_zero"))
        print(f"scaled to zero while idle ({len(scaled)}): {', '.join(scaled) or 'none'}")
        cold = idle.get("cold", {})
        if "client_s" in cold:
            print(f"cold start of {cold['deployment']} (scaled to zero): first request answered "
                  f"{cold['status']} after {cold['client_s']:.1f} s; /platform/health shows startup_s "
                  f"{cold['startup_s']} ({cold['message']})")
        else:
            print(f"cold start: {cold.get('skipped', 'not measured')}")
        print(f"whole app (serve run serve_config.yaml) ready in {idle.get('ready_s', float('nan')):.0f} s; "
              "idle by process (cores, PSS GiB):")
        for label, (cores, gib) in sorted(app.by_process.items(), key=lambda kv: -kv[1][1]):
            print(f"    {label:60s} {cores:6.3f} {gib:6.2f}")


def choose_ingress(wanted: str) -> str:
    """The ingress to measure (``NODE_ENV`` set for it): HAProxy only when ``python -m percept.haproxy
    --check`` passes; else, as ``scripts/run.sh`` does, Serve's Python proxy with a warning."""
    if wanted != "haproxy":
        return wanted
    from percept import haproxy

    if haproxy.check() != 0:
        logger.warning("the HAProxy ingress is not usable here (python -m percept.haproxy --check says why "
                       "above): measuring Serve's Python proxy instead")
        return "serve"
    NODE_ENV.update(haproxy.node_env())
    return "haproxy"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="one round, fewer requests and batch sizes (the bare model's up to twice the replica's "
                             "max_batch_size; the budget: 4 minutes on an idle 2-core machine; the last line prints "
                             "the wall time of each part, nested parts in parentheses after their parent)")
    parser.add_argument("--part", choices=("http", "idle", "all"), default="all")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--classifier-graph", choices=("frozen", "eager"), default=None,
                        help="EfficientNet-Lite0's forward on the CPU, in the app and the bare baseline alike "
                             "(default: serve_config.yaml's service_config.tagger, else frozen)")
    parser.add_argument("--rounds", type=positive_int, default=None,
                        help="rounds of the HTTP rows (medians over them; at least 1); default 1 with --quick, else 3")
    parser.add_argument("--compare-placement", action="store_true",
                        help="also measure /process with the classifier in the other place (its own replica on "
                             "the CPU, in the ingress on a GPU), in the same run, before the configured one")
    parser.add_argument("--ingress", choices=("serve", "haproxy"), default="haproxy",
                        help="haproxy (the default of scripts/run.sh): Serve's HAProxy ingress with "
                             "percept/haproxy.py's rules; serve: Serve's Python proxy alone with percept.retry's "
                             "middleware (PERCEPT_INGRESS=serve scripts/run.sh)")
    parser.add_argument("--app-env", type=env_pair, action="append", default=[], metavar="NAME=VALUE",
                        help="(repeatable) add a variable to the HTTP part's replicas' environment only (the "
                             "application's runtime_env, over serve_config.yaml's), not to the bare baselines "
                             "measured in this process; printed on the first line")
    opts = parser.parse_args()
    opts.ingress = choose_ingress(opts.ingress)
    print(f"ingress measured: {opts.ingress} ({', '.join(f'{k}={v}' for k, v in sorted(NODE_ENV.items()))})"
          + (f"; replicas' extra environment: {', '.join(f'{k}={v}' for k, v in opts.app_env)}" if opts.app_env else ""))
    device = pick_device(opts.device)
    samples: Samples | None = None
    info: dict[str, Any] = {}
    idle: dict[str, Any] | None = None
    started = time.perf_counter()
    if opts.part in ("http", "all"):
        with timed("http part"):
            samples, info = http_part(opts, device)
    if opts.part in ("idle", "all"):
        with timed("idle part"):
            idle = idle_part(opts)
    report(device, samples, info, idle)
    print(f"wall time {time.perf_counter() - started:.0f} s at load {os.getloadavg()[0]:.1f}: {wall_summary()}")


if __name__ == "__main__":
    main()
