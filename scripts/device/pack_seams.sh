#!/usr/bin/env bash
# Packs issue 16's GPU check into .gpu/seams.tar.xz (git-ignored; carry [".gpu"]): the GPU tests,
# the GPU benchmarks and the CLI of ./build (this tree, "new"), the CLI and the benchmarks of an
# earlier CUDA build (BEFORE=DIR, "old"; default /work/wt-before/build, a worktree of the commit
# before the seams), the Debian libraries they link that the device lacks, stories260K.gguf, and
# for scripts/device/run_targets.sh the Qwen3 tokenizer and the aiohttp wheels; and a K-quant GGUF
# at .gpu/kquant.gguf (carried beside it).
# Usage: BEFORE=DIR scripts/device/pack_seams.sh    then, on the device: scripts/device/run_seams.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
before=${BEFORE:-/work/wt-before/build}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{new,old,lib,models}
gpu_tests=()
for src in tests/cuda/*_test.cpp; do gpu_tests+=("$(basename "$src" .cpp)"); done
for t in "${gpu_tests[@]}" gemm_bench attention_bench rows_bench sample_bench moe_bench \
  serve_bench gemm_quant_bench attention_d256_bench bitexact; do
  cp "build/$t" "$stage/new/" && strip "$stage/new/$t"
done
cp bench/cuda/attention_sdpa.py "$stage/new/"
for t in bitexact gemm_bench attention_bench rows_bench serve_bench; do
  cp "$before/$t" "$stage/old/" && strip "$stage/old/$t"
done
ldd build/bitexact build/gemm_test | awk '/=> \/(usr\/)?lib\/x86_64/ {print $3}' | sort -u |
  grep -v -E 'libc\.so|libm\.so|libstdc|libgcc|librt|libpthread|libdl|libz\.so' |
  while read -r l; do cp -L "$l" "$stage/lib/"; done
cp ../shared/models/stories260K.gguf "$stage/models/"
cp -r ../shared/tokenizers/qwen3 "$stage/"  # scripts/device/run_targets.sh serves with it
# aiohttp for bench/serve_throughput.py, for the device's CPython 3.12, at tests/requirements*.txt's pins
.venv/bin/pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
  -d "$stage/whl-aiohttp" aiohttp==3.14.5 aiohappyeyeballs==2.7.1 aiosignal==1.4.0 attrs==26.1.0 \
  frozenlist==1.8.0 multidict==7.2.1 propcache==0.5.4 yarl==1.25.1 idna==3.20 typing_extensions==4.16.0
mkdir -p .gpu
tar -C "$stage" -cf - . | xz -T2 -6 >.gpu/seams.tar.xz
# A K-quant GGUF written by the gguf package (tests/ref/make_kquant_gguf.py over a random F32
# llama of support/kquant_model.h's shape) for quant_model_cuda_test: the device has no gguf.
build/make_random_model "$stage/kquant-src.gguf" --dim 256 --layers 2 --heads 4 --kv-heads 2 \
  --ffn 512 --vocab 320 >/dev/null
.venv/bin/python tests/ref/make_kquant_gguf.py "$stage/kquant-src.gguf" .gpu/kquant.gguf 13
du -sh .gpu/seams.tar.xz
