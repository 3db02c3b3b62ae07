"""Small random GGUF files of each architecture, written by the `gguf` package, and a float64
numpy forward pass of each architecture written from its published math (not from bitexact).

Tensor names and keys come from the `gguf` package (gguf.TENSOR_NAMES, GGUFWriter.add_*), so a
file here is what llama.cpp's converter would write for that family:
  llama3   general.architecture "llama", GQA, RoPE theta 5e5 with Llama 3.1 scaling stored as
           llama.cpp stores it: the tensor rope_freqs.weight [Dh/2] of per-pair frequency
           divisors (gguf has no llama3 scaling type or low/high_freq_factor keys). q/k rows in
           the GGUF llama layout: RoPE turns adjacent pairs (2i, 2i+1).
  mistral  "llama" as well (the gguf package has no plain "mistral" architecture; llama.cpp's
           converter writes Mistral 7B as llama), GQA 4:1, attention.sliding_window.
  qwen2    "qwen2": q/k/v biases, F16 matmul weights, NEOX RoPE (pairs (i, i + Dh/2)).
  qwen3    "qwen3": per-head RMSNorm of q and k (attn_q_norm / attn_k_norm [Dh]) before RoPE,
           head_dim (attention.key_length) != D / H, NEOX RoPE.

The forward pass (float64 throughout; weights are the file's values read back by gguf):
    x = E[tokens]
    for each layer:
        h = rmsnorm(x) * attn_norm
        q = h Wq^T (+ bq), k = h Wk^T (+ bk), v = h Wv^T (+ bv)   heads of Dh
        q[t, j] = rmsnorm(q[t, j]) * q_norm, k likewise            (qwen3)
        q, k = rope(q), rope(k)   angle pos * freq_i, freq_i = theta^(-2i/Dh), for llama3:
            wavelength w = 2 pi / freq_i, L = original context, lo = L / low_freq_factor,
            hi = L / high_freq_factor; w < hi: freq_i; w > lo: freq_i / factor; else
            (1 - s) freq_i / factor + s freq_i, s = (L / w - low_freq_factor) /
            (high_freq_factor - low_freq_factor)
        a = softmax(q k^T / sqrt(Dh) + causal) v (query head j reads kv head j // (H / Hkv))
        x = x + a Wo^T
        h = rmsnorm(x) * ffn_norm
        x = x + (silu(h Wg^T) * (h Wu^T)) Wd^T
    logits = (rmsnorm(x) * output_norm) Wout^T

Usage:
    gguf_architectures.py make ARCH OUT.gguf [--drop NAME]... [--general-architecture NAME]
                                              [--rope-scaling-type TYPE]
        --drop removes a metadata key or a tensor; the other two set those keys (bad input).
    gguf_architectures.py compare ARCH MODEL.gguf TOKENS ENGINE_LOGITS.bin OUT.json
        TOKENS: comma-separated ids at positions 0..T-1; ENGINE_LOGITS.bin: [T, V] little-endian
        f32. Writes {"max_rel_error": max_t max_v |e - r| / max_v |r|, "ablated_rel_error": the
        same against the reference with the family's distinctive feature removed (llama3: no
        scaling; mistral: kv head j // (H / Hkv) replaced by j % Hkv; qwen2: no biases; qwen3:
        no q/k norm)}.
    gguf_architectures.py llama3-freqs OUT.json
        Writes the llama3 parameters of `make llama3` and transformers' inverse frequencies for
        them (_compute_llama3_parameters): {"params": {...}, "inv_freq": [...]}.
"""
import argparse
import json
import math
import sys

import gguf
import numpy as np

ARCHITECTURES = {
    # gguf name, D, layers, H, Hkv, Dh, F, context, theta
    "llama3": dict(gguf="llama", dim=64, layers=2, heads=4, kv_heads=2, head_dim=16, ffn=96,
                   context=256, theta=500000.0),
    "mistral": dict(gguf="llama", dim=64, layers=2, heads=8, kv_heads=2, head_dim=8, ffn=96,
                    context=256, theta=10000.0, sliding_window=128),
    "qwen2": dict(gguf="qwen2", dim=64, layers=2, heads=4, kv_heads=2, head_dim=16, ffn=96,
                  context=256, theta=1000000.0),
    "qwen3": dict(gguf="qwen3", dim=64, layers=2, heads=4, kv_heads=2, head_dim=32, ffn=96,
                  context=256, theta=1000000.0),
}
VOCAB = 96
EPS = 1e-6
# Llama 3.1's scaling with a small original context, so that at Dh = 16 and theta 5e5 the pairs
# fall in all three bands (wavelengths 6.3, 33, 168, ...: high, smoothed, low).
LLAMA3 = dict(factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
              original_max_position_embeddings=64)


def tensor_name(kind, layer=None):
    name = gguf.TENSOR_NAMES[kind]
    return name.format(bid=layer) if layer is not None else name


def base_frequencies(head_dim, theta):
    return theta ** (-2.0 * np.arange(head_dim // 2, dtype=np.float64) / head_dim)


def llama3_frequencies(head_dim, theta, p=LLAMA3):
    freqs = base_frequencies(head_dim, theta)
    L = p["original_max_position_embeddings"]
    lo_wave, hi_wave = L / p["low_freq_factor"], L / p["high_freq_factor"]
    out = []
    for f in freqs:
        w = 2 * math.pi / f
        if w < hi_wave:
            out.append(f)
        elif w > lo_wave:
            out.append(f / p["factor"])
        else:
            s = (L / w - p["low_freq_factor"]) / (p["high_freq_factor"] - p["low_freq_factor"])
            out.append((1 - s) * f / p["factor"] + s * f)
    return np.asarray(out)


def make(arch, path, drop=(), general_architecture=None, rope_scaling_type=None):
    a = ARCHITECTURES[arch]
    rng = np.random.default_rng(sum(map(ord, arch)))  # the same bytes on every run
    D, H, Hkv, Dh, F = a["dim"], a["heads"], a["kv_heads"], a["head_dim"], a["ffn"]
    w = gguf.GGUFWriter(path, a["gguf"])
    w.add_context_length(a["context"])
    w.add_embedding_length(D)
    w.add_block_count(a["layers"])
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_head_count_kv(Hkv)
    if Dh != D // H:
        w.add_key_length(Dh)
        w.add_value_length(Dh)
    w.add_rope_dimension_count(Dh)
    w.add_rope_freq_base(a["theta"])
    w.add_layer_norm_rms_eps(EPS)
    if "sliding_window" in a:
        w.add_sliding_window(a["sliding_window"])
    w.add_tokenizer_model("llama")
    w.add_token_list(["<unk>", "<s>", "</s>"] + [f"\u2581t{i}" for i in range(VOCAB - 3)])
    w.add_token_scores([0.0, 0.0, 0.0] + [-float(i) for i in range(VOCAB - 3)])
    w.add_token_types([gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
                      + [gguf.TokenType.NORMAL] * (VOCAB - 3))
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    if general_architecture is not None:
        w.kv_data[0].pop(gguf.Keys.General.ARCHITECTURE)
        w.add_string(gguf.Keys.General.ARCHITECTURE, general_architecture)
    if rope_scaling_type is not None:
        w.add_string(gguf.Keys.Rope.SCALING_TYPE.format(arch=a["gguf"]), rope_scaling_type)
    for key in drop:
        w.kv_data[0].pop(key, None)

    T = gguf.MODEL_TENSOR
    matmul_dtype = np.float16 if arch == "qwen2" else np.float32
    add_tensor = w.add_tensor

    def add_unless_dropped(name, values):
        if name not in drop:
            add_tensor(name, values)

    w.add_tensor = add_unless_dropped

    def matrix(rows, cols):  # standard deviation 1 / sqrt(cols)
        return (rng.uniform(-1, 1, (rows, cols)) * math.sqrt(3.0 / cols)).astype(np.float32)

    def norm(n):
        return (1.0 + rng.uniform(-0.2, 0.2, n)).astype(np.float32)

    def bias(n):
        return rng.uniform(-0.5, 0.5, n).astype(np.float32)

    w.add_tensor(tensor_name(T.TOKEN_EMBD) + ".weight",
                 rng.uniform(-1.7, 1.7, (VOCAB, D)).astype(np.float32))
    if arch == "llama3":
        divisors = base_frequencies(Dh, a["theta"]) / llama3_frequencies(Dh, a["theta"])
        w.add_tensor(tensor_name(T.ROPE_FREQS) + ".weight", divisors.astype(np.float32))
    for l in range(a["layers"]):
        def put(kind, values, suffix="weight"):
            w.add_tensor(f"{tensor_name(kind, l)}.{suffix}", values)

        put(T.ATTN_NORM, norm(D))
        put(T.ATTN_Q, matrix(H * Dh, D).astype(matmul_dtype))
        put(T.ATTN_K, matrix(Hkv * Dh, D).astype(matmul_dtype))
        put(T.ATTN_V, matrix(Hkv * Dh, D).astype(matmul_dtype))
        if arch == "qwen2":
            put(T.ATTN_Q, bias(H * Dh), "bias")
            put(T.ATTN_K, bias(Hkv * Dh), "bias")
            put(T.ATTN_V, bias(Hkv * Dh), "bias")
        if arch == "qwen3":
            put(T.ATTN_Q_NORM, norm(Dh))
            put(T.ATTN_K_NORM, norm(Dh))
        put(T.ATTN_OUT, matrix(D, H * Dh).astype(matmul_dtype))
        put(T.FFN_NORM, norm(D))
        put(T.FFN_GATE, matrix(F, D).astype(matmul_dtype))
        put(T.FFN_UP, matrix(F, D).astype(matmul_dtype))
        put(T.FFN_DOWN, matrix(D, F).astype(matmul_dtype))
    w.add_tensor(tensor_name(T.OUTPUT_NORM) + ".weight", norm(D))
    w.add_tensor(tensor_name(T.OUTPUT) + ".weight", matrix(VOCAB, D))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


class Reference:
    """The float64 forward pass of one architecture over a GGUF file's weights."""

    def __init__(self, arch, path, ablate=False):
        a = ARCHITECTURES[arch]
        self.arch, self.a, self.ablate = arch, a, ablate
        reader = gguf.GGUFReader(path)
        self.t = {}
        for t in reader.tensors:
            values = gguf.quants.dequantize(t.data, t.tensor_type)
            shape = tuple(int(d) for d in reversed(t.shape))
            self.t[t.name] = np.asarray(values, dtype=np.float64).reshape(shape)
        Dh = a["head_dim"]
        if arch == "llama3" and not ablate:
            self.freqs = llama3_frequencies(Dh, a["theta"])
        else:
            self.freqs = base_frequencies(Dh, a["theta"])
        self.adjacent_pairs = a["gguf"] == "llama"

    def w(self, kind, layer=None, suffix="weight"):
        return self.t[f"{tensor_name(kind, layer)}.{suffix}"]

    @staticmethod
    def rmsnorm(x, weight):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + EPS) * weight

    def rope(self, x):  # x [T, heads, Dh] at positions 0..T-1
        angle = np.arange(x.shape[0], dtype=np.float64)[:, None] * self.freqs
        cos, sin = np.cos(angle)[:, None, :], np.sin(angle)[:, None, :]
        half = x.shape[-1] // 2
        if self.adjacent_pairs:
            x0, x1 = x[..., 0::2], x[..., 1::2]
        else:
            x0, x1 = x[..., :half], x[..., half:]
        r0, r1 = x0 * cos - x1 * sin, x0 * sin + x1 * cos
        out = np.empty_like(x)
        if self.adjacent_pairs:
            out[..., 0::2], out[..., 1::2] = r0, r1
        else:
            out[..., :half], out[..., half:] = r0, r1
        return out

    def forward(self, tokens):
        a, T_ = self.a, gguf.MODEL_TENSOR
        T, H, Hkv, Dh = len(tokens), a["heads"], a["kv_heads"], a["head_dim"]
        x = self.w(T_.TOKEN_EMBD)[np.asarray(tokens)]
        causal = np.triu(np.full((T, T), -np.inf), k=1)
        for l in range(a["layers"]):
            h = self.rmsnorm(x, self.w(T_.ATTN_NORM, l))
            q, k, v = (h @ self.w(kind, l).T for kind in (T_.ATTN_Q, T_.ATTN_K, T_.ATTN_V))
            if self.arch == "qwen2" and not self.ablate:
                q = q + self.w(T_.ATTN_Q, l, "bias")
                k = k + self.w(T_.ATTN_K, l, "bias")
                v = v + self.w(T_.ATTN_V, l, "bias")
            q, k, v = q.reshape(T, H, Dh), k.reshape(T, Hkv, Dh), v.reshape(T, Hkv, Dh)
            if self.arch == "qwen3" and not self.ablate:
                q = self.rmsnorm(q, self.w(T_.ATTN_Q_NORM, l))
                k = self.rmsnorm(k, self.w(T_.ATTN_K_NORM, l))
            q, k = self.rope(q), self.rope(k)
            if self.arch == "mistral" and self.ablate:
                kv_head = np.arange(H) % Hkv
            else:
                kv_head = np.arange(H) // (H // Hkv)
            k, v = k[:, kv_head], v[:, kv_head]
            scores = np.einsum("thd,shd->hts", q, k) / math.sqrt(Dh) + causal
            p = np.exp(scores - scores.max(axis=-1, keepdims=True))
            p /= p.sum(axis=-1, keepdims=True)
            attn = np.einsum("hts,shd->thd", p, v).reshape(T, H * Dh)
            x = x + attn @ self.w(T_.ATTN_OUT, l).T
            h = self.rmsnorm(x, self.w(T_.FFN_NORM, l))
            g, u = h @ self.w(T_.FFN_GATE, l).T, h @ self.w(T_.FFN_UP, l).T
            x = x + (g / (1.0 + np.exp(-g)) * u) @ self.w(T_.FFN_DOWN, l).T
        return self.rmsnorm(x, self.w(T_.OUTPUT_NORM)) @ self.w(T_.OUTPUT).T


def relative_error(engine, ref):
    return float(np.max(np.abs(engine - ref).max(axis=1) / np.abs(ref).max(axis=1)))


def transformers_llama3_frequencies():
    import transformers
    from transformers.modeling_rope_utils import _compute_llama3_parameters

    a = ARCHITECTURES["llama3"]
    config = transformers.LlamaConfig(
        hidden_size=a["dim"], num_attention_heads=a["heads"], num_key_value_heads=a["kv_heads"],
        head_dim=a["head_dim"], max_position_embeddings=a["context"],
        rope_parameters={"rope_type": "llama3", "rope_theta": a["theta"], **LLAMA3})
    inv_freq, _ = _compute_llama3_parameters(config, "cpu")
    return {"params": {"head_dim": a["head_dim"], "theta": a["theta"], **LLAMA3},
            "inv_freq": [float(f) for f in inv_freq]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make")
    m.add_argument("arch", choices=sorted(ARCHITECTURES))
    m.add_argument("out")
    m.add_argument("--drop", action="append", default=[])
    m.add_argument("--general-architecture")
    m.add_argument("--rope-scaling-type")
    c = sub.add_parser("compare")
    c.add_argument("arch", choices=sorted(ARCHITECTURES))
    c.add_argument("model")
    c.add_argument("tokens")
    c.add_argument("engine_logits")
    c.add_argument("out")
    f = sub.add_parser("llama3-freqs")
    f.add_argument("out")
    args = parser.parse_args()

    if args.command == "make":
        make(args.arch, args.out, args.drop, args.general_architecture, args.rope_scaling_type)
    elif args.command == "llama3-freqs":
        with open(args.out, "w") as out:
            json.dump(transformers_llama3_frequencies(), out)
    else:
        tokens = [int(t) for t in args.tokens.split(",")]
        engine = np.fromfile(args.engine_logits, dtype="<f4").astype(np.float64)
        if engine.size != len(tokens) * VOCAB:
            sys.exit(f"{args.engine_logits}: {engine.size} floats, "
                     f"expected {len(tokens)} x {VOCAB}")
        engine = engine.reshape(len(tokens), VOCAB)
        exact = Reference(args.arch, args.model).forward(tokens)
        ablated = Reference(args.arch, args.model, ablate=True).forward(tokens)
        with open(args.out, "w") as out:
            json.dump({"max_rel_error": relative_error(engine, exact),
                       "ablated_rel_error": relative_error(engine, ablated)}, out)


if __name__ == "__main__":
    main()
