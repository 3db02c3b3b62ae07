"""patch(model): a transformers Llama / Mistral / Qwen2 / Qwen3 causal LM computing with bitexact's
ops, in place (the modules keep their parameters: nothing is copied), and token_logprobs, the
per-token logprobs of given targets: the engine's bits for the same tokens and weights, whatever
the batch, its padding or its packing (INVARIANCE.md promise 7).

The engine's forward pass (src/model/llama.cpp), which the patched modules compute op for op:
  x = embed[tokens]                                                       [T, D] f32
  per layer:  h = rmsnorm(x);  q, k, v = h Wq^T (+bq), h Wk^T (+bk), h Wv^T (+bv)
              q, k = rope(q_norm(q)), rope(k_norm(k))      (per-head norms: Qwen3 only)
              x = x + (attention(q, k, v) Wo^T (+bo))
              h = rmsnorm(x);  x = x + (silu(h Wg^T) * (h Wu^T)) Wd^T
  logits = rmsnorm(x) Wout^T;  logprobs = log_softmax(logits)
Biases and the residual adds are single f32 additions after the matmul (R3), which torch's
float32 add computes exactly as the engine does.

A batch is flattened to its real tokens (the engine never sees padding): a [B, L] batch with an
attention_mask (1 = token; each row one run of ones, left or right padded) or a packed [1, T]
(or [T]) batch with cu_seqlens [n+1]. Each sequence's positions start at 0 at its first token.
"""

from __future__ import annotations

import types
from dataclasses import dataclass

import torch

from . import _torch_ops as ops

SUPPORTED = ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM")


@dataclass
class BatchLayout:
    """Where a batch's real tokens are and where they sit in their sequences."""

    index: torch.Tensor  # [T] int64: the tokens' indices in the flattened input
    positions: torch.Tensor  # [T] int32: position in its sequence (0 = first token)
    seq_ids: torch.Tensor  # [T] int32: its sequence
    n_seqs: int
    capacity: int  # >= the longest sequence
    shape: tuple  # the input's shape


def layout_from_mask(attention_mask: torch.Tensor) -> BatchLayout:
    if attention_mask.dim() != 2:
        raise ValueError(
            f"bitexact.torch: attention_mask must be [batch, length], got {list(attention_mask.shape)}"
        )
    mask = attention_mask.to("cpu") != 0
    B, L = mask.shape
    lengths = mask.sum(dim=1)
    # Each row one run of ones: its first token is where the run starts.
    first = torch.where(lengths > 0, mask.int().argmax(dim=1), torch.zeros_like(lengths))
    cols = torch.arange(L).expand(B, L)
    expected = (cols >= first[:, None]) & (cols < (first + lengths)[:, None])
    if not torch.equal(expected, mask):
        bad = int((expected != mask).any(dim=1).int().argmax())
        raise ValueError(
            f"bitexact.torch: row {bad} of attention_mask is not one run of ones (left or right "
            "padding); pass a packed batch with cu_seqlens instead"
        )
    index = mask.reshape(-1).nonzero().view(-1)
    positions = (cols - first[:, None]).reshape(-1)[index].to(torch.int32)
    seq_ids = torch.arange(B).repeat_interleave(L)[index].to(torch.int32)
    return BatchLayout(index, positions, seq_ids, B, max(int(lengths.max()), 1) if B else 1, (B, L))


def layout_from_cu_seqlens(cu_seqlens: torch.Tensor, total: int, shape: tuple) -> BatchLayout:
    cu = cu_seqlens.to("cpu", torch.int64).view(-1)
    if cu.numel() < 2 or int(cu[0]) != 0 or int(cu[-1]) != total or bool((cu[1:] < cu[:-1]).any()):
        raise ValueError(
            f"bitexact.torch: cu_seqlens must rise from 0 to the {total} packed tokens, got "
            f"{cu.tolist()[:16]}"
        )
    lengths = cu[1:] - cu[:-1]
    n = lengths.numel()
    seq_ids = torch.arange(n).repeat_interleave(lengths)
    positions = torch.arange(total) - cu[:-1][seq_ids]
    return BatchLayout(torch.arange(total), positions.to(torch.int32), seq_ids.to(torch.int32), n,
                       max(int(lengths.max()), 1), shape)


def make_layout(input_ids: torch.Tensor, attention_mask=None, cu_seqlens=None) -> BatchLayout:
    if cu_seqlens is not None:
        if attention_mask is not None:
            raise ValueError("bitexact.torch: pass attention_mask or cu_seqlens, not both")
        if input_ids.dim() == 2 and input_ids.shape[0] != 1:
            raise ValueError(
                f"bitexact.torch: a packed batch is [1, T] or [T], got {list(input_ids.shape)}"
            )
        return layout_from_cu_seqlens(cu_seqlens, input_ids.numel(), tuple(input_ids.shape))
    if input_ids.dim() == 1:
        input_ids = input_ids.view(1, -1)
    if attention_mask is None:
        attention_mask = torch.ones(input_ids.shape, dtype=torch.int64)
    if tuple(attention_mask.shape) != tuple(input_ids.shape):
        raise ValueError(
            f"bitexact.torch: attention_mask {list(attention_mask.shape)} does not match "
            f"input_ids {list(input_ids.shape)}"
        )
    return layout_from_mask(attention_mask)


def _rope_config(config):
    """(theta, llama3 scaling or None) from a transformers config (rope_parameters or the older
    rope_theta / rope_scaling), as the engine reads config.json (src/model/hf_config.cpp)."""
    params = getattr(config, "rope_parameters", None) or {}
    scaling = getattr(config, "rope_scaling", None) or {}
    theta = params.get("rope_theta", getattr(config, "rope_theta", None))
    theta = 10000.0 if theta is None else float(theta)
    kind = params.get("rope_type", scaling.get("rope_type", scaling.get("type", "default")))
    source = params if params.get("rope_type") == "llama3" else scaling
    if kind == "llama3":
        return theta, dict(source)
    if kind not in ("default", None):
        raise ValueError(
            f"bitexact.torch: rope type {kind!r} is not supported: expected default or llama3"
        )
    return theta, None


class EngineState:
    """What the patched modules share: the engine's shapes, rope table and layout."""

    def __init__(self, model, rope_layout: str):
        c = model.config
        self.n_heads = c.num_attention_heads
        self.n_kv_heads = getattr(c, "num_key_value_heads", None) or self.n_heads
        self.head_dim = getattr(c, "head_dim", None) or c.hidden_size // self.n_heads
        if rope_layout not in ("half_split", "adjacent_pairs"):
            raise ValueError(
                f"bitexact.torch: rope_layout {rope_layout!r}: expected half_split (Hugging Face "
                "folders) or adjacent_pairs (GGUF files)"
            )
        self.adjacent = rope_layout == "adjacent_pairs"
        # A sliding window W below the context: the engine serves positions < W only (where the
        # window changes nothing) and so does the trainer (src/model/hf_config.h).
        self.max_positions = c.max_position_embeddings
        window = getattr(c, "sliding_window", None)
        uses_window = type(model).__name__ == "MistralForCausalLM" or getattr(c, "use_sliding_window", False)
        if uses_window and window:
            self.max_positions = min(self.max_positions, int(window))
        theta, scaling = _rope_config(c)
        self.cos, self.sin = ops.rope_tables(self.head_dim, theta, self.max_positions, scaling)
        # 1.0f / sqrt(float(head_dim)), in float32 as the engine computes it.
        self.scale = float(torch.tensor(1.0) / torch.sqrt(torch.tensor(float(self.head_dim))))
        half = self.head_dim // 2
        # GGUF's q/k rows are permuted so that pair i is dims (2i, 2i+1): the activations of a
        # Hugging Face layout model reordered the same way (an exact gather).
        self.to_adjacent = torch.stack([torch.arange(half), torch.arange(half) + half], 1).view(-1)
        self.layout: BatchLayout | None = None

    def tables(self, device):
        if self.cos.device != device:
            self.cos, self.sin = self.cos.to(device), self.sin.to(device)
        return self.cos, self.sin


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(-1, x.shape[-1])


def _rmsnorm_forward(self, x):
    return ops.rmsnorm(_flat(x), self.weight, float(self.variance_epsilon)).view(x.shape)


def _linear_forward(self, x):
    y = ops.linear(_flat(x), self.weight)
    if self.bias is not None:
        y = y + self.bias.to(torch.float32)  # one f32 add after the matmul (R3)
    return y.view(*x.shape[:-1], y.shape[-1])


def _mlp_forward(self, x):
    # down(F.silu(gate(x)) * up(x))
    return self.down_proj(ops.silu_mul(self.gate_proj(x), self.up_proj(x)))


def _attention_forward(self, x, state: EngineState):
    layout = state.layout
    T = x.shape[0]
    H, Hkv, Dh = state.n_heads, state.n_kv_heads, state.head_dim
    q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
    if getattr(self, "q_norm", None) is not None:  # Qwen3: RMSNorm of each head
        q = self.q_norm(q.view(T * H, Dh)).view(T, H * Dh)
        k = self.k_norm(k.view(T * Hkv, Dh)).view(T, Hkv * Dh)
    if state.adjacent:
        perm = state.to_adjacent.to(x.device)
        q = q.view(T, H, Dh)[:, :, perm].reshape(T, H * Dh)
        k = k.view(T, Hkv, Dh)[:, :, perm].reshape(T, Hkv * Dh)
    cos, sin = state.tables(x.device)
    # Positions and sequence ids stay on the host: the ops check and plan there without waiting
    # for the GPU, and copy what the kernels read.
    q = ops.rope(q, layout.positions, cos, sin, H, state.adjacent)
    k = ops.rope(k, layout.positions, cos, sin, Hkv, state.adjacent)
    a = ops.attention(q, k, v, layout.positions, layout.seq_ids, layout.n_seqs, layout.capacity,
                      H, Hkv, state.scale)
    return self.o_proj(a)


def _layer_forward(self, x, state: EngineState):
    x = x + self.self_attn(self.input_layernorm(x), state)
    return x + self.mlp(self.post_attention_layernorm(x))


def engine_hidden(base, input_ids: torch.Tensor, layout: BatchLayout) -> torch.Tensor:
    """The final-normed hidden states [T, D] (f32) of the layout's tokens."""
    state: EngineState = base._bitexact
    ids = input_ids.reshape(-1)[layout.index.to(input_ids.device)]
    if layout.index.numel() and int(layout.positions.max()) >= state.max_positions:
        raise ValueError(
            f"bitexact.torch: a sequence of {int(layout.positions.max()) + 1} tokens exceeds the "
            f"model's context of {state.max_positions}"
        )
    device = base.embed_tokens.weight.device
    state.layout = layout
    try:
        x = ops.embedding(base.embed_tokens.weight, ids.to(device))
        for layer in base.layers:
            x = layer(x, state)
        return base.norm(x)
    finally:
        state.layout = None


def _base_forward(self, input_ids=None, attention_mask=None, cu_seqlens=None, **kwargs):
    """The patched decoder: last_hidden_state [B, L, D] (f32; zeros at padding)."""
    from transformers.modeling_outputs import BaseModelOutputWithPast

    if input_ids is None:
        raise ValueError("bitexact.torch: the patched model takes input_ids (not inputs_embeds)")
    if kwargs.get("past_key_values") is not None:
        raise ValueError("bitexact.torch: the patched model has no KV cache (use_cache=False)")
    layout = make_layout(input_ids, attention_mask, cu_seqlens)
    h = engine_hidden(self, input_ids, layout)
    out = h.new_zeros(input_ids.numel(), h.shape[1])
    out[layout.index.to(h.device)] = h
    shape = input_ids.shape if input_ids.dim() == 2 else (1, input_ids.numel())
    return BaseModelOutputWithPast(last_hidden_state=out.view(*shape, h.shape[1]))


def _bind(module, fn):
    module.forward = types.MethodType(fn, module)


def patch(model, rope_layout: str | None = None):
    """Makes `model` (a transformers LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM or
    Qwen3ForCausalLM) compute with bitexact's ops, in place; returns it. The parameters stay where
    they are (no copy), so an optimizer holding them keeps training the same tensors.

    rope_layout: "half_split" for Hugging Face weights (the default), "adjacent_pairs" for a
    model whose engine copy is a GGUF file (from_gguf sets it in the config)."""
    name = type(model).__name__
    if name not in SUPPORTED:
        raise TypeError(f"bitexact.torch.patch: {name} is not supported: expected one of "
                        + ", ".join(SUPPORTED))
    if getattr(model, "_bitexact_patched", False):
        return model
    if rope_layout is None:
        rope_layout = getattr(model.config, "bitexact_rope_layout", "half_split")
    if getattr(model.config, "hidden_act", "silu") != "silu":
        raise ValueError(f"bitexact.torch.patch: hidden_act {model.config.hidden_act!r}: expected silu")
    base = model.model
    state = EngineState(model, rope_layout)
    base._bitexact = state
    for module in model.modules():
        kind = type(module).__name__
        if kind.endswith("RMSNorm"):
            _bind(module, _rmsnorm_forward)
        elif isinstance(module, torch.nn.Linear):
            _bind(module, _linear_forward)
        elif kind.endswith("MLP"):
            _bind(module, _mlp_forward)
        elif kind.endswith("Attention"):
            _bind(module, _attention_forward)
        elif kind.endswith("DecoderLayer"):
            _bind(module, _layer_forward)
    _bind(base, _base_forward)
    model._bitexact_patched = True
    return model


def token_logprobs(model, input_ids: torch.Tensor, targets: torch.Tensor, attention_mask=None,
                   cu_seqlens=None) -> torch.Tensor:
    """Per-token logprobs of `targets` (the shape of input_ids): out[..., t] =
    log_softmax(logits after input_ids[..., :t+1] of its sequence)[targets[..., t]], float32,
    differentiable, 0 at padding. Patches the model first if needed."""
    patch(model)
    if tuple(targets.shape) != tuple(input_ids.shape):
        raise ValueError(f"bitexact.torch.token_logprobs: targets {list(targets.shape)} must have "
                         f"the shape of input_ids {list(input_ids.shape)}")
    layout = make_layout(input_ids, attention_mask, cu_seqlens)
    h = engine_hidden(model.model, input_ids, layout)
    logits = ops.linear(h, model.lm_head.weight)
    chosen = targets.reshape(-1)[layout.index.to(targets.device)].to(h.device)
    lp = ops.target_logprobs(logits, chosen)
    out = lp.new_zeros(input_ids.numel())
    out = out.index_put((layout.index.to(h.device),), lp)
    return out.view(input_ids.shape)
