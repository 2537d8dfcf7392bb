#!/usr/bin/env python3
# Regenerate (from the package root):
#   python3 -m venv /tmp/gguf-venv && /tmp/gguf-venv/bin/pip install gguf==0.19.0 numpy
#   /tmp/gguf-venv/bin/python tools/ggml_block_goldens.py
"""Golden for GGMLBlockCodec and GGUFWriter: one small GGUF v3 file written by the `gguf`
package's own GGUFWriter.

`input` (F32, 8 rows × 128) holds seeded normal draws plus hand-picked awkward blocks
(all zeros, a constant, one outlier, values near the F16 subnormal range, exact ties for
rounding). Every other tensor is `input` encoded by `gguf.quants.quantize` (bit-exact with
ggml-quants.c's reference rows, per the package) as F16, BF16, Q8_0, Q4_0 and Q4_1.
The metadata holds one key of each scalar type and arrays, so our writer can be checked to
produce the same bytes for the same metadata and tensors.
"""
import numpy as np
import gguf
from gguf.quants import quantize

OUT = "Tests/Fixtures/goldens/ggml_blocks.gguf"

rng = np.random.default_rng(20251205)
x = (rng.standard_normal((8, 128)) * 0.05).astype(np.float32)
x[1, 0:32] = 0.0                                   # all-zero block: d = 0, id = 0
x[1, 32:64] = 0.125                                # constant block (q4_1: d = 0)
x[1, 64:96] *= 0.01; x[1, 70] = 3.0                # one outlier
x[2, 0:32] = rng.standard_normal(32).astype(np.float32) * 1e-5   # F16 subnormal range
x[2, 32:64] = np.arange(-16, 16, dtype=np.float32) / 8.0         # exact ties for Q8_0/Q4 rounding
x[3, 96:128] = -np.abs(x[3, 96:128])                # all negative: q4_0 takes max of |x| with sign

w = gguf.GGUFWriter(OUT, "llama")
w.add_uint32("test.u32", 7)
w.add_int32("test.i32", -3)
w.add_float32("test.f32", 0.5)
w.add_uint64("test.u64", 1 << 40)
w.add_bool("test.bool", True)
w.add_string("test.string", "héllo")
w.add_array("test.strings", ["a", "bc", ""])
w.add_array("test.ints", [1, -2, 3])
w.add_array("test.floats", [0.25, -1.5])
w.add_tensor("input", x)
for name, t in [("f16", gguf.GGMLQuantizationType.F16), ("bf16", gguf.GGMLQuantizationType.BF16),
                ("q8_0", gguf.GGMLQuantizationType.Q8_0), ("q4_0", gguf.GGMLQuantizationType.Q4_0),
                ("q4_1", gguf.GGMLQuantizationType.Q4_1)]:
    q = quantize(x, t)
    w.add_tensor(name, q, raw_dtype=t)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()

r = gguf.GGUFReader(OUT)
for f in r.fields.values():
    print(f.name, [gguf.GGUFValueType(t).name for t in f.types])
for t in r.tensors:
    print(t.name, t.tensor_type.name, list(t.shape), t.n_bytes)
