#!/usr/bin/env bash
# A real two-node Ray cluster on this machine, with the cluster stores:
#   head node   `ray start --head`            custom resource percept_head
#   worker node `ray start --address=<head>`  custom resource percept_worker (its own CPUs)
#   state       Redis (127.0.0.1:6379, database 14 unless PERCEPT_CLUSTER_REDIS_URL says otherwise)
#   blobs       an S3-compatible server (moto's server, pinned in pyproject.toml) and a bucket
#
#   bash cluster/local.sh up               start all of it (idempotent: refuses if already up)
#   bash cluster/local.sh deploy CONFIG    `serve run CONFIG --non-blocking` on it, wait for /healthz
#   bash cluster/local.sh config [--set K=V]  print the derived serve config
#   bash cluster/local.sh status           Serve's status of the application
#   bash cluster/local.sh down             stop everything this script started (by PID), drop its data
#
# The serve config is derived, never written by hand: serve_config.yaml, then
# cluster/overrides.yaml, then cluster/local.yaml, then the addresses of this run
# (python cluster/derive.py). Every process started here runs under $DIR (its Ray temp dir and
# pid files), and `down` kills exactly those PIDs, never `ray stop` (other Ray sessions on
# the machine are left alone). Run it under the shared lock (flock /tmp/percept-ray.lock).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PY:-$ROOT/.venv/bin/python}
BIN=$(dirname "$PY")
DIR=${PERCEPT_CLUSTER_DIR:-/tmp/percept-cluster}
RAY_PORT=${PERCEPT_CLUSTER_RAY_PORT:-6391}
S3_PORT=${PERCEPT_CLUSTER_S3_PORT:-9123}
HTTP_PORT=${PERCEPT_CLUSTER_HTTP_PORT:-8123}
API_PORT=${PERCEPT_CLUSTER_API_PORT:-}  # Ray's dashboard / state API on loopback; unset: none
REDIS_URL=${PERCEPT_CLUSTER_REDIS_URL:-redis://127.0.0.1:6379/14}
BUCKET=${PERCEPT_CLUSTER_BUCKET:-percept-cluster}
NODE_CPUS=${PERCEPT_CLUSTER_NODE_CPUS:-4}
OBJECT_STORE=${PERCEPT_CLUSTER_OBJECT_STORE:-200000000}

# Every process of the cluster sees the S3 endpoint and its (local, throw-away) credentials:
# replicas inherit the raylets' environment, as pods get theirs from the RayService manifest.
export AWS_ENDPOINT_URL="http://127.0.0.1:$S3_PORT"
export FSSPEC_S3_ENDPOINT_URL="$AWS_ENDPOINT_URL"
export AWS_ACCESS_KEY_ID=percept-local AWS_SECRET_ACCESS_KEY=percept-local AWS_DEFAULT_REGION=us-east-1
export RAY_USAGE_STATS_ENABLED=0 HF_HUB_OFFLINE=1 PERCEPT_LOG_JSON=false
# Serve's proxies (one per node) answer a request whose ingress replica died by sending it again
# when that is safe, else 503 + Retry-After, never a bare 500 (percept/retry.py).
export RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH=percept.retry.proxy_middlewares
# Ray's token authentication, with a token of this cluster's own (every node and driver reads it).
export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH="$DIR/auth_token"
export PATH="$BIN:$PATH"

log() { echo "[cluster] $*" >&2; }

wait_for() {  # wait_for SECONDS COMMAND...
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.3
  done
}

our_pids() {  # the Ray daemons whose command line names our directory, and all their descendants
  local roots="" pid
  for pid in /proc/[0-9]*; do
    pid=${pid#/proc/}
    [ "$pid" = "$$" ] && continue
    if { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "$DIR/"; then roots="$roots $pid"; fi
  done
  [ -n "$roots" ] || return 0
  # workers rename themselves (ray::ServeReplica...), so they are found as descendants
  ps -eo pid=,ppid= | awk -v roots="$roots" '
    { parent[$1] = $2 }
    END {
      n = split(roots, r, " "); for (i = 1; i <= n; i++) mine[r[i]] = 1
      do { grew = 0; for (p in parent) if (!(p in mine) && (parent[p] in mine)) { mine[p] = 1; grew = 1 } } while (grew)
      for (p in mine) print p
    }'
}

config() {
  "$PY" cluster/derive.py cluster/overrides.yaml cluster/local.yaml \
    --set "args.state_url=$REDIS_URL" --set "args.blob_url=s3://$BUCKET/blobs" \
    --set "args.plugins_dir=$ROOT/plugins" "$@" |
    "$PY" -c "import sys, yaml; c = yaml.safe_load(sys.stdin); c['http_options']['port'] = $HTTP_PORT;
print('# Derived from serve_config.yaml by cluster/derive.py + cluster/local.sh'); print(yaml.safe_dump(c, sort_keys=False, width=100))"
}

up() {
  if [ -f "$DIR/up" ]; then log "already up ($DIR/up); run down first"; return 1; fi
  mkdir -p "$DIR"
  (umask 077; "$PY" -c "import secrets; print(secrets.token_hex(32))" >"$RAY_AUTH_TOKEN_PATH")
  redis_host=${REDIS_URL#redis://}; redis_host=${redis_host%%/*}
  if ! redis-cli -h "${redis_host%:*}" -p "${redis_host#*:}" ping >/dev/null 2>&1; then
    log "starting redis-server on $redis_host"
    redis-server --daemonize yes --bind 127.0.0.1 --port "${redis_host#*:}" --save "" --appendonly no \
      --dir "$DIR" --logfile "$DIR/redis.log" --pidfile "$DIR/redis.pid"
    wait_for 10 redis-cli -p "${redis_host#*:}" ping
  fi
  "$PY" -c "import redis; redis.Redis.from_url('$REDIS_URL').flushdb()"

  log "S3 server (moto) on 127.0.0.1:$S3_PORT"
  "$BIN/moto_server" -H 127.0.0.1 -p "$S3_PORT" >"$DIR/s3.log" 2>&1 &
  echo $! >"$DIR/s3.pid"
  wait_for 30 "$PY" -c "import urllib.request; urllib.request.urlopen('$AWS_ENDPOINT_URL/moto-api/')"
  "$PY" -c "import boto3; boto3.client('s3').create_bucket(Bucket='$BUCKET')"

  # Ray's dashboard serves the state API (ray.util.state: the cluster test tier asks it where
  # replicas run). Only when PERCEPT_CLUSTER_API_PORT is set, on loopback: without it (the chaos
  # benchmark) Ray starts no HTTP server at all.
  local dashboard=(--include-dashboard=false)
  if [ -n "$API_PORT" ]; then
    dashboard=(--include-dashboard=true --dashboard-host=127.0.0.1 --dashboard-port="$API_PORT")
  fi
  log "Ray head on 127.0.0.1:$RAY_PORT ($NODE_CPUS CPUs, resource percept_head)"
  "$BIN/ray" start --head --node-ip-address=127.0.0.1 --port="$RAY_PORT" --num-cpus="$NODE_CPUS" \
    --resources='{"percept_head": 100}' "${dashboard[@]}" --temp-dir="$DIR/ray" \
    --object-store-memory="$OBJECT_STORE" --disable-usage-stats >"$DIR/head.log" 2>&1
  log "Ray worker node ($NODE_CPUS CPUs, resource percept_worker)"
  "$BIN/ray" start --address="127.0.0.1:$RAY_PORT" --node-ip-address=127.0.0.1 --num-cpus="$NODE_CPUS" \
    --resources='{"percept_worker": 100}' --temp-dir="$DIR/ray" \
    --object-store-memory="$OBJECT_STORE" --disable-usage-stats >"$DIR/worker.log" 2>&1
  wait_for 60 "$PY" -c "
import ray, sys
ray.init(address='127.0.0.1:$RAY_PORT', logging_level='ERROR', log_to_driver=False)
sys.exit(0 if sum(n['Alive'] for n in ray.nodes()) == 2 else 1)"
  touch "$DIR/up"
  log "up: ray 127.0.0.1:$RAY_PORT, state $REDIS_URL, blobs s3://$BUCKET at $AWS_ENDPOINT_URL"
}

deploy() {
  local file=${1:-$DIR/serve_config.yaml}
  if [ ! -f "$file" ]; then config >"$file"; fi
  local port
  port=$("$PY" -c "import yaml; print(yaml.safe_load(open('$file'))['http_options']['port'])")
  log "deploying $file (HTTP on 127.0.0.1:$port)"
  "$BIN/serve" run "$file" --address="127.0.0.1:$RAY_PORT" --non-blocking >"$DIR/deploy.log" 2>&1
  if ! wait_for "${PERCEPT_CLUSTER_DEPLOY_TIMEOUT:-420}" "$PY" -c "
import sys, urllib.request
sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:$port/healthz', timeout=5).status == 200 else 1)"
  then
    log "the application did not become healthy; status:"
    status >&2 || true
    return 1
  fi
  log "deployed: http://127.0.0.1:$port"
}

status() {  # Serve's view of the application (no dashboard needed)
  "$PY" -c "
import ray
from ray import serve
ray.init(address='127.0.0.1:$RAY_PORT', logging_level='ERROR', log_to_driver=False)
for name, app in serve.status().applications.items():
    print(name, app.status, app.message)
    for dep, info in app.deployments.items():
        print('  ', dep, info.status, info.message[:300])"
}

down() {
  local pids
  pids=$(our_pids | tr '\n' ' ') || true
  [ -f "$DIR/s3.pid" ] && pids="$pids $(cat "$DIR/s3.pid")"
  [ -f "$DIR/redis.pid" ] && pids="$pids $(cat "$DIR/redis.pid")"
  if [ -n "${pids// /}" ]; then
    log "stopping PIDs $pids"
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    local alive="$pids" p
    for _ in $(seq 1 40); do
      alive=$(for p in $alive; do if kill -0 "$p" 2>/dev/null; then echo "$p"; fi; done | tr '\n' ' ')
      [ -n "${alive// /}" ] || break
      sleep 0.25
    done
    if [ -n "${alive// /}" ]; then
      log "killing PIDs $alive"
      # shellcheck disable=SC2086
      kill -KILL $alive 2>/dev/null || true
    fi
  fi
  if redis-cli -p 6379 ping >/dev/null 2>&1 && [ ! -f "$DIR/redis.pid" ]; then
    "$PY" -c "import redis; redis.Redis.from_url('$REDIS_URL').flushdb()" || true
  fi
  rm -rf "$DIR"
  log "down"
}

case "${1:-}" in
  up) up ;;
  deploy) shift; deploy "$@" ;;
  config) shift; config "$@" ;;
  down) down ;;
  status) status ;;
  pids) our_pids ;;
  *) echo "usage: $0 up | deploy [CONFIG] | config | down" >&2; exit 2 ;;
esac
