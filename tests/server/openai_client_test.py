"""The server through the official openai package (tests/requirements.txt pins it).

Usage: openai_client_test.py MAIN_URL PLAIN_URL API_KEY
  MAIN_URL:  bitexact serve --api-key KEY --chat-template chatml --max-body-bytes 65536
  PLAIN_URL: bitexact serve --api-key KEY --max-queue 1 (no chat template)
Both serve stories260K (no chat template of its own: chat is tested through the built-in chatml
format, the plain server shows the missing-template error).
"""
import sys
import threading
import time

import openai

from common import Checks, expect, http, metric

MAIN, PLAIN, KEY = sys.argv[1], sys.argv[2], sys.argv[3]
MODEL = "stories260K"
PROMPT = "Once upon a time"
client = openai.OpenAI(base_url=MAIN + "/v1", api_key=KEY, max_retries=0, timeout=120)
plain = openai.OpenAI(base_url=PLAIN + "/v1", api_key=KEY, max_retries=0, timeout=120)


def extra(obj, name):
    return (obj.model_extra or {}).get(name)


def complete(**kw):
    args = dict(model=MODEL, prompt=PROMPT, max_tokens=16, temperature=0)
    args.update(kw)
    return client.completions.create(**args)


def test_models_list():
    models = client.models.list()
    expect([m.id for m in models.data] == [MODEL], models)


def test_completion_greedy_is_reproducible():
    a, b = complete(), complete()
    expect(a.choices[0].text and a.choices[0].text == b.choices[0].text, (a, b))
    expect(a.choices[0].finish_reason == "length")
    expect(a.system_fingerprint.startswith("bx-") and a.system_fingerprint == b.system_fingerprint)
    ha, hb = extra(a.choices[0], "bitexact_hash"), extra(b.choices[0], "bitexact_hash")
    expect(ha and ha.startswith("bx1-") and ha == hb, (ha, hb))
    expect(a.usage.completion_tokens == 16 and a.usage.prompt_tokens > 0, a.usage)
    expect(a.usage.total_tokens == a.usage.prompt_tokens + a.usage.completion_tokens)
    expect(a.id.startswith("cmpl-") and a.id != b.id and a.object == "text_completion")


def test_completion_logprobs():
    r = complete(logprobs=3, max_tokens=8)
    lp = r.choices[0].logprobs
    expect(len(lp.tokens) == 8 and len(lp.token_logprobs) == 8 and len(lp.top_logprobs) == 8)
    expect("".join(lp.tokens).lstrip() == r.choices[0].text.lstrip(), (lp.tokens, r.choices[0].text))
    for chosen, lpv, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        expect(len(top) >= 3 and top[chosen] == lpv, (chosen, lpv, top))
        expect(lpv == max(top.values()), "greedy picks the most likely token")


def test_echo_with_prompt_logprobs_matches_score():
    ids = http("POST", MAIN + "/tokenize", {"prompt": PROMPT}, KEY)[1]["tokens"]
    r = complete(prompt=ids, echo=True, logprobs=0, max_tokens=0)
    lp = r.choices[0].logprobs
    expect(r.choices[0].text == PROMPT, r.choices[0].text)
    expect(lp.token_logprobs[0] is None and len(lp.token_logprobs) == len(ids), lp.token_logprobs)
    status, s = http("POST", MAIN + "/v1/score", {"prompt": ids[:1], "continuation": ids[1:]}, KEY)
    expect(status == 200, s)
    expect(s["logprobs"] == lp.token_logprobs[1:], (s["logprobs"], lp.token_logprobs))


def test_score_hash_equals_generation_hash():
    r = complete(temperature=0.9, seed=11, max_tokens=12, extra_body={"return_token_ids": True})
    c = r.choices[0]
    status, s = http("POST", MAIN + "/v1/score",
                     {"model": MODEL, "prompt": extra(c, "prompt_token_ids"),
                      "continuation": extra(c, "token_ids")}, KEY)
    expect(status == 200, s)
    expect(s["bitexact_hash"] == extra(c, "bitexact_hash"), (s, c))
    expect(s["system_fingerprint"] == r.system_fingerprint)


def test_token_id_prompt_equals_text_prompt():
    ids = http("POST", MAIN + "/tokenize", {"prompt": PROMPT}, KEY)[1]["tokens"]
    a, b = complete(), complete(prompt=ids)
    expect(a.choices[0].text == b.choices[0].text)
    status, d = http("POST", MAIN + "/detokenize", {"tokens": ids}, KEY)
    expect(status == 200 and d["prompt"] == PROMPT, d)


def test_seed_reproduces_and_changes_samples():
    a = complete(temperature=1.0, seed=5, max_tokens=32)
    b = complete(temperature=1.0, seed=5, max_tokens=32)
    c = complete(temperature=1.0, seed=6, max_tokens=32)
    ha, hb, hc = (extra(x.choices[0], "bitexact_hash") for x in (a, b, c))
    expect(ha == hb and a.choices[0].text == b.choices[0].text)
    expect(ha != hc, "another seed gives another sample")


def test_n_samples_and_prompt_lists():
    one = complete(temperature=0.8, seed=3)
    three = complete(temperature=0.8, seed=3, n=3)
    expect([c.index for c in three.choices] == [0, 1, 2])
    expect(three.choices[0].text == one.choices[0].text, "sample 0 of n equals n = 1")
    expect(len({extra(c, "bitexact_hash") for c in three.choices}) == 3)
    multi = complete(prompt=[PROMPT, "The cat"], n=2)
    expect([c.index for c in multi.choices] == [0, 1, 2, 3])
    expect(multi.choices[0].text == complete().choices[0].text)
    expect(multi.choices[2].text == complete(prompt="The cat").choices[0].text)


def test_stop_strings():
    full = complete(max_tokens=30).choices[0].text
    expect("." in full, full)
    r = complete(max_tokens=30, stop=["."])
    c = r.choices[0]
    expect(c.finish_reason == "stop" and extra(c, "stop_reason") == ".", c)
    expect(c.text == full[: full.index(".")], (c.text, full))


def test_streaming_completion_equals_non_streaming():
    whole = complete(max_tokens=20)
    chunks = list(complete(max_tokens=20, stream=True, stream_options={"include_usage": True}))
    text = "".join(ch.choices[0].text for ch in chunks if ch.choices)
    expect(text == whole.choices[0].text, (text, whole.choices[0].text))
    last_choice = [ch for ch in chunks if ch.choices][-1].choices[0]
    expect(last_choice.finish_reason == "length")
    expect(extra(last_choice, "bitexact_hash") == extra(whole.choices[0], "bitexact_hash"))
    expect(chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 20, chunks[-1])


def test_chat_with_builtin_template():
    messages = [{"role": "system", "content": "Tell a story."}, {"role": "user", "content": "A dog"}]
    r = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=16,
                                       temperature=0, logprobs=True, top_logprobs=2)
    c = r.choices[0]
    expect(r.object == "chat.completion" and c.message.role == "assistant", r)
    rendered = ("<|im_start|>system\nTell a story.<|im_end|>\n<|im_start|>user\nA dog<|im_end|>\n"
                "<|im_start|>assistant\n")
    expect(c.message.content == complete(prompt=rendered).choices[0].text, c.message.content)
    expect(len(c.logprobs.content) == 16 and len(c.logprobs.content[0].top_logprobs) == 2)
    expect(c.logprobs.content[0].logprob == c.logprobs.content[0].top_logprobs[0].logprob)
    stream = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=16,
                                            temperature=0, stream=True)
    chunks = list(stream)
    expect(chunks[0].choices[0].delta.role == "assistant")
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    expect(text == c.message.content, (text, c.message.content))
    expect(chunks[-1].choices[0].finish_reason == "length")


def test_chat_without_template_is_a_clear_400():
    try:
        plain.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
        raise AssertionError("no error")
    except openai.BadRequestError as e:
        expect(e.code == "chat_template_missing" and "chat template" in e.message, e)


def expect_status(error_class, status, fn, code=None, param=None):
    try:
        fn()
    except error_class as e:
        expect(e.status_code == status, (e.status_code, e))
        expect(e.type is not None and e.message, e.body)
        if code is not None:
            expect(e.code == code, (e.code, e.body))
        if param is not None:
            expect(e.param == param, (e.param, e.body))
        return
    raise AssertionError(f"expected {error_class.__name__}")


def test_400_wrong_types_and_ranges():
    expect_status(openai.BadRequestError, 400, lambda: complete(temperature="hot"), param="temperature")
    expect_status(openai.BadRequestError, 400, lambda: complete(temperature=5), param="temperature")
    expect_status(openai.BadRequestError, 400, lambda: complete(n=0), param="n")
    expect_status(openai.BadRequestError, 400, lambda: complete(max_tokens=-1), param="max_tokens")
    expect_status(openai.BadRequestError, 400, lambda: complete(top_p=0), param="top_p")
    expect_status(openai.BadRequestError, 400, lambda: complete(logprobs=21), param="logprobs")
    expect_status(openai.BadRequestError, 400, lambda: complete(prompt=[99999]), param="prompt")
    expect_status(openai.BadRequestError, 400, lambda: complete(stop=[""]), param="stop")
    expect_status(openai.BadRequestError, 400, lambda: complete(frequency_penalty=0.5),
                  code="unsupported_parameter")
    expect_status(openai.BadRequestError, 400, lambda: client.chat.completions.create(
        model=MODEL, messages=[{"role": "wizard", "content": "x"}]), param="messages")


def test_400_malformed_json():
    status, body = http("POST", MAIN + "/v1/completions", raw=b'{"prompt": ', key=KEY)
    expect(status == 400 and body["error"]["code"] == "invalid_json", body)
    status, body = http("POST", MAIN + "/v1/completions", raw=b'[1, 2]', key=KEY)
    expect(status == 400 and body["error"]["type"] == "invalid_request_error", body)


def test_401_missing_or_wrong_key():
    bad = openai.OpenAI(base_url=MAIN + "/v1", api_key="wrong-key", max_retries=0)
    expect_status(openai.AuthenticationError, 401, lambda: bad.models.list(), code="invalid_api_key")
    status, body = http("GET", MAIN + "/v1/models")
    expect(status == 401 and body["error"]["code"] == "invalid_api_key", body)
    expect(http("GET", MAIN + "/health")[0] == 200, "health needs no key")


def test_404_unknown_model_and_route():
    expect_status(openai.NotFoundError, 404, lambda: complete(model="gpt-17"), code="model_not_found")
    status, body = http("POST", MAIN + "/v1/nothing", {"x": 1}, KEY)
    expect(status == 404 and body["error"]["code"] == "route_not_found", body)


def test_413_body_too_large():
    expect_status(openai.APIStatusError, 413, lambda: complete(prompt="word " * 20000),
                  code="body_too_large")


def test_431_too_many_headers():
    headers = {f"X-Filler-{i}": "x" for i in range(100)}
    r = client.with_options(default_headers=headers)
    expect_status(openai.APIStatusError, 431, lambda: r.models.list(), code="headers_too_large")


def test_503_when_the_queue_is_full():
    # PLAIN admits one generation at a time: hold it with a long stream, then ask again.
    stream = plain.completions.create(model=MODEL, prompt=PROMPT, max_tokens=1500,
                                      temperature=0, stream=True, extra_body={"ignore_eos": True})
    it = iter(stream)
    next(it)
    try:
        expect_status(openai.InternalServerError, 503,
                      lambda: plain.completions.create(model=MODEL, prompt=PROMPT, max_tokens=2),
                      code="queue_full")
    finally:
        stream.close()
    # Once the stream is gone the queue takes requests again.
    deadline = time.time() + 10
    while True:
        try:
            plain.completions.create(model=MODEL, prompt=PROMPT, max_tokens=2)
            break
        except openai.InternalServerError:
            expect(time.time() < deadline, "the queue did not free up")
            time.sleep(0.1)


def test_disconnect_mid_stream_cancels_and_frees_kv_blocks():
    stream = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=1800, temperature=0,
                                       stream=True, extra_body={"ignore_eos": True})
    it = iter(stream)
    for _ in range(5):
        next(it)
    held = metric(MAIN, "bitexact_kv_blocks_in_use", KEY)
    expect(held > 0, "a running request holds KV blocks (the metric can be nonzero)")
    stream.close()
    deadline = time.time() + 10
    while metric(MAIN, "bitexact_kv_blocks_in_use", KEY) != 0 or \
            metric(MAIN, "bitexact_running_sequences", KEY) != 0:
        expect(time.time() < deadline, "KV blocks were not freed after the client disconnected")
        time.sleep(0.05)


def test_metrics_page():
    status, text = http("GET", MAIN + "/metrics", key=KEY)
    expect(status == 200, text)
    for name in ("bitexact_requests_total", "bitexact_prompt_tokens_total",
                 "bitexact_generation_tokens_total", "bitexact_queue_depth",
                 "bitexact_running_sequences", "bitexact_kv_blocks_in_use",
                 "bitexact_prefix_cache_hit_rate", "bitexact_step_seconds_bucket",
                 "bitexact_time_to_first_token_seconds_bucket"):
        expect(name in text, name)
    expect(metric(MAIN, "bitexact_generation_tokens_total", KEY) > 0)
    expect(metric(MAIN, "bitexact_step_seconds_count", KEY) > 0)
    # The engine's own counters: its steps, and their time split into the forward pass and the
    # host's share, which together cannot exceed the steps' wall time.
    steps = metric(MAIN, "bitexact_engine_steps_total", KEY)
    forward = metric(MAIN, "bitexact_engine_forward_seconds_total", KEY)
    host = metric(MAIN, "bitexact_engine_host_seconds_total", KEY)
    expect(steps > 0 and forward > 0 and host > 0, (steps, forward, host))
    expect(metric(MAIN, "bitexact_engine_batch_tokens_total", KEY) >= steps)


def test_concurrent_clients_agree():
    results = [None] * 8
    def one(i):
        results[i] = extra(complete(temperature=0.7, seed=9, max_tokens=24).choices[0], "bitexact_hash")
    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expect(len(set(results)) == 1 and results[0], results)


if __name__ == "__main__":
    checks = Checks()
    for name, fn in list(globals().items()):
        if name.startswith("test_") and callable(fn):
            checks.run(fn)
    checks.finish()
