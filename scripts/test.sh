#!/usr/bin/env bash
# Install (if needed) and run every test tier: unit, integration (Ray + Serve on the CPU) and the
# Redis-backed store suite against a real redis-server (started here when none answers).
# GPU tests are skipped on machines without CUDA. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# shellcheck disable=SC1091
. .venv/bin/activate
export RAY_USAGE_STATS_ENABLED=0

if ! command -v redis-server >/dev/null; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends redis-server >/dev/null
fi
if ! redis-cli -p 6379 ping >/dev/null 2>&1; then
  if command -v redis-server >/dev/null; then
    mkdir -p /tmp/percept-redis
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
      --dir /tmp/percept-redis --logfile /tmp/percept-redis/redis.log
    for _ in $(seq 1 50); do redis-cli -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
  else
    echo "warning: no redis-server: the Redis store tests will fail in CI" >&2
  fi
fi

exec python -m pytest -q -rfEs "$@"
