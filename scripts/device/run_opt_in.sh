#!/usr/bin/env bash
# The CUDA paths that were or are opt-in, on the device, each beside the default in the same run:
#   d256   (default since the H100 run of 2026-12-07) every architecture on CUDA against the CPU
#          (Gemma 3 included), the head_dim 256 attention tests, gemma3_cuda_test,
#          attention_d256_bench
#   k3     BITEXACT_ATTENTION_K3=1: the CUDA attention tests, attention_bench decode and prefill,
#          default then K3
#   moe    BITEXACT_MOE_SPEED=1: moe_cuda_test, moe_bench default then speed
#   quant  (the stream schedule at M <= 16 is the default since the same run) gemm_quant_test,
#          gemm_quant_bench (every schedule), batch-1 decode of random:qwen3-8b-q4k and
#          random:qwen3-8b
# Here: scripts/device/pack_seams.sh (-> .gpu/seams.tar.xz); on the device (carry
# [".gpu/seams.tar.xz"]):   bash scripts/device/run_opt_in.sh d256 k3 moe quant
# Prints one table last (each step: passed, failed, skipped, exit, seconds); $OUT/opt-in.tgz has
# every log.
set -uo pipefail
g=/tmp/seams
if [ ! -x $g/new/bitexact ]; then
  rm -rf $g && mkdir -p $g && xz -dc .gpu/seams.tar.xz | tar -C $g -xf -
fi
mkdir -p ../shared/models && cp -n $g/models/stories260K.gguf ../shared/models/
export LD_LIBRARY_PATH=$g/lib:${LD_LIBRARY_PATH:-}
[ -f .gpu/kquant.gguf ] && export BITEXACT_KQUANT_GGUF=$PWD/.gpu/kquant.gguf  # quant_model_cuda_test
B=$g/new
logs=/tmp/opt-in && rm -rf $logs && mkdir -p $logs
S=$logs/summary.md
rows=()
{ date -u; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; } | tee $S

gtest() {  # label env cap binary [args]: one test binary under a switch
  local label=$1 env=$2 cap=$3 bin=$4 t0=$(date +%s); shift 4
  local log=$logs/$label.log
  env $env timeout "$cap" "$B/$bin" "$@" >"$log" 2>&1; local rc=$?
  local p f k
  p=$(grep -c '^\[       OK \]' "$log"); f=$(grep -c '^\[  FAILED  \] .* ([0-9]* ms)$' "$log")
  k=$(grep -c '^\[  SKIPPED \] .* ([0-9]* ms)$' "$log")
  rows+=("| $label | $p | $f | $k | $rc | $(( $(date +%s) - t0 )) |")
  { echo; echo "## $label: $env $bin $*  (exit $rc)"
    grep -E '^\[  FAILED|Failure|Expected|Which is|differ|CUDA vs|float64' "$log" | head -30; } >>$S
}
step() {  # label env cap command...: a benchmark, its whole output into the summary
  local label=$1 env=$2 cap=$3 t0=$(date +%s); shift 3
  local log=$logs/$label.log
  env $env timeout "$cap" "$@" >"$log" 2>&1; local rc=$?
  rows+=("| $label | - | - | - | $rc | $(( $(date +%s) - t0 )) |")
  { echo; echo "## $label: $env $*  (exit $rc)"; cat "$log"; } >>$S
}
on() { echo "$1=1"; }
off=BITEXACT_NONE=0  # no switch (`env` wants an assignment)

for group in "$@"; do
  case $group in
    d256)
      gtest d256-architectures $off 90 architectures_cuda_test
      gtest d256-kernels $off 40 kernels_test --gtest_filter='CudaAttentionD256*'
      gtest d256-gemma3 $off 40 gemma3_cuda_test
      step d256-bench $off 30 $B/attention_d256_bench ;;
    k3)
      e=$(on BITEXACT_ATTENTION_K3)
      gtest k3-kernels "$e" 60 kernels_test --gtest_filter='CudaAttention.*'
      gtest k3-backend "$e" 60 backend_test
      step default-attention-decode $off 45 $B/attention_bench --decode-key
      step k3-attention-decode "$e" 45 $B/attention_bench --decode-key
      step default-attention-prefill $off 40 $B/attention_bench --prefill
      step k3-attention-prefill "$e" 40 $B/attention_bench --prefill ;;
    moe)
      e=$(on BITEXACT_MOE_SPEED)
      gtest moe-speed-tests "$e" 150 moe_cuda_test
      step default-moe-bench $off 60 $B/moe_bench --quick
      step speed-moe-bench "$e" 60 $B/moe_bench --quick ;;
    quant)
      gtest quant-tests $off 60 gemm_quant_test
      gtest quant-model $off 60 quant_model_cuda_test
      step quant-gemm-bench $off 40 $B/gemm_quant_bench --formats Q4_K,BF16
      for m in random:qwen3-8b-q4k random:qwen3-8b; do
        step "decode-${m#random:}" $off 60 $B/serve_bench --model $m --modes invariant --batches 1 \
          --iters 20 --requests 0 --unfused 0
      done ;;
    *) echo "run_opt_in: unknown group '$group' (d256, k3, moe, quant)" >&2 ;;
  esac
done
printf '%s\n' "" "| step | passed | failed | skipped | exit | s |" "|---|---|---|---|---|---|" "${rows[@]}" >>$S
tar -C $logs -czf $OUT/opt-in.tgz .
for f in $logs/*bench*.log $logs/decode-*.log; do [ -f "$f" ] && { echo "== $(basename "$f")"; tail -14 "$f"; }; done
printf '%s\n' "" "| step | passed | failed | skipped | exit | s |" "|---|---|---|---|---|---|" "${rows[@]}"
