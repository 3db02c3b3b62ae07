"""from_gguf(path): a transformers LlamaForCausalLM holding the weights of a GGUF file the engine
serves, so a trainer patched with bitexact.torch computes what the engine computes from that file.

Quantized tensors (Q8_0, Q4_K and the other block formats, F16, BF16) are dequantized to float32
by llama.cpp's `gguf` package, with the element math the engine's own dequantization follows (kernels/quant.h: exact
products and sums, so the engine, which reads quantized weights directly, gets the bits of these
f32 copies). GGUF stores Wq and Wk with the rows of each head permuted so that RoPE turns adjacent
dims (2i, 2i+1); they are put back in the Hugging Face order (pair i = dims i, i + head_dim/2) and
config.bitexact_rope_layout = "adjacent_pairs" tells patch() to compute in the GGUF's order, so the
head_dim dot products of attention run over the dims in the engine's order.
"""

from __future__ import annotations

import numpy as np
import torch

try:
    import gguf
except ImportError:  # pragma: no cover - tests/requirements.txt installs it
    gguf = None


def _unpermute(w: np.ndarray, n_heads: int) -> np.ndarray:
    # GGUF row (h, i, r) of shape (n_heads, Dh/2, 2) is Hugging Face row (h, r, i).
    rows, cols = w.shape
    return w.reshape(n_heads, rows // n_heads // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


# GGUF metadata value types (the file format, version 2 and 3): scalar struct formats.
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
            11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


def _read_gguf(path: str):
    """(metadata {key: scalar or string; arrays skipped}, {name: (ggml type, dims, bytes)}).

    The header is parsed here (GGUFReader would also decode every vocabulary string, which takes
    tens of seconds); the tensors' bytes are a memory map of the file."""
    import struct

    data = np.memmap(path, dtype=np.uint8, mode="r")
    at = 0

    def take(fmt):
        nonlocal at
        v = struct.unpack_from(fmt, data, at)[0]
        at += struct.calcsize(fmt)
        return v

    def string():
        nonlocal at
        n = take("<Q")
        at += n
        return bytes(data[at - n:at]).decode("utf-8", errors="replace")

    def value(kind):
        nonlocal at
        if kind == _STRING:
            return string()
        if kind == _ARRAY:
            item, n = take("<I"), take("<Q")
            if item in _SCALARS:
                at += n * struct.calcsize(_SCALARS[item])
            else:
                for _ in range(n):
                    value(item)
            return None
        return take(_SCALARS[kind])

    if bytes(data[:4]) != b"GGUF":
        raise ValueError(f"bitexact.torch.from_gguf: {path} is not a GGUF file")
    at = 4
    version, n_tensors, n_kv = take("<I"), take("<Q"), take("<Q")
    if version not in (2, 3):
        raise ValueError(f"bitexact.torch.from_gguf: {path}: GGUF version {version}: expected 2 or 3")
    meta = {}
    for _ in range(n_kv):
        key = string()
        meta[key] = value(take("<I"))
    infos = []
    for _ in range(n_tensors):
        name = string()
        dims = [take("<Q") for _ in range(take("<I"))]
        infos.append((name, take("<I"), dims, take("<Q")))
    align = int(meta.get("general.alignment", 32))
    base = (at + align - 1) // align * align
    tensors = {}
    for name, kind, dims, offset in infos:
        block, size = gguf.constants.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(kind)]
        rows = int(np.prod(dims[1:])) if len(dims) > 1 else 1
        row_bytes = dims[0] // block * size
        raw = data[base + offset: base + offset + rows * row_bytes].reshape(rows, row_bytes)
        tensors[name] = (gguf.GGMLQuantizationType(kind), dims, raw)
    return meta, tensors


def from_gguf(path: str, dtype: torch.dtype = torch.float32):
    """The llama-architecture GGUF file at `path` as a transformers LlamaForCausalLM in `dtype`."""
    if gguf is None:
        raise ImportError("bitexact.torch.from_gguf needs the gguf package (pip install gguf)")
    from transformers import LlamaConfig, LlamaForCausalLM

    meta, tensors = _read_gguf(path)

    def field(key, default=None):
        return meta.get(key, default)

    def weight(name):
        kind, dims, raw = tensors[name]
        w = gguf.quants.dequantize(raw, kind).astype(np.float32, copy=False)
        return w.reshape([int(d) for d in reversed(dims)])

    arch = field("general.architecture")
    if arch != "llama":
        raise ValueError(f"bitexact.torch.from_gguf: {path}: architecture {arch!r}: expected llama")
    D = field("llama.embedding_length")
    H = field("llama.attention.head_count")
    Hkv = field("llama.attention.head_count_kv", H)
    head_dim = field("llama.attention.key_length", D // H)
    V = int(tensors["token_embd.weight"][1][1])
    tied = "output.weight" not in tensors
    config = LlamaConfig(
        vocab_size=V, hidden_size=D, intermediate_size=field("llama.feed_forward_length"),
        num_hidden_layers=field("llama.block_count"), num_attention_heads=H,
        num_key_value_heads=Hkv, head_dim=head_dim,
        max_position_embeddings=field("llama.context_length"),
        rms_norm_eps=field("llama.attention.layer_norm_rms_epsilon"),
        rope_theta=field("llama.rope.freq_base", 10000.0), tie_word_embeddings=tied,
        bos_token_id=field("tokenizer.ggml.bos_token_id"),
        eos_token_id=field("tokenizer.ggml.eos_token_id"),
    )
    config.bitexact_rope_layout = "adjacent_pairs"
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    state = {"model.embed_tokens.weight": weight("token_embd.weight"),
             "model.norm.weight": weight("output_norm.weight")}
    if not tied:
        state["lm_head.weight"] = weight("output.weight")
    for i in range(config.num_hidden_layers):
        p, b = f"model.layers.{i}.", f"blk.{i}."
        state[p + "input_layernorm.weight"] = weight(b + "attn_norm.weight")
        state[p + "self_attn.q_proj.weight"] = _unpermute(weight(b + "attn_q.weight"), H)
        state[p + "self_attn.k_proj.weight"] = _unpermute(weight(b + "attn_k.weight"), Hkv)
        state[p + "self_attn.v_proj.weight"] = weight(b + "attn_v.weight")
        state[p + "self_attn.o_proj.weight"] = weight(b + "attn_output.weight")
        state[p + "post_attention_layernorm.weight"] = weight(b + "ffn_norm.weight")
        state[p + "mlp.gate_proj.weight"] = weight(b + "ffn_gate.weight")
        state[p + "mlp.up_proj.weight"] = weight(b + "ffn_up.weight")
        state[p + "mlp.down_proj.weight"] = weight(b + "ffn_down.weight")
    model.load_state_dict({k: torch.from_numpy(np.array(v, dtype=np.float32)).to(dtype)
                           for k, v in state.items()}, strict=False, assign=True)
    if tied:
        model.tie_weights()
    # Buffers that are not weights (the unpatched model's rotary frequencies) made for real.
    model.model.rotary_emb = type(model.model.rotary_emb)(config=config)
    model.eval()
    return model
