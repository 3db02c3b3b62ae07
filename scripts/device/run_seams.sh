#!/usr/bin/env bash
# GPU check of the merged seams (issue 16): the GPU test binaries of main, then the decode of the
# 8B shape and the output bits of two CLIs side by side: .gpu/seams/bitexact (this build) and
# .gpu/bin/bitexact (the one assemble.sh builds with the package; put an earlier build there to
# compare before and after).
# Usage (on the device, after scripts/device/assemble.sh here; carry [".gpu"]):
#   bash scripts/device/run_seams.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
mkdir -p ../shared && cp -rn .gpu/shared/* ../shared/ 2>/dev/null
export LD_LIBRARY_PATH=$PWD/.gpu/lib-cli:$PWD/.gpu/lib:${LD_LIBRARY_PATH:-}
date -u; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
B=.gpu/seams
summary=()
for t in gemm_test kernels_test backend_test backend_ops_cuda_test serving_test sampling_test step_state_cuda_test; do
  s=$(date +%s)
  timeout ${TEST_BUDGET:-120} $B/$t > /tmp/$t.log 2>&1; rc=$?
  p=$(grep -c '^\[       OK \]' /tmp/$t.log); f=$(grep -c '^\[  FAILED  \] .* ([0-9]* ms)$' /tmp/$t.log)
  if [ $rc -ne 0 ]; then cp /tmp/$t.log $OUT/; grep -B3 -A12 'Failure\|terminate\|FAILED' /tmp/$t.log | head -40; fi
  summary+=("| $t | $p | $f | $rc | $(( $(date +%s) - s )) s |")
done > $OUT/tests.txt 2>&1
cat $OUT/tests.txt | tail -60
old=.gpu/bin/bitexact.bin new=$B/bitexact
printf 'Once upon a time\nThe dog\nLily and Tom went to the park\n' > /tmp/p.txt
for v in old new; do
  bin=${!v}
  $bin generate --backend cuda --model ../shared/models/stories260K.gguf --prompts-file /tmp/p.txt --format json --quiet --max-tokens 48 --temperature 0.8 --seed 21 --ignore-eos > /tmp/gen-$v.json 2>&1
  $bin generate --backend cuda --model random:qwen3-tiny:3 --prompts-file /tmp/p.txt --format json --quiet --max-tokens 48 --temperature 0 --ignore-eos > /tmp/genq-$v.json 2>&1
done
cmp /tmp/gen-old.json /tmp/gen-new.json && echo "stories260K cuda generate: old == new (bytes)" || { echo "stories260K: DIFFER"; head -c 600 /tmp/gen-old.json; head -c 600 /tmp/gen-new.json; }
cmp /tmp/genq-old.json /tmp/genq-new.json && echo "random:qwen3-tiny cuda generate: old == new (bytes)" || { echo "qwen3-tiny: DIFFER"; head -c 600 /tmp/genq-old.json; head -c 600 /tmp/genq-new.json; }
grep -o '"system_fingerprint":"[^"]*"' /tmp/gen-new.json | head -1
for r in 1 2; do for v in old new; do
  bin=${!v}
  echo "== bench $v run $r"; timeout 150 $bin bench --backend cuda --model random:qwen3-8b --prompt-tokens 128 --decode-tokens 64 --repeats 3 --quiet 2>&1 | tail -4
done; done 2>&1 | tee $OUT/decode.txt
printf '%s\n' "| test binary | passed | failed | exit | time |" "${summary[@]}"
