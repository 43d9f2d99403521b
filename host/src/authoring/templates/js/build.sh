#!/bin/sh
# Builds {{name}}.wasm (run `npm install` once first).
set -eu
cd "$(dirname "$0")"
if [ ! -e node_modules/.bin/componentize-js ]; then
    echo "error: componentize-js is not installed here; run \`npm install\` first" >&2
    exit 1
fi
# The host links no wasi:http: steps reach the network only through granted
# weft:plugin capabilities. componentize-js sees only paths under this directory.
node_modules/.bin/componentize-js src/index.js --wit wit --world-name step -o {{name}}.wasm --disable http fetch-event
