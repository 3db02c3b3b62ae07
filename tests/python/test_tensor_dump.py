"""The tensor dump (BITEXACT_DUMP=<folder>, src/model/tensor_dump.h) of stories260K against a
float64 numpy recomputation from the GGUF weights (read by the `gguf` package), and
scripts/compare_dumps.py on two dumps.

Layer 0: q = (rmsnorm(E[tokens]) * attn_norm) Wq^T. The engine computes it in float32; each
element is a dot product over D terms of values themselves rounded a few times (embedding row,
rmsnorm), so |q_engine - q_exact| <= c * D * 2^-24 * (|h| |Wq|^T) elementwise, with c small; the
test uses c = 4. RoPE of q (pairs (2i, 2i+1) turned by pos * base^(-2i/Dh)) carries each pair's
input error and adds a few roundings (the cos/sin table, two products, one sum) of its magnitude.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, cli_binary

sys.path.insert(0, str(ROOT / "tests" / "ref"))
import numpy_llama  # noqa: E402  (the independent float64 forward pass)

PROMPT = "Once upon a time there was a little girl named Lily"


def dump_generate(model, folder, prompt=PROMPT, backend="cpu"):
    prompts = folder.parent / f"{folder.name}.txt"
    prompts.write_text(prompt + "\n")
    subprocess.run([str(cli_binary()), "generate", "--model", str(model), "--prompts-file",
                    str(prompts), "--max-tokens", "3", "--temperature", "0", "--quiet",
                    "--backend", backend],
                   check=True, capture_output=True, env={**os.environ, "BITEXACT_DUMP": str(folder)})
    return json.loads((folder / "index.json").read_text())


def tensor(folder, call, name, layer):
    for t in call["tensors"]:
        if t["name"] == name and t["layer"] == layer:
            return np.load(folder / t["file"]).astype(np.float64)
    raise KeyError(f"{name} of layer {layer} is not in the dump")


@pytest.fixture(scope="module")
def reference(stories_path):
    return numpy_llama.Model(str(stories_path))


@pytest.fixture(scope="module")
def dump(stories_path, tmp_path_factory):
    folder = tmp_path_factory.mktemp("dump") / "stories"
    index = dump_generate(stories_path, folder)
    prefill = index["calls"][0]
    assert prefill["positions"] == list(range(len(prefill["tokens"])))
    assert len(prefill["tokens"]) > 5
    return folder, index


def test_layer0_q_matches_float64_recomputation(reference, dump):
    folder, index = dump
    call = index["calls"][0]
    m = reference
    h = m.rmsnorm(m.embedding[np.asarray(call["tokens"])], m.layer(0, "attn_norm"))
    wq = m.layer(0, "attn_q")
    exact = h @ wq.T
    bound = 4 * m.dim * 2.0**-24 * (np.abs(h) @ np.abs(wq).T)
    got = tensor(folder, call, "q", 0)
    assert got.shape == exact.shape
    assert np.all(np.abs(got - exact) <= bound), float(np.max(np.abs(got - exact) / bound))
    # attn_norm too (the GEMM's input).
    assert np.all(np.abs(tensor(folder, call, "attn_norm", 0) - h) <= 4 * m.dim * 2.0**-24 * np.abs(h))

    # After RoPE: the float64 rotation of the exact q. A pair's error is at most the sum of its
    # two input errors (|cos| + |sin| <= sqrt 2) plus a few roundings of the pair's magnitudes.
    T, H, Dh = exact.shape[0], m.n_heads, m.head_dim
    exact_rope = m.rope(exact.reshape(T, H, Dh)).reshape(T, H * Dh)

    def pair_sum(a):  # a[2i] + a[2i+1], for both elements of each pair
        pairs = a.reshape(T, H, Dh // 2, 2)
        return np.broadcast_to(pairs.sum(axis=-1, keepdims=True), pairs.shape).reshape(T, H * Dh)

    rope_bound = pair_sum(bound) + 4 * 2.0**-24 * pair_sum(np.abs(exact))
    got_rope = tensor(folder, call, "q_rope", 0)
    assert np.all(np.abs(got_rope - exact_rope) <= rope_bound)
    # Negative control: the bound is tight enough to tell the rotated q from the unrotated one
    # (position 0 is not rotated; every later position is).
    assert not np.all(np.abs(got_rope[1:] - exact[1:]) <= bound[1:])


def test_dumped_logits_match_float64_forward(reference, dump):
    folder, index = dump
    call = index["calls"][0]
    exact = reference.forward(call["tokens"])[np.asarray(call["logit_rows"])]
    got = tensor(folder, call, "logits", -1)
    rel = np.max(np.abs(got - exact)) / np.max(np.abs(exact))
    assert rel < 1e-4, rel


def test_compare_dumps_reports_same_bits_and_differences(stories_path, dump, tmp_path):
    folder, _ = dump
    again = tmp_path / "again"
    dump_generate(stories_path, again)
    script = ROOT / "scripts" / "compare_dumps.py"
    out = subprocess.run([sys.executable, str(script), str(folder), str(again)], check=True,
                         capture_output=True, text=True).stdout
    rows = [line.split() for line in out.splitlines() if not line.startswith(("#", " call"))]
    assert rows and all(r[-1] == "same" for r in rows), out
    assert any(r[2] == "q" and r[1] == "0" for r in rows)

    # Another prompt: the same names, other values; the tool says so.
    other = tmp_path / "other"
    dump_generate(stories_path, other, prompt="The dog ran to the park and saw a big red ball")
    out = subprocess.run([sys.executable, str(script), str(folder), str(other), "--call", "0",
                          "--name", "embed"], check=True, capture_output=True, text=True).stdout
    rows = [line.split() for line in out.splitlines() if not line.startswith(("#", " call"))]
    assert len(rows) == 1, out
    assert rows[0][-1] != "same", out
