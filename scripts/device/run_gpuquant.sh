#!/usr/bin/env bash
# GPU run of the quantgemm branch (issue 17 item 3, the speed half: the weight-stream kernels of
# kernels/cuda/gemm_quant_stream.cuh and gemm_quant_chain_warps.cuh for M <= 16), from the
# binaries scripts/device/pack_gpuquant.sh put in .gpu-gpuquant/. At most 2 minutes wall, each
# step under its own timeout:
#   1. gemm_quant_test (fused == dense on bf16(dequant(W)) for every format, M and schedule, the
#      decode launch's wide shapes, controls);
#   2. quant_model_cuda_test, the K-quant file (blocks == dequantized load, batch == alone) and
#      the split-K control on the D = 128 files;
#   3. gemm_quant_bench: the chain bound, then Q4_K (automatic, stream, chain_warps) and bf16 on
#      the 8B decode shapes against the weight floor;
#   4. decode step at B = 1 (serve_bench, eager and graph): random:qwen3-8b-q4k, then
#      random:qwen3-8b if the time left allows.
# Writes $OUT/gpuquant.txt (everything) and prints the summary table last.
# Usage (on the device; carry [".gpu-gpuquant"]): bash .gpu-gpuquant/run_gpuquant.sh (the pack
# holds a copy of this script, so only .gpu-gpuquant/ needs to be in the checkout that travels),
# or bash scripts/device/run_gpuquant.sh from this worktree.
set -uo pipefail
start=$(date +%s)
here=$(cd "$(dirname "$0")" && pwd)
if [ -f "$here/pack.tar.gz" ]; then P=$here; else P=$(cd "$here/../.." && pwd)/.gpu-gpuquant; fi
G=/tmp/gpuquant-pack
rm -rf $G && mkdir -p $G && tar -C $G -xzf "$P/pack.tar.gz" && cp "$P/COMMIT" $G/ 2>/dev/null
OUT=${OUT:-/tmp/gpuquant-out}
mkdir -p "$OUT"
export LD_LIBRARY_PATH=$G/lib:${LD_LIBRARY_PATH:-}
export BITEXACT_KQUANT_GGUF=$G/lib/kquant.gguf  # quant_model_cuda_test's K-quant file
B=$G/bin
log=$OUT/gpuquant.txt
summary=()
elapsed() { echo $(( $(date +%s) - start )); }
{
  date -u
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  echo "packed from: $(cat $G/COMMIT 2>/dev/null)"
  for t in gemm_quant_test quant_model_cuda_test; do
    s=$(date +%s)
    case $t in
      quant_model_cuda_test)
        limit=30
        filter='--gtest_filter=*KQuantFile*:*NegativeControl*' ;;
      *)
        limit=40
        filter='' ;;
    esac
    timeout $limit $B/$t $filter > /tmp/$t.log 2>&1; rc=$?
    p=$(grep -c '^\[       OK \]' /tmp/$t.log); f=$(grep -c '^\[  FAILED  \] .* ([0-9]* ms)$' /tmp/$t.log)
    k=$(grep -c '^\[  SKIPPED \] .* ([0-9]* ms)$' /tmp/$t.log)
    [ "$k" -gt 0 ] && p="$p ($k skipped)"
    echo "== $t: passed $p, failed $f, exit $rc, $(( $(date +%s) - s )) s"
    grep -E '^\[       OK|^\[  FAILED|Failure|Expected|Which is|differ|error' /tmp/$t.log | head -40
    grep -E 'control' /tmp/$t.log | head -5
    summary+=("| $t | $p | $f | $rc | $(( $(date +%s) - s )) s |")
  done
  echo "== gemm_quant_bench (per GEMM, decode shapes, against the weight-bytes floor) at $(elapsed) s"
  timeout 30 $B/gemm_quant_bench --formats Q4_K,BF16 2>&1 | tee /tmp/gqb.log
  for shape in qkv o gate+up down 'lm head'; do
    summary+=("| chain bound $shape | $(grep -F "| chain $shape | " /tmp/gqb.log | awk -F'|' '{print $6}')us | | | |")
    for fmt in Q4_K 'Q4_K stream' 'Q4_K chain_warps' BF16; do
      r=$(grep -F "| $shape | " /tmp/gqb.log | grep -F "| $fmt | 1 |" | awk -F'|' '{print $6 "us, floor/time" $9}')
      summary+=("| GEMM M=1 $shape $fmt | $r | | | |")
    done
  done
  for model in random:qwen3-8b-q4k random:qwen3-8b; do
    left=$(( 115 - $(elapsed) ))
    if [ "$left" -lt 15 ]; then
      echo "== serve_bench $model skipped: $(elapsed) s used of 2 minutes"
      summary+=("| decode B=1 graph $model | skipped (time) | | | |")
      continue
    fi
    echo "== serve_bench $model at $(elapsed) s (timeout $left s)"
    timeout $left $B/serve_bench --model $model --modes invariant --batches 1 --iters 20 \
      --requests 0 --unfused 0 2>&1 | tee /tmp/bench.log
    step=$(grep -E "^\| invariant \| 1 \| fused \| graph" /tmp/bench.log | awk -F'|' '{print $6 "ms, floor" $8 "ms, floor/step" $9}')
    summary+=("| decode B=1 graph $model | $step | | | |")
  done
  echo "total $(elapsed) s"
} > "$log" 2>&1
tail -c 5000 "$log"
echo
printf '%s\n' "| what | passed / result | failed | exit | time |" "|---|---|---|---|---|" "${summary[@]}"
printf '%s\n' "| what | passed / result | failed | exit | time |" "${summary[@]}" >> "$log"
