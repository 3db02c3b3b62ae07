"""bitexact against llama.cpp on the same GGUF: greedy agreement over 64 tokens and the relative
error of the chosen tokens' logprobs. A benchmark, not a CI test.

    LLAMA_CPP_LIB_PATH=DIR python bench/vs_llamacpp_agreement.py --llama-cpp-python SRC \
        MODEL [MODEL ...] [--kernels k1,k2] [--tokens 64] [--threads 2]

DIR holds llama.cpp's libllama.so (a BUILD_SHARED_LIBS build of the `llama-cpp-python` source
package's vendor/llama.cpp; bench/RESULTS.md says how), SRC is that source package unpacked (its
Python bindings are used as they are, over that library). Per model and prompt:
  - the prompt's ids come from llama.cpp's tokenizer, and both engines get those ids;
  - llama.cpp decodes greedily (argmax of its logits) TOKENS tokens;
  - bitexact (`bitexact generate --temperature 0 --ignore-eos`, each --cpu-kernel) decodes the same
    number, reporting each token's logprob;
  - agreement: the length of the common prefix of the two greedy sequences, and how many of
    the TOKENS positions hold the same id;
  - logprob error: llama.cpp re-reads prompt + bitexact's tokens in one batch (teacher forcing)
    and its log-softmax at each of bitexact's tokens is compared with bitexact's logprob:
    ||lp_bitexact - lp_llama.cpp||_2 / ||lp_llama.cpp||_2 and the largest |difference|.
"""
import argparse
import json
import os
import subprocess
import sys
import types

import numpy as np

PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a small village by the sea,",
    "def fibonacci(n):",
]


def load_llama_cpp(source):
    # llama_cpp/__init__ imports its disk cache, which needs `diskcache`; nothing here uses it.
    sys.modules.setdefault("diskcache", types.ModuleType("diskcache"))
    sys.path.insert(0, source)
    import llama_cpp  # noqa: E402

    return llama_cpp


def log_softmax(rows):
    rows = rows.astype(np.float64)
    rows = rows - rows.max(axis=-1, keepdims=True)
    return rows - np.log(np.exp(rows).sum(axis=-1, keepdims=True))


def llama_greedy(llm, prompt_ids, n):
    llm.reset()
    llm.eval(prompt_ids)
    out = []
    for _ in range(n):
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        out.append(token)
        llm.eval([token])
    return out


def llama_logprobs_of(llm, prompt_ids, continuation):
    llm.reset()
    llm.eval(prompt_ids + continuation)
    lp = log_softmax(np.array(llm.scores[: llm.n_tokens]))
    start = len(prompt_ids) - 1
    return np.array([lp[start + i, t] for i, t in enumerate(continuation)])


def bitexact_greedy(binary, model, prompt_ids, n, threads, kernel):
    out = subprocess.run(
        [binary, "generate", "--model", model, "--prompt-ids", ",".join(map(str, prompt_ids)),
         "--max-tokens", str(n), "--temperature", "0", "--ignore-eos", "--format", "json",
         "--threads", str(threads), "--quiet", "--cpu-kernel", kernel],
        check=True, capture_output=True, text=True).stdout
    row = json.loads(out.strip().splitlines()[-1])
    return row["token_ids"], np.array(row["logprobs"], dtype=np.float64)


def common_prefix(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--llama-cpp-python", required=True,
                        help="the unpacked llama-cpp-python source package")
    parser.add_argument("--bitexact", default=os.environ.get("BITEXACT_BIN", "build/bitexact"))
    parser.add_argument("--kernels", default="k1,k2")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if "LLAMA_CPP_LIB_PATH" not in os.environ:
        sys.exit("set LLAMA_CPP_LIB_PATH to the folder holding llama.cpp's libllama.so")
    llama_cpp = load_llama_cpp(args.llama_cpp_python)
    kernels = args.kernels.split(",")

    print("model | kernel | prompt | common prefix | equal ids | logprob rel. error | max |diff|")
    summary = []
    for model in args.models:
        llm = llama_cpp.Llama(model_path=model, n_ctx=512, n_batch=512, n_threads=args.threads,
                              logits_all=True, verbose=False)
        for kernel in kernels:
            prefixes, equal, errs, worst = [], 0, [], 0.0
            for p, text in enumerate(PROMPTS):
                prompt_ids = llm.tokenize(text.encode(), add_bos=True)
                lc_ids = llama_greedy(llm, prompt_ids, args.tokens)
                bx_ids, bx_lp = bitexact_greedy(args.bitexact, model, prompt_ids, args.tokens,
                                                args.threads, kernel)
                lc_lp = llama_logprobs_of(llm, prompt_ids, bx_ids)
                prefix = common_prefix(lc_ids, bx_ids)
                same = sum(int(a == b) for a, b in zip(lc_ids, bx_ids))
                rel = float(np.linalg.norm(bx_lp - lc_lp) / np.linalg.norm(lc_lp))
                diff = float(np.abs(bx_lp - lc_lp).max())
                prefixes.append(prefix)
                equal += same
                errs.append(rel)
                worst = max(worst, diff)
                print(f"{os.path.basename(model)} | {kernel} | {p} | {prefix}/{args.tokens} | "
                      f"{same}/{args.tokens} | {rel:.2e} | {diff:.3f}", flush=True)
            summary.append((os.path.basename(model), kernel, min(prefixes), equal,
                            len(PROMPTS) * args.tokens, float(np.median(errs)), worst))
        del llm
    print()
    print("| model | bitexact kernel | shortest common prefix | equal ids | median logprob "
          "rel. error | max abs logprob diff |")
    print("|---|---|---|---|---|---|")
    for name, kernel, prefix, equal, total, rel, worst in summary:
        print(f"| {name} | {kernel} | {prefix}/{args.tokens} | {equal}/{total} | {rel:.2e} | "
              f"{worst:.3f} |")


if __name__ == "__main__":
    main()
