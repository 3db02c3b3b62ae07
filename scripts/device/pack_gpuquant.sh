#!/usr/bin/env bash
# Builds what scripts/device/run_gpuquant.sh runs (the quantized-weight GEMM's GPU test, the
# quantized-model CUDA test, gemm_quant_bench and serve_bench) in build-cuda/ and packs them,
# stripped, with the Debian libraries they link that the device lacks, into .gpu-gpuquant/pack.tar.gz
# (git-ignored; carried with the device tool's carry: [".gpu-gpuquant"]; run_gpuquant.sh unpacks).
# Usage: scripts/device/pack_gpuquant.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -f /work/ccache.env ] && source /work/ccache.env
targets="gemm_quant_test quant_model_cuda_test gemm_quant_bench serve_bench"
# A K-quant GGUF written by the gguf package (tests/ref/make_kquant_gguf.py over a random F32 llama
# of support/kquant_model.h's shape), for quant_model_cuda_test on the device (no gguf there).
py=${PYTHON:-/work/main/.venv/bin/python}
[ -x .venv/bin/python ] && py=${PYTHON:-.venv/bin/python}
cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DBITEXACT_CUDA=ON >/dev/null
cmake --build build-cuda -j2 --target $targets
d=.gpu-gpuquant
rm -rf $d && mkdir -p $d/bin $d/lib
for t in $targets; do
  cp "build-cuda/$t" $d/bin/
  strip "$d/bin/$t"
done
# Shared libraries outside libc / libstdc++ / the CUDA driver (cuBLAS comes with the device).
for t in $targets; do
  ldd "build-cuda/$t" | awk '/=> \/(usr\/)?lib\/x86_64/ {print $3}' |
    grep -v -E 'libc\.so|libm\.so|libstdc|libgcc|librt|libpthread|libdl|libz\.so|libcuda|libcublas' || true
done | sort -u | while read -r l; do cp -L "$l" $d/lib/; done
cmake --build build-cuda -j2 --target make_random_model
build-cuda/make_random_model /tmp/gpuquant-src.gguf --dim 256 --layers 2 --heads 4 --kv-heads 2 \
  --ffn 512 --vocab 320 >/dev/null
"$py" tests/ref/make_kquant_gguf.py /tmp/gpuquant-src.gguf $d/lib/kquant.gguf 13
# Compressed (about a third): the device tool carries at most 64 MiB with the whole checkout.
tar -C $d -czf $d/pack.tar.gz bin lib && rm -rf $d/bin $d/lib
cp scripts/device/run_gpuquant.sh $d/
echo "gpuquant $(git rev-parse HEAD)$(git diff --quiet HEAD || echo ' + uncommitted changes')" > $d/COMMIT
du -sh $d  # the device tool carries at most 64 MiB with the working tree
