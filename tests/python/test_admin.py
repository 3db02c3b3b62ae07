"""The admin endpoints of `bitexact serve --enable-admin` (server/admin_routes.h) through
`requests` and the official openai client: load_weights swaps the weights in place (the same
bits as the Python package updated with the same tensors), paths cannot leave --weights-dir,
pause holds requests without dropping them, and without --enable-admin the routes do not exist."""

import os
import re
import subprocess
import threading
import time

import numpy as np
import openai
import pytest
import requests
import safetensors.numpy

import bitexact
from conftest import cli_binary, f32_bits
from weights_util import read_gguf_weights

KEY = "admin-test-key"


class Server:
    def __init__(self, *args):
        self.process = subprocess.Popen(
            [str(cli_binary()), "serve", "--port", "0", "--threads", "2", "--quiet", *args],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.process.stdout.readline()
        match = re.search(r"listening on (http://\S+)", line)
        assert match, f"no listening line: {line!r}"
        self.url = match.group(1)
        for _ in range(600):
            try:
                if requests.get(self.url + "/health", timeout=5).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        raise AssertionError("the server did not become ready")

    def post(self, path, body=None, key=KEY):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return requests.post(self.url + path, json=body, headers=headers, timeout=120)

    def close(self):
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def weights(stories_path):
    original = read_gguf_weights(stories_path)
    rng = np.random.default_rng(17)
    new = dict(original)
    for name in ("blk.0.attn_v.weight", "blk.2.ffn_up.weight"):
        new[name] = (new[name] + 0.05 * rng.standard_normal(new[name].shape)).astype(np.float32)
    return original, new


@pytest.fixture(scope="module")
def setup(stories_path, weights, tmp_path_factory):
    original, new = weights
    root = tmp_path_factory.mktemp("admin")
    weights_dir = root / "weights"
    (weights_dir / "step1").mkdir(parents=True)
    safetensors.numpy.save_file(new, str(weights_dir / "step1" / "model.safetensors"))
    safetensors.numpy.save_file(original, str(weights_dir / "original.safetensors"))
    outside = root / "outside.safetensors"
    safetensors.numpy.save_file(new, str(outside))
    os.symlink(outside, weights_dir / "escape.safetensors")
    server = Server("--model", str(stories_path), "--api-key", KEY, "--enable-admin",
                    "--weights-dir", str(weights_dir))
    plain = Server("--model", str(stories_path), "--api-key", KEY)
    yield server, plain
    server.close()
    plain.close()


def complete(client, prompt="Once upon a time"):
    r = client.completions.create(model="stories260K", prompt=prompt, max_tokens=16,
                                  temperature=0.8, seed=3, logprobs=0)
    return r.choices[0].model_extra["bitexact_hash"], r.system_fingerprint


def test_load_weights_swaps_in_place_with_the_package_s_bits(setup, weights, stories_path):
    server, _ = setup
    original, new = weights
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY)
    hash0, fingerprint0 = complete(client)
    r = requests.get(server.url + "/v1/weights_version",
                     headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    assert r.status_code == 200 and r.json()["weights_version"] == 0
    assert r.json()["system_fingerprint"] == fingerprint0

    r = server.post("/v1/load_weights", {"path": "step1"})
    assert r.status_code == 200, r.text
    assert r.json()["weights_version"] == 1
    hash1, fingerprint1 = complete(client)
    assert hash1 != hash0 and fingerprint1 != fingerprint0
    assert fingerprint1 == r.json()["system_fingerprint"]

    # The Python package with the same tensors gives the same bits.
    llm = bitexact.LLM(stories_path, threads=2)
    llm.update_weights(new)
    out = llm.generate("Once upon a time", bitexact.SamplingParams(
        temperature=0.8, seed=3, max_tokens=16))[0].outputs[0]
    assert out.bitexact_hash == hash1

    # Through the openai client's own request method too; then back to the original bits.
    back = client.post("/load_weights", body={"path": "original.safetensors"}, cast_to=object)
    assert back["weights_version"] == 2
    assert complete(client)[0] == hash0


@pytest.mark.parametrize("path", ["../outside.safetensors", "step1/../../outside.safetensors",
                                  "/etc/passwd", "escape.safetensors"])
def test_paths_outside_the_weights_dir_are_refused(setup, path):
    server, _ = setup
    before = server.post("/v1/weights_version", key=KEY)  # POST: not a route
    assert before.status_code == 404
    version = requests.get(server.url + "/v1/weights_version",
                           headers={"Authorization": f"Bearer {KEY}"}, timeout=30).json()
    r = server.post("/v1/load_weights", {"path": path})
    assert r.status_code == 403, r.text
    error = r.json()["error"]
    assert error["type"] == "permission_error" and error["param"] == "path"
    after = requests.get(server.url + "/v1/weights_version",
                         headers={"Authorization": f"Bearer {KEY}"}, timeout=30).json()
    assert after == version


def test_missing_file_bad_body_and_key(setup):
    server, _ = setup
    assert server.post("/v1/load_weights", {"path": "nope.safetensors"}).status_code == 404
    assert server.post("/v1/load_weights", {}).status_code == 400
    r = server.post("/v1/load_weights", {"path": "step1", "in_flight": "later"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "in_flight"
    assert server.post("/v1/pause", key=None).status_code == 401
    assert server.post("/v1/pause", key="wrong").status_code == 401


def test_pause_holds_requests_and_resume_runs_them(setup):
    server, _ = setup
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY)
    expected = complete(client, "The dog")
    assert server.post("/v1/pause").json() == {"paused": True}
    results = []
    worker = threading.Thread(target=lambda: results.append(complete(client, "The dog")))
    worker.start()
    time.sleep(0.5)
    assert worker.is_alive() and not results  # waiting, not dropped
    assert server.post("/v1/resume").json() == {"paused": False}
    worker.join(timeout=60)
    assert results == [expected]
    assert server.post("/v1/reset_prefix_cache").json() == {"reset": True}
    assert complete(client, "The dog") == expected


def test_without_enable_admin_the_routes_do_not_exist(setup):
    _, plain = setup
    for path in ("/v1/load_weights", "/v1/pause", "/v1/resume", "/v1/reset_prefix_cache"):
        r = plain.post(path, {"path": "step1"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "route_not_found"
    r = requests.get(plain.url + "/v1/weights_version",
                     headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    assert r.status_code == 404
