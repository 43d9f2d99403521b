#!/usr/bin/env bash
# The long fault soak (issue 19, item 8): the same harness as the CI one
# (tests/integration/soak.rs), with many more jobs. Prints the summary table
# at the end; the full output (fault log, summary, any failure) is kept in
# $WEFT_SOAK_LOG. Knobs (environment): WEFT_SOAK_JOBS (10000), WEFT_SOAK_RATE
# (jobs/s, 8), WEFT_SOAK_WORKERS (3), WEFT_SOAK_SEED (random, printed),
# WEFT_SOAK_RECORD_AGE_SECS (60), WEFT_SOAK_DEADLINE_SECS (the whole run's
# bound; by default jobs/rate + 120 s), WEFT_SOAK_MAX_RSS_MIB (256).
set -euo pipefail
cd "$(dirname "$0")/../.."
export WEFT_SOAK_JOBS="${WEFT_SOAK_JOBS:-10000}"
export WEFT_SOAK_RATE="${WEFT_SOAK_RATE:-8}"
export WEFT_SOAK_RECORD_AGE_SECS="${WEFT_SOAK_RECORD_AGE_SECS:-60}"
log="${WEFT_SOAK_LOG:-target/soak-$(date -u +%Y%m%dT%H%M%SZ).log}"
echo "soak: $WEFT_SOAK_JOBS jobs at $WEFT_SOAK_RATE/s; log in $log" >&2
status=0
cargo test -p weft --test integration soak::under_random_faults -- --nocapture --test-threads 1 >"$log" 2>&1 || status=$?
grep -E '^soak: seed' "$log" || true
grep -E '^\| ' "$log" || echo "soak: no summary (see $log)"
grep -E "panicked at|^test result" -A2 "$log" | cut -c1-2000 || true
exit "$status"
