#!/usr/bin/env bash
# bitexact against llama.cpp on one GGUF with the same thread count, side by side: ROUNDS rounds,
# each running `bitexact bench` and then llama.cpp's llama-bench, so a noisy machine slows both
# alike; prints every round and the medians of prefill and decode tokens/s and their ratios.
#
#   bench/vs_llamacpp.sh LLAMA_BENCH MODEL [ROUNDS (5)] [THREADS (2)]
#
# Prefill = one 128-token prompt in one batch from position 0 on both sides. Decode = 32 tokens at
# batch 1: bitexact's follow its 128-token prompt (positions 128-159), llama-bench's tg32 starts
# from an empty context (positions 0-31; its -d depth option crashed in this build), so
# llama.cpp's attention is a little shorter: the comparison is slightly in llama.cpp's favour.
# Each side reports the mean (llama-bench) or median (bitexact) of 3 repetitions per round.
# BITEXACT_KERNELS="k1 k2" runs bitexact once per CPU kernel version (--cpu-kernel) in each round.
# LLAMA_BENCH is a llama-bench binary built elsewhere (bench/RESULTS.md says how); nothing of
# llama.cpp is part of this repository.
set -euo pipefail
cd "$(dirname "$0")/.."

llama_bench=${1:?usage: bench/vs_llamacpp.sh LLAMA_BENCH MODEL [ROUNDS] [THREADS]}
model=${2:?usage: bench/vs_llamacpp.sh LLAMA_BENCH MODEL [ROUNDS] [THREADS]}
rounds=${3:-5}
threads=${4:-2}
bitexact=${BITEXACT_BIN:-build/bitexact}
# Extra llama-bench flags (LLAMA_BENCH_ARGS="" for none: llama.cpp's defaults, with its repacked
# weights). The default --repack 0: on the Intel VM of 2026-11-22 its AMX / repacked-weight path
# crashed (SIGSEGV in ggml_backend_amx_mul_mat during prompt processing).
llama_args=${LLAMA_BENCH_ARGS---repack 0}

# bitexact's CPU kernel versions to run in each round (--cpu-kernel), e.g. "k1 k2".
read -r -a kernels <<<"${BITEXACT_KERNELS:-k1}"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
for r in $(seq 1 "$rounds"); do
  row="$r"
  for kernel in "${kernels[@]}"; do
    out=$("$bitexact" bench --model "$model" --threads "$threads" --quiet --prompt-tokens 128 \
      --decode-tokens 32 --repeats 3 --cpu-kernel "$kernel")
    bx_pp=$(echo "$out" | awk '/^prefill/ {print $2}')
    bx_tg=$(echo "$out" | awk '/^decode  / {print $2}')
    row="$row $bx_pp $bx_tg"
  done
  # shellcheck disable=SC2086
  lc=$("$llama_bench" -m "$model" -t "$threads" -p 128 -n 32 -r 3 -o jsonl $llama_args 2>/dev/null |
    python3 -c 'import json, sys
rows = [json.loads(line) for line in sys.stdin if line.strip()]
pp = [r["avg_ts"] for r in rows if r["n_prompt"] > 0]
tg = [r["avg_ts"] for r in rows if r["n_gen"] > 0]
print(pp[0], tg[0])')
  echo "$row $lc" | tee -a "$log"
done | awk -v names="${kernels[*]}" 'BEGIN {n = split(names, k, " "); printf "round"
            for (i = 1; i <= n; i++) printf "  bitexact %s prefill  decode  |", k[i]
            print "  llama.cpp prefill  decode"}
            {printf "%5d", $1; for (i = 2; i < NF - 1; i += 2) printf "  %19.1f  %6.1f  |", $i, $(i + 1)
             printf "  %17.1f  %6.1f\n", $(NF - 1), $NF}'

python3 - "$log" "${kernels[@]}" <<'PY'
import statistics, sys
rows = [list(map(float, line.split()[1:])) for line in open(sys.argv[1])]
kernels = sys.argv[2:]
medians = [statistics.median(col) for col in zip(*rows)]
lc_pp, lc_tg = medians[-2:]
print(f"median  llama.cpp prefill {lc_pp:.1f} decode {lc_tg:.1f} tokens/s")
for i, kernel in enumerate(kernels):
    bx_pp, bx_tg = medians[2 * i: 2 * i + 2]
    print(f"median  bitexact {kernel} prefill {bx_pp:.1f} decode {bx_tg:.1f} tokens/s | "
          f"ratio bitexact {kernel} / llama.cpp: prefill {bx_pp / lc_pp:.2f}x, "
          f"decode {bx_tg / lc_tg:.2f}x")
PY
