#!/bin/sh
# Builds the plugin, runs it through workflow.yaml with `weft run`, and
# checks what it returned. Set WEFT to the weft binary if it is not on PATH.
set -eu
cd "$(dirname "$0")"
./build.sh
out=$("${WEFT:-weft}" run workflow.yaml --input test/input.txt)
printf '%s\n' "$out"
expect() {
    case "$out" in
        *"$1"*) ;;
        *) echo "FAIL: the step's output does not contain $1" >&2; exit 1 ;;
    esac
}
expect '"status": "succeeded"'
expect '> HELLO FROM A NEW WEFT PLUGIN'
expect '"words"'
echo "ok: {{name}} passed its test"
