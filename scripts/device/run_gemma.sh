#!/usr/bin/env bash
# The GPU tests of the Gemma 3 work, on the device (after scripts/device/pack_gemma.sh here,
# carry [".gpu-gemma"]): gemma3_cuda_test (random:gemma3-tiny on CUDA against the CPU within bf16
# bounds, batch vs alone with graphs), backend_ops_cuda_test (the windowed attention, geglu and
# scale/add ops against the CPU), and kernels_test, backend_test (the existing CUDA attention
# and model bits, unchanged by the window support). Logs of failing binaries and summary.txt go to
# $OUT; a table is printed last.
# Usage: bash scripts/device/run_gemma.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
export LD_LIBRARY_PATH=$PWD/.gpu-gemma/lib:${LD_LIBRARY_PATH:-}
OUT=${OUT:-/tmp/gemma-out}
mkdir -p "$OUT"
{ date -u; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; } > "$OUT/summary.txt"
rows=()
for t in gemma3_cuda_test backend_ops_cuda_test kernels_test backend_test; do
  s=$(date +%s)
  timeout "${TEST_BUDGET:-110}" ".gpu-gemma/bin/$t" > "/tmp/$t.log" 2>&1; rc=$?
  p=$(grep -c '^\[       OK \]' "/tmp/$t.log"); f=$(grep -c '^\[  FAILED  \] .* ([0-9]* ms)$' "/tmp/$t.log")
  sk=$(grep -c '^\[  SKIPPED \]' "/tmp/$t.log")
  if [ "$rc" -ne 0 ]; then cp "/tmp/$t.log" "$OUT/"; fi
  grep -E 'gemma3|window|geglu|scale \+ add|FAILED|Failure' "/tmp/$t.log" | head -40 >> "$OUT/summary.txt"
  rows+=("| $t | $p | $f | $sk | $rc | $(( $(date +%s) - s )) s |")
done
printf '%s\n' "| test binary | passed | failed | skipped | exit | time |" "${rows[@]}" | tee -a "$OUT/summary.txt"
