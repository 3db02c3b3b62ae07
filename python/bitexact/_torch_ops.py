"""bitexact's kernels as PyTorch custom ops (torch.library): the forward of each op runs the
engine's own C++ (CPU) or CUDA kernel on the tensors' memory, so it computes the engine's bits
(INVARIANCE.md promise 7, R9); the backward is plain torch (gradients are correct, not invariant).

Every op takes and returns float32 activations (the engine's residual stream). Weights may be
float32, bfloat16 or float16; each op converts them as the engine converts them at load:
  CPU   matmul weights: f32, or bf16 read directly (the bits of its exact f32 widening); other
        weights widened to f32 exactly.
  CUDA  matmul weights and the embedding table rounded to bf16 (round to nearest even, what the
        CUDA backend's upload does), rows zero-padded to a multiple of 8; norm weights in f32;
        activations rounded to bf16 before each GEMM; K and V rounded to the bf16 cache.

Ops (namespace bitexact; torch.compile sees each as one opaque op):
  embedding(table[V,D], ids[T])                      -> [T,D]    out[t] = table[ids[t]]
  rmsnorm(x[M,D], w[D], eps)                         -> [M,D]    (x * r) * w, r = 1/sqrt(ss/D+eps)
  linear(x[M,K], w[N,K])                             -> [M,N]    x @ w^T in the engine's K order
  silu_mul(gate[M,F], up[M,F])                       -> [M,F]    F.silu(gate) * up
  rope(x[T,H*Dh], positions[T], cos, sin, H, adj.)   -> [T,H*Dh] the engine's table and pairs
  attention(q, k, v, positions, seq_ids, n_seqs, capacity, H, Hkv, scale)
                                                     -> [T,H*Dh] causal GQA, packed sequences
  target_logprobs(logits[R,V], targets[R])           -> [R]      log_softmax(logits)[r, target]
"""

from __future__ import annotations

import torch

from . import _core

kernels = _core.torch_kernels

_FAST_MATMUL = False  # tests only: the engine's fast-mode matmul order (the negative control)


def _stream(t: torch.Tensor) -> int:
    return torch.cuda.current_stream(t.device).cuda_stream


def _rows(t: torch.Tensor) -> torch.Tensor:
    """t as a contiguous float32 matrix (a view when it already is one)."""
    return t.to(torch.float32).contiguous()


def _check_cuda_build(t: torch.Tensor) -> None:
    if t.is_cuda and not kernels.has_cuda:
        raise RuntimeError(
            "bitexact.torch: a CUDA tensor was given but this bitexact build has no CUDA kernels "
            "(rebuild where nvcc is found)"
        )


def cuda_weight(w: torch.Tensor) -> torch.Tensor:
    """A matmul weight [N,K] as the CUDA backend holds it: bf16, rows zero-padded to round_up(K, 8)."""
    wb = w.to(torch.bfloat16)
    K = wb.shape[1]
    Kp = (K + 7) // 8 * 8
    if Kp != K:
        wb = torch.nn.functional.pad(wb, (0, Kp - K))
    return wb.contiguous()


# --- linear -----------------------------------------------------------------------------------


@torch.library.custom_op("bitexact::linear", mutates_args=())
def linear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """y[M,N] = x[M,K] @ w[N,K]^T with the engine's matmul (kernels/matmul.h, kernels/cuda/gemm.h)."""
    _check_cuda_build(x)
    if x.dim() != 2 or w.dim() != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(
            f"bitexact.linear: expected x [M, K] and w [N, K], got {list(x.shape)} and {list(w.shape)}"
        )
    x = _rows(x)
    M, K = x.shape
    N = w.shape[0]
    y = torch.empty(M, N, dtype=torch.float32, device=x.device)
    if M == 0 or N == 0:
        return y
    if x.is_cuda:
        with torch.cuda.device(x.device):
            wb = cuda_weight(w)
            Kp = wb.shape[1]
            scratch = torch.empty(M, Kp, dtype=torch.bfloat16, device=x.device)
            kernels.cuda_matmul(x.data_ptr(), K, scratch.data_ptr(), wb.data_ptr(), Kp,
                                y.data_ptr(), N, M, N, K, Kp, _FAST_MATMUL, _stream(x))
        return y
    if w.dtype == torch.bfloat16:
        wc = w.contiguous()
        kernels.cpu_matmul(x.data_ptr(), K, wc.data_ptr(), True, K, y.data_ptr(), N, M, N, K,
                           _FAST_MATMUL)
    else:
        wc = _rows(w)
        kernels.cpu_matmul(x.data_ptr(), K, wc.data_ptr(), False, K, y.data_ptr(), N, M, N, K,
                           _FAST_MATMUL)
    return y


@linear.register_fake
def _(x, w):
    return x.new_empty(x.shape[0], w.shape[0], dtype=torch.float32)


def _linear_setup(ctx, inputs, output):
    x, w = inputs
    ctx.save_for_backward(x, w)


def _linear_backward(ctx, grad):
    # In the weight's dtype (float32 weights: float32; a bf16 model trains in bf16, as unpatched).
    x, w = ctx.saved_tensors
    dt = w.dtype if w.dtype in (torch.float32, torch.bfloat16, torch.float16, torch.float64) else grad.dtype
    grad_x = grad_w = None
    if ctx.needs_input_grad[0]:
        grad_x = (grad.to(dt) @ w.to(dt)).to(x.dtype)
    if ctx.needs_input_grad[1]:
        grad_w = (grad.t().to(dt) @ x.to(dt)).to(w.dtype)
    return grad_x, grad_w


linear.register_autograd(_linear_backward, setup_context=_linear_setup)


# --- rmsnorm ----------------------------------------------------------------------------------


def rmsnorm_reference(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    """The formula in plain torch (the backward differentiates it; the tests use it in float64)."""
    r = torch.rsqrt((x * x).mean(dim=-1, keepdim=True) + eps)
    return (x * r) * w


@torch.library.custom_op("bitexact::rmsnorm", mutates_args=())
def rmsnorm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    """out[m] = (x[m] * r) * w, r = 1 / sqrt(dot(x[m], x[m]) / D + eps) (kernels/rows.h)."""
    _check_cuda_build(x)
    if x.dim() != 2 or w.dim() != 1 or w.shape[0] != x.shape[1]:
        raise ValueError(
            f"bitexact.rmsnorm: expected x [M, D] and w [D], got {list(x.shape)} and {list(w.shape)}"
        )
    x = _rows(x)
    wf = _rows(w)
    M, D = x.shape
    out = torch.empty_like(x)
    if M == 0:
        return out
    if x.is_cuda:
        with torch.cuda.device(x.device):
            kernels.cuda_rmsnorm(x.data_ptr(), D, wf.data_ptr(), eps, out.data_ptr(), D, M, D,
                                 _stream(x))
    else:
        kernels.cpu_rmsnorm(x.data_ptr(), D, wf.data_ptr(), eps, out.data_ptr(), D, M, D)
    return out


@rmsnorm.register_fake
def _(x, w, eps):
    return torch.empty_like(x, dtype=torch.float32)


def _rmsnorm_setup(ctx, inputs, output):
    x, w, eps = inputs
    ctx.eps = eps
    ctx.save_for_backward(x, w)


def _rmsnorm_backward(ctx, grad):
    x, w = ctx.saved_tensors
    with torch.enable_grad():
        xd = x.detach().to(torch.float32).requires_grad_(ctx.needs_input_grad[0])
        wd = w.detach().to(torch.float32).requires_grad_(ctx.needs_input_grad[1])
        out = rmsnorm_reference(xd, wd, ctx.eps)
        wanted = [t for t in (xd, wd) if t.requires_grad]
        grads = list(torch.autograd.grad(out, wanted, grad)) if wanted else []
    grad_x = grads.pop(0).to(x.dtype) if ctx.needs_input_grad[0] else None
    grad_w = grads.pop(0).to(w.dtype) if ctx.needs_input_grad[1] else None
    return grad_x, grad_w, None


rmsnorm.register_autograd(_rmsnorm_backward, setup_context=_rmsnorm_setup)


# --- silu_mul ---------------------------------------------------------------------------------


@torch.library.custom_op("bitexact::silu_mul", mutates_args=())
def silu_mul(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """out = (g / (1 + exp(-g))) * u, F.silu(gate) * up (kernels/rows.h)."""
    _check_cuda_build(gate)
    if gate.dim() != 2 or gate.shape != up.shape:
        raise ValueError(
            f"bitexact.silu_mul: expected gate and up of one shape [M, F], got "
            f"{list(gate.shape)} and {list(up.shape)}"
        )
    gate = _rows(gate)
    up = _rows(up)
    M, F = gate.shape
    out = torch.empty_like(gate)
    if M == 0:
        return out
    if gate.is_cuda:
        with torch.cuda.device(gate.device):
            kernels.cuda_silu_mul(gate.data_ptr(), F, up.data_ptr(), F, out.data_ptr(), F, M, F,
                                  _stream(gate))
    else:
        kernels.cpu_silu_mul(gate.data_ptr(), F, up.data_ptr(), F, out.data_ptr(), F, M, F)
    return out


@silu_mul.register_fake
def _(gate, up):
    return torch.empty_like(gate, dtype=torch.float32)


def _silu_mul_setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _silu_mul_backward(ctx, grad):
    gate, up = ctx.saved_tensors
    s = torch.sigmoid(gate)
    silu = gate * s
    grad_gate = grad * up * (s * (1 + gate * (1 - s)))
    grad_up = grad * silu
    return grad_gate, grad_up


silu_mul.register_autograd(_silu_mul_backward, setup_context=_silu_mul_setup)


# --- embedding --------------------------------------------------------------------------------


@torch.library.custom_op("bitexact::embedding", mutates_args=())
def embedding(table: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """out[t] = table[ids[t]] as the engine holds the table (CPU: f32; CUDA: bf16, widened)."""
    _check_cuda_build(table)
    if table.dim() != 2 or ids.dim() != 1:
        raise ValueError(
            f"bitexact.embedding: expected table [V, D] and ids [T], got {list(table.shape)} and "
            f"{list(ids.shape)}"
        )
    V, D = table.shape
    T = ids.shape[0]
    out = torch.empty(T, D, dtype=torch.float32, device=table.device)
    if T == 0:
        return out
    if table.is_cuda:
        if int(ids.min()) < 0 or int(ids.max()) >= V:
            raise ValueError(f"bitexact.embedding: a token id is outside the vocabulary [0, {V})")
        with torch.cuda.device(table.device):
            tb = table.to(torch.bfloat16).contiguous()
            ids32 = ids.to(device=table.device, dtype=torch.int32).contiguous()
            kernels.cuda_embed(tb.data_ptr(), D, ids32.data_ptr(), out.data_ptr(), D, T, D,
                               _stream(table))
    else:
        tf = _rows(table)
        ids64 = ids.to(torch.int64).contiguous()
        kernels.cpu_embed(tf.data_ptr(), D, V, ids64.data_ptr(), out.data_ptr(), D, T, D)
    return out


@embedding.register_fake
def _(table, ids):
    return table.new_empty(ids.shape[0], table.shape[1], dtype=torch.float32)


def _embedding_setup(ctx, inputs, output):
    table, ids = inputs
    ctx.table_shape = table.shape
    ctx.table_dtype = table.dtype
    ctx.save_for_backward(ids)


def _embedding_backward(ctx, grad):
    (ids,) = ctx.saved_tensors
    grad_table = torch.zeros(ctx.table_shape, dtype=grad.dtype, device=grad.device)
    grad_table.index_add_(0, ids.to(torch.int64), grad)
    return grad_table.to(ctx.table_dtype), None


embedding.register_autograd(_embedding_backward, setup_context=_embedding_setup)


# --- rope -------------------------------------------------------------------------------------


def rope_tables(head_dim: int, theta: float, max_positions: int, scaling: dict | None = None):
    """The engine's cos and sin tables [max_positions, head_dim / 2] (kernels/rope.h
    make_rope_table: double precision, rounded to float). scaling: None or Llama 3's
    {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}."""
    s = scaling or {}
    cos, sin = kernels.rope_table(
        head_dim, float(theta), int(max_positions), scaling is not None,
        float(s.get("factor", 1.0)), float(s.get("low_freq_factor", 1.0)),
        float(s.get("high_freq_factor", 4.0)), int(s.get("original_max_position_embeddings", 8192)),
    )
    half = head_dim // 2
    cos_t = torch.frombuffer(bytearray(cos), dtype=torch.float32).view(max_positions, half)
    sin_t = torch.frombuffer(bytearray(sin), dtype=torch.float32).view(max_positions, half)
    return cos_t, sin_t


def _pair_index(head_dim: int, adjacent: bool):
    """Dims (i0, i1) of the pairs of a head: (2i, 2i+1) adjacent, (i, i + Dh/2) half split."""
    half = head_dim // 2
    return (slice(0, None, 2), slice(1, None, 2)) if adjacent else (slice(0, half), slice(half, None))


@torch.library.custom_op("bitexact::rope", mutates_args=())
def rope(x: torch.Tensor, positions: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
         n_heads: int, adjacent: bool) -> torch.Tensor:
    """Each pair of each head of token t turns by (cos, sin)[positions[t]] (kernels/rope.h):
    x0' = x0 c - x1 s, x1' = x0 s + x1 c, two products then one add."""
    _check_cuda_build(x)
    T, width = x.shape
    head_dim = width // n_heads
    if head_dim * n_heads != width or cos.shape != sin.shape or cos.shape[1] * 2 != head_dim:
        raise ValueError(
            f"bitexact.rope: x [{T}, {width}] is not {n_heads} heads of the table's "
            f"head_dim {cos.shape[1] * 2}"
        )
    out = _rows(x).clone()
    if T == 0:
        return out
    if x.is_cuda:
        pos_host = positions.cpu()  # no wait when the caller passes host positions (patch() does)
        if int(pos_host.min()) < 0 or int(pos_host.max()) >= cos.shape[0]:
            raise ValueError(f"bitexact.rope: a position is outside the table [0, {cos.shape[0]})")
        with torch.cuda.device(x.device):
            pos = pos_host.to(device=x.device, dtype=torch.int32).contiguous()
            c = cos.to(device=x.device, dtype=torch.float32).contiguous()
            s = sin.to(device=x.device, dtype=torch.float32).contiguous()
            kernels.cuda_rope(out.data_ptr(), width, pos.data_ptr(), T, n_heads, head_dim,
                              c.data_ptr(), s.data_ptr(), cos.shape[0], adjacent, _stream(x))
    else:
        pos = positions.to(torch.int32).contiguous()
        c = _rows(cos)
        s = _rows(sin)
        kernels.cpu_rope(out.data_ptr(), width, pos.data_ptr(), T, n_heads, head_dim, c.data_ptr(),
                         s.data_ptr(), cos.shape[0], adjacent)
    return out


@rope.register_fake
def _(x, positions, cos, sin, n_heads, adjacent):
    return torch.empty_like(x, dtype=torch.float32)


def _rope_setup(ctx, inputs, output):
    x, positions, cos, sin, n_heads, adjacent = inputs
    ctx.n_heads = n_heads
    ctx.adjacent = adjacent
    ctx.save_for_backward(positions, cos, sin)


def _rope_backward(ctx, grad):
    positions, cos, sin = ctx.saved_tensors
    T, width = grad.shape
    head_dim = width // ctx.n_heads
    i0, i1 = _pair_index(head_dim, ctx.adjacent)
    g = grad.view(T, ctx.n_heads, head_dim)
    pos = positions.to(grad.device).long()
    c = cos.to(grad.device)[pos].unsqueeze(1).to(grad.dtype)  # [T, 1, Dh/2]
    s = sin.to(grad.device)[pos].unsqueeze(1).to(grad.dtype)
    g0, g1 = g[..., i0], g[..., i1]
    out = torch.empty_like(g)
    # The transpose of the rotation: x0 = g0 c + g1 s, x1 = -g0 s + g1 c.
    out[..., i0] = g0 * c + g1 * s
    out[..., i1] = g1 * c - g0 * s
    return out.view(T, width), None, None, None, None, None


rope.register_autograd(_rope_backward, setup_context=_rope_setup)


# --- attention --------------------------------------------------------------------------------


def attention_reference(q, k, v, positions, seq_ids, n_seqs, capacity, n_heads, n_kv_heads, scale):
    """Causal GQA attention of packed sequences in plain torch (any float dtype): the recompute
    of the backward and the float64 reference of the tests. Sequences are scattered into a
    padded [n_seqs, capacity] layout and attended with a mask (causal within each sequence)."""
    T = q.shape[0]
    head_dim = q.shape[1] // n_heads
    group = n_heads // n_kv_heads
    slot = (seq_ids.long() * capacity + positions.long()).to(q.device)  # [T] slot, padded layout
    qp = q.new_zeros(n_seqs * capacity, n_heads, head_dim).index_copy(0, slot, q.view(T, n_heads, head_dim))
    kp = k.new_zeros(n_seqs * capacity, n_kv_heads, head_dim).index_copy(0, slot, k.view(T, n_kv_heads, head_dim))
    vp = v.new_zeros(n_seqs * capacity, n_kv_heads, head_dim).index_copy(0, slot, v.view(T, n_kv_heads, head_dim))
    qp = qp.view(n_seqs, capacity, n_heads, head_dim).transpose(1, 2)
    kp = kp.view(n_seqs, capacity, n_kv_heads, head_dim).transpose(1, 2).repeat_interleave(group, 1)
    vp = vp.view(n_seqs, capacity, n_kv_heads, head_dim).transpose(1, 2).repeat_interleave(group, 1)
    out = torch.nn.functional.scaled_dot_product_attention(qp, kp, vp, is_causal=True,
                                                           scale=scale)  # [n_seqs, H, cap, Dh]
    out = out.transpose(1, 2).reshape(n_seqs * capacity, n_heads * head_dim)
    return out[slot]


@torch.library.custom_op("bitexact::attention", mutates_args=())
def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, positions: torch.Tensor,
              seq_ids: torch.Tensor, n_seqs: int, capacity: int, n_heads: int, n_kv_heads: int,
              scale: float) -> torch.Tensor:
    """Causal GQA attention (kernels/attention.h, kernels/cuda/attention.h) of packed sequences
    (positions and seq_ids may stay on the host: the CUDA path plans there, without a wait):
    token t of sequence seq_ids[t] at position positions[t] attends to positions 0..p of its own
    sequence, in the engine's position-aligned chunks, K and V read back from a cache in the
    engine's cache dtype (f32 on the CPU, bf16 on CUDA). Every position 0..p of a token's sequence
    must be one of the tokens."""
    _check_cuda_build(q)
    T = q.shape[0]
    head_dim = q.shape[1] // n_heads
    if (q.dim() != 2 or head_dim * n_heads != q.shape[1] or k.shape != (T, n_kv_heads * head_dim)
            or v.shape != k.shape or positions.shape != (T,) or seq_ids.shape != (T,)):
        raise ValueError(
            f"bitexact.attention: expected q [T, {n_heads} * Dh], k and v [T, {n_kv_heads} * Dh], "
            f"positions and seq_ids [T]; got q {list(q.shape)}, k {list(k.shape)}, "
            f"v {list(v.shape)}, positions {list(positions.shape)}, seq_ids {list(seq_ids.shape)}"
        )
    q, k, v = _rows(q), _rows(k), _rows(v)
    out = torch.empty_like(q)
    if T == 0:
        return out
    width, kv_width = q.shape[1], k.shape[1]
    if q.is_cuda:
        pos_host = positions.to("cpu", torch.int32).contiguous()
        seq_host = seq_ids.to("cpu", torch.int32).contiguous()
        if int(seq_host.min()) < 0 or int(seq_host.max()) >= n_seqs or int(pos_host.min()) < 0:
            raise ValueError(f"bitexact.attention: a sequence id is outside [0, {n_seqs}) or a "
                             "position is negative")
        split = kernels.cuda_attention_split
        with torch.cuda.device(q.device):
            stream = _stream(q)
            floats = kernels.cuda_attention_plan(pos_host.data_ptr(), seq_host.data_ptr(), T,
                                                 n_heads, head_dim, split, stream)
            pos = pos_host.to(q.device)
            seq = seq_host.to(q.device)
            blocks = torch.arange(n_seqs, dtype=torch.int32, device=q.device)
            k_cache = torch.empty(n_seqs, capacity, n_kv_heads, head_dim, dtype=torch.bfloat16,
                                  device=q.device)
            v_cache = torch.empty_like(k_cache)
            workspace = torch.empty(max(floats, 1), dtype=torch.float32, device=q.device)
            kernels.cuda_attention(q.data_ptr(), width, k.data_ptr(), kv_width, v.data_ptr(),
                                   kv_width, out.data_ptr(), width, pos.data_ptr(), seq.data_ptr(),
                                   blocks.data_ptr(), T, n_seqs, capacity, n_heads, n_kv_heads,
                                   head_dim, scale, k_cache.data_ptr(), v_cache.data_ptr(),
                                   workspace.data_ptr(), floats, split, stream)
        return out
    pos = positions.to(torch.int32).contiguous()
    seq = seq_ids.to(torch.int32).contiguous()
    k_cache = torch.empty(n_seqs, capacity, n_kv_heads, head_dim, dtype=torch.float32)
    v_cache = torch.empty_like(k_cache)
    kernels.cpu_attention(q.data_ptr(), width, k.data_ptr(), kv_width, v.data_ptr(), kv_width,
                          out.data_ptr(), width, pos.data_ptr(), seq.data_ptr(), T, n_seqs,
                          capacity, n_heads, n_kv_heads, head_dim, scale, k_cache.data_ptr(),
                          v_cache.data_ptr())
    return out


@attention.register_fake
def _(q, k, v, positions, seq_ids, n_seqs, capacity, n_heads, n_kv_heads, scale):
    return torch.empty_like(q, dtype=torch.float32)


def _attention_setup(ctx, inputs, output):
    q, k, v, positions, seq_ids, n_seqs, capacity, n_heads, n_kv_heads, scale = inputs
    ctx.shape = (n_seqs, capacity, n_heads, n_kv_heads, scale)
    ctx.save_for_backward(q, k, v, positions, seq_ids)


def _attention_backward(ctx, grad):
    q, k, v, positions, seq_ids = ctx.saved_tensors
    n_seqs, capacity, n_heads, n_kv_heads, scale = ctx.shape
    # Recompute in plain torch and differentiate that: float32 on the CPU, bf16 on CUDA (torch's
    # flash-attention backward, the precision of an unpatched bf16 trainer).
    dt = torch.bfloat16 if q.is_cuda else torch.float32
    with torch.enable_grad():
        qd, kd, vd = (t.detach().to(dt).requires_grad_(True) for t in (q, k, v))
        out = attention_reference(qd, kd, vd, positions, seq_ids, n_seqs, capacity, n_heads,
                                  n_kv_heads, scale)
        gq, gk, gv = torch.autograd.grad(out, (qd, kd, vd), grad.to(dt))
    return gq.to(q.dtype), gk.to(k.dtype), gv.to(v.dtype), None, None, None, None, None, None, None


attention.register_autograd(_attention_backward, setup_context=_attention_setup)


# --- target logprobs --------------------------------------------------------------------------


@torch.library.custom_op("bitexact::target_logprobs", mutates_args=())
def target_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log_softmax(logits[r])[targets[r]] with the engine's log-softmax (kernels/rows.h: exp_f32
    and log_f32 on the CPU; expf and logf on CUDA)."""
    _check_cuda_build(logits)
    if logits.dim() != 2 or targets.shape != (logits.shape[0],):
        raise ValueError(
            f"bitexact.target_logprobs: expected logits [R, V] and targets [R], got "
            f"{list(logits.shape)} and {list(targets.shape)}"
        )
    logits = _rows(logits)
    R, V = logits.shape
    if R and (int(targets.min()) < 0 or int(targets.max()) >= V):
        raise ValueError(f"bitexact.target_logprobs: a target is outside the vocabulary [0, {V})")
    logprobs = torch.empty_like(logits)
    if R:
        if logits.is_cuda:
            with torch.cuda.device(logits.device):
                kernels.cuda_log_softmax(logits.data_ptr(), V, logprobs.data_ptr(), V, R, V,
                                         _stream(logits))
        else:
            kernels.cpu_log_softmax(logits.data_ptr(), V, logprobs.data_ptr(), V, R, V)
    return logprobs.gather(1, targets.to(logits.device, torch.int64).view(R, 1)).view(R)


@target_logprobs.register_fake
def _(logits, targets):
    return logits.new_empty(logits.shape[0], dtype=torch.float32)


def _target_logprobs_setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _target_logprobs_backward(ctx, grad):
    logits, targets = ctx.saved_tensors
    # d/dlogits log_softmax(logits)[t] = onehot(t) - softmax(logits)
    g = -torch.softmax(logits.to(torch.float32), dim=-1) * grad.unsqueeze(1)
    g.scatter_add_(1, targets.long().view(-1, 1), grad.view(-1, 1))
    return g.to(logits.dtype), None


target_logprobs.register_autograd(_target_logprobs_backward, setup_context=_target_logprobs_setup)
