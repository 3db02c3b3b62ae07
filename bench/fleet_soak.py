"""Soak of a bitexact fleet behind nginx (issue 21): N replicas + nginx (deploy/nginx.conf) on
loopback, C streaming clients for D seconds, a fraction of streams dropped by their client
mid-stream, one replica killed (SIGKILL) and restarted halfway.

Usage: nice python bench/fleet_soak.py [--binary build/bitexact] [--model M] [--replicas 3]
         [--clients 200] [--duration 600] [--disconnect 0.2] [--warmup 60]

Reports: completed streams, p50/p99 latency of a completed stream (request to last chunk) and
of its first chunk, generated tokens/s (token_ids of completed streams / duration), failed
requests (an error, or a stream cut by the kill that failed again when resent, or any answer
different from the one replica 0 gave alone before the soak), streams cut by the kill and
resent, and each replica's RSS after warm-up and at the end (the restarted replica: after its
own warm-up). Exit status 1 when a request failed or an answer differed.
"""
import argparse
import datetime
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time

import openai

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "server"))
from common import metric  # noqa: E402
from fleet import Nginx, Replica  # noqa: E402

PROMPTS = ["Once upon a time", "The little dog", "Lily and Tom went to the park",
           "One day, a big bird", "The sun was hot and", "Tim had a red ball", "The cat said"]


def requests_set(n=56):
    out = []
    for i in range(n):
        r = {"prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": 32 + 16 * (i % 4)}
        r.update(temperature=0) if i % 4 == 0 else r.update(temperature=0.8, seed=500 + i)
        out.append(r)
    return out


def stream_answer(c, request, stop_after=None):
    """(text, token_ids, hash, first-chunk seconds) of a streamed completion; with stop_after,
    closes the stream after that many chunks and returns None."""
    start = time.monotonic()
    first = None
    text, last, n = "", None, 0
    stream = c.completions.create(model="fleet", stream=True,
                                  extra_body={"return_token_ids": True}, **request)
    try:
        for chunk in stream:
            n += 1
            if first is None:
                first = time.monotonic() - start
            for ch in chunk.choices:
                d = ch.model_dump()
                text += d["text"] or ""
                last = d
            if stop_after is not None and n >= stop_after:
                return None
    finally:
        stream.close()
    if last is None or last.get("finish_reason") is None:
        raise RuntimeError("stream ended without a finish_reason")
    return text, last["token_ids"], last["bitexact_hash"], first


def percentile(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--binary", default=os.path.join(root, "build", "bitexact"))
    p.add_argument("--model", default=os.path.join(root, "..", "shared", "models",
                                                   "stories260K.gguf"))
    p.add_argument("--replicas", type=int, default=3)
    p.add_argument("--clients", type=int, default=200)
    p.add_argument("--duration", type=float, default=600)
    p.add_argument("--disconnect", type=float, default=0.2)
    p.add_argument("--warmup", type=float, default=60)
    a = p.parse_args()

    log_dir = tempfile.mkdtemp(prefix="bitexact_soak_")
    replica_args = ["--served-model-name", "fleet", "--threads", "1", "--max-connections", "1100",
                    "--max-queue", "2000"]
    replicas = [Replica(a.binary, a.model, log_dir, replica_args) for _ in range(a.replicas)]
    nginx = None
    try:
        for r in replicas:
            r.start()
        requests = requests_set()
        alone_client = openai.OpenAI(base_url=replicas[0].url + "/v1", api_key="none",
                                     max_retries=0)
        alone = [stream_answer(alone_client, r)[:3] for r in requests]
        nginx = Nginx(replicas[0].fingerprint(), [r.url for r in replicas])
        nginx.start()
        c = openai.OpenAI(base_url=nginx.url + "/v1", api_key="none", max_retries=0, timeout=120)

        lock = threading.Lock()
        stats = {"completed": 0, "dropped": 0, "failed": 0, "differ": 0, "resent": 0,
                 "tokens": 0, "errors": []}
        latencies, firsts = [], []
        start = time.monotonic()
        stop_at = start + a.duration

        def client_loop(seed):
            rng = random.Random(seed)
            while time.monotonic() < stop_at:
                k = rng.randrange(len(requests))
                drop = rng.random() < a.disconnect
                t0 = time.monotonic()
                try:
                    if drop:
                        stream_answer(c, requests[k], stop_after=rng.randint(1, 8))
                        with lock:
                            stats["dropped"] += 1
                        continue
                    try:
                        got = stream_answer(c, requests[k])
                    except Exception:  # noqa: BLE001 - a stream cut by the kill: resend it
                        with lock:
                            stats["resent"] += 1
                        got = stream_answer(c, requests[k])
                    elapsed = time.monotonic() - t0
                    with lock:
                        stats["completed"] += 1
                        stats["tokens"] += len(got[1])
                        latencies.append(elapsed)
                        firsts.append(got[3])
                        if got[:3] != alone[k]:
                            stats["differ"] += 1
                except Exception as e:  # noqa: BLE001
                    with lock:
                        stats["failed"] += 1
                        if len(stats["errors"]) < 5:
                            stats["errors"].append(repr(e))

        threads = [threading.Thread(target=client_loop, args=(i,), daemon=True)
                   for i in range(a.clients)]
        for t in threads:
            t.start()
        rss_warm, rss_end = {}, {}
        time.sleep(a.warmup)
        for i, r in enumerate(replicas):
            rss_warm[i] = r.rss_kib()
        time.sleep(max(0.0, a.duration / 2 - a.warmup))
        victim = 1
        held = (metric(replicas[victim].url, "bitexact_running_sequences") +
                metric(replicas[victim].url, "bitexact_queue_depth"))
        replicas[victim].kill()
        killed_at = time.monotonic() - start
        time.sleep(1.0)
        replicas[victim].start()
        time.sleep(a.warmup)
        rss_warm[victim] = replicas[victim].rss_kib()
        for t in threads:
            t.join(timeout=max(1.0, stop_at - time.monotonic() + 180))
        upstream_errors = sum(1 for line in nginx.error_log().splitlines()
                              if "upstream" in line and "[error]" in line)
        elapsed = time.monotonic() - start
        for i, r in enumerate(replicas):
            rss_end[i] = r.rss_kib()

        print(f"fleet soak {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on "
              f"{platform.node()} ({os.cpu_count()} cores, load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end)")
        print(f"{a.replicas} replicas ({os.path.basename(a.model)}, --threads 1) + nginx, "
              f"{a.clients} streaming clients, {a.disconnect:.0%} disconnecting, "
              f"{elapsed:.0f} s; replica {victim} killed at {killed_at:.0f} s holding "
              f"{held:.0f} sequences and restarted; nginx logged {upstream_errors} upstream "
              f"errors")
        print(f"completed streams {stats['completed']}, dropped by their client "
              f"{stats['dropped']}, cut by the kill and resent {stats['resent']}, "
              f"failed {stats['failed']}, answers differing from one server alone "
              f"{stats['differ']}")
        print(f"latency of a completed stream: p50 {percentile(latencies, 0.5) * 1e3:.0f} ms, "
              f"p99 {percentile(latencies, 0.99) * 1e3:.0f} ms; first chunk p50 "
              f"{percentile(firsts, 0.5) * 1e3:.0f} ms, "
              f"p99 {percentile(firsts, 0.99) * 1e3:.0f} ms")
        print(f"generated tokens/s (completed streams): {stats['tokens'] / elapsed:.0f}; "
              f"requests/s: {(stats['completed'] + stats['dropped']) / elapsed:.1f}")
        for i in range(a.replicas):
            change = (rss_end[i] - rss_warm[i]) / rss_warm[i] * 100
            print(f"replica {i}{' (restarted)' if i == victim else ''}: RSS after warm-up "
                  f"{rss_warm[i] / 1024:.1f} MiB, at the end {rss_end[i] / 1024:.1f} MiB "
                  f"({change:+.1f}%)")
        for e in stats["errors"]:
            print("error:", e)
        return 1 if stats["failed"] or stats["differ"] else 0
    finally:
        if nginx:
            nginx.stop()
        for r in replicas:
            r.stop()


if __name__ == "__main__":
    sys.exit(main())
