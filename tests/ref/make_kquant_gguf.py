"""Rewrites a GGUF model with its matrices as random K-quant / Q5 / IQ4 blocks, written by the `gguf`
package (tests/requirements.txt), an implementation nobody here wrote:

    python make_kquant_gguf.py SRC.gguf DEST.gguf SEED

DEST keeps SRC's metadata and its 1-D tensors (the norm weights, F32). Every 2-D tensor (the
token embedding and the projections; rows a multiple of 256 elements) becomes random blocks of the
next type of TYPES in turn, so one file holds all of them, as llama.cpp's mixed Q4_K_M files do;
a layer's ffn_up takes the type of its ffn_gate (the engine runs them as one gated GEMM, which
wants one type, as llama.cpp's mixes give them).
The bytes are random (every bit field, 6-bit scale and sign occurs); the f16 scales d / dmin / m
are set to moderate values, so weights stay within about +-0.2 and the logits finite.
"""
import sys

import gguf
import numpy as np

Q = gguf.GGMLQuantizationType
TYPES = [Q.Q4_K, Q.Q6_K, Q.Q5_K, Q.Q2_K, Q.Q3_K, Q.Q5_0, Q.Q5_1, Q.IQ4_NL, Q.IQ4_XS]

# Byte offset of each f16 scale in a block and its typical size (ggml's block structs).
SCALES = {
    Q.Q4_K: [(0, 1e-4), (2, 1e-4)],
    Q.Q5_K: [(0, 5e-5), (2, 5e-5)],
    Q.Q6_K: [(208, 3e-5)],
    Q.Q2_K: [(80, 2e-3), (82, 2e-3)],
    Q.Q3_K: [(108, 1e-3)],
    Q.Q5_0: [(0, 6e-3)],
    Q.Q5_1: [(0, 3e-3), (2, -5e-2)],
    Q.IQ4_NL: [(0, 1e-3)],
    Q.IQ4_XS: [(0, 3e-5)],
}


def random_blocks(rng: np.random.Generator, qtype: Q, rows: int, cols: int) -> np.ndarray:
    block, size = gguf.constants.GGML_QUANT_SIZES[qtype]
    n_blocks = rows * cols // block
    raw = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    for offset, typical in SCALES[qtype]:
        scale = (typical * rng.uniform(0.5, 1.5, size=n_blocks)).astype(np.float16)
        raw[:, offset:offset + 2] = scale.view(np.uint8).reshape(n_blocks, 2)
    return raw.reshape(rows, cols // block * size)


def main() -> None:
    src, dest, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rng = np.random.default_rng(seed)
    reader = gguf.GGUFReader(src)
    arch = reader.fields["general.architecture"].contents()
    writer = gguf.GGUFWriter(dest, arch)
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        vtype = field.types[0]
        sub_type = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(name, field.contents(), vtype, sub_type)
    types = {}  # by tensor name, ffn_up under its layer's ffn_gate
    for t in reader.tensors:
        if t.tensor_type != Q.F32:
            raise SystemExit(f"{src}: tensor {t.name} is {t.tensor_type.name}, expected F32")
        values = np.asarray(t.data, dtype=np.float32)
        if values.ndim == 1:
            writer.add_tensor(t.name, np.ascontiguousarray(values))
            continue
        rows, cols = values.shape
        key = t.name.replace("ffn_up", "ffn_gate")
        qtype = types.setdefault(key, TYPES[len(types) % len(TYPES)])
        blocks = random_blocks(rng, qtype, rows, cols)
        writer.add_tensor(t.name, blocks, raw_dtype=qtype)  # byte shape -> element shape
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    main()
