"""lm-eval-harness (tests/requirements-eval.txt pins it) against the server, as an eval user runs
it: model local-completions with its default settings (the tokenizer is found through
/tokenizer_info, requests go out as token ids), on three small local tasks written here (a
loglikelihood task whose acc is lm-eval's is_greedy, a multiple-choice task and a generate_until
task; local jsonl files, no network). The evaluation runs twice, with num_concurrent 1 and 8, and
every per-sample output must be identical; is_greedy must be false for some sample (it was
always true while echo logprobs held only the prompt token).

Usage: lm_eval_test.py URL MODEL_NAME
"""
import json
import os
import sys
import tempfile

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import lm_eval  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

from common import Checks, expect  # noqa: E402

URL, MODEL = sys.argv[1], sys.argv[2]

STORIES = [
    ("Once upon a time, there was a little", " girl"),
    ("One day, Lily went to the", " park"),
    ("Tom had a big red", " ball"),
    ("The cat sat on the", " mat"),
    ("Mom said to Ben, \"Let's go to the", " store"),
    ("The sun was hot and the sky was", " blue"),
    ("Sara liked to play with her", " doll"),
    ("The dog ran fast and", " jumped"),
    ("A little bird sat in a", " tree"),
    ("He was very happy because he found a", " toy"),
    ("They played together all", " day"),
    ("The boy looked at the big", " truck"),
]
CHOICES = [" girl", " dog", " tree", " park"]


def write_tasks(folder):
    data = {
        "ll.jsonl": [{"context": c, "continuation": w} for c, w in STORIES],
        "mc.jsonl": [{"context": c, "choices": CHOICES, "label": i % 4}
                     for i, (c, _) in enumerate(STORIES)],
        "gen.jsonl": [{"context": c, "answer": w.strip()} for c, w in STORIES[:6]],
    }
    for name, rows in data.items():
        with open(os.path.join(folder, name), "w") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")

    def task(name, file, body):
        with open(os.path.join(folder, name + ".yaml"), "w") as f:
            f.write(f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
                    f"    test: {os.path.join(folder, file)}\ntest_split: test\n" + body)

    task("bitexact_ll", "ll.jsonl", 'output_type: loglikelihood\ndoc_to_text: "{{context}}"\n'
         'doc_to_target: "{{continuation}}"\nmetric_list:\n  - metric: acc\n'
         '  - metric: perplexity\n')
    task("bitexact_mc", "mc.jsonl", 'output_type: multiple_choice\ndoc_to_text: "{{context}}"\n'
         'doc_to_choice: "{{choices}}"\ndoc_to_target: "{{label}}"\nmetric_list:\n'
         '  - metric: acc\n')
    task("bitexact_gen", "gen.jsonl", 'output_type: generate_until\ndoc_to_text: "{{context}}"\n'
         'doc_to_target: "{{answer}}"\ngeneration_kwargs:\n  until: ["."]\n  max_gen_toks: 12\n'
         'metric_list:\n  - metric: exact_match\n')


def is_greedy(resps):
    """The is_greedy flag of a loglikelihood sample's resps ([[ [logprob, is_greedy] ]])."""
    while isinstance(resps, list) and not isinstance(resps[-1], bool):
        resps = resps[0]
    return resps[-1]


def evaluate(folder, concurrency):
    results = lm_eval.simple_evaluate(
        model="local-completions",
        model_args={"base_url": URL + "/v1/completions", "model": MODEL,
                    "num_concurrent": concurrency, "max_retries": 1, "timeout": 120},
        tasks=["bitexact_ll", "bitexact_mc", "bitexact_gen"],
        task_manager=TaskManager(include_path=folder),
        log_samples=True,
    )
    samples = {task: sorted(((s["doc_id"], json.dumps(s["resps"]), json.dumps(s["filtered_resps"]))
                             for s in rows), key=lambda t: t[0])
               for task, rows in results["samples"].items()}
    return results, samples


def test_lm_eval_gives_identical_samples_at_concurrency_1_and_8():
    with tempfile.TemporaryDirectory() as folder:
        write_tasks(folder)
        one, samples_one = evaluate(folder, 1)
        eight, samples_eight = evaluate(folder, 8)
    expect(set(samples_one) == {"bitexact_ll", "bitexact_mc", "bitexact_gen"}, samples_one.keys())
    for task in samples_one:
        expect(len(samples_one[task]) > 0, task)
        expect(samples_one[task] == samples_eight[task], f"{task} differs between concurrency 1 and 8")
    for task in samples_one:
        expect(one["results"][task] == eight["results"][task], (one["results"][task],
                                                                eight["results"][task]))
    # loglikelihood acc is the mean of is_greedy: neither all true nor all false here.
    greedy = [is_greedy(json.loads(r)) for _, r, _ in samples_one["bitexact_ll"]]
    expect(not all(greedy), f"is_greedy is true for every sample: {greedy}")
    acc = one["results"]["bitexact_ll"]["acc,none"]
    print(f"  bitexact_ll acc {acc} (is_greedy per sample: {greedy}); "
          f"bitexact_mc acc {one['results']['bitexact_mc']['acc,none']}; "
          f"bitexact_gen exact_match {one['results']['bitexact_gen']['exact_match,none']}",
          flush=True)


if __name__ == "__main__":
    checks = Checks()
    checks.run(test_lm_eval_gives_identical_samples_at_concurrency_1_and_8)
    checks.finish()
