"""torch SDPA on the prefill shapes of attention_bench, with each backend the device's torch offers
(flash, cuDNN, memory-efficient): causal, 1 x 4096 and 8 x 1024 tokens, 32 query heads, head dim
128, bf16, 8 KV heads (GQA) and 32. Prints the same table rows as attention_bench ("torch SDPA
BACKEND" rows) so the two stand side by side in one run, then the fastest backend per shape
("best" rows), which issue 22's target compares against.
Timing: CUDA events, 3 warm-up calls, median of 20. A backend that refuses a shape prints
"unsupported" instead of a time."""
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

BACKENDS = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
            "efficient": SDPBackend.EFFICIENT_ATTENTION}


def median_us(fn) -> float:
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(20):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        torch.cuda.synchronize()
        times.append(s.elapsed_time(e) * 1000.0)
    return sorted(times)[len(times) // 2]


def bench(batch: int, T: int, n_kv: int, best: dict) -> None:
    H, D = 32, 128
    q = torch.randn(batch, H, T, D, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(batch, n_kv, T, D, device="cuda", dtype=torch.bfloat16)
    v = torch.randn(batch, n_kv, T, D, device="cuda", dtype=torch.bfloat16)
    flops = 4.0 * batch * T * T * H * D / 2
    shape = f"{batch}x{T} causal"
    for name, backend in BACKENDS.items():
        kk, vv, note = k, v, ""
        if n_kv != H:  # GQA: K and V expanded outside the timed region, for every backend
            kk = k.repeat_interleave(H // n_kv, dim=1)
            vv = v.repeat_interleave(H // n_kv, dim=1)
            note = " (K,V expanded)"
        try:
            with sdpa_kernel(backend):
                us = median_us(lambda: F.scaled_dot_product_attention(q, kk, vv, is_causal=True))
        except RuntimeError as e:
            print(f"| torch SDPA {name} {shape} | {H} | {n_kv} | unsupported | "
                  f"{str(e).splitlines()[0][:60]} |")
            continue
        tflops = flops / (us * 1e-6) / 1e12
        print(f"| torch SDPA {name} {shape}{note} | {H} | {n_kv} | {us:.1f} | {tflops:.0f} |")
        key = (shape, n_kv)
        if key not in best or tflops > best[key][1]:
            best[key] = (name, tflops, us)


if __name__ == "__main__":
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    best = {}
    for batch, T in ((1, 4096), (8, 1024)):
        for n_kv in (8, 32):
            bench(batch, T, n_kv, best)
    for (shape, n_kv), (name, tflops, us) in best.items():
        print(f"| torch SDPA best ({name}) {shape} | 32 | {n_kv} | {us:.1f} | {tflops:.0f} |")
