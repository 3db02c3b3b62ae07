#!/usr/bin/env bash
# GPU run of issue 22 items 3 and 4 (attention), at most ~2 minutes wall: the attention tests
# (kernels_test CudaAttention.*), attention_bench (decode key cases, then prefill) with torch
# SDPA (attention_sdpa.py) in the same call, then backend_test and serving_test in the time
# left. Every step has a timeout within one deadline (DEADLINE seconds, default 115). Writes
# $OUT/summary.md (test results, both benchmark tables) and each failing test's log; prints the
# key rows last.
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
start=$(date +%s)
deadline=$((start + ${DEADLINE:-115}))
{
  echo "# run_attn $(date -u), commit $(cat "$G/commit")"
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
} >"$S"
lines=()
budget() {  # cap: seconds this step may take within the deadline (0: none left)
  local left=$((deadline - $(date +%s)))
  [ "$left" -lt "$1" ] && echo $((left > 5 ? left : 0)) || echo "$1"
}
gtest() {  # name cap [gtest args]
  local name=$1 t rc p f k t0=$(date +%s)
  t=$(budget "$2"); shift 2
  if [ "$t" -eq 0 ]; then lines+=("| $name | not run: out of time |"); return; fi
  timeout "$t" "$G/$name" "$@" >"/tmp/$name.log" 2>&1; rc=$?
  p=$(grep -c '^\[       OK \]' "/tmp/$name.log"); f=$(grep -c '^\[  FAILED  \] .* ([0-9]* ms)$' "/tmp/$name.log")
  k=$(grep -c '^\[  SKIPPED \] .* ([0-9]* ms)$' "/tmp/$name.log")
  lines+=("| $name | $p passed | $f failed | $k skipped | exit $rc (timeout $t s) | $(( $(date +%s) - t0 )) s |")
  { echo; echo "## $name $* (exit $rc)"; grep -E '^\[ *(OK|FAILED) *\]|differ|error|Failure|tokens past' "/tmp/$name.log" | head -60; } >>"$S"
  [ "$rc" -ne 0 ] && cp "/tmp/$name.log" "$OUT/"
}
step() {  # log cap command...: a benchmark step into $S
  local log=$1 t rc t0=$(date +%s)
  t=$(budget "$2"); shift 2
  if [ "$t" -eq 0 ]; then echo "## $* not run: out of time" >>"$S"; return; fi
  timeout "$t" "$@" >"$log" 2>&1; rc=$?
  { echo; echo "## $* (exit $rc, timeout $t s; $(( $(date +%s) - t0 )) s)"; cat "$log"; } >>"$S"
}
gtest kernels_test 40 --gtest_filter='CudaAttention.*'
step /tmp/attention_decode.log 40 "$G/attention_bench" --decode-key
step /tmp/sdpa.log 30 python3 "$G/attention_sdpa.py"
step /tmp/attention_prefill.log 20 "$G/attention_bench" --prefill-all
gtest backend_test 30
gtest serving_test 40
{ echo; echo "## tests ($(( $(date +%s) - start )) s in all)"; printf '%s\n' "${lines[@]}"; } >>"$S"
# Key rows last: tests, prefill (ours and SDPA), decode (floor, ours, split streamed, split a
# block per job pair, walk, the 512 split, floor / ours).
printf '%s\n' "${lines[@]}"
grep -hE '^\| (prefill|torch SDPA)' /tmp/attention_prefill.log /tmp/sdpa.log
grep -E '^\| decode b=' /tmp/attention_decode.log | awk -F'|' '{printf "|%s|%s|%s|%s|%s|%s|%s|%s|\n", $2, $4, $5, $7, $8, $9, $10, $13}'
echo "wall $(( $(date +%s) - start )) s"
