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
# LLAMA_BENCH is a llama-bench binary built elsewhere (bench/RESULTS.md says how); nothing of
# llama.cpp is part of this repository.
set -euo pipefail
cd "$(dirname "$0")/.."

llama_bench=${1:?usage: bench/vs_llamacpp.sh LLAMA_BENCH MODEL [ROUNDS] [THREADS]}
model=${2:?usage: bench/vs_llamacpp.sh LLAMA_BENCH MODEL [ROUNDS] [THREADS]}
rounds=${3:-5}
threads=${4:-2}
bitexact=${BITEXACT_BIN:-build/bitexact}
# Extra llama-bench flags. --repack 0: its AMX / repacked-weight path crashed on this VM (SIGSEGV
# in ggml_backend_amx_mul_mat during prompt processing), so llama.cpp runs its AVX-512 kernels.
llama_args=${LLAMA_BENCH_ARGS:---repack 0}

log=$(mktemp)
trap 'rm -f "$log"' EXIT
for r in $(seq 1 "$rounds"); do
  out=$("$bitexact" bench --model "$model" --threads "$threads" --quiet --prompt-tokens 128 \
    --decode-tokens 32 --repeats 3)
  bx_pp=$(echo "$out" | awk '/^prefill/ {print $2}')
  bx_tg=$(echo "$out" | awk '/^decode  / {print $2}')
  # shellcheck disable=SC2086
  lc=$("$llama_bench" -m "$model" -t "$threads" -p 128 -n 32 -r 3 -o jsonl $llama_args 2>/dev/null |
    python3 -c 'import json, sys
rows = [json.loads(line) for line in sys.stdin if line.strip()]
pp = [r["avg_ts"] for r in rows if r["n_prompt"] > 0]
tg = [r["avg_ts"] for r in rows if r["n_gen"] > 0]
print(pp[0], tg[0])')
  read -r lc_pp lc_tg <<<"$lc"
  echo "$r $bx_pp $bx_tg $lc_pp $lc_tg" | tee -a "$log"
done | awk 'BEGIN {print "round  bitexact prefill  decode  |  llama.cpp prefill  decode"}
            {printf "%5d  %16.1f  %6.1f  |  %17.1f  %6.1f\n", $1, $2, $3, $4, $5}'

python3 - "$log" <<'PY'
import statistics, sys
rows = [list(map(float, line.split()[1:])) for line in open(sys.argv[1])]
bx_pp, bx_tg, lc_pp, lc_tg = (statistics.median(col) for col in zip(*rows))
print(f"median  bitexact prefill {bx_pp:.1f} decode {bx_tg:.1f} tokens/s | "
      f"llama.cpp prefill {lc_pp:.1f} decode {lc_tg:.1f} tokens/s")
print(f"ratio bitexact / llama.cpp: prefill {bx_pp / lc_pp:.2f}x, decode {bx_tg / lc_tg:.2f}x")
PY
