#!/usr/bin/env bash
# Issue 18 item 4 at full size: the three experiments on random:qwen3-30b-a3b (61 GB of bf16
# weights generated on the GPU; a KV pool of 65,536 positions fits an H100 beside them), 1,000
# requests each, invariant then fast in each, under one time cap per experiment.
# Here: a .gpu/cli.tar.xz holding new/bitexact and lib/ (as .gpu/seams.tar.xz does, from
# scripts/device/pack_seams.sh); on the device (carry [".gpu/cli.tar.xz"]):
#   bash scripts/device/run_moe_experiments.sh   ($OUT/moe.tgz: each experiment's json, md, log)
set -uo pipefail
g=/tmp/seams && rm -rf $g && mkdir -p $g && xz -dc .gpu/cli.tar.xz | tar -C $g -xf -
export LD_LIBRARY_PATH=$g/lib:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $OUT/device.txt
E=(--backend cuda --model random:qwen3-30b-a3b --quiet --max-seqs 256 --max-batch-tokens 2048 --kv-cache-tokens 65536 --out /tmp/moe)
mkdir -p /tmp/moe
run() { local name=$1 budget=$2; shift 2; local t0=$(date +%s)
  timeout $budget $g/new/bitexact experiment $name "${E[@]}" "$@" > /tmp/moe/$name.log 2>&1
  echo "experiment $name exit $? in $(( $(date +%s) - t0 )) s" | tee -a $OUT/device.txt; }
run throughput 100 --requests 1000 --max-tokens 100
run uniqueness 170 --requests 1000 --load-requests 1000 --max-tokens 100
run on-policy 120 --requests 1000 --max-tokens 64
tar -C /tmp/moe -czf $OUT/moe.tgz .
for n in throughput uniqueness on-policy; do [ -f /tmp/moe/$n.md ] && cat /tmp/moe/$n.md; done
