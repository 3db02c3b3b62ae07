"""Small random Gemma 3 (text) models as people get them, and a float64 numpy forward pass of
Gemma 3 written from the model's published math (not from bitexact's code).

  make-hf DIR      a Gemma3ForCausalLM folder written by transformers' save_pretrained (F32
                   safetensors, config.json in transformers' own form: layer_types,
                   rope_parameters per layer type, query_pre_attn_scalar 24 != head_dim)
  make-gguf OUT    a gemma3 GGUF written by the `gguf` package (names and keys from its
                   constants), norm weights stored as 1 + w as llama.cpp's converter does,
                   attention.sliding_window and the period-3 attention.sliding_window_pattern;
                   query_pre_attn_scalar = head_dim (llama.cpp's rule for such files).
                   --drop KEY removes a metadata key; --set-float KEY=V adds one (bad input).

Both have 5 layers: layers 0, 1, 3, 4 attend over a sliding window of WINDOW positions (RoPE base
1e4), layer 2 over everything (RoPE base 1e6 with linear scaling 4), and a prompt longer than the
window crosses it.

The forward pass (float64; weights are the file's values read back, HF norms applied as 1 + w):
    x = E[tokens] * sqrt(D)
    for each layer:
        h = rmsnorm(x) * attn_norm               rmsnorm(x) = x / sqrt(mean(x^2) + eps)
        q = h Wq^T, k = h Wk^T, v = h Wv^T       heads of Dh
        q[t, j] = rmsnorm(q[t, j]) * q_norm, k likewise
        q, k = rope(q), rope(k)                  pairs (i, i + Dh/2), angle pos * freq_i,
                                                 freq_i = theta^(-2i/Dh) (/ factor: linear)
        a = softmax(q k^T * query_pre_attn_scalar^-0.5 + mask) v
            mask: causal, and for a sliding layer also key position > query position - WINDOW
        x = x + rmsnorm(a Wo^T) * post_attention_norm
        h = rmsnorm(x) * pre_feedforward_norm
        x = x + rmsnorm((gelu_tanh(h Wg^T) * (h Wu^T)) Wd^T) * post_feedforward_norm
            gelu_tanh(z) = 0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3)))
    logits = (rmsnorm(x) * final_norm) E^T       (tied)

    compare FORMAT PATH TOKENS ENGINE_LOGITS.bin OUT.json
        FORMAT hf or gguf; TOKENS comma-separated ids at positions 0..T-1; ENGINE_LOGITS.bin
        [T, V] little-endian f32. Writes {"max_rel_error": max_t max_v |e - r| / max_v |r|
        against float64, "ablated_rel_error": the same against float64 with every layer
        attending to everything (no window), and for hf "transformers_rel_error" (the engine
        against transformers' float32 eager forward) and "reference_vs_transformers" (float64
        against transformers: checks this reference)}.
"""
import argparse
import json
import math
import os
import sys

import numpy as np

VOCAB, DIM, LAYERS, HEADS, KV_HEADS, HEAD_DIM, FFN = 96, 64, 5, 4, 2, 16, 96
CONTEXT, WINDOW, EPS = 256, 6, 1e-6
SLIDING = [True, True, False, True, True]  # period 3: layer l unless (l + 1) % 3 == 0
THETA, LOCAL_THETA, LINEAR_FACTOR = 1000000.0, 10000.0, 4.0
HF_QUERY_SCALAR = 24


def random_weights(seed):
    """Norm weights as Hugging Face stores them (w, applied as 1 + w)."""
    rng = np.random.default_rng(seed)

    def matrix(rows, cols):
        return (rng.uniform(-1, 1, (rows, cols)) * math.sqrt(3.0 / cols)).astype(np.float32)

    def norm(n):
        return rng.uniform(-0.3, 0.3, n).astype(np.float32)

    w = {"embed": rng.uniform(-1.0, 1.0, (VOCAB, DIM)).astype(np.float32), "final_norm": norm(DIM)}
    for l in range(LAYERS):
        w[l] = {
            "attn_norm": norm(DIM), "q": matrix(HEADS * HEAD_DIM, DIM),
            "k": matrix(KV_HEADS * HEAD_DIM, DIM), "v": matrix(KV_HEADS * HEAD_DIM, DIM),
            "q_norm": norm(HEAD_DIM), "k_norm": norm(HEAD_DIM), "o": matrix(DIM, HEADS * HEAD_DIM),
            "post_attn_norm": norm(DIM), "pre_ffn_norm": norm(DIM), "gate": matrix(FFN, DIM),
            "up": matrix(FFN, DIM), "down": matrix(DIM, FFN), "post_ffn_norm": norm(DIM)}
    return w


HF_NAMES = {"attn_norm": "input_layernorm", "q": "self_attn.q_proj", "k": "self_attn.k_proj",
            "v": "self_attn.v_proj", "q_norm": "self_attn.q_norm", "k_norm": "self_attn.k_norm",
            "o": "self_attn.o_proj", "post_attn_norm": "post_attention_layernorm",
            "pre_ffn_norm": "pre_feedforward_layernorm", "gate": "mlp.gate_proj",
            "up": "mlp.up_proj", "down": "mlp.down_proj",
            "post_ffn_norm": "post_feedforward_layernorm"}


def hf_config():
    import transformers
    return transformers.Gemma3TextConfig(
        vocab_size=VOCAB, hidden_size=DIM, intermediate_size=FFN, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, head_dim=HEAD_DIM,
        max_position_embeddings=CONTEXT, rms_norm_eps=EPS, sliding_window=WINDOW,
        layer_types=["sliding_attention" if s else "full_attention" for s in SLIDING],
        query_pre_attn_scalar=HF_QUERY_SCALAR, tie_word_embeddings=True,
        rope_parameters={"full_attention": {"rope_type": "linear", "factor": LINEAR_FACTOR,
                                            "rope_theta": THETA},
                         "sliding_attention": {"rope_type": "default",
                                               "rope_theta": LOCAL_THETA}},
        bos_token_id=2, eos_token_id=1, pad_token_id=0)


def make_hf(path):
    import torch
    import transformers
    config = hf_config()
    config.architectures = ["Gemma3ForCausalLM"]
    model = transformers.Gemma3ForCausalLM(config).to(torch.float32)
    w = random_weights(3)
    state = {"model.embed_tokens.weight": w["embed"], "model.norm.weight": w["final_norm"]}
    for l in range(LAYERS):
        for key, name in HF_NAMES.items():
            state[f"model.layers.{l}.{name}.weight"] = w[l][key]
    state = {k: torch.from_numpy(v) for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if m != "lm_head.weight"]
    if missing or unexpected:
        sys.exit(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    model.save_pretrained(path, safe_serialization=True)


def make_gguf(path, drop=(), set_floats=()):
    import gguf
    w = random_weights(5)
    g = gguf.GGUFWriter(path, "gemma3")
    g.add_context_length(CONTEXT)
    g.add_embedding_length(DIM)
    g.add_block_count(LAYERS)
    g.add_feed_forward_length(FFN)
    g.add_head_count(HEADS)
    g.add_head_count_kv(KV_HEADS)
    g.add_key_length(HEAD_DIM)
    g.add_value_length(HEAD_DIM)
    g.add_rope_freq_base(THETA)
    g.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
    g.add_rope_scaling_factor(LINEAR_FACTOR)
    g.add_layer_norm_rms_eps(EPS)
    g.add_sliding_window(WINDOW)
    g.add_sliding_window_pattern(3)
    g.add_tokenizer_model("llama")
    g.add_token_list(["<unk>", "<s>", "</s>"] + [f"\u2581t{i}" for i in range(VOCAB - 3)])
    g.add_token_scores([0.0, 0.0, 0.0] + [-float(i) for i in range(VOCAB - 3)])
    g.add_token_types([gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
                      + [gguf.TokenType.NORMAL] * (VOCAB - 3))
    g.add_unk_token_id(0)
    g.add_bos_token_id(1)
    g.add_eos_token_id(2)
    for item in set_floats:
        key, value = item.split("=")
        g.add_float32(key, float(value))
    for key in drop:
        g.kv_data[0].pop(key, None)

    T = gguf.MODEL_TENSOR
    names = {"attn_norm": T.ATTN_NORM, "q": T.ATTN_Q, "k": T.ATTN_K, "v": T.ATTN_V,
             "q_norm": T.ATTN_Q_NORM, "k_norm": T.ATTN_K_NORM, "o": T.ATTN_OUT,
             "post_attn_norm": T.ATTN_POST_NORM, "pre_ffn_norm": T.FFN_NORM,
             "gate": T.FFN_GATE, "up": T.FFN_UP, "down": T.FFN_DOWN,
             "post_ffn_norm": T.FFN_POST_NORM}
    g.add_tensor(gguf.TENSOR_NAMES[T.TOKEN_EMBD] + ".weight", w["embed"])
    for l in range(LAYERS):
        for key, kind in names.items():
            values = w[l][key]
            if key.endswith("norm"):  # llama.cpp's converter: norm weights + 1
                values = (values + np.float32(1.0)).astype(np.float32)
            g.add_tensor(gguf.TENSOR_NAMES[kind].format(bid=l) + ".weight", values)
    g.add_tensor(gguf.TENSOR_NAMES[T.OUTPUT_NORM] + ".weight",
                 (w["final_norm"] + np.float32(1.0)).astype(np.float32))
    g.write_header_to_file()
    g.write_kv_data_to_file()
    g.write_tensors_to_file()
    g.close()


class Reference:
    """Gemma 3's forward pass in float64 over weights with their norms as applied."""

    def __init__(self, weights, query_scalar, window=True):
        self.w, self.window = weights, window
        self.scale = query_scalar ** -0.5

    @staticmethod
    def rmsnorm(x, weight):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + EPS) * weight

    @staticmethod
    def rope(x, theta, factor):  # x [T, heads, Dh], positions 0..T-1, rotate-half pairs
        freqs = theta ** (-2.0 * np.arange(HEAD_DIM // 2, dtype=np.float64) / HEAD_DIM) / factor
        angle = np.arange(x.shape[0], dtype=np.float64)[:, None] * freqs
        cos, sin = np.cos(angle)[:, None, :], np.sin(angle)[:, None, :]
        half = HEAD_DIM // 2
        x0, x1 = x[..., :half], x[..., half:]
        return np.concatenate([x0 * cos - x1 * sin, x0 * sin + x1 * cos], axis=-1)

    def forward(self, tokens):
        w, T = self.w, len(tokens)
        x = w["embed"][np.asarray(tokens)] * math.sqrt(DIM)
        i, j = np.arange(T)[:, None], np.arange(T)[None, :]
        for l in range(LAYERS):
            lw = w[l]
            h = self.rmsnorm(x, lw["attn_norm"])
            q = (h @ lw["q"].T).reshape(T, HEADS, HEAD_DIM)
            k = (h @ lw["k"].T).reshape(T, KV_HEADS, HEAD_DIM)
            v = (h @ lw["v"].T).reshape(T, KV_HEADS, HEAD_DIM)
            q, k = self.rmsnorm(q, lw["q_norm"]), self.rmsnorm(k, lw["k_norm"])
            if SLIDING[l]:
                q, k = self.rope(q, LOCAL_THETA, 1.0), self.rope(k, LOCAL_THETA, 1.0)
            else:
                q, k = self.rope(q, THETA, LINEAR_FACTOR), self.rope(k, THETA, LINEAR_FACTOR)
            kv_head = np.arange(HEADS) // (HEADS // KV_HEADS)
            k, v = k[:, kv_head], v[:, kv_head]
            visible = j <= i
            if SLIDING[l] and self.window:
                visible &= j > i - WINDOW
            scores = np.einsum("thd,shd->hts", q, k) * self.scale + np.where(visible, 0, -np.inf)
            p = np.exp(scores - scores.max(axis=-1, keepdims=True))
            p /= p.sum(axis=-1, keepdims=True)
            a = np.einsum("hts,shd->thd", p, v).reshape(T, HEADS * HEAD_DIM)
            x = x + self.rmsnorm(a @ lw["o"].T, lw["post_attn_norm"])
            h = self.rmsnorm(x, lw["pre_ffn_norm"])
            g, u = h @ lw["gate"].T, h @ lw["up"].T
            gelu = 0.5 * g * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (g + 0.044715 * g ** 3)))
            x = x + self.rmsnorm((gelu * u) @ lw["down"].T, lw["post_ffn_norm"])
        return self.rmsnorm(x, w["final_norm"]) @ w["embed"].T


def applied(weights):
    """Float64 weights with every norm as applied (1 + w)."""
    out = {"embed": weights["embed"].astype(np.float64),
           "final_norm": 1.0 + weights["final_norm"].astype(np.float64)}
    for l in range(LAYERS):
        out[l] = {k: (1.0 + v.astype(np.float64)) if k.endswith("norm") else v.astype(np.float64)
                  for k, v in weights[l].items()}
    return out


def read_hf(path):
    from safetensors.numpy import load_file
    t = load_file(os.path.join(path, "model.safetensors"))
    w = {"embed": t["model.embed_tokens.weight"], "final_norm": t["model.norm.weight"]}
    for l in range(LAYERS):
        w[l] = {key: t[f"model.layers.{l}.{name}.weight"] for key, name in HF_NAMES.items()}
    return applied(w)


def read_gguf(path):
    import gguf
    reader = gguf.GGUFReader(path)
    t = {}
    for tensor in reader.tensors:
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        shape = tuple(int(d) for d in reversed(tensor.shape))
        t[tensor.name] = np.asarray(values, dtype=np.float64).reshape(shape)
    names = {"attn_norm": "attn_norm", "q": "attn_q", "k": "attn_k", "v": "attn_v",
             "q_norm": "attn_q_norm", "k_norm": "attn_k_norm", "o": "attn_output",
             "post_attn_norm": "post_attention_norm", "pre_ffn_norm": "ffn_norm",
             "gate": "ffn_gate", "up": "ffn_up", "down": "ffn_down",
             "post_ffn_norm": "post_ffw_norm"}
    w = {"embed": t["token_embd.weight"], "final_norm": t["output_norm.weight"]}
    for l in range(LAYERS):
        w[l] = {key: t[f"blk.{l}.{name}.weight"] for key, name in names.items()}
    return w  # the file's norms are already 1 + w


def transformers_logits(path, tokens):
    import torch
    import transformers
    model = transformers.Gemma3ForCausalLM.from_pretrained(
        path, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    with torch.no_grad():
        out = model(torch.tensor([tokens]), use_cache=False)
    return out.logits[0].double().numpy()


def relative_error(engine, ref):
    return float(np.max(np.abs(engine - ref).max(axis=1) / np.abs(ref).max(axis=1)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    h = sub.add_parser("make-hf")
    h.add_argument("out")
    g = sub.add_parser("make-gguf")
    g.add_argument("out")
    g.add_argument("--drop", action="append", default=[])
    g.add_argument("--set-float", action="append", default=[])
    c = sub.add_parser("compare")
    c.add_argument("format", choices=["hf", "gguf"])
    c.add_argument("model")
    c.add_argument("tokens")
    c.add_argument("engine_logits")
    c.add_argument("out")
    args = parser.parse_args()

    if args.command == "make-hf":
        make_hf(args.out)
        return
    if args.command == "make-gguf":
        make_gguf(args.out, args.drop, args.set_float)
        return
    tokens = [int(t) for t in args.tokens.split(",")]
    engine = np.fromfile(args.engine_logits, dtype="<f4").astype(np.float64)
    if engine.size != len(tokens) * VOCAB:
        sys.exit(f"{args.engine_logits}: {engine.size} floats, expected {len(tokens)} x {VOCAB}")
    engine = engine.reshape(len(tokens), VOCAB)
    hf = args.format == "hf"
    weights = read_hf(args.model) if hf else read_gguf(args.model)
    scalar = HF_QUERY_SCALAR if hf else HEAD_DIM
    exact = Reference(weights, scalar).forward(tokens)
    ablated = Reference(weights, scalar, window=False).forward(tokens)
    result = {"max_rel_error": relative_error(engine, exact),
              "ablated_rel_error": relative_error(engine, ablated)}
    if hf:
        theirs = transformers_logits(args.model, tokens)
        result["transformers_rel_error"] = relative_error(engine, theirs)
        result["reference_vs_transformers"] = relative_error(theirs, exact)
    with open(args.out, "w") as out:
        json.dump(result, out)


if __name__ == "__main__":
    main()
