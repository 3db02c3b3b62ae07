#!/usr/bin/env bash
# GPU run of the CUDA Mixture-of-Experts layer (issue 18): the MoE tests, the layer benchmark,
# then the three determinism experiments on random:qwen3-30b-a3b (61 GB of bf16 weights
# generated on the GPU; a 16384-token KV pool, 1.6 GB), invariant vs fast mode, each under a
# time budget so the whole run stays under 9 minutes. Writes $OUT/summary.md (everything, the
# tables last), the experiments' JSON, and the test log when a test fails.
# Usage (on the device, after scripts/device/pack_moecuda.sh here; carry [".gpu-moecuda"]):
#   bash scripts/device/run_moecuda.sh                 (tests, bench, experiments: ~3-6 minutes)
#   EXPERIMENTS=0 bash scripts/device/run_moecuda.sh   (tests and bench only: ~1 minute)
# moe_cuda_test and moe_bench run twice: the verified launches, then BITEXACT_MOE_SPEED=1 (the
# opt-in speed kernels, issue 18 item 5). Step time limits (seconds; T_MEMCHECK=0: no memcheck):
#   T_TEST (moe_cuda_test, 120), T_BENCH (moe_bench, 90), T_GEMM (gemm_test, 120), T_MEMCHECK (60)
set -uo pipefail
cd "$(dirname "$0")/../.."
G=$PWD/.gpu-moecuda
export LD_LIBRARY_PATH=$G/lib:${LD_LIBRARY_PATH:-}
OUT=${OUT:-/tmp/moecuda-out}
mkdir -p "$OUT/exp"
S=$OUT/summary.md
start=$(date +%s)
T_TEST=${T_TEST:-120} T_BENCH=${T_BENCH:-90} T_GEMM=${T_GEMM:-120} T_MEMCHECK=${T_MEMCHECK:-60}
{ echo "# run_moecuda $(date -u)"; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; } > "$S"

# 1. tests
t0=$(date +%s)
timeout "$T_TEST" "$G/moe_cuda_test" > /tmp/moe_cuda_test.log 2>&1; rc=$?
p=$(grep -c '^\[       OK \]' /tmp/moe_cuda_test.log); f=$(grep -c '^\[  FAILED  \] .* ([0-9]* ms)$' /tmp/moe_cuda_test.log)
tests_line="| moe_cuda_test | $p | $f | $rc | $(( $(date +%s) - t0 )) s |"
{ echo; echo "## moe_cuda_test"; grep -E '^\[ *(OK|FAILED|SKIPPED) *\]|differ|float64|Failure' /tmp/moe_cuda_test.log | head -60; } >> "$S"
if [ "$rc" -ne 0 ]; then
  cp /tmp/moe_cuda_test.log "$OUT/"
  # The first failing test again under compute-sanitizer (memcheck), where the device has it.
  first=$(grep -m1 -o '^\[  FAILED  \] [A-Za-z0-9_]*\.[A-Za-z0-9_]*' /tmp/moe_cuda_test.log | awk '{print $NF}')
  san=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
  if [ -n "$first" ] && [ -n "$san" ] && [ "$T_MEMCHECK" -gt 0 ]; then
    timeout "$T_MEMCHECK" "$san" --tool memcheck "$G/moe_cuda_test" --gtest_filter="$first" > "$OUT/memcheck.log" 2>&1
    { echo; echo "## memcheck of $first"; grep -E 'ERROR SUMMARY|Invalid|at 0x|by thread' "$OUT/memcheck.log" | head -20; } >> "$S"
  fi
fi

# 1s. the same tests on the speed kernels (MoeLayerArgs::speed_kernels, opt-in)
t0=$(date +%s)
BITEXACT_MOE_SPEED=1 timeout "$T_TEST" "$G/moe_cuda_test" > /tmp/moe_cuda_test_speed.log 2>&1; src=$?
p=$(grep -c '^\[       OK \]' /tmp/moe_cuda_test_speed.log); f=$(grep -c '^\[  FAILED  \] .* ([0-9]* ms)$' /tmp/moe_cuda_test_speed.log)
speed_line="| moe_cuda_test, BITEXACT_MOE_SPEED=1 | $p | $f | $src | $(( $(date +%s) - t0 )) s |"
{ echo; echo "## moe_cuda_test, BITEXACT_MOE_SPEED=1"; grep -E '^\[ *(FAILED) *\]|Failure' /tmp/moe_cuda_test_speed.log | head -40; } >> "$S"
[ "$src" -ne 0 ] && cp /tmp/moe_cuda_test_speed.log "$OUT/"

# 2. benchmark: the verified launches, then the speed kernels
t0=$(date +%s)
timeout "$T_BENCH" "$G/moe_bench" > /tmp/moe_bench.log 2>&1; brc=$?
bench_line="| moe_bench | - | - | $brc | $(( $(date +%s) - t0 )) s |"
{ echo; echo "## moe_bench (exit $brc)"; cat /tmp/moe_bench.log; } >> "$S"
t0=$(date +%s)
BITEXACT_MOE_SPEED=1 timeout "$T_BENCH" "$G/moe_bench" > /tmp/moe_bench_speed.log 2>&1; bsrc=$?
bench_speed_line="| moe_bench, BITEXACT_MOE_SPEED=1 | - | - | $bsrc | $(( $(date +%s) - t0 )) s |"
{ echo; echo "## moe_bench, BITEXACT_MOE_SPEED=1 (exit $bsrc)"; cat /tmp/moe_bench_speed.log; } >> "$S"

# 2b. the dense GEMM's tests (gemm.cu also holds the grouped wgmma GEMM)
t0=$(date +%s)
timeout "$T_GEMM" "$G/gemm_test" > /tmp/gemm_test.log 2>&1; grc=$?
p=$(grep -c '^\[       OK \]' /tmp/gemm_test.log); f=$(grep -c '^\[  FAILED  \] .* ([0-9]* ms)$' /tmp/gemm_test.log)
gemm_line="| gemm_test | $p | $f | $grc | $(( $(date +%s) - t0 )) s |"
{ echo; echo "## gemm_test (exit $grc)"; grep -E '^\[  FAILED  \]|Failure' /tmp/gemm_test.log | head -20; } >> "$S"
[ "$grc" -ne 0 ] && cp /tmp/gemm_test.log "$OUT/"

# 3. experiments (invariant, then fast, in each)
M=random:qwen3-30b-a3b
common=(--model $M --backend cuda --quiet --max-seqs 64 --max-batch-tokens 2048 --kv-cache-tokens 16384 --out "$OUT/exp")
exp_lines=()
run_exp() {  # name budget_s args...
  local name=$1 budget=$2; shift 2
  local t0=$(date +%s)
  timeout "$budget" "$G/bitexact" experiment "$name" "${common[@]}" "$@" > "/tmp/exp-$name.log" 2>&1
  local rc=$?
  exp_lines+=("| experiment $name | - | - | $rc | $(( $(date +%s) - t0 )) s |")
  { echo; echo "## experiment $name (exit $rc)"; tail -5 "/tmp/exp-$name.log";
    [ -f "$OUT/exp/$name.md" ] && cat "$OUT/exp/$name.md"; } >> "$S"
}
if [ "${EXPERIMENTS:-1}" != 0 ]; then
  run_exp uniqueness 100 --requests 300 --load-requests 300 --max-tokens 64
  run_exp throughput 90 --requests 500 --max-tokens 64
  run_exp on-policy 80 --requests 200 --max-tokens 64
fi
for n in uniqueness throughput on-policy; do [ -f "$OUT/exp/$n.json" ] && cp "$OUT/exp/$n.json" "$OUT/"; done
rm -rf "$OUT/exp"

{ echo; echo "## summary ($(( $(date +%s) - start )) s)";
  printf '%s\n' "| step | passed | failed | exit | time |" "|---|---|---|---|---|" "$tests_line" "$speed_line" "$gemm_line" "$bench_line" "$bench_speed_line" "${exp_lines[@]}";
  echo "verified launches:"; grep -E '^\| (1|2|8|4096) \||^steps at' /tmp/moe_bench.log;
  echo "speed kernels (BITEXACT_MOE_SPEED=1):"; grep -E '^\| (1|2|8|4096) \||^steps at' /tmp/moe_bench_speed.log; } >> "$S"
tail -70 "$S"
