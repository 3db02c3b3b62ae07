#!/usr/bin/env bash
# Builds the GPU tests of the Gemma 3 work in build-cuda/ (-DBITEXACT_CUDA=ON) and packs them,
# stripped, with the Debian libraries they link that the device lacks, into .gpu-gemma/ (git-
# ignored; carried with the device tool's `carry: [".gpu-gemma"]`). scripts/device/run_gemma.sh
# runs them there.
# Usage: scripts/device/pack_gemma.sh [JOBS]
set -euo pipefail
cd "$(dirname "$0")/../.."
jobs=${1:-2}
tests=(gemma3_cuda_test backend_ops_cuda_test kernels_test backend_test)
[ -f build-cuda/CMakeCache.txt ] ||
  cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DBITEXACT_CUDA=ON >/dev/null
cmake --build build-cuda -j"$jobs" --target "${tests[@]}"
rm -rf .gpu-gemma && mkdir -p .gpu-gemma/bin .gpu-gemma/lib
for t in "${tests[@]}"; do
  cp "build-cuda/$t" .gpu-gemma/bin/
  strip ".gpu-gemma/bin/$t"
done
# Libraries from Debian's /usr/lib (libxxhash, ...) the device lacks; libc, libstdc++ and the
# CUDA libraries (cuBLAS comes with the device) stay.
for t in "${tests[@]}"; do
  ldd ".gpu-gemma/bin/$t" | awk '/=> \/(usr\/)?lib\/x86_64/ {print $3}' |
    grep -v -E 'libc\.so|libm\.so|libstdc|libgcc|librt|libpthread|libdl|libz\.so|libcu' || true
done | sort -u | while read -r l; do cp -L "$l" .gpu-gemma/lib/; done
du -sh .gpu-gemma  # at most 60 MiB
