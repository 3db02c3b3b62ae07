#!/usr/bin/env bash
# Builds what run_attn.sh needs in build-cuda/ (a CUDA build of this tree) and packs it into
# .gpu-attn/ (git-ignored; carried with the device tool's `carry: [".gpu-attn"]`):
#   .gpu-attn/{kernels_test,backend_test,serving_test}   GPU tests (attention in kernels_test)
#   .gpu-attn/attention_bench, attention_sdpa.py         ours and torch SDPA, run in one call
#   .gpu-attn/lib/          Debian libraries the binaries link that the device lacks
#   .gpu-attn/models/       stories260K.gguf (backend_test reads ../shared/models)
# Usage: scripts/device/pack_attn.sh      (then scripts/device/run_attn.sh on the device)
set -euo pipefail
cd "$(dirname "$0")/../.."
bins=(kernels_test backend_test serving_test attention_bench)
[ -f build-cuda/CMakeCache.txt ] || cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DBITEXACT_CUDA=ON >/dev/null
cmake --build build-cuda -j2 --target "${bins[@]}"
rm -rf .gpu-attn && mkdir -p .gpu-attn/lib .gpu-attn/models
for b in "${bins[@]}"; do cp build-cuda/$b .gpu-attn/ && strip .gpu-attn/$b; done
cp bench/cuda/attention_sdpa.py .gpu-attn/
cp ../shared/models/stories260K.gguf .gpu-attn/models/
# Shared libraries from Debian's lib folders except the C/C++ runtime and CUDA's own (cuBLAS and
# the driver come with the device).
for b in "${bins[@]}"; do
  ldd build-cuda/$b | awk '/=> \/(usr\/)?lib\/x86_64/ {print $3}' |
    { grep -v -E 'libc\.so|libm\.so|libstdc|libgcc|librt|libpthread|libdl|libz\.so|libcublas|libcuda' || true; } |
    while read -r l; do cp -Ln "$l" .gpu-attn/lib/ 2>/dev/null || true; done
done
git rev-parse --short HEAD >.gpu-attn/commit
du -sh .gpu-attn  # the device tool carries at most 64 MiB with the working tree
