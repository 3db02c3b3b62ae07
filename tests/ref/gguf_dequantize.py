"""Dequantizes raw ggml blocks with the `gguf` package (tests/requirements.txt), the reference
that tests/unit/quant_matmul_test.cpp checks bitexact's block dequantization against.

    python gguf_dequantize.py TYPE IN.bin OUT.bin

TYPE is a ggml type name (Q8_0, Q4_K, ...); IN.bin holds whole blocks; OUT.bin gets the values
as little-endian float32, in element order.
"""
import sys

import gguf
import numpy as np


def main() -> None:
    qtype = gguf.GGMLQuantizationType[sys.argv[1]]
    blocks = np.fromfile(sys.argv[2], dtype=np.uint8)
    with np.errstate(invalid="ignore", over="ignore"):  # NaN and inf scales are test inputs
        values = gguf.quants.dequantize(blocks, qtype)
    np.asarray(values, dtype="<f4").tofile(sys.argv[3])


if __name__ == "__main__":
    main()
