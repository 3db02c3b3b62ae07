"""The package on the CUDA backend (skips without a CUDA build and a Hopper GPU): generation
equals the CLI's, and weight updates keep promise 8 there too, from host tensors and (with
torch) from CUDA tensors that never visit the host."""

import json
import subprocess

import numpy as np
import pytest

import bitexact
from conftest import cli_binary, f32_bits, same_bits
from weights_util import read_gguf_weights, write_gguf_like

PARAMS = bitexact.SamplingParams(temperature=0.8, seed=21, max_tokens=24, ignore_eos=True)
PROMPTS = ["Once upon a time", "The dog", "Lily and Tom went to the park"]


def cuda_llm(path):
    try:
        return bitexact.LLM(path, backend="cuda")
    except ValueError as e:  # no CUDA backend in this build, or no Hopper GPU
        pytest.skip(f"no CUDA engine: {e}")


def run(llm):
    return [o.outputs[0] for o in llm.generate(PROMPTS, PARAMS)]


def test_cuda_generate_equals_cli(stories_path, tmp_path):
    llm = cuda_llm(stories_path)
    prompts_file = tmp_path / "prompts.txt"
    prompts_file.write_text("\n".join(PROMPTS) + "\n")
    out = subprocess.run(
        [str(cli_binary()), "generate", "--backend", "cuda", "--model", str(stories_path),
         "--prompts-file", str(prompts_file), "--format", "json", "--quiet", "--max-tokens", "24",
         "--temperature", "0.8", "--seed", "21", "--ignore-eos"],
        check=True, capture_output=True, text=True).stdout
    expected = [json.loads(line) for line in out.splitlines()]
    for got, e in zip(run(llm), expected):
        assert got.token_ids == e["token_ids"]
        assert f32_bits(got.logprobs) == f32_bits([float(v) for v in e["logprobs"]])


def test_cuda_updates_equal_a_fresh_engine(stories_path, tmp_path):
    llm = cuda_llm(stories_path)
    original = read_gguf_weights(stories_path)
    before = run(llm)
    rng = np.random.default_rng(2)
    new = dict(original)
    for name in ("blk.0.attn_q.weight", "blk.1.ffn_down.weight", "output_norm.weight"):
        new[name] = (new[name] + 0.05 * rng.standard_normal(new[name].shape)).astype(np.float32)
    llm.update_weights(new)
    changed = run(llm)
    assert not any(same_bits(a, b) for a, b in zip(before, changed))
    path = tmp_path / "new.gguf"
    write_gguf_like(stories_path, path, new)
    del llm
    fresh = cuda_llm(path)
    assert all(same_bits(a, b) for a, b in zip(changed, run(fresh)))
    fresh.update_weights(original)
    assert all(same_bits(a, b) for a, b in zip(before, run(fresh)))

    torch = pytest.importorskip("torch")
    device = {k: torch.from_numpy(v).cuda() for k, v in new.items()}
    fresh.update_weights(device)
    assert all(same_bits(a, b) for a, b in zip(changed, run(fresh)))
    # CUDA holds matrices as bf16 anyway (rounded to nearest even, as torch rounds): the same
    # bits from bf16 matrices; norms stay f32 tensors.
    bf16 = {k: t.to(torch.bfloat16) if t.dim() == 2 else t for k, t in device.items()}
    fresh.update_weights(bf16)
    assert all(same_bits(a, b) for a, b in zip(changed, run(fresh)))
