#!/usr/bin/env bash
# Issue 18 item 4 at full size: the three experiments on random:qwen3-30b-a3b (61 GB of bf16
# weights generated on the GPU; a KV pool of 65,536 positions fits an H100 beside them), 1,000
# requests each, invariant then fast in each, under one time cap per experiment.
# Here: scripts/device/pack_seams.sh (-> .gpu/seams.tar.xz); on the device (carry
# [".gpu/seams.tar.xz"]):
#   bash scripts/device/run_moe_experiments.sh [throughput] [uniqueness] [on-policy]
# (all three when none is named; $OUT/moe.tgz: each experiment's json, md, log)
set -uo pipefail
g=/tmp/seams
if [ ! -x $g/new/bitexact ]; then
  rm -rf $g && mkdir -p $g && xz -dc .gpu/seams.tar.xz | tar -C $g -xf -
fi
export LD_LIBRARY_PATH=$g/lib:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $OUT/device.txt
E=(--backend cuda --model random:qwen3-30b-a3b --quiet --max-seqs 256 --max-batch-tokens 2048 --kv-cache-tokens 65536 --out /tmp/moe)
mkdir -p /tmp/moe
run() { local name=$1 budget=$2; shift 2; local t0=$(date +%s)
  timeout $budget $g/new/bitexact experiment $name "${E[@]}" "$@" > /tmp/moe/$name.log 2>&1
  echo "experiment $name exit $? in $(( $(date +%s) - t0 )) s" | tee -a $OUT/device.txt; }
[ $# -eq 0 ] && set -- throughput uniqueness on-policy
for name in "$@"; do
  case $name in
    throughput) run throughput 100 --requests 1000 --max-tokens 100 ;;
    # 256 clients: the default 16 keep at most 16 requests in flight (about 12,500 small steps)
    uniqueness) run uniqueness ${UNIQUENESS_CAP:-320} --requests 1000 --load-requests 1000 \
                  --max-tokens 100 --clients 256 ;;
    on-policy) run on-policy 225 --requests 1000 --max-tokens 64 ;;
    *) echo "run_moe_experiments: unknown experiment '$name'" >&2 ;;
  esac
done
tar -C /tmp/moe -czf $OUT/moe.tgz .
for n in throughput uniqueness on-policy; do [ -f /tmp/moe/$n.md ] && cat /tmp/moe/$n.md; done
