#!/usr/bin/env bash
# Scores pdf-load against poppler's pdftotext (and pypdf beside it) on the
# corpus and writes REPORT.md next to this script. Run from anywhere.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
crate="$(dirname "$here")"
repo="$(cd "$crate/../.." && pwd)"
corpus="${CORPUS:-$repo/../shared/corpus/pdf}"
if ! command -v pdftotext >/dev/null; then
    apt-get update -qq && apt-get install -y -qq poppler-utils
fi
if ! python3 -c "import pypdf" 2>/dev/null; then
    python3 -m pip install -q pypdf
fi
target="${CARGO_TARGET_DIR:-$repo/target/quality}"
cargo build -q --release --example extract --manifest-path "$crate/Cargo.toml" --target-dir "$target"
python3 "$here/score.py" "$target/release/examples/extract" "$corpus" "$here/REPORT.md"
