#!/usr/bin/env python3
"""The throughput experiment through the HTTP server (issue 22 item 1), against the same workload
in-process, side by side in one run.

1. `bitexact experiment throughput` runs the N requests in-process in each mode and writes the
   workload (each request's prompt ids and max_tokens) with --write-requests.
2. For each mode, `bitexact serve` loads the same model; after a short warm-up (a few requests,
   so CUDA graphs and the connection pool exist), an asyncio client (aiohttp) sends the same N
   requests to /v1/completions at once, each on its own connection (greedy, ignore_eos, prompt as
   token ids), and the wall time runs from the first send to the last response.

Every response must be 200 with usage.completion_tokens equal to its max_tokens; anything else
fails the run. Writes OUT/serve_throughput.{json,md} and prints the table.

    bench/serve_throughput.py --bitexact build/bitexact --model random:qwen3-8b \\
        --tokenizer ../shared/tokenizers/qwen3 --backend cuda --max-seqs 1024 --out bench/results/serve
"""
import argparse
import asyncio
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
import urllib.request

import aiohttp


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bitexact", default="build/bitexact")
    p.add_argument("--model", default="random:qwen3-8b")
    p.add_argument("--tokenizer", default="../shared/tokenizers/qwen3")
    p.add_argument("--backend", default="cuda")
    p.add_argument("--modes", default="invariant,fast")
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--max-tokens", type=int, default=100)
    p.add_argument("--max-prompt-tokens", type=int, default=128)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--max-seqs", type=int, default=1024)
    p.add_argument("--max-batch-tokens", type=int, default=2048)
    p.add_argument("--kv-cache-tokens", type=int, default=0)
    p.add_argument("--warmup", type=int, default=16, help="requests sent before the timed run")
    p.add_argument("--load-timeout", type=float, default=300)
    p.add_argument("--out", default="bench/results/serve")
    return p.parse_args()


def engine_flags(a):
    flags = ["--max-seqs", str(a.max_seqs), "--max-batch-tokens", str(a.max_batch_tokens)]
    if a.kv_cache_tokens:
        flags += ["--kv-cache-tokens", str(a.kv_cache_tokens)]
    return flags


def run_in_process(a, workload_path):
    out = os.path.join(a.out, "in_process")
    cmd = [a.bitexact, "experiment", "throughput", "--model", a.model, "--backend", a.backend,
           "--requests", str(a.requests), "--max-tokens", str(a.max_tokens),
           "--max-prompt-tokens", str(a.max_prompt_tokens), "--seed", str(a.seed),
           "--tokenizer", a.tokenizer,  # the same detokenization work as the server's
           "--out", out, "--write-requests", workload_path, "--quiet"] + engine_flags(a)
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    with open(os.path.join(out, "throughput.json")) as f:
        report = json.load(f)
    return {m["mode"]: m for m in report["modes"]}, cmd


class Server:
    def __init__(self, a, mode):
        self.cmd = [a.bitexact, "serve", "--model", a.model, "--tokenizer", a.tokenizer,
                    "--backend", a.backend, "--mode", mode, "--port", "0", "--quiet",
                    "--max-connections", str(a.requests + 64), "--max-queue", str(a.requests + 64),
                    "--keep-alive-seconds", "600"] + engine_flags(a)
        print("+", " ".join(self.cmd), flush=True)
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"listening on (http://\S+)", line)
        if not m:
            self.proc.kill()
            raise SystemExit(f"serve did not print its address (got {line!r})")
        self.url = m.group(1)
        deadline = time.time() + a.load_timeout
        while True:
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except Exception:
                pass
            if self.proc.poll() is not None:
                raise SystemExit(f"serve exited with {self.proc.returncode} while loading")
            if time.time() > deadline:
                self.stop()
                raise SystemExit(f"serve did not become healthy in {a.load_timeout} s")
            time.sleep(0.5)
        with urllib.request.urlopen(self.url + "/v1/models", timeout=5) as r:
            self.model_id = json.load(r)["data"][0]["id"]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


ENGINE_COUNTERS = ("bitexact_engine_steps_total", "bitexact_engine_forward_seconds_total",
                   "bitexact_engine_host_seconds_total")


def engine_counters(url):
    """The server engine's step count and its forward / host seconds so far (/metrics)."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in ENGINE_COUNTERS:
            values[name] = float(value)
    return values


async def send_all(url, model_id, requests):
    """Sends every request at once, one connection each; returns (wall seconds, tokens, fps,
    send ramp seconds: from the start to the last request's body written to its socket)."""
    connector = aiohttp.TCPConnector(limit=len(requests), force_close=False)
    timeout = aiohttp.ClientTimeout(total=3600)
    fingerprints = set()
    last_sent = [0.0]

    async def on_sent(session, context, params):
        last_sent[0] = max(last_sent[0], time.perf_counter())

    trace = aiohttp.TraceConfig()
    trace.on_request_chunk_sent.append(on_sent)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     trace_configs=[trace]) as session:

        async def one(r):
            body = {"model": model_id, "prompt": r["prompt"], "max_tokens": r["max_tokens"],
                    "temperature": 0, "ignore_eos": True}
            async with session.post(url + "/v1/completions", json=body) as resp:
                text = await resp.text()
                if resp.status != 200:
                    raise SystemExit(f"HTTP {resp.status}: {text[:300]}")
                j = json.loads(text)
                got = j["usage"]["completion_tokens"]
                if got != r["max_tokens"]:
                    raise SystemExit(f"completion_tokens {got}, expected {r['max_tokens']}")
                fingerprints.add(j.get("system_fingerprint"))
                return got

        start = time.perf_counter()
        tokens = await asyncio.gather(*(one(r) for r in requests))
        wall = time.perf_counter() - start
    return wall, sum(tokens), sorted(f for f in fingerprints if f), last_sent[0] - start


def main():
    a = parse_args()
    os.makedirs(a.out, exist_ok=True)
    workload_path = os.path.join(a.out, "workload.json")
    in_process, in_process_cmd = run_in_process(a, workload_path)
    with open(workload_path) as f:
        requests = json.load(f)["requests"]
    assert len(requests) == a.requests, (len(requests), a.requests)

    rows = []
    for mode in a.modes.split(","):
        server = Server(a, mode)
        try:
            warm = [{"prompt": r["prompt"], "max_tokens": 8} for r in requests[: a.warmup]]
            asyncio.run(send_all(server.url, server.model_id, warm))
            before = engine_counters(server.url)
            wall, tokens, fps, ramp = asyncio.run(send_all(server.url, server.model_id, requests))
            after = engine_counters(server.url)
        finally:
            server.stop()
        ip = in_process.get(mode, {})
        row = {"mode": mode, "http_wall_seconds": wall, "output_tokens": tokens,
               "http_tokens_per_second": tokens / wall, "fingerprints": fps,
               "send_ramp_seconds": ramp,
               # The server engine during the timed run: steps, and their forward / host time
               # (the rest of the wall time the engine waited for requests or sat idle).
               "server_steps": after[ENGINE_COUNTERS[0]] - before[ENGINE_COUNTERS[0]],
               "server_forward_seconds": after[ENGINE_COUNTERS[1]] - before[ENGINE_COUNTERS[1]],
               "server_host_seconds": after[ENGINE_COUNTERS[2]] - before[ENGINE_COUNTERS[2]],
               "in_process_wall_seconds": ip.get("wall_seconds"),
               "in_process_fingerprint": ip.get("fingerprint"),
               "in_process_forward_seconds": ip.get("forward_seconds"),
               "in_process_host_seconds": ip.get("schedule_seconds")}
        if ip.get("wall_seconds"):
            row["http_over_in_process"] = wall / ip["wall_seconds"]
        rows.append(row)
        print(f"{mode}: HTTP {wall:.2f} s ({tokens / wall:.0f} tokens/s; the last request "
              f"sent at {ramp:.2f} s), in-process {ip.get('wall_seconds', float('nan')):.2f} s",
              flush=True)

    report = {"experiment": "serve_throughput", "date_utc": time.strftime("%Y-%m-%d %H:%M:%S",
                                                                          time.gmtime()),
              "host": platform.node(), "settings": vars(a), "in_process_command": in_process_cmd,
              "modes": rows}
    by_mode = {r["mode"]: r for r in rows}
    if "invariant" in by_mode and "fast" in by_mode:
        report["invariant_over_fast_http"] = (by_mode["invariant"]["http_wall_seconds"] /
                                              by_mode["fast"]["http_wall_seconds"])
    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                         capture_output=True, text=True).stdout.strip() if a.backend == "cuda" else ""
    report["device"] = gpu or platform.processor()
    with open(os.path.join(a.out, "serve_throughput.json"), "w") as f:
        json.dump(report, f, indent=1)
    md = [f"# Throughput through `bitexact serve`: {a.requests} requests of about {a.max_tokens} "
          f"tokens ({a.model}, {a.backend}, {report['device']}, {report['date_utc']} UTC)", "",
          "| mode | HTTP wall s | last request sent at s | output tokens | tokens/s | "
          "in-process wall s | HTTP / in-process |",
          "|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = r.get("http_over_in_process")
        md.append(f"| {r['mode']} | {r['http_wall_seconds']:.2f} | {r['send_ramp_seconds']:.2f} | "
                  f"{r['output_tokens']} | "
                  f"{r['http_tokens_per_second']:.0f} | {r['in_process_wall_seconds'] or float('nan'):.2f}"
                  f" | {ratio if ratio is None else f'{ratio:.3f}'} |")
    md += ["", "Where the time went (seconds): the engine's forward pass and its host share "
           "(scheduling, sampling, output processing) in the server during the timed run and "
           "in-process; the rest of the HTTP wall time the server's engine was waiting.", "",
           "| mode | steps HTTP | forward HTTP | host HTTP | waiting HTTP | forward in-process | "
           "host in-process |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        waiting = r["http_wall_seconds"] - r["server_forward_seconds"] - r["server_host_seconds"]
        ipf, iph = r.get("in_process_forward_seconds"), r.get("in_process_host_seconds")
        md.append(f"| {r['mode']} | {r['server_steps']:.0f} | {r['server_forward_seconds']:.2f} | "
                  f"{r['server_host_seconds']:.2f} | {waiting:.2f} | "
                  f"{float('nan') if ipf is None else ipf:.2f} | "
                  f"{float('nan') if iph is None else iph:.2f} |")
    if "invariant_over_fast_http" in report:
        md.append("")
        md.append(f"Invariant / fast through HTTP: {report['invariant_over_fast_http']:.3f}. "
                  "Targets (issue 22, one H100): invariant <= 4.0 s, invariant / fast <= 1.05, "
                  "HTTP / in-process <= 1.05.")
    md.append("")
    md.append(f"Client: aiohttp {aiohttp.__version__}, all requests at once, one connection each, "
              f"after {a.warmup} warm-up requests of 8 tokens. Server: `{' '.join(server.cmd)}` "
              "(mode per row).")
    with open(os.path.join(a.out, "serve_throughput.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
