#!/usr/bin/env bash
# Main on the device in one call: the whole scripts/gpu-check --quick --experiments (every GPU test,
# the quick benchmarks, batch-1 decode, the throughput experiment in-process and through the
# server, uniqueness, on-policy; stage times recorded as it goes; GPU_CHECK_LIMIT seconds at most).
# Here: scripts/device/pack_seams.sh (-> .gpu/seams.tar.xz and the K-quant GGUF .gpu/kquant.gguf);
# on the device (carry [".gpu/seams.tar.xz", ".gpu/kquant.gguf"]):
#   bash scripts/device/run_main_check.sh
set -uo pipefail
g=/tmp/seams && rm -rf $g && mkdir -p $g && xz -dc .gpu/seams.tar.xz | tar -C $g -xf -
mkdir -p ../shared/models ../shared/tokenizers && cp -n $g/models/stories260K.gguf ../shared/models/ && cp -rn $g/qwen3 ../shared/tokenizers/
python3 -c 'import aiohttp' 2>/dev/null || python3 -m pip install -q --no-index --find-links $g/whl-aiohttp aiohttp > $OUT/pip.txt 2>&1
export LD_LIBRARY_PATH=$g/lib:${LD_LIBRARY_PATH:-}
export BITEXACT_KQUANT_GGUF=$PWD/.gpu/kquant.gguf
logs=/tmp/final && rm -rf $logs && mkdir -p $logs
t0=$(date +%s)
timeout ${GPU_CHECK_LIMIT:-430} scripts/gpu-check --bin $g/new --quick --experiments --logs $logs > $OUT/gpu-check.txt 2>&1
echo "gpu-check exit $? after $(( $(date +%s) - t0 )) s" >> $OUT/gpu-check.txt
tar -C $logs -czf $OUT/logs.tgz .
tail -60 $OUT/gpu-check.txt
true
