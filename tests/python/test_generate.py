"""LLM.generate / stream / score / chat against the CLI and against themselves."""

import json
import subprocess
import threading

import pytest

import bitexact
from conftest import cli_binary, f32_bits, same_bits

PROMPTS = ["Once upon a time", "The dog", "", "Lily and Tom went to the park"]


def cli_json(model, prompts, tmp_path, *flags):
    prompts_file = tmp_path / "prompts.txt"
    prompts_file.write_text("\n".join(prompts) + "\n")
    out = subprocess.run(
        [str(cli_binary()), "generate", "--model", str(model), "--prompts-file", str(prompts_file),
         "--format", "json", "--quiet", *flags],
        check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines()]


@pytest.fixture(scope="module")
def llm(stories_path):
    return bitexact.LLM(stories_path, threads=2)


@pytest.mark.parametrize("sampling", [
    (bitexact.SamplingParams(temperature=0, max_tokens=24), ["--temperature", "0"]),
    (bitexact.SamplingParams(temperature=0.8, top_k=40, top_p=0.95, min_p=0.05, seed=7,
                             max_tokens=24),
     ["--temperature", "0.8", "--top-k", "40", "--top-p", "0.95", "--min-p", "0.05", "--seed",
      "7"]),
    (bitexact.SamplingParams(temperature=1.0, seed=3, max_tokens=30, stop=["."], min_tokens=2),
     ["--temperature", "1", "--seed", "3", "--stop", ".", "--min-tokens", "2"]),
])
def test_generate_equals_cli_json(llm, stories_path, tmp_path, sampling):
    params, flags = sampling
    expected = cli_json(stories_path, PROMPTS, tmp_path, "--max-tokens", str(params.max_tokens),
                        *flags)
    got = llm.generate(PROMPTS, params)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        sample = g.outputs[0]
        assert sample.token_ids == e["token_ids"]
        # The CLI prints the shortest decimal that reads back as the same float32.
        assert f32_bits(sample.logprobs) == f32_bits([float(v) for v in e["logprobs"]])
        assert sample.text == e["text"]
        assert sample.finish_reason == e["finish_reason"]
        assert sample.weights_version == 0


def test_prompt_alone_equals_prompt_among_32_others(llm):
    params = bitexact.SamplingParams(temperature=0.9, seed=11, max_tokens=20, ignore_eos=True)
    target = "Once upon a time there was a little girl"
    alone = llm.generate([target], params)[0].outputs[0]
    others = [f"{'The cat sat on the mat. ' * (i % 5)}Story {i}:" for i in range(32)]
    batch = others[:13] + [target] + others[13:]
    together = llm.generate(batch, params)[13].outputs[0]
    assert same_bits(alone, together)
    assert alone.bitexact_hash == together.bitexact_hash


def test_negative_control_fast_mode_changes_bits_in_a_batch(stories_path):
    # The comparison above can fail: fast mode's matmul splits K by the step's token count.
    fast = bitexact.LLM(stories_path, mode="fast", threads=2)
    params = bitexact.SamplingParams(temperature=0, max_tokens=20, ignore_eos=True)
    prompts = [f"{'The cat sat on the mat. ' * (i % 5)}Story {i}:" for i in range(33)]
    alone = [fast.generate([p], params)[0].outputs[0] for p in prompts[:8]]
    together = fast.generate(prompts, params)[:8]
    assert any(not same_bits(a, t.outputs[0]) for a, t in zip(alone, together))


def test_score_equals_generation_logprobs(llm):
    params = bitexact.SamplingParams(temperature=1.0, seed=5, max_tokens=25, prompt_logprobs=True)
    outs = llm.generate(PROMPTS, params)
    scored = llm.score([o.prompt_token_ids for o in outs],
                       [o.outputs[0].token_ids for o in outs], prompt_logprobs=True)
    for o, s in zip(outs, scored):
        assert f32_bits(s.logprobs) == f32_bits(o.outputs[0].logprobs)
        assert s.bitexact_hash == o.outputs[0].bitexact_hash
        assert f32_bits(s.prompt_logprobs) == f32_bits(o.prompt_logprobs)
    # A different continuation scores differently (the comparison can fail).
    other = llm.score(outs[0].prompt_token_ids, outs[1].outputs[0].token_ids)
    assert other.bitexact_hash != outs[0].outputs[0].bitexact_hash


def test_n_samples_and_top_logprobs(llm):
    params = bitexact.SamplingParams(temperature=1.0, seed=9, max_tokens=12, n=3, logprobs=4)
    out = llm.generate("Once upon a time", params)[0]
    assert len(out.outputs) == 3
    one = llm.generate("Once upon a time",
                       bitexact.SamplingParams(temperature=1.0, seed=9, max_tokens=12))[0]
    assert same_bits(out.outputs[0], one.outputs[0])  # sample 0 of n equals n = 1
    for sample in out.outputs:
        assert len(sample.top_logprobs) == len(sample.token_ids)
        for top, lp in zip(sample.top_logprobs, sample.logprobs):
            assert len(top) == 4
            assert top[0][1] >= top[-1][1]
            assert top[0][1] >= lp


def test_stream_equals_generate_and_cancel_ends_it(llm):
    params = bitexact.SamplingParams(temperature=0.7, seed=2, max_tokens=20)
    full = llm.generate("The dog", params)[0].outputs[0]
    events = list(llm.stream("The dog", params))
    tokens = [e.token_id for e in events if e.kind == "token"]
    logprobs = [e.logprob for e in events if e.kind == "token"]
    assert tokens == full.token_ids and f32_bits(logprobs) == f32_bits(full.logprobs)
    assert "".join(e.text for e in events) == full.text
    assert events[-1].kind == "finished" and events[-1].finish_reason == full.finish_reason

    long = bitexact.SamplingParams(temperature=0, max_tokens=200, ignore_eos=True)
    stream = llm.stream("Once upon a time", long)
    first = next(stream)
    assert first.kind == "token"
    stream.cancel()
    rest = list(stream)
    assert rest[-1].kind == "finished" and rest[-1].finish_reason == "cancelled"
    assert 1 + len([e for e in rest if e.kind == "token"]) < 200


def test_concurrent_generate_from_threads_equals_alone(llm):
    params = bitexact.SamplingParams(temperature=0.9, seed=4, max_tokens=16)
    alone = {p: llm.generate(p, params)[0].outputs[0] for p in PROMPTS}
    results = {}

    def run(p):
        results[p] = llm.generate([p] * 3, params)[1].outputs[0]

    threads = [threading.Thread(target=run, args=(p,)) for p in PROMPTS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in PROMPTS:
        assert same_bits(results[p], alone[p])


def test_bad_requests_are_errors_and_nothing_runs(llm):
    with pytest.raises(ValueError, match="top_p"):
        llm.generate(["a", "b"], bitexact.SamplingParams(top_p=0))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        llm.generate([[1, 10**6]], bitexact.SamplingParams())
    with pytest.raises(ValueError, match="expected cpu or cuda"):
        bitexact.LLM("whatever.gguf", backend="tpu")


def test_tokenizer_and_chat(smollm_path):
    llm = bitexact.LLM(smollm_path, threads=2)
    tok = llm.tokenizer
    ids = tok.encode("Hello world", add_special_tokens=False)
    assert tok.decode(ids) == "Hello world"
    messages = [{"role": "user", "content": "What is 2+2?"}]
    text = tok.apply_chat_template(messages)
    assert "What is 2+2?" in text and text.rstrip().endswith("assistant")
    params = bitexact.SamplingParams(temperature=0, max_tokens=12)
    chat = llm.chat(messages, params)
    direct = llm.generate([tok.apply_chat_template(messages, tokenize=True)], params)[0]
    assert same_bits(chat.outputs[0], direct.outputs[0])
    assert chat.system_fingerprint == llm.fingerprint
    assert llm.fingerprint.startswith("bx-")


def test_random_model_spec_generates_from_token_ids():
    # A random: spec has generated weights and no tokenizer or chat template: ids in, ids out.
    llm = bitexact.LLM("random:qwen3-tiny:3", threads=2)
    params = bitexact.SamplingParams(temperature=0, max_tokens=8, ignore_eos=True)
    first, again = (llm.generate([[5, 17, 300]], params)[0].outputs[0] for _ in range(2))
    assert len(first.token_ids) == 8
    assert same_bits(first, again)
