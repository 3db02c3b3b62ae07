#!/usr/bin/env bash
# On the device (after scripts/device/pack_gemmacuda.sh here, carry [".gpu-gemmacuda"]):
#   architectures_cuda_test  llama, qwen2, qwen3, mistral + llama3 RoPE, gemma3 d128 and d256
#                            (windows on some layers) on CUDA against the CPU; whole == chunked +
#                            decode == batched bits; engine batch == alone; controls; errors
#   kernels_test CudaAttentionD256*  the head_dim 256 attention kernels against float64 and
#                            for invariance (chunks, alone, decode batches, windows)
#   gemma3_cuda_test, backend_ops_cuda_test  random:gemma3-tiny and the backend ops on CUDA
#   attention_d256_bench     head_dim 256 prefill / decode against head_dim 128 and the floors
# Each step has a timeout; the whole stays under 2 minutes.
# Writes summary.txt (and the log of any failing binary) to $OUT; prints a table last.
# Usage: bash scripts/device/run_gemmacuda.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
export LD_LIBRARY_PATH=$PWD/.gpu-gemmacuda/lib:${LD_LIBRARY_PATH:-}
OUT=${OUT:-/tmp/gemmacuda-out}
mkdir -p "$OUT"
S=$OUT/summary.txt
{ date -u; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; } > "$S"
rows=()
run() {  # name budget_s args...
  local t=$1 budget=$2; shift 2
  local s; s=$(date +%s)
  timeout "$budget" ".gpu-gemmacuda/bin/$t" "$@" > "/tmp/$t.log" 2>&1; local rc=$?
  local p f sk
  p=$(grep -c '^\[       OK \]' "/tmp/$t.log"); f=$(grep -c '^\[  FAILED  \] .* ([0-9]* ms)$' "/tmp/$t.log")
  sk=$(grep -c '^\[  SKIPPED \]' "/tmp/$t.log")
  [ "$rc" -ne 0 ] && cp "/tmp/$t.log" "$OUT/"
  echo "== $t $*" >> "$S"
  grep -E 'CUDA vs|differ|bit for bit|head_dim|window|relative|FAILED|Failure|Expected|Which is|actual' "/tmp/$t.log" | head -60 >> "$S"
  rows+=("| $t | $p | $f | $sk | $rc | $(( $(date +%s) - s )) s |")
}
run architectures_cuda_test 45
run kernels_test 25 --gtest_filter='CudaAttentionD256*'
run gemma3_cuda_test 12
run backend_ops_cuda_test 12 --gtest_filter='BackendOpsCuda.EveryOpMatchesTheCpu'
s=$(date +%s)
timeout 20 .gpu-gemmacuda/bin/attention_d256_bench > /tmp/bench.log 2>&1; rc=$?
{ echo "== attention_d256_bench (rc $rc, $(( $(date +%s) - s )) s)"; cat /tmp/bench.log; } >> "$S"
printf '%s\n' "| test binary | passed | failed | skipped | exit | time |" "${rows[@]}" | tee -a "$S"
tail -40 /tmp/bench.log
