#!/usr/bin/env python3
"""make_safetensors_ref.py — writes the safetensors fixtures that
tests/unit/test_safetensors.c reads, using only struct and json (an
independent writer: nothing from inferd is involved).

  /usr/bin/python3 tests/ref/make_safetensors_ref.py   # from the repo root

Outputs (committed):
  tests/ref/st_ref.safetensors        header padded with spaces to 8 bytes
  tests/ref/st_ref_nopad.safetensors  same tensors, header not padded, so
                                      every tensor's data is misaligned
The values are listed in test_safetensors.c as literals; keep both in sync.
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def bf16(x):
    """Top two bytes of the little-endian binary32 (values chosen exact)."""
    return struct.pack("<f", x)[2:4]


TENSORS = [
    # name, dtype, shape, raw little-endian bytes
    ("a.f32", "F32", [2, 3], struct.pack("<6f", 1.5, -2.0, 0.0, 3.25, 0.125, -7.0)),
    # struct's 'e' is IEEE binary16: normals, both subnormal extremes,
    # the largest finite value, infinities, NaN, negative zero, a fraction.
    ("b.f16", "F16", [10], struct.pack("<10e", 1.0, -2.0, 2.0 ** -24, 1023 * 2.0 ** -24, 65504.0,
                                       float("inf"), float("-inf"), float("nan"), -0.0, 0.333251953125)),
    ("c.bf16", "BF16", [2, 3], b"".join(bf16(v) for v in (1.0, -3.5, 0.15625, 196608.0, 2.0 ** -130,
                                                          float("-inf")))),
    ("d.i64", "I64", [3], struct.pack("<3q", 1, -2, 1 << 40)),
    ("e.u8", "U8", [3], bytes([1, 2, 3])),
    ("f.f32", "F32", [2], struct.pack("<2f", 0.5, -0.25)),   # lands at an odd offset
    ("g.scalar", "F32", [], struct.pack("<f", 42.0)),
]
METADATA = {"format": "pt", "note": "written by make_safetensors_ref.py"}


def write(path, pad):
    header = {"__metadata__": METADATA}
    off = 0
    for name, dtype, shape, raw in TENSORS:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    elif (len(h) % 4) == 0:
        h += b" "   # make sure the data section starts misaligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, _, _, raw in TENSORS:
            f.write(raw)


if __name__ == "__main__":
    write(os.path.join(HERE, "st_ref.safetensors"), pad=True)
    write(os.path.join(HERE, "st_ref_nopad.safetensors"), pad=False)
