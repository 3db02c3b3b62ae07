"""The server under abuse (issue 20): memory after oversized bodies and a soak, /health under a
slowloris load, and how fast abandoned non-streaming requests are freed.

Starts `bitexact serve` (stories260K) on a free port and measures, in order:
  1. server RSS at baseline (after a few normal requests);
  2. BODIES oversized bodies of BODY_MIB MiB each, sent chunked, then as many with Content-Length,
     CONCURRENT at a time: the status each got, the bytes the client managed to send before
     the server cut it off, and RSS after;
  3. a soak of SOAK seconds: CLIENTS threads loop over normal completions (some non-streaming
     ones abandoned after 0.2 s, some with n = 4), then RSS after, and running sequences / KV
     blocks in use once it is over;
  4. SLOW slowloris connections that drip one header line every 0.5 s, open for HOLD seconds,
     while /health is asked every 0.1 s and /metrics every second: p50 / max latency, and how
     many slow connections were still open at the end;
  5. ABANDON non-streaming requests of n = 8 x 500 tokens, sent whole and then abandoned once
     they run: running sequences at the hang-up, and ms until none runs or waits.
Prints one JSON object (every figure) and a markdown table.

Usage: .venv/bin/python bench/server_abuse.py [--bin build/bitexact]
         [--model ../shared/models/stories260K.gguf] [--bodies 16] [--body-mib 50] [--soak 60]
"""
import argparse
import json
import os
import platform
import random
import re
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "server"))
from common import http, metric  # noqa: E402


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def status_of(s, timeout=10):
    s.settimeout(timeout)
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                return None
            data += chunk
    except OSError:
        return None
    return int(data.split()[1])


def oversized(port, mib, chunked):
    """Sends a MIB MiB body (chunked or with Content-Length) as fast as the server takes it;
    returns (status or None, bytes sent before the server cut the connection)."""
    s = connect(port)
    head = "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    head += "Transfer-Encoding: chunked\r\n\r\n" if chunked else f"Content-Length: {mib << 20}\r\n\r\n"
    s.sendall(head.encode())
    piece = b"z" * 65536
    frame = (b"%x\r\n" % len(piece) + piece + b"\r\n") if chunked else piece
    sent = 0
    try:
        while sent < mib << 20:
            s.sendall(frame)
            sent += len(frame)
    except OSError:
        pass
    status = status_of(s)
    s.close()
    return status, sent


def soak(port, seconds, clients, base):
    stop = time.monotonic() + seconds
    counts = {"completed": 0, "abandoned": 0, "errors": 0}
    lock = threading.Lock()

    def loop(seed):
        rng = random.Random(seed)
        while time.monotonic() < stop:
            body = {"prompt": rng.choice(["Once upon a time", "The dog", "Lily and Ben"]),
                    "max_tokens": rng.randint(16, 128), "temperature": rng.choice([0, 0.8]),
                    "seed": rng.randint(0, 1000), "n": rng.choice([1, 1, 4])}
            if rng.random() < 0.3:
                data = json.dumps(body).encode()
                s = connect(port)
                s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                          b"application/json\r\nContent-Length: %d\r\n\r\n" % len(data) + data)
                time.sleep(0.2)
                s.close()
                key = "abandoned"
            else:
                status, _ = http("POST", base + "/v1/completions", body, timeout=300)
                key = "completed" if status == 200 else "errors"
            with lock:
                counts[key] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return counts


def slowloris(port, base, slow, hold):
    conns = []
    for _ in range(slow):
        s = connect(port)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        conns.append(s)
    stop = threading.Event()

    def drip():
        while not stop.is_set():
            for s in conns:
                try:
                    s.sendall(b"X-Drip: 1\r\n")
                except OSError:
                    pass
            time.sleep(0.5)

    dripper = threading.Thread(target=drip)
    dripper.start()
    health, metrics_times = [], []
    end = time.monotonic() + hold
    next_metrics = 0.0
    while time.monotonic() < end:
        t = time.monotonic()
        ok = urllib.request.urlopen(base + "/health", timeout=30).status == 200
        health.append((time.monotonic() - t) if ok else float("inf"))
        if t >= next_metrics:
            t = time.monotonic()
            urllib.request.urlopen(base + "/metrics", timeout=30).read()
            metrics_times.append(time.monotonic() - t)
            next_metrics = t + 1.0
        time.sleep(0.1)
    stop.set()
    dripper.join()
    still_open = 0
    for s in conns:
        s.setblocking(False)
        try:
            still_open += s.recv(1) != b""
        except BlockingIOError:
            still_open += 1
        except OSError:
            pass
        s.close()
    return health, metrics_times, still_open


def abandon(port, base, count):
    socks = []
    for i in range(count):
        data = json.dumps({"prompt": f"Once upon a time {i}", "max_tokens": 500, "n": 8,
                           "ignore_eos": True, "temperature": 0.8, "seed": i}).encode()
        s = connect(port)
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                  b"\r\nContent-Length: %d\r\n\r\n" % len(data) + data)
        socks.append(s)
    deadline = time.time() + 30
    while metric(base, "bitexact_running_sequences") < 32 and time.time() < deadline:
        time.sleep(0.05)
    running = metric(base, "bitexact_running_sequences")
    for s in socks:
        s.close()
    start = time.monotonic()
    while metric(base, "bitexact_running_sequences") > 0 or metric(base, "bitexact_queue_depth") > 0:
        time.sleep(0.01)
    return running, time.monotonic() - start


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", default="build/bitexact")
    p.add_argument("--model", default="../shared/models/stories260K.gguf")
    p.add_argument("--bodies", type=int, default=16)
    p.add_argument("--body-mib", type=int, default=50)
    p.add_argument("--concurrent", type=int, default=4)
    p.add_argument("--soak", type=float, default=60)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--slow", type=int, default=300)
    p.add_argument("--hold", type=float, default=20)
    p.add_argument("--abandon", type=int, default=100)
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    command = " ".join([sys.executable.split("/")[-1]] + sys.argv)
    server = subprocess.Popen([args.bin, "serve", "--model", args.model, "--port", "0", "--quiet",
                               "--header-timeout-seconds", str(args.hold + 30)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = {"command": command, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "machine": f"{platform.node()}, {os.cpu_count()} CPUs",
           "load_average_start": os.getloadavg()[0]}
    try:
        port = int(re.search(r":(\d+)$", server.stdout.readline().strip()).group(1))
        base = f"http://127.0.0.1:{port}"
        for _ in range(400):
            try:
                if urllib.request.urlopen(base + "/health", timeout=1).status == 200:
                    break
            except OSError:
                time.sleep(0.05)
        for prompt in ["Once upon a time", "The dog", "Lily and Ben"]:
            http("POST", base + "/v1/completions", {"prompt": prompt, "max_tokens": 64, "n": 4})
        out["rss_baseline_mib"] = rss_mib(server.pid)

        for chunked in (True, False):
            kind = "chunked" if chunked else "content_length"
            start = time.monotonic()
            with ThreadPoolExecutor(args.concurrent) as pool:
                results = list(pool.map(lambda _: oversized(port, args.body_mib, chunked),
                                        range(args.bodies)))
            out[f"oversized_{kind}_seconds"] = time.monotonic() - start
            out[f"oversized_{kind}_statuses"] = sorted({str(s) for s, _ in results})
            out[f"oversized_{kind}_max_sent_mib"] = max(n for _, n in results) / (1 << 20)
            out[f"rss_after_oversized_{kind}_mib"] = rss_mib(server.pid)

        out["soak"] = soak(port, args.soak, args.clients, base)
        time.sleep(1)
        out["rss_after_soak_mib"] = rss_mib(server.pid)
        out["running_after_soak"] = metric(base, "bitexact_running_sequences")
        out["kv_blocks_after_soak"] = metric(base, "bitexact_kv_blocks_in_use")

        health, metrics_times, still_open = slowloris(port, base, args.slow, args.hold)
        out["slowloris_connections"] = args.slow
        out["slowloris_still_open"] = still_open
        out["health_samples"] = len(health)
        out["health_p50_ms"] = statistics.median(health) * 1000
        out["health_max_ms"] = max(health) * 1000
        out["metrics_max_ms"] = max(metrics_times) * 1000

        running, freed = abandon(port, base, args.abandon)
        out["abandoned_running_at_hangup"] = running
        out["abandoned_freed_ms"] = freed * 1000
        out["rss_end_mib"] = rss_mib(server.pid)
        out["alive"] = urllib.request.urlopen(base + "/health", timeout=10).status == 200
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    out["load_average_end"] = os.getloadavg()[0]
    print(json.dumps(out, indent=1))
    print("\n| figure | value |\n|---|---|")
    for k, v in out.items():
        print(f"| {k} | {round(v, 1) if isinstance(v, float) else v} |")


if __name__ == "__main__":
    main()
