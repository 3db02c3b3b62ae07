#!/usr/bin/env bash
# Builds what run_moecuda.sh needs in build-cuda/ (a CUDA build of this tree) and packs it, with
# the Debian shared libraries the binaries link that the device lacks, into .gpu-moecuda/
# (git-ignored; carried with the device tool's `carry: [".gpu-moecuda"]`):
#   .gpu-moecuda/moe_cuda_test   the GPU MoE tests (tests/cuda/moe_cuda_test.cpp)
#   .gpu-moecuda/moe_bench       the MoE layer benchmark (bench/cuda/moe_bench.cpp)
#   .gpu-moecuda/gemm_test       the dense GEMM's tests (gemm.cu serves the grouped GEMM too)
#   .gpu-moecuda/bitexact        the CLI (the experiments on random:qwen3-30b-a3b)
#   .gpu-moecuda/lib/            libraries they link that the device has no copy of
#   .gpu-moecuda/plot.py         bench/experiments/plot.py (if the device has matplotlib)
# Usage: scripts/device/pack_moecuda.sh      (then run_moecuda.sh on the device)
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -f build-cuda/CMakeCache.txt ] || cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DBITEXACT_CUDA=ON >/dev/null
cmake --build build-cuda -j2 --target moe_cuda_test moe_bench gemm_test bitexact
rm -rf .gpu-moecuda && mkdir -p .gpu-moecuda/lib
for b in moe_cuda_test moe_bench gemm_test bitexact; do
  cp build-cuda/$b .gpu-moecuda/ && strip .gpu-moecuda/$b
done
cp bench/experiments/plot.py .gpu-moecuda/
# Shared libraries from Debian's lib folders except the C/C++ runtime and CUDA's own (cuBLAS and
# the driver come with the device).
for b in moe_cuda_test moe_bench bitexact; do
  ldd build-cuda/$b | awk '/=> \/(usr\/)?lib\/x86_64/ {print $3}' |
    { grep -v -E 'libc\.so|libm\.so|libstdc|libgcc|librt|libpthread|libdl|libz\.so|libcublas|libcuda' || true; } |
    while read -r l; do cp -Ln "$l" .gpu-moecuda/lib/ 2>/dev/null || true; done
done
du -sh .gpu-moecuda  # the device tool carries at most 64 MiB with the working tree
