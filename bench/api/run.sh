#!/usr/bin/env bash
# The API bench (issue 20): uploads/s and p50/p99 of small PDFs against
# Weft's HTTP API and the seed's FastAPI + Celery .delay() on Redis, side by
# side in one run; then the API's cost on a worker's throughput.
#
#   bash bench/api/run.sh                  # both parts, about 4 minutes
#   bash bench/api/run.sh --uploads-only   # or --worker-only
#
# Installs what it needs: redis-server from Debian, the seed's Python stack
# (bench/api/requirements.txt, pinned) into bench/api/.venv; nats-server
# comes from scripts/setup.sh. Builds the release `weft` (in
# $CARGO_TARGET_DIR, default target/) and runs host/benches/api_upload.rs,
# which starts every server on loopback ports of its own and stops them.
# Prints Markdown; bench/results/api.md keeps a run.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v redis-server >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >&2
    else
        echo "bench/api/run.sh: redis-server is missing; install Debian's redis-server" >&2
        exit 1
    fi
fi
command -v nats-server >/dev/null 2>&1 || bash scripts/setup.sh >&2

venv="$PWD/bench/api/.venv"
if [ ! -x "$venv/bin/uvicorn" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q -r bench/api/requirements.txt >&2
fi

target="$(realpath -m "${CARGO_TARGET_DIR:-target}")"
cargo build --release -p weft --bin weft >&2

echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo +dirty)"
echo "- Machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- $("$target/release/weft" --version); $(nats-server --version); $(redis-server --version | cut -d' ' -f1-3)"
echo "- Seed: $("$venv/bin/python" -c 'import sys, fastapi, uvicorn, celery, kombu, redis, starlette; print(f"Python {sys.version.split()[0]}, fastapi {fastapi.__version__}, starlette {starlette.__version__}, uvicorn {uvicorn.__version__}, celery {celery.__version__}, kombu {kombu.__version__}, redis-py {redis.__version__}")')"
echo
WEFT_BIN="$target/release/weft" SEED_VENV="$venv" cargo bench -p weft --bench api_upload -- "$@"
echo
echo "- Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
