#!/usr/bin/env bash
# GPU run of the quantgemm branch (issue 17 item 3, the speed half: the weight-stream kernel of
# kernels/cuda/gemm_quant_stream.cuh for M <= 16), from the binaries scripts/device/pack_gpuquant.sh
# put in .gpu-gpuquant/:
#   1. tests: gemm_quant_test (fused == dense on bf16(dequant(W)), every format and M, the decode
#      launch's wide shapes), quant_model_cuda_test (Q4_1 / Q8_0 / Q4_0 files and
#      random:qwen3-tiny-q4k: blocks == dequantized load, batch == alone, the split-K control on
#      the D = 128 files);
#   2. per-GEMM times on the 8B decode shapes (gemm_quant_bench: the chain bound, then Q4_K, Q6_K,
#      Q8_0 and bf16 against the weight floor);
#   3. decode (serve_bench, eager and CUDA graph, B = 1): random:qwen3-8b-q4k, then
#      random:qwen3-8b.
# Writes $OUT/gpuquant.txt (everything) and prints the summary table last.
# Usage (on the device; carry [".gpu-gpuquant"]): bash .gpu-gpuquant/run_gpuquant.sh (the pack
# holds a copy of this script, so only .gpu-gpuquant/ needs to be in the checkout that travels),
# or bash scripts/device/run_gpuquant.sh from this worktree.
set -uo pipefail
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
{
  date -u
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  echo "packed from: $(cat $G/COMMIT 2>/dev/null)"
  for t in gemm_quant_test quant_model_cuda_test; do
    s=$(date +%s)
    case $t in quant_model_cuda_test) limit=150 ;; *) limit=120 ;; esac
    timeout $limit $B/$t > /tmp/$t.log 2>&1; rc=$?
    p=$(grep -c '^\[       OK \]' /tmp/$t.log); f=$(grep -c '^\[  FAILED  \] .* ([0-9]* ms)$' /tmp/$t.log)
    k=$(grep -c '^\[  SKIPPED \] .* ([0-9]* ms)$' /tmp/$t.log)
    [ "$k" -gt 0 ] && p="$p ($k skipped)"
    echo "== $t: passed $p, failed $f, exit $rc, $(( $(date +%s) - s )) s"
    grep -E '^\[  FAILED|Failure|Expected|Which is|differ|error' /tmp/$t.log | head -40
    grep -E 'control' /tmp/$t.log | head -5
    summary+=("| $t | $p | $f | $rc | $(( $(date +%s) - s )) s |")
  done
  echo "== gemm_quant_bench (per GEMM, decode shapes, against the weight-bytes floor)"
  timeout 100 $B/gemm_quant_bench --formats Q4_K,Q6_K,Q8_0,BF16 2>&1 | tee /tmp/gqb.log
  for shape in qkv o gate+up down 'lm head'; do
    summary+=("| chain bound $shape | $(grep -F "| chain $shape | " /tmp/gqb.log | awk -F'|' '{print $6}')us | | | |")
    for fmt in Q4_K 'Q4_K stream' 'Q4_K chain_warps' Q6_K Q8_0 BF16; do
      r=$(grep -F "| $shape | " /tmp/gqb.log | grep -F "| $fmt | 1 |" | awk -F'|' '{print $6 "us, floor/time" $9}')
      summary+=("| GEMM M=1 $shape $fmt | $r | | | |")
    done
  done
  for model in random:qwen3-8b-q4k random:qwen3-8b; do
    echo "== serve_bench $model"
    timeout 110 $B/serve_bench --model $model --modes invariant --batches 1 --iters 20 \
      --requests 0 --unfused 0 2>&1 | tee /tmp/bench.log
    for b in 1; do
      step=$(grep -E "^\| invariant \| $b \| fused \| graph" /tmp/bench.log | awk -F'|' '{print $6 "ms, floor" $8 "ms, floor/step" $9}')
      summary+=("| decode B=$b graph $model | $step | | | |")
    done
  done
} > "$log" 2>&1
tail -c 6000 "$log"
echo
printf '%s\n' "| what | passed / result | failed | exit | time |" "|---|---|---|---|---|" "${summary[@]}"
printf '%s\n' "| what | passed / result | failed | exit | time |" "${summary[@]}" >> "$log"
