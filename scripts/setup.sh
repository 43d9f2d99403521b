#!/usr/bin/env bash
# Installs everything building and testing Weft needs, pinned to exact
# versions, from the package registries only:
#   - the wasm32-wasip2 Rust target (the Rust plugins);
#   - componentize-py (PyPI, pinned in tools/python/requirements.txt), which
#     builds the Python plugins;
#   - jco and componentize-js (npm, locked in tools/js/package-lock.json),
#     which build the JavaScript plugins, into tools/js/node_modules;
#   - nats-server and aiosmtpd (PyPI, same file), which the tests spawn.
# Safe to run again: what is already installed at the pinned version is kept.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 >/dev/null 2>&1 || rustup target add wasm32-wasip2

python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    -r tools/python/requirements.txt

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "error: node and npm (Node.js 20 or later) are needed to build the JavaScript plugins;" \
        "install them (for example \`apt-get install nodejs npm\`) and run this script again" >&2
    exit 1
fi
# `npm ci` wipes and reinstalls node_modules; skip it when the installed
# tree already matches the lockfile.
if ! cmp -s tools/js/package-lock.json tools/js/node_modules/.weft-installed-lock 2>/dev/null; then
    (cd tools/js && npm ci --no-audit --no-fund --loglevel=error)
    cp tools/js/package-lock.json tools/js/node_modules/.weft-installed-lock
fi
