"""GRPO with bitexact: the engine samples, a transformers model patched with bitexact.torch trains,
the new weights go back to the engine in place. In the engine's invariant mode the sampler's and
the trainer's logprobs are the same bits at every step (importance ratio exactly 1, KL exactly 0);
the fast mode shows what an engine without that guarantee gives the same loop.

    python bench/rl/grpo.py --model models/SmolLM2-135M-Instruct.Q4_1.gguf --steps 10 \\
        --out bench/results/rl/cpu          # writes rl.json, rl.md, rl.png there

Each step, for P prompts of a verifiable task (task.py) with G samples each:
  sample    engine.generate(temperature 1, n=G): token ids and the sampler's logprobs lp_s
  score     trainer logprobs lp_t of the same tokens (bitexact.torch.token_logprobs, with grad)
  loss      A = (r - mean_group(r)) / (std_group(r) + 1e-4); ratio = exp(lp_t - lp_s);
            L = -sum_tokens min(ratio A, clip(ratio, 1 - eps, 1 + eps) A) / tokens
  update    AdamW step, then engine.update_weights(trainer parameters)
Per step it records the mean reward, KL(sampler || trainer) over the sampled tokens (k1 =
mean(lp_s - lp_t) and k3 = mean(exp(lp_t - lp_s) - 1 - (lp_t - lp_s)), nonnegative), the max
|lp_s - lp_t| and the fraction of sampled tokens whose logprob bits differ, sampling and training
tokens/s, and the weight-sync time.

--model: a GGUF file (the trainer gets its weights dequantized by bitexact.torch.from_gguf), a
Hugging Face folder, or random-qwen3[:SEED] (a Qwen3-0.6B-shaped model, random init, written to
--scratch first; no tokenizer, so the task is token_parity). Without matplotlib the PNG is left
out (report.py draws it later from rl.json).
"""

import argparse
import datetime
import json
import platform
import random
import sys
import time
from pathlib import Path

import torch
import transformers

import bitexact
import bitexact.torch as bxt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from task import Arithmetic, TokenParity  # noqa: E402

# Qwen3-0.6B's shape (config.json of Qwen/Qwen3-0.6B), for --model random-qwen3.
QWEN3_0_6B = dict(vocab_size=151936, hidden_size=1024, intermediate_size=3072,
                  num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8,
                  head_dim=128, max_position_embeddings=40960, rms_norm_eps=1e-6,
                  rope_theta=1000000.0, tie_word_embeddings=True)


def random_qwen3_folder(spec: str, scratch: Path) -> Path:
    seed = int(spec.split(":")[1]) if ":" in spec else 0
    folder = scratch / f"random-qwen3-{seed}"
    if not (folder / "config.json").exists():
        config = transformers.Qwen3Config(**QWEN3_0_6B)
        config.architectures = ["Qwen3ForCausalLM"]
        torch.manual_seed(seed)
        transformers.Qwen3ForCausalLM(config).float().save_pretrained(folder,
                                                                      safe_serialization=True)
    return folder


def load_trainer(model: str, device: str):
    """The trainer's model, float32, patched: the same weights the engine loads from `model`."""
    if model.endswith(".gguf"):
        m = bxt.from_gguf(model)
    else:
        m = transformers.AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    m = m.to(device)
    bxt.patch(m)
    return m


def engine_weights(model):
    """The trainer's parameters by Hugging Face name (a tied lm_head appears once, as the
    embedding)."""
    return dict(model.named_parameters())


def make_task(llm):
    if llm.tokenizer is not None:
        return Arithmetic(llm.tokenizer)
    return TokenParity(vocab_size=int(llm_vocab_size(llm)))


def llm_vocab_size(llm) -> int:
    # A model without a tokenizer: the trainer's config tells the vocabulary (set by run_arm).
    return llm._rl_vocab_size


def trainer_batch(rows, device):
    """rows: [(prompt ids, completion ids)] -> right-padded input_ids, targets, attention_mask
    [B, L] and the completion mask [B, L] (1 where the target is a completion token)."""
    L = max(len(p) + len(c) - 1 for p, c in rows)
    ids = torch.zeros(len(rows), L, dtype=torch.int64)
    targets = torch.zeros_like(ids)
    mask = torch.zeros_like(ids)
    completion = torch.zeros(len(rows), L, dtype=torch.bool)
    for i, (p, c) in enumerate(rows):
        r = p + c
        n = len(r) - 1
        ids[i, :n] = torch.tensor(r[:-1])
        targets[i, :n] = torch.tensor(r[1:])
        mask[i, :n] = 1
        completion[i, len(p) - 1:n] = True
    return ids.to(device), targets.to(device), mask.to(device), completion.to(device)


def group_advantages(rewards: torch.Tensor, group: int) -> torch.Tensor:
    """GRPO's advantage: each reward against its prompt's group, [P * G] -> [P * G]."""
    r = rewards.view(-1, group)
    return ((r - r.mean(1, keepdim=True)) / (r.std(1, unbiased=False, keepdim=True) + 1e-4)).view(-1)


def grpo_step(llm, model, optimizer, task, step, args, device):
    """One GRPO step; returns its record."""
    rec = {"step": step, "weights_version": llm.weights_version}
    problems = task.problems(random.Random(args.seed * 1_000_003 + step), args.prompts)
    params = bitexact.SamplingParams(temperature=1.0, seed=args.seed * 1_000_003 + step,
                                     max_tokens=args.max_tokens, n=args.group)
    t0 = time.perf_counter()
    outs = llm.generate([p.prompt_ids for p in problems], params)
    rec["sampling_seconds"] = time.perf_counter() - t0

    rows, sampler_lp, rewards = [], [], []
    for prob, out in zip(problems, outs):
        for sample in out.outputs:
            assert sample.weights_version == llm.weights_version
            rows.append((list(out.prompt_token_ids), list(sample.token_ids)))
            sampler_lp.extend(sample.logprobs)
            rewards.append(task.reward(prob, list(sample.token_ids)))
    sampled_tokens = len(sampler_lp)
    rec["sampled_tokens"] = sampled_tokens
    rec["sampling_tokens_per_second"] = sampled_tokens / rec["sampling_seconds"]
    rewards_t = torch.tensor(rewards, dtype=torch.float32)
    rec["mean_reward"] = float(rewards_t.mean())
    rec["mean_completion_tokens"] = sampled_tokens / len(rows)

    t0 = time.perf_counter()
    ids, targets, mask, completion = trainer_batch(rows, device)
    lp_all = bxt.token_logprobs(model, ids, targets, attention_mask=mask)
    lp_t = lp_all[completion]  # row-major: the order of sampler_lp
    lp_s = torch.tensor(sampler_lp, dtype=torch.float32, device=device)
    adv = group_advantages(rewards_t, args.group).to(device)
    lengths = completion.sum(1)
    adv_tok = adv.repeat_interleave(lengths)
    log_ratio = lp_t - lp_s
    ratio = torch.exp(log_ratio)
    surrogate = torch.minimum(ratio * adv_tok,
                              torch.clamp(ratio, 1 - args.clip, 1 + args.clip) * adv_tok)
    loss = -surrogate.sum() / sampled_tokens
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if device == "cuda":
        torch.cuda.synchronize()
    rec["training_seconds"] = time.perf_counter() - t0
    rec["training_tokens"] = int(mask.sum())
    rec["training_tokens_per_second"] = rec["training_tokens"] / rec["training_seconds"]
    rec["loss"] = float(loss.detach())

    d = log_ratio.detach().double()  # k3 ~ d^2/2 underflows float32 for |d| ~ 1e-7
    differ = lp_t.detach() != lp_s
    rec["mismatched_tokens"] = int(differ.sum())
    rec["mismatch_fraction"] = float(differ.float().mean())
    rec["max_abs_delta_logprob"] = float(d.abs().max())
    rec["kl_k1"] = float((-d).mean())
    rec["kl_k3"] = float((torch.exp(d) - 1 - d).mean())
    rec["clip_fraction"] = float(((ratio.detach() - 1).abs() > args.clip).float().mean())

    t0 = time.perf_counter()
    llm.update_weights(engine_weights(model))
    rec["weight_sync_seconds"] = time.perf_counter() - t0
    return rec


def run_arm(model_path: str, mode: str, args, log=print, on_step=None):
    """args.steps GRPO steps with the engine in `mode`; returns (records, engine, trainer)."""
    device = "cuda" if args.backend == "cuda" else "cpu"
    torch.manual_seed(args.seed)
    llm = bitexact.LLM(model_path, backend=args.backend, mode=mode, threads=args.threads,
                       kv_cache_tokens=args.kv_cache_tokens)
    model = load_trainer(model_path, device)
    llm._rl_vocab_size = model.config.vocab_size
    task = make_task(llm)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99),
                                  weight_decay=0.0)
    records = []
    for step in range(args.steps):
        rec = grpo_step(llm, model, optimizer, task, step, args, device)
        records.append(rec)
        if on_step is not None:
            on_step(records, llm, task)
        log(f"[{mode}] step {step}: reward {rec['mean_reward']:.3f}, mismatch "
            f"{rec['mismatched_tokens']}/{rec['sampled_tokens']}, max|d| "
            f"{rec['max_abs_delta_logprob']:.3g}, k3 {rec['kl_k3']:.3g}, sample "
            f"{rec['sampling_tokens_per_second']:.0f} tok/s, train "
            f"{rec['training_tokens_per_second']:.0f} tok/s, sync "
            f"{rec['weight_sync_seconds']:.3f} s", flush=True)
    return records, llm, model, task


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="models/SmolLM2-135M-Instruct.Q4_1.gguf",
                    help="a GGUF file, a Hugging Face folder, or random-qwen3[:SEED]")
    ap.add_argument("--backend", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--prompts", type=int, default=4, help="P prompts per step")
    ap.add_argument("--group", type=int, default=4, help="G samples per prompt")
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--clip", type=float, default=0.2, help="PPO clip epsilon")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="engine threads (0 = all cores)")
    ap.add_argument("--kv-cache-tokens", type=int, default=None,
                    help="the engine's KV pool in tokens (default: 0 = the engine's own sizing on "
                         "the CPU; 65536 on CUDA, where the trainer shares the GPU)")
    ap.add_argument("--arms", default="invariant,fast", help="engine modes, comma separated")
    ap.add_argument("--out", default="bench/results/rl/cpu")
    ap.add_argument("--scratch", default="/tmp/bitexact-rl",
                    help="where --model random-qwen3 writes its folder (not --out: 2.4 GB)")
    args = ap.parse_args(argv)
    if args.kv_cache_tokens is None:
        args.kv_cache_tokens = 65536 if args.backend == "cuda" else 0
    for a in args.arms.split(","):
        if a not in ("invariant", "fast"):
            ap.error(f"--arms: {a!r} is not an engine mode (expected invariant and/or fast)")
    if args.steps < 1 or args.prompts < 1 or args.group < 2 or args.max_tokens < 1:
        ap.error("--steps, --prompts, --max-tokens must be >= 1 and --group >= 2")
    return args


def main(argv=None):
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model_path = args.model
    if model_path.startswith("random-qwen3"):
        model_path = str(random_qwen3_folder(model_path, Path(args.scratch)))
    elif not Path(model_path).exists():
        sys.exit(f"grpo: --model {model_path}: no such file or folder (expected a GGUF file, a "
                 "Hugging Face folder, or random-qwen3[:SEED])")
    if args.backend == "cuda" and not torch.cuda.is_available():
        sys.exit("grpo: --backend cuda, but torch sees no CUDA device")
    report = {
        "experiment": "grpo",
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "torch": torch.__version__, "transformers": transformers.__version__,
                    "torch_threads": torch.get_num_threads(),
                    "gpu": torch.cuda.get_device_name() if args.backend == "cuda" else None},
        "settings": {**vars(args), "model": args.model, "command": " ".join(sys.argv)},
        "arms": [],
    }
    for mode in args.arms.split(","):
        arm = {"mode": mode, "fingerprint": None, "steps": []}
        report["arms"].append(arm)

        def save(records, llm, task, arm=arm):  # after every step: a cut-short run keeps them
            arm["steps"] = records
            arm["fingerprint"] = llm.fingerprint
            report["settings"]["task"] = task.name
            (out / "rl.json").write_text(json.dumps(report, indent=1))

        run_arm(model_path, mode, args, on_step=save)
    from report import write_report

    write_report(out / "rl.json")
    print(f"grpo: wrote {out / 'rl.json'} and its report", flush=True)


if __name__ == "__main__":
    main()
