#!/usr/bin/env bash
# Issue 22's experiments stage on the device (after scripts/device/pack_seams.sh, which also packs
# the Qwen3 tokenizer and the aiohttp wheels; carry [".gpu"]): scripts/gpu-check --experiments
# with the "new" binaries (by default batch-1 decode and the throughput in-process and through
# `bitexact serve`; GPU_CHECK_EXPERIMENTS adds uniqueness and on-policy) after attention_bench
# --quick and torch SDPA, and its targets table. Returns targets.md and the logs as one tarball.
set -uo pipefail
cd "$(dirname "$0")/../.."
g=/tmp/seams
[ -d $g/new ] || { mkdir -p $g && xz -dc .gpu/seams.tar.xz | tar -C $g -xf -; }
mkdir -p ../shared/tokenizers && cp -rn $g/qwen3 ../shared/tokenizers/
export LD_LIBRARY_PATH=$g/lib:${LD_LIBRARY_PATH:-}
python3 -c 'import aiohttp' 2>/dev/null ||
  python3 -m pip install -q --no-index --find-links $g/whl-aiohttp aiohttp 2>&1 | tail -2
logs=/tmp/targets && rm -rf $logs && mkdir -p $logs
timeout 120 $g/new/attention_bench --quick >$logs/attention_bench.log 2>&1
timeout 120 python3 $g/new/attention_sdpa.py >$logs/attention_sdpa.log 2>&1
GPU_CHECK_EXPERIMENTS=${GPU_CHECK_EXPERIMENTS:-"decode serve"} \
  scripts/gpu-check --bin $g/new --experiments --skip-tests --skip-benches --logs $logs \
  >$logs/gpu-check-experiments.txt 2>&1
echo "gpu-check --experiments exit $?"
cp $logs/targets.md $OUT/ 2>/dev/null
tar -C $logs -czf $OUT/targets-logs.tar.gz --exclude=workload.json .
tail -5 $logs/serve_throughput.log
cat $logs/targets.md
