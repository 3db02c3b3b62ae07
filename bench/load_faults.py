"""Load-and-faults benchmark of `bitexact serve` (issue 5), through the official openai package.

Starts a server on a free port, computes a reference answer for each of a fixed set of request
shapes served alone, then runs CLIENTS concurrent streaming clients for DURATION seconds; each
client loops over random shapes, and with probability DROP disconnects after 1-5 chunks. Checks:
the server stays up (/health 200 at the end); every stream that was not dropped completes with a
finish_reason and the same text and bitexact_hash as its reference (nothing lost or altered);
after the run no sequence runs and no KV block is held, and the server's RSS is compared with its
baseline (taken after the references, so the allocator has seen the request sizes). Reports
p50/p99 latency and time to first token of the completed streams, and generated tokens/s.

Usage: .venv/bin/python bench/load_faults.py [--bin build/bitexact]
         [--model ../shared/models/stories260K.gguf] [--clients 200] [--duration 120] [--drop 0.2]
"""
import argparse
import asyncio
import json
import os
import random
import re
import resource
import subprocess
import sys
import time
import urllib.request

import openai

MODEL = "stories260K"
PROMPTS = ["Once upon a time", "The little dog", "Lily and Ben went to the park", "One day, a cat",
           "Tom had a red ball. He", "The sun was hot and", "Mom said to Sam", "A bird sat on"]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def metric(base, name):
    text = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise KeyError(name)


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def shapes():
    rng = random.Random(7)
    out = []
    for i in range(32):
        out.append({"prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": rng.randint(16, 64),
                    "temperature": rng.choice([0, 0.8, 1.0]), "seed": rng.randint(0, 1000)})
    return out


async def reference(client, shape):
    r = await client.completions.create(model=MODEL, **shape)
    c = r.choices[0]
    return c.text, (c.model_extra or {}).get("bitexact_hash")


async def one_stream(client, shape, drop_after, stats):
    start = time.perf_counter()
    first = None
    text, final = "", None
    chunks = 0
    stream = await client.completions.create(model=MODEL, stream=True, **shape)
    try:
        async for chunk in stream:
            if not chunk.choices:
                continue
            choice = chunk.choices[0]
            if first is None:
                first = time.perf_counter() - start
            text += choice.text
            chunks += 1
            if choice.finish_reason is not None:
                final = choice
            if drop_after is not None and chunks >= drop_after:
                stats["dropped"] += 1
                stats["tokens"] += chunks
                return None
    finally:
        await stream.close()
    stats["tokens"] += chunks - 1  # the last chunk carries the finish reason, not a token
    return text, final, time.perf_counter() - start, first


async def run(args, base, pid):
    client = openai.AsyncOpenAI(base_url=base + "/v1", api_key="none", max_retries=0, timeout=600)
    all_shapes = shapes()
    refs = [await reference(client, s) for s in all_shapes]
    baseline = rss_kib(pid)
    stats = {"rss_baseline": baseline, "completed": 0, "dropped": 0, "errors": 0, "altered": 0, "lost": 0, "tokens": 0}
    latencies, ttfts, error_samples = [], [], []
    deadline = time.time() + args.duration
    rng = random.Random(11)

    async def client_loop(seed):
        r = random.Random(seed)
        while time.time() < deadline:
            i = r.randrange(len(all_shapes))
            drop_after = r.randint(1, 5) if r.random() < args.drop else None
            try:
                result = await one_stream(client, all_shapes[i], drop_after, stats)
            except Exception as e:  # noqa: BLE001 - counted and reported
                stats["errors"] += 1
                if len(error_samples) < 5:
                    error_samples.append(repr(e)[:200])
                continue
            if result is None:
                continue
            text, final, latency, first = result
            if final is None:
                stats["lost"] += 1
                continue
            stats["completed"] += 1
            latencies.append(latency)
            ttfts.append(first)
            if (text, (final.model_extra or {}).get("bitexact_hash")) != refs[i]:
                stats["altered"] += 1

    start = time.time()
    await asyncio.gather(*(client_loop(rng.random()) for _ in range(args.clients)))
    elapsed = time.time() - start
    await client.close()
    return stats, latencies, ttfts, elapsed, error_samples


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", default="build/bitexact")
    p.add_argument("--model", default="../shared/models/stories260K.gguf")
    p.add_argument("--clients", type=int, default=200)
    p.add_argument("--duration", type=float, default=120)
    p.add_argument("--drop", type=float, default=0.2)
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))

    server = subprocess.Popen([args.bin, "serve", "--model", args.model, "--port", "0", "--quiet",
                               "--max-connections", str(args.clients + 50),
                               "--keep-alive-seconds", "60"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        port = int(re.search(r":(\d+)$", line.strip()).group(1))
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if urllib.request.urlopen(base + "/health", timeout=1).status == 200:
                    break
            except Exception:  # noqa: BLE001 - still loading
                time.sleep(0.05)
        stats, latencies, ttfts, elapsed, errors = asyncio.run(run_and_measure(args, base, server))
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


async def run_and_measure(args, base, server):
    rss_start = rss_kib(server.pid)
    stats, latencies, ttfts, elapsed, errors = await run(args, base, server.pid)
    # Let the server retire cancelled sequences and close idle connections.
    deadline = time.time() + 30
    while time.time() < deadline and (metric(base, "bitexact_running_sequences") != 0 or
                                      metric(base, "bitexact_kv_blocks_in_use") != 0):
        await asyncio.sleep(0.1)
    await asyncio.sleep(2)
    alive = urllib.request.urlopen(base + "/health", timeout=5).status == 200
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "clients": args.clients, "duration_s": round(elapsed, 1), "drop_probability": args.drop,
        "completed": stats["completed"], "dropped_on_purpose": stats["dropped"],
        "errors": stats["errors"], "lost": stats["lost"], "altered": stats["altered"],
        "server_alive": alive,
        "running_after": metric(base, "bitexact_running_sequences"),
        "kv_blocks_in_use_after": metric(base, "bitexact_kv_blocks_in_use"),
        "rss_kib_at_start": rss_start, "rss_kib_baseline_after_references": stats["rss_baseline"],
        "rss_kib_after": rss_kib(server.pid),
        "latency_p50_s": round(percentile(latencies, 50), 3),
        "latency_p99_s": round(percentile(latencies, 99), 3),
        "ttft_p50_s": round(percentile(ttfts, 50), 3), "ttft_p99_s": round(percentile(ttfts, 99), 3),
        "generated_tokens_per_s": round(stats["tokens"] / elapsed, 1),
        "error_samples": errors,
    }
    print(json.dumps(report, indent=2))
    ok = (alive and stats["lost"] == 0 and stats["altered"] == 0 and stats["errors"] == 0 and
          report["kv_blocks_in_use_after"] == 0 and report["running_after"] == 0)
    print("load_faults:", "PASS" if ok else "FAIL")
    return stats, latencies, ttfts, elapsed, errors


if __name__ == "__main__":
    main()
