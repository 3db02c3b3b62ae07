"""The determinism experiment (issue 5) through the official openai package.

1,000 concurrent requests, staggered over ~1.5 s: 500 copies of one prompt mixed at random with
500 other prompts of varied lengths (1 to 100 words) and output lengths. The 500 copies must give
exactly one distinct completion (text and bitexact_hash), equal to that prompt served alone
before the burst — greedy, then again at temperature 0.8 with a fixed seed. A sample of the other
prompts is re-run alone afterwards and must match too. Negative control: the hash does change
with the seed, so a comparison of hashes can fail.

Usage: determinism_test.py BASE_URL   (a server started with enough --max-connections)
"""
import asyncio
import random
import resource
import sys
import time

import openai

from common import Checks, expect

BASE = sys.argv[1]
MODEL = "stories260K"
REPEATED = "Once upon a time, there was a little dog named"
WORDS = ("the a little big dog cat girl boy tree sun park ball red happy sad ran jumped saw "
         "played with and then one day they went to see mom said").split()

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))


def other_prompts(rng, count):
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 100))) for _ in range(count)]


def key(choice):
    return (choice.text, (choice.model_extra or {}).get("bitexact_hash"))


async def burst(client, sampling, rng):
    """Returns (results of the repeated prompt, {other prompt index: (request, result)})."""
    jobs = [("repeated", REPEATED, 12) for _ in range(500)]
    jobs += [("other", p, rng.randint(1, 16)) for p in other_prompts(rng, 500)]
    rng.shuffle(jobs)
    delays = [rng.uniform(0, 1.5) for _ in jobs]

    async def one(job, delay):
        await asyncio.sleep(delay)
        kind, prompt, max_tokens = job
        r = await client.completions.create(model=MODEL, prompt=prompt, max_tokens=max_tokens,
                                            **sampling)
        return kind, prompt, max_tokens, key(r.choices[0])

    results = await asyncio.gather(*(one(j, d) for j, d in zip(jobs, delays)))
    repeated = [k for kind, _, _, k in results if kind == "repeated"]
    others = [(p, m, k) for kind, p, m, k in results if kind == "other"]
    return repeated, others


async def experiment(sampling, label):
    client = openai.AsyncOpenAI(base_url=BASE + "/v1", api_key="none", max_retries=0, timeout=600)
    rng = random.Random(2026)
    alone = key((await client.completions.create(model=MODEL, prompt=REPEATED, max_tokens=12,
                                                 **sampling)).choices[0])
    start = time.time()
    repeated, others = await burst(client, sampling, rng)
    seconds = time.time() - start
    distinct = set(repeated)
    print(f"{label}: 1000 requests in {seconds:.1f} s; repeated prompt: {len(repeated)} copies, "
          f"{len(distinct)} distinct completion(s); alone: {alone[1]}", flush=True)
    expect(len(repeated) == 500, len(repeated))
    expect(distinct == {alone}, (distinct, alone))
    for prompt, max_tokens, got in rng.sample(others, 20):
        again = key((await client.completions.create(model=MODEL, prompt=prompt,
                                                     max_tokens=max_tokens,
                                                     **sampling)).choices[0])
        expect(again == got, (prompt, got, again))
    await client.close()
    return alone


def test_greedy():
    asyncio.run(experiment({"temperature": 0}, "greedy"))


def test_temperature_with_fixed_seed():
    alone = asyncio.run(experiment({"temperature": 0.8, "seed": 1234}, "temperature 0.8 seed 1234"))

    async def other_seed():
        client = openai.AsyncOpenAI(base_url=BASE + "/v1", api_key="none", max_retries=0)
        r = await client.completions.create(model=MODEL, prompt=REPEATED, max_tokens=12,
                                            temperature=0.8, seed=1235)
        await client.close()
        return key(r.choices[0])

    expect(asyncio.run(other_seed())[1] != alone[1], "negative control: another seed, another hash")


if __name__ == "__main__":
    checks = Checks()
    checks.run(test_greedy)
    checks.run(test_temperature_with_fixed_seed)
    checks.finish()
