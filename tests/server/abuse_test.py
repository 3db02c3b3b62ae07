"""The server under a hostile client (issue 20): raw sockets on loopback, each check bounded.

Usage: abuse_test.py MAIN_URL SHORT_URL
  MAIN_URL:  bitexact serve (default limits: 1 MiB bodies, 10 s header and body timeouts)
  SHORT_URL: bitexact serve --max-body-bytes 65536 --header-timeout-seconds 1
             --body-timeout-seconds 1 --max-connections 40
Both serve stories260K.
"""
import json
import re
import socket
import statistics
import sys
import threading
import time
import urllib.parse

from common import Checks, expect, http, metric

MAIN, SHORT = sys.argv[1], sys.argv[2]
LIMIT = 1 << 20        # MAIN's body limit
SHORT_LIMIT = 65536
DEEP = 52_000  # the depth that overflowed the stack before the limit


def address(url):
    u = urllib.parse.urlparse(url)
    return u.hostname, u.port


def connect(url, timeout=10):
    s = socket.create_connection(address(url), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_response(s, timeout=10):
    """(status, headers dict, body bytes) of one response, or None if the connection closed
    (or reset) first."""
    s.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
        return status, headers, body
    except (ConnectionResetError, BrokenPipeError):
        return None


def closed_by_server(s, timeout=5):
    """True if the server closes the connection (EOF or reset) within timeout."""
    s.settimeout(timeout)
    try:
        while True:
            if not s.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def raw(url, head, body=b"", timeout=10):
    """Sends head (request line and headers, without the final blank line) and body; returns
    (status, error object or None, seconds until the response, socket)."""
    s = connect(url)
    start = time.monotonic()
    s.sendall(head.encode() + b"\r\n\r\n" + body)
    r = read_response(s, timeout)
    elapsed = time.monotonic() - start
    if r is None:
        return None, None, elapsed, s
    status, _, payload = r
    try:
        error = json.loads(payload).get("error")
    except ValueError:
        error = None
    return status, error, elapsed, s


def post_head(url, path, extra):
    host, port = address(url)
    return f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json" + extra


def health_ok(url=MAIN):
    return http("GET", url + "/health", timeout=5)[0] == 200


def nested(depth):
    return "[" * depth + "]" * depth


# ---- JSON nesting ----

def test_deep_nesting_in_every_field_is_a_400_and_the_server_lives():
    deep = nested(DEEP)
    cases = [
        ("/v1/completions", '{"model": %s, "prompt": "x"}' % deep),
        ("/v1/completions", '{"prompt": %s}' % deep),
        ("/v1/completions", '{"prompt": "x", "temperature": %s}' % deep),
        ("/v1/completions", '{"prompt": "x", "stop": %s}' % deep),
        ("/v1/chat/completions",
         '{"messages": [{"role": "user", "content": [{"type": "text", "text": %s}]}]}' % deep),
        ("/tokenize", '{"prompt": %s}' % deep),
        ("/detokenize", '{"tokens": %s}' % deep),
        ("/v1/score", '{"prompt": [1], "continuation": %s}' % deep),
        ("/v1/completions", deep),
    ]
    for path, body in cases:
        status, body_json = http("POST", MAIN + path, raw=body.encode())
        expect(status == 400, (path, status, body_json))
        e = body_json["error"]
        expect(e["code"] == "json_too_deep" and e["param"] == "body", (path, e))
        # DEEP levels in the field, plus the body's own object (none for a bare array).
        expect(re.search(r"\b520[0-9][0-9] levels deep; expected at most 64$", e["message"]),
               e["message"])
        expect(health_ok(), f"the server died after {path}")


def test_depth_limit_boundary():
    # 64 levels (the body's object is level 1) parse; the value then has the wrong type.
    ok = '{"prompt": "x", "stop": %s}' % nested(63)
    status, body = http("POST", MAIN + "/v1/completions", raw=ok.encode())
    expect(status == 400 and body["error"]["code"] == "invalid_value" and
           body["error"]["param"] == "stop", body)
    too_deep = '{"prompt": "x", "stop": %s}' % nested(64)
    status, body = http("POST", MAIN + "/v1/completions", raw=too_deep.encode())
    expect(status == 400 and body["error"]["code"] == "json_too_deep", body)
    expect("65 levels" in body["error"]["message"], body)
    # Brackets inside strings are text, not nesting.
    text = '{"prompt": "%s", "max_tokens": 1}' % ("[" * 1000)
    status, body = http("POST", MAIN + "/tokenize", raw=text.encode())
    expect(status == 200, body)


def test_deep_nesting_beyond_the_body_limit_is_413_not_a_crash():
    # 52,000 levels of a 104 KB body on a server whose limit is 64 KiB: refused unread.
    body = ('{"prompt": %s}' % nested(DEEP)).encode()
    status, e, _, s = raw(SHORT, post_head(SHORT, "/v1/completions",
                                           f"\r\nContent-Length: {len(body)}"), body)
    s.close()
    expect(status == 413 and e["code"] == "body_too_large", (status, e))
    expect(health_ok(SHORT))


# ---- bodies and framing ----

def chunked(data, size=4096):
    out = b""
    for i in range(0, len(data), size):
        piece = data[i:i + size]
        out += b"%x\r\n" % len(piece) + piece + b"\r\n"
    return out + b"0\r\n\r\n"


def test_chunked_body_within_the_limit_is_served():
    body = json.dumps({"prompt": "Once upon a time", "max_tokens": 4, "temperature": 0}).encode()
    status, e, _, s = raw(MAIN, post_head(MAIN, "/v1/completions", "\r\nTransfer-Encoding: chunked"),
                          chunked(body, 7))
    s.close()
    expect(status == 200, (status, e))


def test_chunked_body_over_the_limit_is_413_at_once():
    # LIMIT + 1 bytes, then nothing more (no last chunk): the answer must come now, not after
    # the body timeout, and the server must not wait for the rest.
    s = connect(MAIN)
    s.sendall((post_head(MAIN, "/v1/completions", "\r\nTransfer-Encoding: chunked") +
               "\r\n\r\n").encode())
    piece = b"x" * (LIMIT + 1)
    start = time.monotonic()
    s.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
    r = read_response(s, timeout=5)
    elapsed = time.monotonic() - start
    expect(r is not None and r[0] == 413, r)
    expect(json.loads(r[2])["error"]["code"] == "body_too_large", r)
    expect(elapsed < 1.0, f"413 took {elapsed:.2f} s")
    expect(closed_by_server(s), "the connection stays open after a refused body")
    s.close()


def test_huge_chunked_body_is_cut_off_and_memory_stays_flat():
    # A client streaming 64 MiB of chunks gets 413 and is disconnected long before the end.
    s = connect(MAIN)
    s.sendall((post_head(MAIN, "/v1/completions", "\r\nTransfer-Encoding: chunked") +
               "\r\n\r\n").encode())
    piece = b"%x\r\n" % 65536 + b"y" * 65536 + b"\r\n"
    sent = 0
    try:
        while sent < 64 << 20:
            s.sendall(piece)
            sent += len(piece)
    except (ConnectionResetError, BrokenPipeError, socket.timeout):
        pass
    s.close()
    expect(sent < 32 << 20, f"the server read {sent} bytes of a refused body")
    expect(health_ok())


def test_content_length_over_the_limit_is_413_without_the_body():
    status, e, elapsed, s = raw(MAIN, post_head(MAIN, "/v1/completions",
                                                f"\r\nContent-Length: {50 << 20}"))
    expect(status == 413 and e["code"] == "body_too_large" and e["param"] == "Content-Length",
           (status, e))
    expect(elapsed < 1.0, f"413 took {elapsed:.2f} s")
    expect(closed_by_server(s))
    s.close()


def test_expect_100_continue_with_a_body_over_the_limit_gets_413_instead_of_100():
    status, e, elapsed, s = raw(MAIN, post_head(MAIN, "/v1/completions",
                                                f"\r\nContent-Length: {LIMIT + 1}"
                                                "\r\nExpect: 100-continue"))
    expect(status == 413 and e["code"] == "body_too_large", (status, e))
    expect(elapsed < 1.0 and closed_by_server(s), elapsed)
    s.close()
    body = json.dumps({"prompt": "Once upon a time", "max_tokens": 2, "temperature": 0}).encode()
    s = connect(MAIN)
    s.sendall((post_head(MAIN, "/v1/completions", f"\r\nContent-Length: {len(body)}"
                         "\r\nExpect: 100-continue") + "\r\n\r\n").encode())
    r = read_response(s)
    expect(r is not None and r[0] == 100, r)
    s.sendall(body)
    r = read_response(s)
    expect(r is not None and r[0] == 200, r)
    s.close()


def test_refusals_before_routing_say_their_length():
    # The Expect check and the framing check answer before any route runs; their error bodies
    # must still be framed by Content-Length, not only by the close (the Expect 413's was not: a
    # client that reads the head and then Content-Length bytes got an empty body whenever the
    # body came in a second segment).
    for extra in (f"\r\nContent-Length: {LIMIT + 1}\r\nExpect: 100-continue",
                  "\r\nContent-Length: 5\r\nTransfer-Encoding: chunked"):
        s = connect(MAIN)
        s.sendall(post_head(MAIN, "/v1/completions", extra).encode() + b"\r\n\r\n")
        r = read_response(s)
        s.close()
        expect(r is not None, f"no response to {extra!r}")
        status, headers, body = r
        expect("content-length" in headers and int(headers["content-length"]) == len(body) > 0,
               (extra, status, headers))
        expect(json.loads(body)["error"]["code"] in ("body_too_large", "invalid_transfer_encoding"),
               (extra, body))


def test_invalid_or_conflicting_framing_is_400_at_once():
    body = b'{"prompt": "x", "max_tokens": 1}'
    n = len(body)
    cases = [
        (f"\r\nContent-Length: {n}\r\nContent-Length: {n + 5}", "invalid_content_length"),
        (f"\r\nContent-Length: {n}\r\nContent-Length: {n}", "invalid_content_length"),
        ("\r\nContent-Length: -5", "invalid_content_length"),
        ("\r\nContent-Length: abc", "invalid_content_length"),
        ("\r\nContent-Length: 0x10", "invalid_content_length"),
        (f"\r\nContent-Length: {n}\r\nTransfer-Encoding: chunked", "invalid_transfer_encoding"),
        ("\r\nTransfer-Encoding: gzip", "invalid_transfer_encoding"),
    ]
    for extra, code in cases:
        status, e, elapsed, s = raw(MAIN, post_head(MAIN, "/v1/completions", extra), body)
        expect(status == 400 and e["code"] == code and e["param"], (extra, status, e))
        expect(elapsed < 1.0, (extra, elapsed))
        expect(closed_by_server(s), f"connection left open after {extra!r}")
        s.close()
    # POST with no length at all.
    status, e, _, s = raw(MAIN, post_head(MAIN, "/v1/completions", ""))
    expect(status == 411 and e["code"] == "length_required", (status, e))
    s.close()
    # A body on GET.
    host, port = address(MAIN)
    status, e, _, s = raw(MAIN, f"GET /health HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: 5",
                          b"hello")
    expect(status == 400 and e["code"] == "unexpected_body", (status, e))
    s.close()


def test_missing_host_on_http11_is_400():
    status, e, _, s = raw(MAIN, "GET /health HTTP/1.1")
    expect(status == 400 and e["code"] == "invalid_host" and e["param"] == "Host", (status, e))
    s.close()
    status, e, _, s = raw(MAIN, "GET /health HTTP/1.0")  # HTTP/1.0 has no Host requirement
    expect(status == 200, status)
    s.close()


def test_content_length_without_a_body_times_out_quickly():
    status, e, elapsed, s = raw(SHORT, post_head(SHORT, "/v1/completions", "\r\nContent-Length: 100"))
    expect(status == 408 and e["code"] == "body_timeout", (status, e))
    expect(0.8 < elapsed < 3.0, f"took {elapsed:.2f} s with a 1 s body timeout")
    expect(closed_by_server(s))
    s.close()


def test_headers_that_never_end_time_out():
    s = connect(SHORT)
    start = time.monotonic()
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    try:
        for _ in range(40):  # one header line every 0.1 s, never the blank line
            s.sendall(b"X-Drip: 1\r\n")
            time.sleep(0.1)
    except (ConnectionResetError, BrokenPipeError):
        pass
    r = read_response(s, timeout=5)
    elapsed = time.monotonic() - start
    expect(r is None or r[0] == 408, r)
    expect(elapsed < 6.0, elapsed)
    expect(closed_by_server(s, timeout=3), "a dripping client keeps its connection")
    s.close()


def test_every_400_names_param_and_code():
    checks = [
        ("/v1/completions", {"prompt": "word " * 3000, "max_tokens": 4}, "prompt",
         "context_length_exceeded"),
        ("/v1/completions", {"prompt": "x", "temperature": "hot"}, "temperature", "invalid_value"),
        ("/v1/score", {"prompt": [1] * 1500, "continuation": [2] * 600}, "continuation",
         "context_length_exceeded"),
    ]
    for path, body, param, code in checks:
        status, b = http("POST", MAIN + path, body)
        expect(status == 400 and b["error"]["param"] == param and b["error"]["code"] == code,
               (path, b))
    status, b = http("POST", MAIN + "/v1/completions", raw=b"{nope")
    expect(status == 400 and b["error"]["param"] and b["error"]["code"] == "invalid_json", b)


# ---- many slow or idle connections ----

def test_slowloris_300_connections_do_not_block_health():
    host, port = address(MAIN)
    slow = []
    for _ in range(300):
        s = connect(MAIN)
        s.sendall(f"GET /health HTTP/1.1\r\nHost: {host}:{port}\r\n".encode())
        slow.append(s)
    stop = threading.Event()

    def drip():
        while not stop.is_set():
            for s in slow:
                try:
                    s.sendall(b"X-a: b\r\n")
                except OSError:
                    pass
            time.sleep(0.5)

    dripper = threading.Thread(target=drip)
    dripper.start()
    latencies = []
    try:
        for _ in range(20):
            start = time.monotonic()
            expect(health_ok(), "health failed under slowloris")
            latencies.append(time.monotonic() - start)
            time.sleep(0.1)
        start = time.monotonic()
        expect(metric(MAIN, "bitexact_running_sequences") >= 0)
        metrics_time = time.monotonic() - start
        status, body = http("POST", MAIN + "/v1/completions",
                            {"prompt": "Once upon a time", "max_tokens": 8, "temperature": 0},
                            timeout=10)
        expect(status == 200, body)
        # The slow connections are still open (not simply dropped to make room).
        still_open = 0
        for s in slow:
            s.setblocking(False)
            try:
                still_open += s.recv(1) != b""
            except BlockingIOError:
                still_open += 1
            except OSError:
                pass
            s.setblocking(True)
        expect(still_open >= 290, f"only {still_open} of 300 slow connections were open")
    finally:
        stop.set()
        dripper.join()
        for s in slow:
            s.close()
    print(f"  /health under 300 slowloris connections: p50 {statistics.median(latencies) * 1000:.1f} ms, "
          f"max {max(latencies) * 1000:.1f} ms; /metrics {metrics_time * 1000:.1f} ms", flush=True)
    expect(max(latencies) < 1.0, latencies)
    expect(metrics_time < 1.0, metrics_time)


def test_idle_connections_over_the_cap_are_shed_oldest_first():
    # SHORT holds 40 connections: 50 idle ones shed the 10 oldest, and new requests still work.
    idle = []
    for _ in range(50):
        idle.append(connect(SHORT))
        time.sleep(0.01)
    time.sleep(0.3)
    closed = [closed_by_server(s, timeout=0.2) for s in idle]
    expect(sum(closed[:10]) == 10 and sum(closed[10:]) <= 1, closed)
    expect(health_ok(SHORT))
    for s in idle:
        s.close()


# ---- abandoned requests ----

def test_abandoned_non_streaming_requests_are_cancelled():
    control = {"prompt": "Lily and Ben went to the park", "max_tokens": 300, "temperature": 0,
               "ignore_eos": True}
    solo = http("POST", MAIN + "/v1/completions", control)[1]["choices"][0]
    result = {}
    sockets = []
    # 100 requests of n = 8 x 500 tokens (400,000 tokens: tens of seconds of work if not
    # cancelled), sent whole, then abandoned.
    for i in range(100):
        body = json.dumps({"prompt": f"Once upon a time {i}", "max_tokens": 500, "n": 8,
                           "ignore_eos": True, "temperature": 0.8, "seed": i}).encode()
        s = connect(MAIN)
        s.sendall((post_head(MAIN, "/v1/completions", f"\r\nContent-Length: {len(body)}") +
                   "\r\n\r\n").encode() + body)
        sockets.append(s)
    control_thread = threading.Thread(
        target=lambda: result.update(r=http("POST", MAIN + "/v1/completions", control, timeout=120)))
    control_thread.start()
    deadline = time.time() + 10
    while metric(MAIN, "bitexact_running_sequences") < 32:
        expect(time.time() < deadline, "the abandoned requests never ran")
        time.sleep(0.05)
    running_before = metric(MAIN, "bitexact_running_sequences")
    for s in sockets:
        s.close()
    start = time.monotonic()
    while metric(MAIN, "bitexact_running_sequences") > 1 or \
            metric(MAIN, "bitexact_queue_depth") > 0:
        expect(time.monotonic() - start < 2.0, "abandoned sequences still run or wait after 2 s")
        time.sleep(0.02)
    freed_after = time.monotonic() - start
    control_thread.join(timeout=120)
    status, body = result["r"]
    expect(status == 200, body)
    c = body["choices"][0]
    expect(c["text"] == solo["text"] and c["bitexact_hash"] == solo["bitexact_hash"],
           "the control request changed")
    deadline = time.time() + 5
    while metric(MAIN, "bitexact_running_sequences") != 0 or \
            metric(MAIN, "bitexact_kv_blocks_in_use") != 0:
        expect(time.time() < deadline, "sequences or KV blocks left after everything ended")
        time.sleep(0.05)
    print(f"  {running_before:.0f} sequences running at the hang-up; <= 1 running and none "
          f"waiting {freed_after * 1000:.0f} ms later", flush=True)


def test_an_abandoned_request_is_cancelled_while_its_tokens_flow():
    # One sequence of 2,000 tokens on an idle server: an event every step (about a millisecond),
    # so the server must watch the socket while tokens flow, not only when the engine is quiet.
    # Left running, it would take seconds; cancelled, it stops within a poll and a step.
    body = json.dumps({"prompt": "The dog", "max_tokens": 2000, "ignore_eos": True,
                       "temperature": 1.0, "seed": 5}).encode()
    s = connect(MAIN)
    s.sendall((post_head(MAIN, "/v1/completions", f"\r\nContent-Length: {len(body)}") +
               "\r\n\r\n").encode() + body)
    deadline = time.time() + 10
    while metric(MAIN, "bitexact_running_sequences") < 1:
        expect(time.time() < deadline, "the request never ran")
        time.sleep(0.005)
    s.close()
    start = time.monotonic()
    while metric(MAIN, "bitexact_running_sequences") > 0:
        expect(time.monotonic() - start < 0.5, "the abandoned request still runs after 0.5 s")
        time.sleep(0.01)
    print(f"  a 2,000-token request freed {(time.monotonic() - start) * 1000:.0f} ms after the "
          f"hang-up", flush=True)


# ---- echo logprobs ----

def test_echo_top1_is_the_greedy_token_at_every_prompt_position():
    text = "Once upon a time there was a little girl named Lily who liked to run"
    ids = http("POST", MAIN + "/tokenize", {"prompt": text})[1]["tokens"]
    status, r = http("POST", MAIN + "/v1/completions",
                     {"prompt": ids, "echo": True, "logprobs": 1, "max_tokens": 0})
    expect(status == 200, r)
    lp = r["choices"][0]["logprobs"]
    expect(len(lp["tokens"]) == len(ids) and lp["top_logprobs"][0] is None, lp)
    not_greedy = 0
    for i in range(1, len(ids)):
        status, g = http("POST", MAIN + "/v1/completions",
                         {"prompt": ids[:i], "max_tokens": 1, "temperature": 0, "logprobs": 1})
        glp = g["choices"][0]["logprobs"]
        greedy_token, greedy_logprob = glp["tokens"][0], glp["token_logprobs"][0]
        top = lp["top_logprobs"][i]
        best = max(top.items(), key=lambda kv: kv[1])
        expect(best == (greedy_token, greedy_logprob), (i, top, greedy_token, greedy_logprob))
        expect(top[lp["tokens"][i]] == lp["token_logprobs"][i], (i, top))
        if lp["tokens"][i] != greedy_token:
            not_greedy += 1
            expect(len(top) == 2 and lp["token_logprobs"][i] < greedy_logprob, (i, top))
    # The prompt is not the model's greedy continuation everywhere, so is_greedy can be false.
    expect(not_greedy > 0, "every prompt token was greedy: the check shows nothing")


def test_tokenizer_info_as_lm_eval_reads_it():
    status, info = http("GET", MAIN + "/tokenizer_info")
    expect(status == 200 and isinstance(info.get("eos_token"), str), info)
    ids = http("POST", MAIN + "/tokenize",
               {"prompt": info["eos_token"], "add_special_tokens": False})[1]["tokens"]
    expect(len(ids) == 1, (info, ids))
    status, d = http("POST", MAIN + "/detokenize", {"tokens": ids})
    expect(status == 200 and isinstance(d["prompt"], str), d)


if __name__ == "__main__":
    checks = Checks()
    for name, fn in list(globals().items()):
        if name.startswith("test_") and callable(fn):
            checks.run(fn)
    expect(health_ok(), "the server is down at the end")
    checks.finish()
