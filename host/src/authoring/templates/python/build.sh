#!/bin/sh
# Builds {{name}}.wasm (needs `pip install componentize-py=={{componentize_py}}`).
set -eu
cd "$(dirname "$0")"
componentize-py -d wit -w step componentize app -o {{name}}.wasm
