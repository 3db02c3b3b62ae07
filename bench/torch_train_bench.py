"""Trainer speed: forward + backward tokens/s of a transformers model patched with bitexact.torch
against the same model unpatched (same weights, same dtype, SDPA attention), in one run.

    PYTHONPATH=build/python .venv/bin/python bench/torch_train_bench.py --shape smollm2-135m --device cpu
    PYTHONPATH=build/python .venv/bin/python bench/torch_train_bench.py --shape qwen3-8b --device cuda

Random weights from a transformers config of the named shape (nothing downloaded). One step is
the per-token logprobs of the targets for a [batch, length] batch (right padded: the last row is
length * 3/4 long), their sum, and backward to every parameter. The unpatched step is
log_softmax(model(input_ids, attention_mask).logits) gathered at the targets. Prints the median
step time of each and the ratio patched / unpatched in tokens/s."""

import argparse
import platform
import statistics
import time

import torch
import transformers

import bitexact.torch as bxt

SHAPES = {
    # SmolLM2-135M-Instruct, the default model.
    "smollm2-135m": (transformers.LlamaConfig, dict(
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
        num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
        rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True)),
    # Qwen3-8B.
    "qwen3-8b": (transformers.Qwen3Config, dict(
        vocab_size=151936, hidden_size=4096, intermediate_size=12288, num_hidden_layers=36,
        num_attention_heads=32, num_key_value_heads=8, head_dim=128,
        max_position_embeddings=40960, rms_norm_eps=1e-6, rope_theta=1000000.0,
        tie_word_embeddings=False)),
}


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(step, device, steps, warmup):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        sync(device)
        t0 = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="smollm2-135m")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default=None,
                    help="the model's dtype (default: float32 on the CPU, bfloat16 on CUDA)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--length", type=int, default=256)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="after timing, profile one step of each and print the N costliest ops")
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32"))

    config_class, fields = SHAPES[args.shape]
    config = config_class(**fields)
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device(args.device):
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())

    B, L = args.batch, args.length
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, config.vocab_size, (B, L), generator=g)
    mask = torch.ones(B, L, dtype=torch.int64)
    mask[-1, L * 3 // 4:] = 0
    targets = torch.roll(ids, -1, 1)
    ids, mask, targets = ids.to(args.device), mask.to(args.device), targets.to(args.device)
    tokens = int(mask.sum())

    def unpatched_step():
        model.zero_grad(set_to_none=True)
        logits = model(input_ids=ids, attention_mask=mask).logits
        lp = torch.log_softmax(logits.float(), -1).gather(2, targets.unsqueeze(2)).squeeze(2)
        (lp * mask).sum().backward()

    def patched_step():
        model.zero_grad(set_to_none=True)
        lp = bxt.token_logprobs(model, ids, targets, attention_mask=mask)
        lp.sum().backward()

    tables = []
    t_plain = timed(unpatched_step, args.device, args.steps, args.warmup)
    if args.profile:
        tables.append(profile("unpatched", unpatched_step, args.device, args.profile))
    bxt.patch(model)
    t_patched = timed(patched_step, args.device, args.steps, args.warmup)
    if args.profile:
        tables.append(profile("bitexact.torch", patched_step, args.device, args.profile))
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or platform.machine()
    print(f"shape {args.shape} ({n_params / 1e6:.0f} M parameters, {dtype}), device {args.device} "
          f"({device}, {torch.get_num_threads()} CPU threads), batch {B} x {L} ({tokens} tokens)")
    print(f"unpatched (SDPA): {t_plain * 1e3:9.1f} ms/step  {tokens / t_plain:10.0f} tokens/s")
    print(f"bitexact.torch:   {t_patched * 1e3:9.1f} ms/step  {tokens / t_patched:10.0f} tokens/s")
    print(f"ratio patched/unpatched tokens/s: {t_plain / t_patched:.2f}x")
    for table in tables:
        print(table)


def profile(name, step, device, rows):
    """One step under torch.profiler: the `rows` ops with the most device (or CPU) self time."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.startswith("cuda"):
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        step()
        sync(device)
    key = "self_cuda_time_total" if device.startswith("cuda") else "self_cpu_time_total"
    return (f"\n{name}: one step, the {rows} ops with the most self time\n"
            + prof.key_averages().table(sort_by=key, row_limit=rows, max_name_column_width=60))


if __name__ == "__main__":
    main()
