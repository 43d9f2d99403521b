#!/usr/bin/env bash
# Step throughput benchmarks: the sandboxed chunk, pii-mask, summarize and
# pdf-load components (host/benches/steps.rs) side by side with their Python
# peers (bench/steps/peers.py) in the same run, alternating round by round.
# Writes bench/results/steps.json and bench/results/steps.md.
#
# Usage: bench/steps/run.sh [--quick]
#   --quick: smaller inputs (about 2 minutes); default: the whole PDF corpus
#   and larger inputs (about 6 minutes). Both run 3 rounds per side.
# Needs: python3 (venv), cargo, pdftotext (installed from Debian if missing).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
quick=0
for arg in "$@"; do
    case "$arg" in
        --quick) quick=1 ;;
        *) echo "usage: bench/steps/run.sh [--quick]" >&2; exit 2 ;;
    esac
done
pdf_dir="${CORPUS:-$repo/../shared/corpus/pdf}"
work="$repo/target/steps-bench"
venv="$repo/target/steps-venv"
# Quick mode leaves out GeoTopo-komprimiert.pdf (117 pages; pypdf needs
# ~20 s for it) and uses smaller inputs.
if [ "$quick" = 1 ]; then
    rounds=3 text_mb=1 big_copies=3 pii_records=80 exclude="GeoTopo-komprimiert.pdf"
    command="bench/steps/run.sh --quick"
else
    rounds=3 text_mb=4 big_copies=10 pii_records=320 exclude="" command="bench/steps/run.sh"
fi

echo "--- python peers (pinned in bench/steps/requirements.txt, venv $venv)" >&2
if ! command -v pdftotext >/dev/null; then
    apt-get update -qq && apt-get install -y -qq poppler-utils
fi
stamp="$venv/.requirements"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$here/requirements.txt" "$stamp"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"
    cp "$here/requirements.txt" "$stamp"
fi
py="$venv/bin/python"

echo "--- building the bench (release) and the components" >&2
bench_bin="$(cargo bench -p weft --bench steps --no-run --message-format=json 2>/dev/null \
    | "$py" -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "steps" and m.get("executable"):
        print(m["executable"])')"
if [ -z "$bench_bin" ]; then
    cargo bench -p weft --bench steps --no-run # show the error
    exit 1
fi

rm -rf "$work" && mkdir -p "$work"
corpus="$repo/plugins/pii-mask/eval/corpus.jsonl"
"$py" "$here/peers.py" inputs --out "$work" --pdf-dir "$pdf_dir" --text-mb "$text_mb" --big-copies "$big_copies"

rust_round() {
    "$bench_bin" --text "$work/text.txt" --pii-corpus "$corpus" --pdf-dir "$pdf_dir" --exclude "$exclude" \
        --big-pdf "$work/big.pdf" --pdf-reps 5 "$@" >>"$work/rust.jsonl"
}
python_round() {
    local docs
    docs="$("$py" -c 'import json,sys; print(",".join(json.loads(open(sys.argv[1]).readline())["pdf_load_sandbox"]["names"]))' "$work/rust.jsonl")"
    "$py" "$here/peers.py" round --text "$work/text.txt" --pii-corpus "$corpus" --pii-records "$pii_records" \
        --pdf-dir "$pdf_dir" --docs "$docs" --big-pdf "$work/big.pdf" "$@" >>"$work/python.jsonl"
}

# Round 1 also dumps each side's page texts for the quality scores; the
# Rust side goes first there because the Python side reads its document list.
for r in $(seq 1 "$rounds"); do
    echo "--- round $r/$rounds" >&2
    if [ "$r" = 1 ]; then
        rust_round --dump-dir "$work/dump-weft"
        python_round --dump-dir "$work/dump-pypdf"
    elif [ $((r % 2)) = 0 ]; then
        python_round
        rust_round
    else
        rust_round
        python_round
    fi
done

echo "--- pii-mask precision and recall, weft and Presidio, on the labelled corpus" >&2
"$bench_bin" --pii-findings "$corpus" >"$work/weft-findings.jsonl"
"$py" "$here/peers.py" presidio-findings "$corpus" >"$work/presidio-findings.jsonl"
"$py" "$repo/plugins/pii-mask/eval/evaluate.py" "$corpus" --json \
    --findings "weft=$work/weft-findings.jsonl" --findings "presidio=$work/presidio-findings.jsonl" \
    >"$work/pii-scores.json"

mkdir -p "$repo/bench/results"
"$py" "$here/report.py" --work "$work" --pdf-dir "$pdf_dir" --command "$command" \
    --json "$repo/bench/results/steps.json" --md "$repo/bench/results/steps.md"
