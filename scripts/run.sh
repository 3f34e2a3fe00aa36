#!/usr/bin/env bash
# Install (if needed) and serve Percept on the embedded defaults: a local Ray, ./data, ./models,
# SQLite state, no external server. Extra arguments go to `serve run` (e.g. a GPU profile).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# shellcheck disable=SC1091
. .venv/bin/activate
export RAY_USAGE_STATS_ENABLED=0
# ray.init binds the dashboard to localhost by default; serve run keeps it there.
exec serve run "${@:-serve_config.yaml}"
