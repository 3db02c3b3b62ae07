"""Weights of a GGUF model as numpy arrays (through llama.cpp's gguf package, independently of
bitexact), and a GGUF file written with other weights (a fresh engine loads it)."""

import numpy as np
import gguf


def read_gguf_weights(path):
    """{GGUF name: float32 array [rows, cols] or [n]}, dequantized by the gguf package."""
    reader = gguf.GGUFReader(str(path))
    out = {}
    for t in reader.tensors:
        values = gguf.quants.dequantize(t.data, t.tensor_type)
        out[t.name] = np.ascontiguousarray(values.reshape(tuple(reversed(t.shape.tolist()))),
                                           dtype=np.float32)
    return out


def write_gguf_like(source_path, dest_path, weights):
    """A GGUF file with source_path's metadata and `weights` ({name: float32 array}) as F32."""
    reader = gguf.GGUFReader(str(source_path))
    arch = reader.fields["general.architecture"].contents()
    writer = gguf.GGUFWriter(str(dest_path), arch)
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        vtype = field.types[0]
        sub_type = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(name, field.contents(), vtype, sub_type)
    for t in reader.tensors:
        writer.add_tensor(t.name, np.ascontiguousarray(weights[t.name], dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def gguf_to_hf_rows(w, n_heads):
    """Undoes llama.cpp's q/k permutation: GGUF row h*Dh + 2i + j -> HF row h*Dh + j*Dh/2 + i."""
    rows, cols = w.shape
    head_dim = rows // n_heads
    return np.ascontiguousarray(
        w.reshape(n_heads, head_dim // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols))
