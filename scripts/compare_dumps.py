#!/usr/bin/env python3
"""Compares two tensor dumps (BITEXACT_DUMP=<folder>, src/model/tensor_dump.h) tensor by tensor.

For every tensor that both dumps hold (matched by forward call, layer and name), prints
    call  layer  name  shape  max_abs  max_rel  bits
where max_abs = max |a - b|, max_rel = max |a - b| / max |b| (b: the second dump, the reference),
and bits = "same" when every float32 bit pattern agrees. Tensors only one dump holds, or of
another shape, are listed as such. The two dumps may come from different backends (cpu vs cuda)
or from different programs writing the same layout.

Usage:
    compare_dumps.py DUMP_A DUMP_B [--call N] [--name q --name logits] [--first-diff]
        --first-diff: stop after the first tensor whose bits differ (where a divergence starts).
Exit status 0, also when tensors differ; 2 when a dump cannot be read.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np


def load_index(folder: Path):
    path = folder / "index.json"
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        sys.exit(f"{path}: cannot read the dump index ({e}); expected a BITEXACT_DUMP folder")
    if index.get("format") != "bitexact-tensor-dump":
        sys.exit(f"{path}: format is {index.get('format')!r}, expected 'bitexact-tensor-dump'")
    tensors = {}
    for call in index["calls"]:
        for t in call["tensors"]:
            tensors[(call["call"], t["layer"], t["name"])] = t
    return index, tensors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--call", type=int, action="append", help="only these forward calls")
    parser.add_argument("--name", action="append", help="only tensors of these names")
    parser.add_argument("--first-diff", action="store_true")
    args = parser.parse_args()

    index_a, a = load_index(args.a)
    index_b, b = load_index(args.b)
    print(f"# A: {args.a} ({index_a.get('backend')}), B: {args.b} ({index_b.get('backend')})")
    print(f"{'call':>5} {'layer':>5} {'name':<14} {'shape':<14} {'max_abs':>11} {'max_rel':>11} bits")
    for key in list(a) + [k for k in b if k not in a]:
        call, layer, name = key
        if args.call and call not in args.call or args.name and name not in args.name:
            continue
        prefix = f"{call:>5} {layer:>5} {name:<14}"
        ta, tb = a.get(key), b.get(key)
        if ta is None or tb is None:
            print(f"{prefix} only in {'B' if ta is None else 'A'}")
            continue
        if ta["file"] is None or tb["file"] is None:
            print(f"{prefix} not written ({ta['dtype']} / {tb['dtype']})")
            continue
        xa, xb = np.load(args.a / ta["file"]), np.load(args.b / tb["file"])
        shape = "x".join(str(d) for d in xa.shape)
        if xa.shape != xb.shape:
            print(f"{prefix} {shape:<14} shapes differ: B is {'x'.join(map(str, xb.shape))}")
            continue
        diff = np.abs(xa.astype(np.float64) - xb.astype(np.float64))
        scale = float(np.max(np.abs(xb))) if xb.size else 0.0
        max_abs = float(np.max(diff)) if diff.size else 0.0
        max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
        same = np.array_equal(xa.view(np.uint32), xb.view(np.uint32))
        print(f"{prefix} {shape:<14} {max_abs:11.4e} {max_rel:11.4e} {'same' if same else 'differ'}")
        if args.first_diff and not same:
            break


if __name__ == "__main__":
    main()
