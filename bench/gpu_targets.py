#!/usr/bin/env python3
"""Issue 22's targets from the logs of `scripts/gpu-check --experiments` (one folder): each
measured ratio against its target, as one markdown table. A target whose log is missing is
reported as "not measured", never guessed.

    bench/gpu_targets.py LOGS_DIR
"""
import json
import os
import re
import sys


def read(logs, name):
    path = os.path.join(logs, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return f.read()


def rows_of(text):
    """Markdown table rows as lists of stripped cells."""
    return [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in (text or "").splitlines() if line.startswith("|")]


def main():
    logs = sys.argv[1] if len(sys.argv) > 1 else "build/gpu-check"
    out = []

    def add(name, measured, target, met, note=""):
        out.append(f"| {name} | {measured} | {target} | {'met' if met else 'MISSED'} | {note} |")

    def missing(name, target, why):
        out.append(f"| {name} | not measured | {target} | - | {why} |")

    serve = read(logs, "serve_throughput.json")
    if serve:
        s = json.loads(serve)
        by = {m["mode"]: m for m in s["modes"]}
        inv = by.get("invariant")
        if inv:
            add("throughput via HTTP, invariant wall s", f"{inv['http_wall_seconds']:.2f}", "<= 4.0",
                inv["http_wall_seconds"] <= 4.0, f"{inv['http_tokens_per_second']:.0f} tokens/s")
            if inv.get("http_over_in_process"):
                detail = f"in-process {inv['in_process_wall_seconds']:.2f} s"
                if "server_forward_seconds" in inv:  # where the HTTP run's time went
                    waiting = (inv["http_wall_seconds"] - inv["server_forward_seconds"] -
                               inv["server_host_seconds"])
                    detail += (f"; server forward {inv['server_forward_seconds']:.2f} s, host "
                               f"{inv['server_host_seconds']:.2f} s, waiting {waiting:.2f} s; "
                               f"last request sent at {inv['send_ramp_seconds']:.2f} s")
                add("HTTP / in-process (invariant)", f"{inv['http_over_in_process']:.3f}", "<= 1.05",
                    inv["http_over_in_process"] <= 1.05, detail)
        if "invariant_over_fast_http" in s:
            r = s["invariant_over_fast_http"]
            add("invariant / fast via HTTP", f"{r:.3f}", "<= 1.05", r <= 1.05,
                f"fast {by['fast']['http_wall_seconds']:.2f} s")
    else:
        missing("throughput via HTTP", "<= 4.0 s", "no serve_throughput.json")

    decode = read(logs, "decode.txt")
    m = re.search(r"achieved (\d+)% of it", decode or "")
    if m:
        frac = int(m.group(1)) / 100
        rate = re.search(r"decode\s+([\d.]+) tokens/s", decode)
        add("batch-1 decode / weight-bytes floor", f"{frac:.2f}", ">= 0.85", frac >= 0.85,
            f"{1000 / float(rate.group(1)):.2f} ms/token" if rate else "")
    else:
        missing("batch-1 decode / weight-bytes floor", ">= 0.85", "no decode.txt")

    attention = read(logs, "attention_bench.log")
    decode_rows = [r for r in rows_of(attention) if r[0].startswith("decode b=")]
    if decode_rows:
        worst = None
        for r in decode_rows:
            ctx = int(re.search(r"ctx=(\d+)", r[0]).group(1))
            ratio = float(r[-1])
            if ctx >= 512 and (worst is None or ratio < worst[1]):
                worst = (r[0], ratio)
        add("decode attention / KV-bytes floor (worst, ctx >= 512)", f"{worst[1]:.2f}", ">= 0.85",
            worst[1] >= 0.85, worst[0])
    else:
        missing("decode attention / KV-bytes floor", ">= 0.85", "no attention_bench.log")

    sdpa = read(logs, "attention_sdpa.log")
    best = {}
    for r in rows_of(sdpa):
        m = re.match(r"torch SDPA best \((\w+)\) (\d+x\d+) causal", r[0])
        if m:
            best[(m.group(2), r[2])] = (m.group(1), float(r[4]))
    ours = {}
    for r in rows_of(attention):
        m = re.match(r"prefill (\d+x\d+) causal \(wgmma(?:, [^()]*\(default\))?\)", r[0])
        if m:
            ours[(m.group(1), r[2])] = float(r[4])
    for key in sorted(ours):
        if key in best:
            ratio = ours[key] / best[key][1]
            add(f"prefill attention {key[0]}, {key[1]} KV heads / best SDPA", f"{ratio:.2f}",
                ">= 0.8", ratio >= 0.8,
                f"ours {ours[key]:.0f} vs {best[key][0]} {best[key][1]:.0f} TFLOP/s")
    if not ours or not best:
        missing("prefill attention / best SDPA", ">= 0.8", "no attention_bench or SDPA log")

    uniq = read(logs, "uniqueness.json")
    if uniq:
        for m in json.loads(uniq)["modes"]:
            out.append(f"| uniqueness, {m['mode']}: distinct completions | "
                       f"{m['distinct_completions']} | invariant: 1 | "
                       f"{'met' if m['mode'] != 'invariant' or m['distinct_completions'] == 1 else 'MISSED'}"
                       f" | {m.get('distinct_with_logprob_bits', '')} distinct by logprob bits |")
    onp = read(logs, "on-policy.json")
    if onp:
        for m in json.loads(onp)["modes"]:
            out.append(f"| on-policy, {m['mode']}: KL (k1) per token | {m['kl_k1_per_token']:.3g} | "
                       f"invariant: 0 | "
                       f"{'met' if m['mode'] != 'invariant' or m['kl_k1_per_token'] == 0 else 'MISSED'}"
                       f" | {m['tokens_with_different_bits']} tokens differ |")

    print("| target | measured | goal | status | detail |")
    print("|---|---|---|---|---|")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
