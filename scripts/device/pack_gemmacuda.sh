#!/usr/bin/env bash
# Builds the GPU tests and the benchmark of head_dim 256 and the architectures on CUDA in
# build-cuda/ (-DBITEXACT_CUDA=ON) and packs them, stripped, with the Debian libraries they link
# that the device lacks, into .gpu-gemmacuda/ (git-ignored; carried with the device tool's
# `carry: [".gpu-gemmacuda"]`). scripts/device/run_gemmacuda.sh runs them there.
# Usage: scripts/device/pack_gemmacuda.sh [JOBS]
set -euo pipefail
cd "$(dirname "$0")/../.."
jobs=${1:-2}
bins=(architectures_cuda_test kernels_test gemma3_cuda_test backend_ops_cuda_test
  attention_d256_bench)
[ -f build-cuda/CMakeCache.txt ] ||
  cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DBITEXACT_CUDA=ON >/dev/null
cmake --build build-cuda -j"$jobs" --target "${bins[@]}"
rm -rf .gpu-gemmacuda && mkdir -p .gpu-gemmacuda/bin .gpu-gemmacuda/lib
for t in "${bins[@]}"; do
  cp "build-cuda/$t" .gpu-gemmacuda/bin/
  strip ".gpu-gemmacuda/bin/$t"
done
# Libraries from Debian's /usr/lib (libxxhash, ...) the device lacks; libc, libstdc++ and the
# CUDA libraries (cuBLAS comes with the device) stay.
for t in "${bins[@]}"; do
  ldd ".gpu-gemmacuda/bin/$t" | awk '/=> \/(usr\/)?lib\/x86_64/ {print $3}' |
    grep -v -E 'libc\.so|libm\.so|libstdc|libgcc|librt|libpthread|libdl|libz\.so|libcu' || true
done | sort -u | while read -r l; do cp -L "$l" .gpu-gemmacuda/lib/; done
du -sh .gpu-gemmacuda  # at most 40 MiB
