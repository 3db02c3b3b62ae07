"""A fleet of replicas behind nginx (issue 21), on loopback.

Usage: fleet_test.py BITEXACT_BINARY FLEET_MODEL OTHER_MODEL
  3 replicas serve FLEET_MODEL behind nginx (deploy/nginx.conf, upstreams rendered by
  deploy/fleet_check.py); a fourth replica serves OTHER_MODEL and must be kept out by the gate.

300 client threads (the official openai client, half streaming) keep sending requests to the
fleet while one replica is killed (SIGKILL) and restarted, until 100 more have finished after the
restart. Every request must end with exactly the answer one replica alone gave (text, token ids, bitexact_hash). nginx retries a request on
another replica only until the first response byte reached the client; a stream cut after that
is resent by the client (what a client of any load balancer must do), and the part received
before the cut must be a prefix of the answer. `bitexact verify --url NGINX` then replays
hashes recorded on one replica.
"""
import concurrent.futures
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time

import openai

from common import Checks, expect, http, metric
from fleet import Nginx, Replica, fleet_check, health

BINARY, FLEET_MODEL, OTHER_MODEL = sys.argv[1], sys.argv[2], sys.argv[3]
REPLICA_ARGS = ["--served-model-name", "fleet", "--threads", "1", "--max-connections", "1100",
                "--max-queue", "2000"]
N_REQUESTS = 300      # concurrent clients, and the fewest requests sent
AFTER_RESTART = 100   # requests that must finish after the victim is back
MAX_REQUESTS = 20000  # a bound, should the restart never come
N_DISTINCT = 30


def distinct_requests():
    """30 different completions: greedy and seeded sampling, different prompts and lengths."""
    prompts = ["Once upon a time", "The little dog", "Lily and Tom went to the park",
               "One day, a big bird", "The sun was hot and"]
    out = []
    for i in range(N_DISTINCT):
        r = {"prompt": prompts[i % len(prompts)], "max_tokens": 40 + 4 * (i % 7)}
        if i % 3:
            r.update(temperature=0.9, seed=1000 + i)
        else:
            r.update(temperature=0)
        out.append(r)
    return out


def client(url):
    # max_retries=0: the retries under test are nginx's, not the client library's.
    return openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=60)


def answer_of(c, request, stream):
    """(text, token_ids, hash) of one completion; a cut stream raises StreamCut with the part."""
    body = dict(request, model="fleet", extra_body={"return_token_ids": True})
    if not stream:
        r = c.completions.create(**body)
        ch = r.choices[0].model_dump()
        return ch["text"], ch["token_ids"], ch["bitexact_hash"]
    text, last = "", None
    try:
        for chunk in c.completions.create(stream=True, **body):
            for ch in chunk.choices:
                d = ch.model_dump()
                text += d["text"] or ""
                last = d
    except Exception as e:  # noqa: BLE001 - httpx/openai errors of a cut connection
        raise StreamCut(text, e) from None
    if last is None or last.get("finish_reason") is None:
        raise StreamCut(text, "stream ended without a finish_reason")
    return text, last["token_ids"], last["bitexact_hash"]


class StreamCut(Exception):
    def __init__(self, partial, why):
        super().__init__(f"stream cut after {len(partial)} chars: {why}")
        self.partial = partial


def main():
    log_dir = tempfile.mkdtemp(prefix="bitexact_fleet_")
    replicas = [Replica(BINARY, FLEET_MODEL, log_dir, REPLICA_ARGS) for _ in range(3)]
    # Same served name, other weights: what a mixed-up deploy looks like.
    other = Replica(BINARY, OTHER_MODEL, log_dir,
                    ["--served-model-name", "fleet", "--threads", "1"])
    nginx = None
    checks = Checks()
    try:
        started = time.monotonic()
        for r in replicas + [other]:
            r.start()
        print(f"fleet: 4 replicas ready in {time.monotonic() - started:.1f} s", flush=True)
        fleet_fp = replicas[0].fingerprint()
        requests = distinct_requests()
        # The answer of one server alone: replica 0, one request at a time, no other traffic.
        alone = [answer_of(client(replicas[0].url), r, stream=False) for r in requests]
        expect(len({a[2] for a in alone}) == N_DISTINCT and all(a[1] for a in alone),
               "the distinct requests do not have distinct non-empty answers")

        def health_reports_the_fingerprint():
            for r in replicas:
                status, body = health(r.url)
                expect(status == 200 and body == {"status": "ok", "system_fingerprint": fleet_fp},
                       (r.url, status, body))
            expect(fleet_fp.startswith("bx-") and other.fingerprint() != fleet_fp,
                   (fleet_fp, other.fingerprint()))

        def the_gate_keeps_a_replica_of_other_weights_out():
            urls = [r.url for r in replicas] + [other.url]
            status, out, err = fleet_check(fleet_fp, urls)
            expect(status == 0, err)
            expect(out.count("server ") == 3 and f":{other.port} " not in out, out)
            expect(f"reject {other.url}: system_fingerprint {other.fingerprint()}" in err, err)
            # Negative control: the other replica's answers differ from the fleet's, so letting
            # it in would change answers; and the gate admits it when its fingerprint is expected.
            expect(answer_of(client(other.url), requests[0], False) != alone[0], "same answer")
            status, out, _ = fleet_check(other.fingerprint(), urls)
            expect(status == 0 and out.count("server ") == 1 and f":{other.port} " in out, out)
            # No replica has the fingerprint: exit 1, nothing rendered.
            status, out, err = fleet_check("bx-0000000000000000", urls)
            expect(status == 1 and out == "" and "no replica" in err, (status, out, err))

        checks.run(health_reports_the_fingerprint)
        checks.run(the_gate_keeps_a_replica_of_other_weights_out)

        nginx = Nginx(fleet_fp, [r.url for r in replicas] + [other.url])
        expect(nginx.upstreams().count("server ") == 3, nginx.upstreams())
        nginx.start()

        def answers_through_nginx_equal_one_server_alone_while_a_replica_dies():
            # Open loop: N_REQUESTS client threads keep sending until the victim is back and
            # AFTER_RESTART more requests have finished, so the kill and the restart both fall
            # inside the load however fast this machine serves or restarts.
            rng = random.Random(21)
            lock = threading.Lock()
            failures, cuts = [], []
            counts = {"sent": 0, "done": 0, "done_after_restart": 0}
            restarted = threading.Event()
            c = client(nginx.url)

            def next_job():
                with lock:
                    more = counts["sent"] < N_REQUESTS or not (
                        restarted.is_set() and counts["done_after_restart"] >= AFTER_RESTART)
                    if not more or counts["sent"] >= MAX_REQUESTS:
                        return None
                    counts["sent"] += 1
                    return rng.randrange(N_DISTINCT), rng.random() < 0.5

            def one(job):
                k, stream = job
                try:
                    try:
                        got = answer_of(c, requests[k], stream)
                    except StreamCut as cut:
                        # Resent whole: the same bits come back, and what arrived is a prefix.
                        got = answer_of(c, requests[k], stream)
                        with lock:
                            cuts.append(k)
                        if not got[0].startswith(cut.partial):
                            failures.append((k, "partial stream is not a prefix", cut.partial))
                    if got != alone[k]:
                        failures.append((k, stream, got, alone[k]))
                except Exception as e:  # noqa: BLE001 - any failed request fails the check
                    failures.append((k, stream, repr(e)))
                with lock:
                    counts["done"] += 1
                    if restarted.is_set():
                        counts["done_after_restart"] += 1

            victim = replicas[1]
            go = threading.Event()

            def worker():
                go.wait()
                while (job := next_job()) is not None:
                    one(job)

            started = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(N_REQUESTS) as pool:
                futures = [pool.submit(worker) for _ in range(N_REQUESTS)]
                go.set()
                # Kill the victim while it holds sequences (running or queued).
                in_flight, deadline = 0.0, time.monotonic() + 30
                while in_flight < 4 and time.monotonic() < deadline:
                    in_flight = (metric(victim.url, "bitexact_running_sequences") +
                                 metric(victim.url, "bitexact_queue_depth"))
                killed_at = counts["done"]
                victim.kill()
                time.sleep(0.3)
                victim.start()
                restarted_at = counts["done"]
                restarted.set()
                concurrent.futures.wait(futures, timeout=240)
            upstream_errors = sum(1 for line in nginx.error_log().splitlines()
                                  if "upstream" in line and "[error]" in line)
            print(f"fleet: {counts['done']} requests in {time.monotonic() - started:.1f} s; replica "
                  f"killed holding {in_flight:.0f} sequences after {killed_at} requests finished, "
                  f"back after {restarted_at}, {counts['done_after_restart']} finished after that; "
                  f"nginx logged {upstream_errors} upstream errors (each retried on another "
                  f"replica); {len(cuts)} streams cut and resent by the client; "
                  f"{len(failures)} failed", flush=True)
            expect(counts["done"] == counts["sent"] >= N_REQUESTS,
                   f"{counts['done']} of {counts['sent']} requests finished")
            expect(in_flight >= 4, "the replica was not killed while it held sequences")
            expect(counts["done_after_restart"] >= AFTER_RESTART,
                   f"only {counts['done_after_restart']} requests ran after the restart")
            expect(upstream_errors > 0, "nginx saw no failed upstream: nothing was retried")
            expect(not failures, failures[:5])

        def the_restarted_replica_serves_again():
            # nginx skips a replica for fail_timeout (5 s) after max_fails; then live traffic
            # finds it back. Its counters started at its restart.
            c = client(nginx.url)
            deadline = time.monotonic() + 15
            k = 0
            while served_completions(replicas[1].url) == 0 and time.monotonic() < deadline:
                expect(answer_of(c, requests[k % N_DISTINCT], k % 2 == 0) == alone[k % N_DISTINCT],
                       k)
                k += 1
                time.sleep(0.02)
            expect(served_completions(replicas[1].url) > 0, "the restarted replica got no traffic")

        def verify_against_the_fleet_reports_no_difference():
            with tempfile.TemporaryDirectory() as d:
                reqs, rec = os.path.join(d, "requests.jsonl"), os.path.join(d, "recorded.jsonl")
                with open(reqs, "w") as f:
                    for i, r in enumerate(requests[:12]):
                        f.write(json_line({"path": "/v1/completions",
                                           "request": dict(r, stream=i % 2 == 1)}))
                run = lambda url, *a: subprocess.run(  # noqa: E731
                    [BINARY, "verify", "--url", url, *a], capture_output=True, text=True,
                    timeout=120)
                r = run(replicas[2].url, "--requests", reqs, "--record", rec)
                expect(r.returncode == 0, r.stdout + r.stderr)
                r = run(nginx.url, "--requests", rec)
                expect(r.returncode == 0 and "12 requests, 12 choices, 0 differ" in r.stdout,
                       r.stdout + r.stderr)
                # Negative control: the same recorded hashes against the other weights differ.
                r = run(other.url, "--requests", rec)
                expect(r.returncode == 1 and "0 differ" not in r.stdout, r.stdout + r.stderr)

        checks.run(answers_through_nginx_equal_one_server_alone_while_a_replica_dies)
        checks.run(the_restarted_replica_serves_again)
        checks.run(verify_against_the_fleet_reports_no_difference)
        if checks.failed:
            print(nginx.error_log()[-3000:], flush=True)
    finally:
        if nginx:
            nginx.stop()
        for r in replicas + [other]:
            r.stop()
    checks.finish()


def json_line(obj):
    return json.dumps(obj) + "\n"


def served_completions(url):
    """Completion requests a replica answered since it started (its /metrics)."""
    status, text = http("GET", url + "/metrics")
    assert status == 200, status
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith('bitexact_requests_total{route="completions",code="200"}'))


if __name__ == "__main__":
    main()
