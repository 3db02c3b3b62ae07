"""A fleet on loopback for the fleet test and bench/fleet_soak.py: `bitexact serve` replicas on
fixed free ports (a killed replica restarts on its own port) and nginx with deploy/nginx.conf,
run as this process (its own prefix, pid and logs in a temporary directory), upstreams rendered
by deploy/fleet_check.py."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NGINX_CONF = os.path.join(ROOT, "deploy", "nginx.conf")
FLEET_CHECK = os.path.join(ROOT, "deploy", "fleet_check.py")


def nginx_binary():
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health(url, timeout=2):
    """(status, body) of GET /health, or (None, None) when unreachable."""
    try:
        with urllib.request.urlopen(url + "/health", timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, None
    except (OSError, ValueError):
        return None, None


class Replica:
    """One `bitexact serve` on a fixed port; start() again after kill() restarts it there."""

    def __init__(self, binary, model, log_dir, extra_args=()):
        self.binary, self.model, self.extra = binary, model, list(extra_args)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(log_dir, f"replica_{self.port}.log")
        self.process = None

    def start(self, timeout=60):
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [self.binary, "serve", "--model", self.model, "--port", str(self.port), "--quiet",
             *self.extra], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"replica {self.url} exited: {open(self.log_path).read()}")
            if health(self.url)[0] == 200:
                return
            time.sleep(0.05)
        raise RuntimeError(f"replica {self.url} not ready in {timeout} s")

    def fingerprint(self):
        status, body = health(self.url)
        assert status == 200 and body is not None, (self.url, status, body)
        return body["system_fingerprint"]

    def kill(self):
        """SIGKILL: a crash, not a shutdown; requests in flight on it are cut."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def rss_kib(self):
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return None

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def fleet_check(fingerprint, urls, output=None):
    """(exit status, stdout, stderr) of deploy/fleet_check.py."""
    args = [sys.executable, FLEET_CHECK, "--expect-fingerprint", fingerprint, *urls]
    if output:
        args[2:2] = ["--output", output]
    r = subprocess.run(args, capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout, r.stderr


class Nginx:
    """nginx -c deploy/nginx.conf (its listen address replaced by a free loopback port) in a
    temporary prefix holding bitexact_upstreams.conf."""

    def __init__(self, fingerprint, replica_urls):
        self.prefix = tempfile.mkdtemp(prefix="bitexact_nginx_")
        os.chmod(self.prefix, 0o755)  # workers run as 'nobody' when the test runs as root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        text = open(NGINX_CONF).read()
        assert text.count("listen 127.0.0.1:8080;") == 1, "deploy/nginx.conf's listen line moved"
        text = text.replace("listen 127.0.0.1:8080;", f"listen 127.0.0.1:{self.port};")
        self.conf = os.path.join(self.prefix, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(text)
        status, _, err = fleet_check(fingerprint, replica_urls,
                                     os.path.join(self.prefix, "bitexact_upstreams.conf"))
        assert status == 0, err
        self.gate_report = err
        self.process = None

    def upstreams(self):
        return open(os.path.join(self.prefix, "bitexact_upstreams.conf")).read()

    def start(self, timeout=20):
        nginx = nginx_binary()
        assert nginx, "nginx is not installed (scripts/setup.sh installs it)"
        self.process = subprocess.Popen(
            [nginx, "-p", self.prefix, "-c", self.conf, "-e",
             os.path.join(self.prefix, "error.log"),
             "-g", f"daemon off; pid {self.prefix}/nginx.pid;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.process.stderr.read().decode()}")
            if health(self.url)[0] == 200:
                return
            time.sleep(0.05)
        raise RuntimeError("nginx not ready")

    def error_log(self):
        try:
            return open(os.path.join(self.prefix, "error.log")).read()
        except OSError:
            return ""

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: workers finish, then exit
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.prefix, ignore_errors=True)
