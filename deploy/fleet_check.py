#!/usr/bin/env python3
"""The fingerprint gate of a bitexact fleet: admits to nginx's upstream only the replicas whose
GET /health answers 200 with the fleet's system_fingerprint.

Usage: fleet_check.py --expect-fingerprint FP [--output FILE] [--max-fails N]
                      [--fail-timeout T] URL...

Prints (or writes atomically to FILE) one nginx `server HOST:PORT max_fails=N fail_timeout=T;`
line per admitted replica, for `include bitexact_upstreams.conf;` in deploy/nginx.conf, and one
line per replica on stderr: 'admit URL' or 'reject URL: why'. Exit status 0 when at least one
replica is admitted, 1 when none is (FILE is then left as it was: an empty upstream would stop
nginx from loading), 2 on bad arguments. Python standard library only.
"""
import argparse
import json
import os
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request


def replica_address(url):
    """host:port of http://HOST:PORT, or raises ValueError naming what was expected."""
    u = urllib.parse.urlparse(url)
    if u.scheme != "http" or not u.hostname or u.port is None or u.path not in ("", "/"):
        raise ValueError(f"replica URL is '{url}', expected http://HOST:PORT")
    host = f"[{u.hostname}]" if ":" in u.hostname else u.hostname
    return f"{host}:{u.port}"


def health_fingerprint(url, timeout):
    """The system_fingerprint a replica reports on /health, or raises RuntimeError why not."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=timeout) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"/health answered {e.code} (not ready)") from None
    except (urllib.error.URLError, OSError) as e:
        raise RuntimeError(f"/health unreachable ({getattr(e, 'reason', e)})") from None
    try:
        body = json.loads(text)
    except ValueError:
        raise RuntimeError(f"/health answered {status} with non-JSON '{text[:80]}'") from None
    fingerprint = body.get("system_fingerprint") if isinstance(body, dict) else None
    if not isinstance(fingerprint, str):
        raise RuntimeError("/health reports no system_fingerprint (a bitexact older than the "
                           "fleet gate?)")
    return fingerprint


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--expect-fingerprint", required=True, metavar="FP",
                        help="the fleet's system_fingerprint, e.g. bx-0123456789abcdef")
    parser.add_argument("--output", metavar="FILE", help="write the upstream lines here")
    parser.add_argument("--max-fails", type=int, default=2)
    parser.add_argument("--fail-timeout", default="5s")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per /health query")
    parser.add_argument("urls", nargs="+", metavar="URL")
    args = parser.parse_args()
    try:
        addresses = [replica_address(u) for u in args.urls]
    except ValueError as e:
        parser.error(str(e))

    lines = []
    for url, address in zip(args.urls, addresses):
        try:
            fingerprint = health_fingerprint(url, args.timeout)
        except RuntimeError as e:
            print(f"reject {url}: {e}", file=sys.stderr)
            continue
        if fingerprint != args.expect_fingerprint:
            print(f"reject {url}: system_fingerprint {fingerprint}, expected "
                  f"{args.expect_fingerprint}", file=sys.stderr)
            continue
        print(f"admit {url}", file=sys.stderr)
        lines.append(f"server {address} max_fails={args.max_fails} "
                     f"fail_timeout={args.fail_timeout};\n")

    if not lines:
        print("fleet_check: no replica has the expected fingerprint; upstream left unchanged",
              file=sys.stderr)
        return 1
    text = "".join(lines)
    if args.output:
        directory = os.path.dirname(os.path.abspath(args.output))
        with tempfile.NamedTemporaryFile("w", dir=directory, delete=False) as tmp:
            tmp.write(text)
        os.replace(tmp.name, args.output)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
