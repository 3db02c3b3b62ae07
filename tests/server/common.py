"""Helpers for the server tests: a tiny check runner and raw HTTP through urllib (for what the
openai package cannot send: malformed JSON, unknown routes, our extension endpoints)."""
import json
import sys
import traceback
import urllib.error
import urllib.request


class Checks:
    """Runs test functions, prints one line each and 'N passed, M failed' at the end."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def run(self, fn, *args):
        try:
            fn(*args)
            self.passed += 1
            print(f"PASS {fn.__name__}", flush=True)
        except Exception:  # noqa: BLE001 - report every failure and go on
            self.failed += 1
            print(f"FAIL {fn.__name__}\n{traceback.format_exc()}", flush=True)

    def finish(self):
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        sys.exit(1 if self.failed else 0)


def http(method, url, body=None, key=None, raw=None, timeout=60):
    """(status, parsed JSON or text) of one request; body is JSON-encoded, raw is sent as is."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def metric(base_url, name, key=None):
    """The value of one unlabelled metric on /metrics."""
    status, text = http("GET", base_url + "/metrics", key=key)
    assert status == 200, (status, text)
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


def expect(condition, message=""):
    if not condition:
        raise AssertionError(message)
