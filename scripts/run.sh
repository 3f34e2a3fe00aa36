#!/usr/bin/env bash
# Install (if needed) and serve Percept on the embedded defaults: a local Ray, ./data, ./models,
# SQLite state, no external server. Extra arguments go to `serve run` (e.g. a GPU profile).
set -euo pipefail
cd "$(dirname "$0")/.."
# PERCEPT_INGRESS: haproxy (default) or serve, any case; anything else is refused before installing
ingress="${PERCEPT_INGRESS:-haproxy}"
ingress="${ingress,,}"
case "$ingress" in
  serve | haproxy) ;;
  *)
    echo "run.sh: PERCEPT_INGRESS=${PERCEPT_INGRESS}: not an ingress; use 'haproxy' (the default) or 'serve' (Serve's Python proxy alone)" >&2
    exit 2
    ;;
esac
bash scripts/install.sh
# shellcheck disable=SC1091
. .venv/bin/activate
export RAY_USAGE_STATS_ENABLED=0
# Serve's proxy sends a request again when its ingress replica dies (safe requests only; else
# 503 + Retry-After instead of a bare 500): percept/retry.py, docs/architecture.md. Behind HAProxy
# it is HAProxy's backup server, used only while no ingress replica is up.
export RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH=${RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH:-percept.retry.proxy_middlewares}
# PERCEPT_INGRESS=haproxy (the default): Serve's HAProxy ingress with percept/haproxy.py's rules:
# every request goes straight to the ingress replica (one Python hop less); those safe to send
# twice are replayed when it dies, the others (each over a server connection of its own) get
# 503 + Retry-After in the contract's shape (docs/performance.md, findings 28 and 33). Serve's
# Python proxy is HAProxy's backup while no ingress replica is up; with it down as well, HAProxy
# answers 503 + Retry-After. PERCEPT_INGRESS=serve: Serve's Python proxy alone. Falls back to Serve's proxy, logged,
# when the HAProxy binary or Serve's template does not check out, or when node_env() fails: never
# "ingress: HAProxy" without its variables set.
if [ "$ingress" = haproxy ]; then
  if ! python -m percept.haproxy --check; then
    echo "run.sh: ingress haproxy, but the check above failed: using Serve's Python proxy" >&2
  elif ! haproxy_env="$(python -c 'from percept.haproxy import node_env; import shlex; print("\n".join(f"export {k}={shlex.quote(v)}" for k, v in node_env().items()))')"; then
    echo "run.sh: ingress haproxy, but percept.haproxy.node_env() failed (above): using Serve's Python proxy" >&2
  else
    eval "$haproxy_env"
    if [ "${RAY_SERVE_ENABLE_HA_PROXY:-}" = 1 ] && [ -n "${RAY_SERVE_HAPROXY_BINARY_PATH:-}" ]; then
      echo "run.sh: ingress: Serve's HAProxy ingress with percept/haproxy.py's rules" >&2
    else
      echo "run.sh: ingress haproxy, but node_env() did not set RAY_SERVE_ENABLE_HA_PROXY=1 and RAY_SERVE_HAPROXY_BINARY_PATH: using Serve's Python proxy" >&2
      unset RAY_SERVE_ENABLE_HA_PROXY RAY_SERVE_ENABLE_DIRECT_INGRESS RAY_SERVE_HAPROXY_BINARY_PATH
    fi
  fi
fi
# ray.init binds the dashboard to localhost by default; serve run keeps it there.
exec serve run "${@:-serve_config.yaml}"
