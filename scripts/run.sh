#!/usr/bin/env bash
# Install (if needed) and serve Percept on the embedded defaults: a local Ray, ./data, ./models,
# SQLite state, no external server. Extra arguments go to `serve run` (e.g. a GPU profile).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# shellcheck disable=SC1091
. .venv/bin/activate
export RAY_USAGE_STATS_ENABLED=0
# Serve's proxy sends a request again when its ingress replica dies (safe requests only; else
# 503 + Retry-After instead of a bare 500): percept/retry.py, docs/architecture.md
export RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH=${RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH:-percept.retry.proxy_middlewares}
# ray.init binds the dashboard to localhost by default; serve run keeps it there.
exec serve run "${@:-serve_config.yaml}"
