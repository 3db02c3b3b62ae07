"""bitexact.torch's ops on CPU tensors, each three ways (INVARIANCE.md "How invariance is tested"):
T1 bitwise against a plain reference on inputs where the arithmetic is exact (or where every step
is one IEEE operation torch performs the same way), T2 forward and gradients against float64
autograd within stated bounds, T3 a row (or a sequence) alone equals the same row inside a batch,
with a negative control (the engine's fast-mode matmul order) that shows the check can fail."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
bxt = pytest.importorskip("bitexact.torch")
ops = pytest.importorskip("bitexact._torch_ops")


def ints(*shape, lo=-4, hi=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(lo, hi, shape, generator=g).to(torch.float32)


def randn(*shape, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)


def rel_err(got, want):
    got, want = got.detach().double(), want.detach()
    return float((got - want).abs().max() / want.abs().max().clamp_min(1e-30))


# --- T1 ---------------------------------------------------------------------------------------


def test_linear_exact_on_small_integers():
    # Every partial sum is an integer below 2^24: any order gives the float64 product's value.
    for M, N, K in [(1, 3, 1), (5, 7, 33), (17, 40, 100), (3, 2, 16)]:
        x, w = ints(M, K, seed=M), ints(N, K, seed=N)
        assert torch.equal(bxt.linear(x, w), (x.double() @ w.double().t()).float())
        # bf16 weights are read as their exact widening (small integers are bf16 values).
        assert torch.equal(bxt.linear(x, w.to(torch.bfloat16)), bxt.linear(x, w))


def test_rmsnorm_exact_steps_on_small_integers():
    # ss = dot(x, x) is exact on small integers; the rest is r = 1 / sqrt(ss / D + eps) and
    # (x * r) * w, single IEEE float32 operations, as numpy computes them (torch's 1 / t is not
    # always the correctly rounded quotient).
    x, w = ints(6, 48, seed=1), randn(48, seed=2)
    eps = 1e-5
    xn, wn = x.numpy(), w.numpy()
    ss = (xn.astype(np.float64) ** 2).sum(axis=1, keepdims=True).astype(np.float32)
    r = np.float32(1) / np.sqrt(ss / np.float32(48) + np.float32(eps))
    assert torch.equal(bxt.rmsnorm(x, w, eps), torch.from_numpy((xn * r) * wn))


def test_rope_matches_the_formula_with_the_engine_table():
    T, H, Dh = 9, 3, 16
    cos, sin = bxt.rope_tables(Dh, 10000.0, 64)
    # The engine's table: cos(p * theta^(-2i/Dh)) in double, rounded to float.
    p, i = 5, 3
    assert cos[p, i].item() == float(torch.tensor(math.cos(p * 10000.0 ** (-2 * i / Dh)), dtype=torch.float32))
    x = randn(T, H * Dh, seed=3)
    pos = torch.tensor([0, 1, 2, 3, 10, 11, 63, 7, 0], dtype=torch.int32)
    for adjacent in (False, True):
        i0, i1 = ops._pair_index(Dh, adjacent)
        xh = x.view(T, H, Dh)
        c, s = cos[pos.long()].unsqueeze(1), sin[pos.long()].unsqueeze(1)
        want = xh.clone()
        want[..., i0] = xh[..., i0] * c - xh[..., i1] * s
        want[..., i1] = xh[..., i0] * s + xh[..., i1] * c
        assert torch.equal(bxt.rope(x, pos, cos, sin, H, adjacent), want.view(T, H * Dh))


def test_embedding_is_the_row():
    table, ids = randn(50, 12, seed=4), torch.tensor([3, 0, 49, 3])
    assert torch.equal(bxt.embedding(table, ids), table[ids])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        bxt.embedding(table, torch.tensor([50]))


def packed(lengths):
    seq = torch.cat([torch.full((n,), s, dtype=torch.int32) for s, n in enumerate(lengths)])
    pos = torch.cat([torch.arange(n, dtype=torch.int32) for n in lengths])
    return pos, seq


def test_attention_exact_with_zero_queries():
    # q = 0: every score is 0, every weight exp(0) = 1, so out = (sum of v over 0..p) / (p + 1),
    # with integer v an exact sum and one rounding: the chunks (64) and GQA mapping show in it.
    lengths, H, Hkv, Dh = [3, 130, 1], 4, 2, 8
    pos, seq = packed(lengths)
    T = len(pos)
    q = torch.zeros(T, H * Dh)
    k, v = randn(T, Hkv * Dh, seed=5), ints(T, Hkv * Dh, seed=6)
    out = bxt.attention(q, k, v, pos, seq, len(lengths), max(lengths), H, Hkv, 0.25).view(T, H, Dh)
    vh = v.view(T, Hkv, Dh)
    for t in range(T):
        first = t - int(pos[t])
        total = vh[first:t + 1].double().sum(dim=0).float()  # exact integers
        want = total / torch.tensor(float(pos[t] + 1))
        for h in range(H):
            assert torch.equal(out[t, h], want[h // (H // Hkv)]), (t, h)


# --- T2 ---------------------------------------------------------------------------------------


def grads(fn, *inputs):
    inputs = [t.detach().clone().requires_grad_(t.is_floating_point()) for t in inputs]
    out = fn(*inputs)
    g = randn(*out.shape, seed=99, dtype=out.dtype)
    wanted = [t for t in inputs if t.requires_grad]
    return out, torch.autograd.grad(out, wanted, g)


def check_t2(op, ref, inputs, fwd_bound, grad_bound):
    out, got = grads(op, *inputs)
    out64, want = grads(ref, *[t.double() if t.is_floating_point() else t for t in inputs])
    assert rel_err(out, out64) < fwd_bound
    for a, b in zip(got, want):
        assert a.dtype == torch.float32
        assert rel_err(a, b) < grad_bound


def test_linear_t2():
    check_t2(bxt.linear, lambda x, w: x @ w.t(), [randn(7, 96, seed=7), randn(20, 96, seed=8)],
             1e-6, 1e-6)


def test_rmsnorm_t2():
    check_t2(lambda x, w: bxt.rmsnorm(x, w, 1e-6), lambda x, w: bxt.rmsnorm_reference(x, w, 1e-6),
             [randn(5, 64, seed=9), randn(64, seed=10)], 1e-6, 1e-5)


def test_silu_mul_t2():
    check_t2(bxt.silu_mul, lambda g, u: torch.nn.functional.silu(g) * u,
             [randn(4, 33, seed=11) * 4, randn(4, 33, seed=12)], 1e-6, 1e-6)


def test_rope_t2():
    cos, sin = bxt.rope_tables(16, 10000.0, 32)
    pos = torch.tensor([0, 5, 31, 2], dtype=torch.int32)

    def ref(x):
        xh = x.view(4, 2, 16)
        c, s = cos.double()[pos.long()].unsqueeze(1), sin.double()[pos.long()].unsqueeze(1)
        return torch.cat([xh[..., :8] * c - xh[..., 8:] * s, xh[..., :8] * s + xh[..., 8:] * c], -1).view(4, 32)

    check_t2(lambda x: bxt.rope(x, pos, cos, sin, 2, False), ref, [randn(4, 32, seed=13)], 1e-6, 1e-6)


def test_attention_t2():
    lengths, H, Hkv, Dh = [5, 70], 4, 2, 16
    pos, seq = packed(lengths)
    T = len(pos)
    args = (pos, seq, 2, 70, H, Hkv, 0.25)
    check_t2(lambda q, k, v: bxt.attention(q, k, v, *args),
             lambda q, k, v: bxt.attention_reference(q, k, v, *args),
             [randn(T, H * Dh, seed=14), randn(T, Hkv * Dh, seed=15), randn(T, Hkv * Dh, seed=16)],
             1e-5, 1e-5)


def test_target_logprobs_t2():
    targets = torch.tensor([0, 99, 5])
    check_t2(lambda x: bxt.target_logprobs(x, targets),
             lambda x: torch.log_softmax(x, -1).gather(1, targets.view(3, 1)).view(3),
             [randn(3, 100, seed=17) * 3], 1e-6, 1e-5)


def test_embedding_gradient_accumulates_repeated_ids():
    table = randn(10, 4, seed=18).requires_grad_(True)
    ids = torch.tensor([2, 7, 2])
    g = randn(3, 4, seed=19)
    bxt.embedding(table, ids).backward(g)
    want = torch.zeros(10, 4)
    want[2] = g[0] + g[2]
    want[7] = g[1]
    assert torch.allclose(table.grad, want, rtol=0, atol=1e-6)


# --- T3 ---------------------------------------------------------------------------------------


def test_rows_alone_equal_rows_in_a_batch():
    x, w, nw = randn(64, 200, seed=20), randn(96, 200, seed=21), randn(200, seed=22)
    batch_linear, batch_norm = bxt.linear(x, w), bxt.rmsnorm(x, nw, 1e-5)
    logits, targets = randn(64, 300, seed=23), torch.arange(64)
    batch_lp = bxt.target_logprobs(logits, targets)
    for i in (0, 13, 63):
        assert torch.equal(bxt.linear(x[i:i + 1], w), batch_linear[i:i + 1])
        assert torch.equal(bxt.rmsnorm(x[i:i + 1], nw, 1e-5), batch_norm[i:i + 1])
        assert torch.equal(bxt.target_logprobs(logits[i:i + 1], targets[i:i + 1]), batch_lp[i:i + 1])


def test_negative_control_fast_mode_matmul_depends_on_the_batch():
    # The engine's fast mode splits K by M (matmul.h split_k_by_m): the same row differs alone
    # and in a batch, so the T3 check above can fail.
    # 63 rows: K in 1 + 63 % 3 = 1 part; one row: 1 + 1 % 3 = 2 parts.
    x, w = randn(63, 200, seed=20), randn(96, 200, seed=21)
    ops._FAST_MATMUL = True
    try:
        batch = bxt.linear(x, w)
        alone = bxt.linear(x[:1], w)
    finally:
        ops._FAST_MATMUL = False
    assert not torch.equal(alone, batch[:1])


def test_sequence_alone_equals_the_sequence_packed_with_others():
    H, Hkv, Dh = 4, 1, 32
    lengths = [7, 150, 1, 64]
    pos, seq = packed(lengths)
    T = len(pos)
    q, k, v = randn(T, H * Dh, seed=24), randn(T, Hkv * Dh, seed=25), randn(T, Hkv * Dh, seed=26)
    together = bxt.attention(q, k, v, pos, seq, 4, 150, H, Hkv, 0.2)
    start = 0
    for n in lengths:
        sl = slice(start, start + n)
        alone = bxt.attention(q[sl], k[sl], v[sl], pos[sl], torch.zeros(n, dtype=torch.int32), 1,
                              n, H, Hkv, 0.2)
        assert torch.equal(alone, together[sl])
        start += n
    # Negative control: the float64 reference recomputed in float32 by torch's SDPA (not the
    # engine's chunk order) gives other bits.
    ref32 = bxt.attention_reference(q, k, v, pos, seq, 4, 150, H, Hkv, 0.2)
    assert not torch.equal(ref32, together)


def test_bad_arguments_say_what_is_wrong():
    with pytest.raises(ValueError, match="expected x \\[M, K\\] and w \\[N, K\\]"):
        bxt.linear(torch.zeros(2, 3), torch.zeros(4, 5))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        bxt.target_logprobs(torch.zeros(1, 4), torch.tensor([4]))
    cos, sin = bxt.rope_tables(8, 10000.0, 4)
    with pytest.raises(ValueError, match="outside the rope table"):
        bxt.rope(torch.zeros(1, 8), torch.tensor([4], dtype=torch.int32), cos, sin, 1, False)


def test_opaque_to_torch_compile():
    x, w = randn(3, 32, seed=27), randn(8, 32, seed=28)
    compiled = torch.compile(lambda a, b: bxt.linear(a, b) * 2, backend="eager", fullgraph=True)
    assert torch.equal(compiled(x, w), bxt.linear(x, w) * 2)
    # The op is registered with torch.library, so its fake kernel gives shapes without running it.
    torch.library.opcheck(torch.ops.bitexact.linear.default, (x, w))
