#!/usr/bin/env bash
# GPU run of issue 22 items 3 and 4 (attention): attention_bench (decode, then prefill) and torch
# SDPA (attention_sdpa.py) in the same call, then kernels_test (the attention invariance tests),
# backend_test and serving_test. Writes $OUT/summary.md (test results, both benchmark tables)
# and each failing test's log; prints the key rows last. Expected wall time: about 2-3 minutes.
# Usage (on the device, after scripts/device/pack_attn.sh here; carry [".gpu-attn"]):
#   bash scripts/device/run_attn.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
G=$PWD/.gpu-attn
export LD_LIBRARY_PATH=$G/lib:${LD_LIBRARY_PATH:-}
OUT=${OUT:-/tmp/attn-out}
mkdir -p "$OUT" ../shared/models
cp -n "$G/models/stories260K.gguf" ../shared/models/ 2>/dev/null
S=$OUT/summary.md
{
  echo "# run_attn $(date -u), commit $(cat "$G/commit")"
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
} >"$S"
lines=()
gtest() {  # name timeout
  local t0=$(date +%s) rc p f k
  timeout "$2" "$G/$1" >"/tmp/$1.log" 2>&1; rc=$?
  p=$(grep -c '^\[       OK \]' "/tmp/$1.log"); f=$(grep -c '^\[  FAILED  \] .* ([0-9]* ms)$' "/tmp/$1.log")
  k=$(grep -c '^\[  SKIPPED \] .* ([0-9]* ms)$' "/tmp/$1.log")
  lines+=("| $1 | $p passed | $f failed | $k skipped | exit $rc | $(( $(date +%s) - t0 )) s |")
  { echo; echo "## $1 (exit $rc)"; grep -E '^\[ *(OK|FAILED) *\]|differ|error|Failure|tokens past' "/tmp/$1.log" | head -60; } >>"$S"
  [ "$rc" -ne 0 ] && cp "/tmp/$1.log" "$OUT/"
}
# Decode first, then torch SDPA, then prefill (its newest path, ping-pong, measured last), then
# the tests: a hang in one part leaves the others' numbers.
t0=$(date +%s)
timeout 120 "$G/attention_bench" --decode >/tmp/attention_bench.log 2>&1; rc=$?
{ echo; echo "## attention_bench --decode (exit $rc, $(( $(date +%s) - t0 )) s)"; cat /tmp/attention_bench.log; } >>"$S"
t0=$(date +%s)
timeout 80 python3 "$G/attention_sdpa.py" >/tmp/sdpa.log 2>&1; rc=$?
{ echo; echo "## attention_sdpa.py (exit $rc, $(( $(date +%s) - t0 )) s)"; cat /tmp/sdpa.log; } >>"$S"
t0=$(date +%s)
timeout 60 "$G/attention_bench" --prefill-all >/tmp/attention_prefill.log 2>&1; rc=$?
{ echo; echo "## attention_bench --prefill-all (exit $rc, $(( $(date +%s) - t0 )) s)"; cat /tmp/attention_prefill.log; } >>"$S"
gtest kernels_test 100
gtest backend_test 60
gtest serving_test 90
{ echo; echo "## tests"; printf '%s\n' "${lines[@]}"; } >>"$S"
# Key rows last: tests, prefill (ours and SDPA), decode (floor / ours).
printf '%s\n' "${lines[@]}"
grep -E '^\| (prefill|torch SDPA)' /tmp/attention_prefill.log /tmp/sdpa.log -h
grep -E '^\| decode b=' /tmp/attention_bench.log | awk -F'|' '{printf "|%s|%s|%s|%s|%s|%s|%s|%s|\n", $2, $4, $5, $7, $8, $9, $10, $13}'
