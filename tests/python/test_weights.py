"""LLM.update_weights / load_weights: promise 8 (after an update to W, the bits of a fresh
engine loaded with W), versions, atomic refusal, and no sample mixing two weight versions."""

import threading
import time

import numpy as np
import pytest
import safetensors.numpy

import bitexact
from conftest import f32_bits, same_bits
from weights_util import gguf_to_hf_rows, read_gguf_weights, write_gguf_like

PARAMS = bitexact.SamplingParams(temperature=0.8, seed=21, max_tokens=24, ignore_eos=True)
PROMPTS = ["Once upon a time", "The dog", "Lily and Tom went to the park"]


def run(llm, prompts=PROMPTS, params=PARAMS):
    return [o.outputs[0] for o in llm.generate(prompts, params)]


def all_same(a, b):
    return all(same_bits(x, y) for x, y in zip(a, b))


def perturbed(weights, seed=1):
    rng = np.random.default_rng(seed)
    out = dict(weights)
    for name in ("blk.0.attn_q.weight", "blk.1.ffn_down.weight", "output_norm.weight"):
        noise = rng.standard_normal(out[name].shape).astype(np.float32)
        out[name] = (out[name] + 0.05 * noise).astype(np.float32)
    return out


@pytest.fixture(scope="module")
def original(stories_path):
    return read_gguf_weights(stories_path)


@pytest.fixture(scope="module")
def llm(stories_path):
    return bitexact.LLM(stories_path, threads=2)


def test_identical_perturbed_and_back(llm, original, stories_path, tmp_path):
    before = run(llm)
    fingerprint0 = llm.fingerprint
    v0 = llm.weights_version

    assert llm.update_weights(original) == v0 + 1
    same = run(llm)
    assert all_same(before, same)
    assert all(s.weights_version == v0 + 1 for s in same)
    assert llm.fingerprint != fingerprint0
    assert llm.generate("The dog", PARAMS)[0].system_fingerprint == llm.fingerprint

    new = perturbed(original)
    llm.update_weights(new)
    changed = run(llm)
    assert not any(same_bits(a, b) for a, b in zip(before, changed))

    # Promise 8: a fresh engine loaded with the new weights gives the same bits.
    path = tmp_path / "perturbed.gguf"
    write_gguf_like(stories_path, path, new)
    fresh = bitexact.LLM(path, threads=2)
    assert all_same(changed, run(fresh))

    llm.update_weights(list(original.items()))
    assert all_same(before, run(llm))
    assert llm.weights_version == v0 + 3


def test_bad_name_shape_or_dtype_changes_nothing(llm, original):
    before = run(llm)
    version, fingerprint = llm.weights_version, llm.fingerprint
    good = original["blk.0.attn_q.weight"] * 2
    cases = [
        ([("blk.0.attn_q.weight", good), ("blk.0.attn_qq.weight", good)], "blk.0.attn_qq.weight"),
        ([("blk.0.attn_q.weight", good), ("blk.0.attn_k.weight", good)], "shape"),
        ([("blk.0.attn_q.weight", good.astype(np.float64))], "float32 or bfloat16"),
        ([("blk.0.attn_q.weight", good), ("blk.0.attn_q.weight", good)], "twice"),
        ([("blk.0.attn_q.weight", good),
          ("model.layers.0.self_attn.q_proj.weight", good)], "names too"),
        ([("blk.0.attn_q.weight", np.asfortranarray(good))], "contiguous"),
    ]
    for tensors, message in cases:
        with pytest.raises(ValueError, match=message):
            llm.update_weights(tensors)
    assert llm.weights_version == version and llm.fingerprint == fingerprint
    assert all_same(before, run(llm))


def test_hugging_face_names_on_a_gguf_model(llm, original):
    # Hugging Face q/k rows are in rotate-half order; the update permutes them back, so the
    # original checkpoint under HF names gives the original bits, and unpermuted rows do not.
    before = run(llm)
    n_heads, n_kv_heads = 8, 4  # stories260K
    hf = {
        "model.layers.0.self_attn.q_proj.weight":
            gguf_to_hf_rows(original["blk.0.attn_q.weight"], n_heads),
        "model.layers.0.self_attn.k_proj.weight":
            gguf_to_hf_rows(original["blk.0.attn_k.weight"], n_kv_heads),
    }
    llm.update_weights(hf)
    assert all_same(before, run(llm))
    wrong = {"model.layers.0.self_attn.q_proj.weight": original["blk.0.attn_q.weight"]}
    llm.update_weights(wrong)
    assert not all_same(before, run(llm))
    llm.update_weights(original)
    assert all_same(before, run(llm))


def test_load_weights_from_safetensors(llm, original, tmp_path):
    before = run(llm)
    new = perturbed(original, seed=3)
    llm.update_weights(new)
    expected = run(llm)
    llm.update_weights(original)
    path = tmp_path / "w.safetensors"
    safetensors.numpy.save_file(new, str(path))
    llm.load_weights(path)
    assert all_same(expected, run(llm))
    with pytest.raises(ValueError, match="No such file|cannot|not"):
        llm.load_weights(tmp_path / "missing.safetensors")
    llm.update_weights(original)
    assert all_same(before, run(llm))


@pytest.mark.parametrize("in_flight", ["finish", "abort"])
def test_generate_threads_during_updates_see_one_version_each(llm, original, in_flight):
    params = bitexact.SamplingParams(temperature=0.9, seed=8, max_tokens=40, ignore_eos=True)
    versions = [original, perturbed(original, seed=5)]
    reference = []
    for w in versions:
        llm.update_weights(w)
        reference.append({p: llm.generate(p, params)[0].outputs[0] for p in PROMPTS})
    assert not same_bits(reference[0][PROMPTS[0]], reference[1][PROMPTS[0]])
    weights_of = {}  # weights_version -> index into versions
    results = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(k):
        while not stop.is_set():
            out = llm.generate(PROMPTS[k % 3], params)[0].outputs[0]
            with lock:
                results.append((PROMPTS[k % 3], out))

    clients = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for c in clients:
        c.start()
    for i in range(6):
        time.sleep(0.2)
        version = llm.update_weights(versions[i % 2], in_flight=in_flight)
        weights_of[version] = i % 2
    stop.set()
    for c in clients:
        c.join()
    checked = aborted = 0
    for prompt, out in results:
        if out.weights_version not in weights_of:
            continue  # generated before the first update of this test
        ref = reference[weights_of[out.weights_version]][prompt]
        if out.finish_reason == "abort":
            assert in_flight == "abort"
            assert out.token_ids == ref.token_ids[: len(out.token_ids)]
            assert f32_bits(out.logprobs) == f32_bits(ref.logprobs[: len(out.logprobs)])
            aborted += 1
        else:
            assert same_bits(out, ref)
        checked += 1
    print(f"{in_flight}: {checked} samples checked, {aborted} aborted, versions {sorted(weights_of)}")
    assert checked > 0
    assert len({out.weights_version for _, out in results if out.weights_version in weights_of}) > 1
    llm.update_weights(original)
