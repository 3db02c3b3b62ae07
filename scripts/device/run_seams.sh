#!/usr/bin/env bash
# Issue 16's GPU check (after scripts/device/pack_seams.sh here; carry [".gpu"]): every GPU test
# and benchmark of this tree through scripts/gpu-check, then the earlier build ("old") against this
# one ("new") side by side on the same card: the bytes of CUDA generate (stories260K sampled at
# temperature 0.8, random:qwen3-tiny greedy) and their fingerprints, the GEMM and rows benchmarks,
# and batch-1 decode of the Qwen3-8B shape, alternating old and new twice.
set -uo pipefail
cd "$(dirname "$0")/../.."
g=/tmp/seams && rm -rf $g && mkdir -p $g && xz -dc .gpu/seams.tar.xz | tar -C $g -xf -
mkdir -p ../shared/models && cp -n $g/models/stories260K.gguf ../shared/models/
export LD_LIBRARY_PATH=$g/lib:${LD_LIBRARY_PATH:-}
date -u
logs=/tmp/seams-logs && rm -rf $logs && mkdir -p $logs  # $OUT takes at most 8 files back
scripts/gpu-check --bin $g/new --quick --logs $logs >$OUT/gpu-check.txt 2>&1
echo "gpu-check exit $?" >>$OUT/gpu-check.txt
for f in $logs/*_test.log; do grep -q '^\[  FAILED  \]' "$f" && cp "$f" $OUT/; done
printf 'Once upon a time\nThe dog\nLily and Tom went to the park\n' >/tmp/p.txt
{
  for v in old new; do
    $g/$v/bitexact generate --backend cuda --model ../shared/models/stories260K.gguf --prompts-file /tmp/p.txt \
      --format json --quiet --max-tokens 48 --temperature 0.8 --seed 21 --ignore-eos >/tmp/gen-$v.json 2>&1
    $g/$v/bitexact generate --backend cuda --model random:qwen3-tiny:3 --prompt-ids 5,17,300,2 \
      --format json --quiet --max-tokens 48 --temperature 0 --ignore-eos >/tmp/genq-$v.json 2>&1
  done
  cmp /tmp/gen-old.json /tmp/gen-new.json && echo "stories260K cuda generate: old == new (bytes)" || echo "stories260K cuda generate: DIFFER"
  cmp /tmp/genq-old.json /tmp/genq-new.json && echo "random:qwen3-tiny cuda generate: old == new (bytes)" || echo "random:qwen3-tiny: DIFFER"
  for f in /tmp/gen-old.json /tmp/gen-new.json /tmp/genq-new.json; do
    echo "$f: $(grep -o '"system_fingerprint":"[^"]*"' $f | sort -u | tr '\n' ' ') $(head -c 300 $f | tr '\n' ' ')"
  done
  for r in 1 2; do for v in old new; do
    echo "== gemm_bench $v run $r"; $g/$v/gemm_bench --quick 2>&1 | grep '^|'
  done; done
  for v in old new; do echo "== rows_bench $v"; $g/$v/rows_bench --quick 2>&1 | grep '^|'; done
  for r in 1 2; do for v in old new; do
    echo "== decode $v run $r"
    timeout 150 $g/$v/bitexact bench --backend cuda --model random:qwen3-8b --prompt-tokens 128 \
      --decode-tokens 64 --repeats 3 --quiet 2>&1 | tail -4
  done; done
} >$OUT/old_vs_new.txt 2>&1
tail -40 $OUT/gpu-check.txt
grep -v '^| *[0-9]' $OUT/old_vs_new.txt | head -60
