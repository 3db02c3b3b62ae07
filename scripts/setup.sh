#!/usr/bin/env bash
# Installs what bitexact needs on Debian 12 (as root; skipped when already present) and builds it
# into ./build. Usage: scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(g++ cmake make libgtest-dev libcli11-dev nlohmann-json3-dev libxxhash-dev python3-venv
  libpcre2-dev libutf8proc-dev libcpp-httplib-dev nginx)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: needs root to apt-get install: ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The packages the tests use (reference packages, the openai client, lm-eval-harness), in ./.venv:
# every tests/requirements*.txt, reinstalled when any of them changes (one stamp over all).
requirements=(tests/requirements*.txt)
stamp=.venv/requirements.sha256
want=$(cat "${requirements[@]}" | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing the tests' Python packages into .venv (${requirements[*]})"
  python3 -m venv .venv
  pip_args=()
  for r in "${requirements[@]}"; do pip_args+=(-r "$r"); done
  .venv/bin/pip install -q --disable-pip-version-check "${pip_args[@]}"
  echo "$want" >"$stamp"
fi

# The default model (SmolLM2-135M-Instruct Q4_1) into models/, which its tests need.
scripts/get-default-model.sh .venv/bin/python

jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
echo "setup: built ./build/bitexact"

# The Python package into .venv (pyproject.toml), from the same build tree: scikit-build-core
# reconfigures ./build with the settings above (tests and benchmarks stay on) and builds the
# extension target, which the build above has already made, so nothing compiles a second time.
CMAKE_GENERATOR="Unix Makefiles" CMAKE_BUILD_PARALLEL_LEVEL="$jobs" \
  .venv/bin/pip install -q --disable-pip-version-check --no-build-isolation \
  --config-settings=build-dir=build --config-settings=cmake.define.BITEXACT_TESTS=ON \
  --config-settings=cmake.define.BITEXACT_BENCH=ON .
echo "setup: installed the Python package bitexact into .venv"
