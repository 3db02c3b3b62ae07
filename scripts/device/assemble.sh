#!/usr/bin/env bash
# Builds and packs what the GPU machine needs into .gpu/ (git-ignored through .git/info/exclude;
# carried with the device tool's `carry: [".gpu"]`), since that machine lacks our build
# dependencies and runs Python 3.12:
#   .gpu/py/bitexact      the package with its extension built for CPython 3.12 with CUDA
#   .gpu/bin/bitexact     the CLI (a wrapper that puts .gpu/lib-cli on the library path)
#   .gpu/lib, lib-cli     the Debian shared libraries the extension / the CLI link
#   .gpu/seams/           the GPU test binaries and the CLI of ./build (scripts/device/run_seams.sh)
#   .gpu/shared/models    stories260K.gguf (../shared does not travel)
#   .gpu/whl              the gguf wheel (tests/python/weights_util.py imports it)
# Usage: scripts/device/assemble.sh PYTHON3.12   (e.g. ~/.pyenv/versions/3.12.1/bin/python)
# Needs a CUDA build in ./build (scripts/setup.sh where nvcc is found).
set -euo pipefail
cd "$(dirname "$0")/../.."
py312=${1:?usage: scripts/device/assemble.sh PYTHON3.12}
[ -x .venv-py312/bin/python ] || { "$py312" -m venv .venv-py312 && .venv-py312/bin/pip install -q nanobind==3.1.0; }
cmake -S . -B build-py312 -DCMAKE_BUILD_TYPE=Release -DPython_EXECUTABLE="$PWD/.venv-py312/bin/python" \
  -DBITEXACT_TESTS=OFF -DBITEXACT_BENCH=OFF >/dev/null
cmake --build build-py312 -j"$(nproc)" --target _core bitexact
rm -rf .gpu && mkdir -p .gpu/py .gpu/bin .gpu/lib .gpu/lib-cli .gpu/seams .gpu/shared/models .gpu/whl
cp -r build-py312/python/bitexact .gpu/py/ && strip --strip-unneeded .gpu/py/bitexact/_core*.so
cp build-py312/bitexact .gpu/bin/bitexact.bin && strip .gpu/bin/bitexact.bin
cat >.gpu/bin/bitexact <<'WRAP'
#!/usr/bin/env bash
d="$(cd "$(dirname "$0")" && pwd)"
LD_LIBRARY_PATH="$d/../lib-cli:$d/../lib:${LD_LIBRARY_PATH:-}" exec "$d/bitexact.bin" "$@"
WRAP
chmod +x .gpu/bin/bitexact
libs() { ldd "$1" | awk '/=> \/(usr\/)?lib\/x86_64/ {print $3}' |
  grep -v -E 'libc\.so|libm\.so|libstdc|libgcc|librt|libpthread|libdl|libz\.so' || true; }
for l in $(libs .gpu/py/bitexact/_core*.so); do cp -L "$l" .gpu/lib/; done
for l in $(libs .gpu/bin/bitexact.bin); do [ -e ".gpu/lib/$(basename "$l")" ] || cp -L "$l" .gpu/lib-cli/; done
for t in gemm_test kernels_test backend_test backend_ops_cuda_test serving_test sampling_test \
  step_state_cuda_test bitexact; do
  cp "build/$t" .gpu/seams/  # missing: ./build is not a CUDA build of this tree
  strip ".gpu/seams/$t"
done
cp ../shared/models/stories260K.gguf .gpu/shared/models/
.venv/bin/pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_17_x86_64 -d .gpu/whl gguf==0.19.0
du -sh .gpu  # the device tool carries at most 64 MiB with the working tree
