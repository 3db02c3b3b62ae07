#!/usr/bin/env bash
# GPU run of the gpuquant branch (issue 17 item 3, quantized weights on CUDA), from the binaries
# scripts/device/pack_gpuquant.sh put in .gpu-gpuquant/:
#   1. tests: gemm_quant_test (fused == dense on bf16(dequant(W)), every format and M), quant_model_cuda_test
#      (Q4_1 / Q8_0 / Q4_0 files and random:qwen3-tiny-q4k: blocks == dequantized load, batch
#      == alone, the split-K control), gemm_test and backend_test (the dense path unchanged);
#   2. the CLI on CUDA: random:qwen3-tiny-q4k generate at three token budgets and
#      random:qwen3-8b-q4k at two (bytes equal);
#   3. per-GEMM times on the 8B decode shapes (gemm_quant_bench: Q4_K, Q8_0, bf16 vs the floor);
#   4. batch-1 decode (serve_bench, eager and CUDA graph): random:qwen3-8b-q4k, then random:qwen3-8b.
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
  for t in gemm_quant_test quant_model_cuda_test gemm_test backend_test; do
    s=$(date +%s)
    case $t in quant_model_cuda_test) limit=150 ;; backend_test) limit=90 ;; *) limit=120 ;; esac
    timeout $limit $B/$t > /tmp/$t.log 2>&1; rc=$?
    p=$(grep -c '^\[       OK \]' /tmp/$t.log); f=$(grep -c '^\[  FAILED  \] .* ([0-9]* ms)$' /tmp/$t.log)
    k=$(grep -c '^\[  SKIPPED \] .* ([0-9]* ms)$' /tmp/$t.log)
    [ "$k" -gt 0 ] && p="$p ($k skipped)"
    echo "== $t: passed $p, failed $f, exit $rc, $(( $(date +%s) - s )) s"
    grep -E '^\[  FAILED|Failure|Expected|Which is|differ|error' /tmp/$t.log | head -40
    grep -E 'control' /tmp/$t.log | head -5
    summary+=("| $t | $p | $f | $rc | $(( $(date +%s) - s )) s |")
  done
  echo "== CLI: random:qwen3-tiny-q4k:3 generate on CUDA at token budgets 512, 7, 1"
  for budget in 512 7 1; do
    timeout 60 $B/bitexact generate --backend cuda --model random:qwen3-tiny-q4k:3 --quiet --format json \
      --prompt-ids 5,17,300,9,44,81,2,700,13,5,5,6 --max-tokens 24 --temperature 0.8 --seed 7 \
      --ignore-eos --max-batch-tokens $budget > /tmp/cli-$budget.json 2>&1
    head -c 400 /tmp/cli-$budget.json; echo
  done
  if cmp -s /tmp/cli-512.json /tmp/cli-7.json && cmp -s /tmp/cli-512.json /tmp/cli-1.json &&
     grep -q token_ids /tmp/cli-512.json; then cli="equal"; else cli="DIFFER"; fi
  echo "CLI budgets 512 / 7 / 1: $cli"
  $B/bitexact info --backend cuda --model random:qwen3-tiny-q4k:3 2>&1 | grep -E 'weights held|fingerprint|backend'
  summary+=("| CLI generate tiny-q4k, budgets 512/7/1 | $cli | | | |")
  echo "== CLI: random:qwen3-8b-q4k:1 generate on CUDA at token budgets 512 and 5"
  for budget in 512 5; do
    s=$(date +%s)
    timeout 90 $B/bitexact generate --backend cuda --model random:qwen3-8b-q4k:1 --quiet \
      --format json --prompt-ids 5,17,300,9,44,81,2,700,13,5,5,6,900,1000,31 --max-tokens 12 \
      --temperature 0.8 --seed 3 --ignore-eos --max-batch-tokens $budget > /tmp/cli8-$budget.json 2>&1
    echo "budget $budget: $(( $(date +%s) - s )) s (load included)"; head -c 400 /tmp/cli8-$budget.json; echo
  done
  if cmp -s /tmp/cli8-512.json /tmp/cli8-5.json && grep -q token_ids /tmp/cli8-512.json; then
    cli8="equal"; else cli8="DIFFER"; fi
  summary+=("| CLI generate 8b-q4k, budgets 512/5 | $cli8 | | | |")
  echo "== gemm_quant_bench (per GEMM, decode shapes, against the weight-bytes floor)"
  timeout 90 $B/gemm_quant_bench --formats Q4_K,Q8_0,BF16 2>&1 | tee /tmp/gqb.log
  for shape in qkv o gate+up down 'lm head'; do
    for fmt in Q4_K BF16; do
      r=$(grep -F "| $shape | " /tmp/gqb.log | grep -F "| $fmt | 1 |" | awk -F'|' '{print $6 "us, floor/time" $9}')
      summary+=("| GEMM M=1 $shape $fmt | $r | | | |")
    done
  done
  for model in random:qwen3-8b-q4k random:qwen3-8b; do
    echo "== serve_bench $model"
    timeout 120 $B/serve_bench --model $model --modes invariant --batches 1,8 --iters 30 \
      --requests 0 --unfused 0 2>&1 | tee /tmp/bench.log
    step=$(grep -E '^\| invariant \| 1 \| fused \| graph' /tmp/bench.log | awk -F'|' '{print $6 "ms, floor" $8 "ms, floor/step" $9}')
    summary+=("| decode B=1 graph $model | $step | | | |")
  done
} > "$log" 2>&1
tail -c 6000 "$log"
echo
printf '%s\n' "| what | passed / result | failed | exit | time |" "|---|---|---|---|---|" "${summary[@]}"
printf '%s\n' "| what | passed / result | failed | exit | time |" "${summary[@]}" >> "$log"
