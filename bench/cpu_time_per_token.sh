#!/usr/bin/env bash
# CPU time per decoded token on one thread, bitexact (each --cpu-kernel) against llama.cpp's
# llama-bench, robust to a loaded machine: wall time counts the time a process waits for a core,
# CPU time (user + sys of the process, /usr/bin/time) does not. Each engine runs twice, decoding
# SHORT and then LONG tokens; (CPU(LONG) - CPU(SHORT)) / (LONG - SHORT) leaves out loading, the
# prompt, warm-up and bitexact's bandwidth probe. One thread, so no worker spins or waits.
#
#   bench/cpu_time_per_token.sh LLAMA_BENCH MODEL [ROUNDS (3)] [SHORT (16)] [LONG (112)]
#
# Both decode from a short context (bitexact after an 8-token prompt, llama-bench's tg from an
# empty one). Prints each round and the medians in ms per token, and their ratios.
set -euo pipefail
cd "$(dirname "$0")/.."

llama_bench=${1:?usage: bench/cpu_time_per_token.sh LLAMA_BENCH MODEL [ROUNDS] [SHORT] [LONG]}
model=${2:?usage: bench/cpu_time_per_token.sh LLAMA_BENCH MODEL [ROUNDS] [SHORT] [LONG]}
rounds=${3:-3}
short=${4:-16}
long=${5:-112}
bitexact=${BITEXACT_BIN:-build/bitexact}
read -r -a kernels <<<"${BITEXACT_KERNELS:-k1 k2}"

cpu_seconds() {  # user + sys CPU seconds of the command
  /usr/bin/time -f "%U %S" "$@" 2>&1 >/dev/null | tail -1 | awk '{print $1 + $2}'
}
bitexact_cpu() {  # kernel, decode tokens
  cpu_seconds "$bitexact" bench --model "$model" --threads 1 --quiet --prompt-tokens 8 \
    --decode-tokens "$2" --repeats 1 --cpu-kernel "$1"
}
llama_cpu() {  # decode tokens
  cpu_seconds "$llama_bench" -m "$model" -t 1 -p 0 -n "$1" -r 1
}

log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "round  $(printf 'bitexact-%s ' "${kernels[@]}")llama.cpp   (ms of CPU per token)"
for r in $(seq 1 "$rounds"); do
  row=""
  for kernel in "${kernels[@]}"; do
    a=$(bitexact_cpu "$kernel" "$short")
    b=$(bitexact_cpu "$kernel" "$long")
    row="$row $(python3 -c "print(1e3 * ($b - $a) / ($long - $short))")"
  done
  a=$(llama_cpu "$short")
  b=$(llama_cpu "$long")
  row="$row $(python3 -c "print(1e3 * ($b - $a) / ($long - $short))")"
  echo "$r$row" | tee -a "$log"
done
python3 - "$log" "${kernels[@]}" <<'PY'
import statistics, sys
rows = [list(map(float, line.split()[1:])) for line in open(sys.argv[1])]
kernels = sys.argv[2:]
med = [statistics.median(col) for col in zip(*rows)]
print(f"median ms/token: llama.cpp {med[-1]:.2f}; " + "; ".join(
    f"bitexact {k} {m:.2f} (speed ratio bitexact / llama.cpp {med[-1] / m:.2f}x)"
    for k, m in zip(kernels, med)))
PY
