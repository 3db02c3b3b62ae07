#!/usr/bin/env bash
# One determinism experiment, invariant vs fast mode: runs `bitexact experiment NAME ARGS...`
# (OUT/NAME.json and OUT/NAME.md) and renders OUT/NAME.png with bench/experiments/plot.py.
#
#   bench/experiment.sh uniqueness|throughput|on-policy --model M [--backend cpu|cuda]
#       [--mode invariant|fast] [--requests N --max-tokens T --clients C ...] [--out DIR]
#
# OUT is --out (default bench/results). The binary is $BITEXACT_BIN (default build/bitexact), the
# Python with matplotlib $BITEXACT_PYTHON (default .venv/bin/python; tests/requirements.txt).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [[ $# -lt 1 ]]; then
  echo "usage: $0 uniqueness|throughput|on-policy [bitexact experiment flags]" >&2
  exit 2
fi
name=$1
shift
out=bench/results
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
    --out) out=${args[i + 1]:-} ;;
    --out=*) out=${args[i]#--out=} ;;
  esac
done
"${BITEXACT_BIN:-$root/build/bitexact}" experiment "$name" "$@"
"${BITEXACT_PYTHON:-$root/.venv/bin/python}" "$root/bench/experiments/plot.py" "$out/$name.json"
