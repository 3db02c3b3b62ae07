"""An independent float64 forward pass of a Llama-architecture GGUF, in numpy.

The file is read and its tensors dequantized by the `gguf` package (llama.cpp's gguf-py,
pinned in tests/requirements.txt); the forward pass below is written from the model's math:

    x = E[tokens]                                             E: token_embd [V, D]
    for each layer:
        h = rmsnorm(x) * attn_norm          rmsnorm(x) = x / sqrt(mean(x^2) + eps)
        q = h Wq^T, k = h Wk^T, v = h Wv^T  split into H (q) and Hkv (k, v) heads of Dh
        q, k = rope(q), rope(k)             pairs (2i, 2i+1) of a head rotated by
                                            pos * base^(-2i / Dh)  (GGUF llama layout)
        a = softmax(q k^T / sqrt(Dh) + causal mask) v,  query head j reads kv head j // (H / Hkv)
        x = x + a Wo^T
        h = rmsnorm(x) * ffn_norm
        x = x + (silu(h Wg^T) * (h Wu^T)) Wd^T,  silu(z) = z / (1 + e^-z)
    logits = (rmsnorm(x) * output_norm) Wout^T               Wout = E when output.weight is absent

Every weight is the f32 value the file's blocks stand for, widened to float64, and every
operation is float64.

Usage:
    numpy_llama.py greedy MODEL.gguf --tokens 1,2,3 [--new 32]
        prints the greedy continuation ids (full recompute per step: slow, for spot checks).
    numpy_llama.py compare MODEL.gguf SEQUENCES.json ENGINE_LOGITS.bin OUT.json
        SEQUENCES.json: {"sequences": [{"tokens": [...], "prompt_length": n}, ...]}
        ENGINE_LOGITS.bin: little-endian f32 logits of every position of every sequence, in
        order ([sum of lengths, V]). Writes per sequence: the largest relative error of the
        engine's logits against float64 (max over positions of max_v |e - r| / max_v |r|), the
        largest element error |e - r| / max(1, |r|), and how many generated tokens (those after
        prompt_length) are also float64's greedy choice before the first that is not, with the
        float64 top-2 margin at each generated position.
"""
import argparse
import json
import sys

import gguf
import numpy as np


class Model:
    def __init__(self, path: str):
        reader = gguf.GGUFReader(path)
        self.fields = reader.fields

        def scalar(key, default=None):
            if key not in self.fields:
                if default is None:
                    raise KeyError(f"{path}: missing {key}")
                return default
            field = self.fields[key]
            return field.parts[field.data[0]][0].item()

        arch = bytes(self.fields["general.architecture"].parts[-1]).decode()
        if arch != "llama":
            raise ValueError(f"{path}: architecture {arch}, expected llama")
        self.dim = int(scalar("llama.embedding_length"))
        self.n_layers = int(scalar("llama.block_count"))
        self.n_heads = int(scalar("llama.attention.head_count"))
        self.n_kv_heads = int(scalar("llama.attention.head_count_kv", self.n_heads))
        self.head_dim = self.dim // self.n_heads
        self.eps = float(scalar("llama.attention.layer_norm_rms_epsilon"))
        self.rope_base = float(scalar("llama.rope.freq_base", 10000.0))

        self.tensors = {}
        for t in reader.tensors:
            values = gguf.quants.dequantize(t.data, t.tensor_type)
            shape = tuple(int(d) for d in reversed(t.shape))  # GGUF dims[0] is the fastest
            self.tensors[t.name] = np.asarray(values, dtype=np.float64).reshape(shape)
        self.embedding = self.tensors["token_embd.weight"]  # [V, D]
        self.output = self.tensors.get("output.weight", self.embedding)

    def layer(self, i: int, name: str) -> np.ndarray:
        return self.tensors[f"blk.{i}.{name}.weight"]

    def rmsnorm(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * w

    def rope(self, x: np.ndarray) -> np.ndarray:
        """x [T, heads, Dh]; rotates pairs (2i, 2i + 1) at positions 0 .. T-1."""
        T, _, Dh = x.shape
        i = np.arange(Dh // 2, dtype=np.float64)
        angle = np.arange(T, dtype=np.float64)[:, None] * self.rope_base ** (-2.0 * i / Dh)
        cos, sin = np.cos(angle)[:, None, :], np.sin(angle)[:, None, :]
        x0, x1 = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = x0 * cos - x1 * sin
        out[..., 1::2] = x0 * sin + x1 * cos
        return out

    def forward(self, tokens) -> np.ndarray:
        """Logits [T, V] of every position of one sequence starting at position 0."""
        T, H, Hkv, Dh = len(tokens), self.n_heads, self.n_kv_heads, self.head_dim
        x = self.embedding[np.asarray(tokens)]
        causal = np.triu(np.full((T, T), -np.inf), k=1)
        for i in range(self.n_layers):
            h = self.rmsnorm(x, self.layer(i, "attn_norm"))
            q = self.rope((h @ self.layer(i, "attn_q").T).reshape(T, H, Dh))
            k = self.rope((h @ self.layer(i, "attn_k").T).reshape(T, Hkv, Dh))
            v = (h @ self.layer(i, "attn_v").T).reshape(T, Hkv, Dh)
            k = np.repeat(k, H // Hkv, axis=1)  # query head j reads kv head j // (H / Hkv)
            v = np.repeat(v, H // Hkv, axis=1)
            scores = np.einsum("thd,shd->hts", q, k) / np.sqrt(Dh) + causal
            p = np.exp(scores - scores.max(axis=-1, keepdims=True))
            p /= p.sum(axis=-1, keepdims=True)
            a = np.einsum("hts,shd->thd", p, v).reshape(T, H * Dh)
            x = x + a @ self.layer(i, "attn_output").T
            h = self.rmsnorm(x, self.layer(i, "ffn_norm"))
            g = h @ self.layer(i, "ffn_gate").T
            u = h @ self.layer(i, "ffn_up").T
            x = x + (g / (1.0 + np.exp(-g)) * u) @ self.layer(i, "ffn_down").T
        return self.rmsnorm(x, self.tensors["output_norm.weight"]) @ self.output.T


def compare(model: Model, sequences, engine: np.ndarray):
    results, row = [], 0
    for s in sequences:
        tokens, n_prompt = s["tokens"], s["prompt_length"]
        ref = model.forward(tokens)
        got = engine[row : row + len(tokens)].astype(np.float64)
        row += len(tokens)
        diff = np.abs(got - ref)
        rel = float(np.max(diff.max(axis=1) / np.abs(ref).max(axis=1)))
        element = float(np.max(diff / np.maximum(1.0, np.abs(ref))))
        agree, margins = 0, []
        for p in range(n_prompt - 1, len(tokens) - 1):
            top2 = np.sort(ref[p])[-2:]
            margins.append(float(top2[1] - top2[0]))
            if int(np.argmax(ref[p])) != tokens[p + 1]:
                break
            agree += 1
        results.append({"max_rel_error": rel, "max_element_error": element,
                        "generated": len(tokens) - n_prompt, "greedy_agree": agree,
                        "min_top2_margin": min(margins) if margins else None})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("greedy")
    g.add_argument("model")
    g.add_argument("--tokens", required=True)
    g.add_argument("--new", type=int, default=32)
    c = sub.add_parser("compare")
    c.add_argument("model")
    c.add_argument("sequences")
    c.add_argument("engine_logits")
    c.add_argument("out")
    args = parser.parse_args()

    model = Model(args.model)
    if args.command == "greedy":
        tokens = [int(t) for t in args.tokens.split(",")]
        for _ in range(args.new):
            tokens.append(int(np.argmax(model.forward(tokens)[-1])))
        print(",".join(str(t) for t in tokens))
        return
    with open(args.sequences) as f:
        sequences = json.load(f)["sequences"]
    vocab = model.output.shape[0]
    engine = np.fromfile(args.engine_logits, dtype="<f4").reshape(-1, vocab)
    total = sum(len(s["tokens"]) for s in sequences)
    if engine.shape[0] != total:
        sys.exit(f"{args.engine_logits}: {engine.shape[0]} rows of logits, expected {total}")
    with open(args.out, "w") as f:
        json.dump({"sequences": compare(model, sequences, engine)}, f, indent=1)


if __name__ == "__main__":
    main()
