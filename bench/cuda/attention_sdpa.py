"""torch SDPA (flash backend) on the prefill shapes of attention_bench: causal, 1 x 4096 tokens,
32 query heads, head dim 128, bf16; 8 KV heads (enable_gqa) and 32. Prints the same table rows
as attention_bench ("torch SDPA flash" rows) so the two stand side by side in one run.
Timing: CUDA events, 3 warm-up calls, median of 20."""
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


def bench(n_kv: int) -> None:
    T, H, D = 4096, 32, 128
    q = torch.randn(1, H, T, D, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(1, n_kv, T, D, device="cuda", dtype=torch.bfloat16)
    v = torch.randn(1, n_kv, T, D, device="cuda", dtype=torch.bfloat16)
    gqa = n_kv != H
    if gqa:  # the flash kernel takes GQA by expanding K and V outside the timed region
        k = k.repeat_interleave(H // n_kv, dim=1)
        v = v.repeat_interleave(H // n_kv, dim=1)
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        for _ in range(3):
            F.scaled_dot_product_attention(q, k, v, is_causal=True)
        torch.cuda.synchronize()
        times = []
        for _ in range(20):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            F.scaled_dot_product_attention(q, k, v, is_causal=True)
            e.record()
            torch.cuda.synchronize()
            times.append(s.elapsed_time(e) * 1000.0)
    us = sorted(times)[len(times) // 2]
    flops = 4.0 * T * T * H * D / 2
    print(f"| torch SDPA flash 1x{T} causal{' (K,V expanded)' if gqa else ''} | {H} | {n_kv} | "
          f"{us:.1f} | {flops / (us * 1e-6) / 1e12:.0f} |")


if __name__ == "__main__":
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    bench(8)
    bench(32)
