#!/usr/bin/env python3
"""Independent check of a `workbench imatrix` file (not a golden; writes nothing).

Reads the GGUF imatrix with the `gguf` package's GGUFReader (0.19.0), maps every HF weight name of the
score file to its GGUF name with gguf's own TensorNameMap (MODEL_ARCH.LLAMA), recomputes the expected
in_sum2 = mean over rows of |R| per input column (floored at 1e-6 x the tensor mean) with numpy from
the safetensors file (parsed here, F32 only), and compares; checks the metadata llama-quantize needs
(general.type, imatrix.datasets, imatrix.chunk_count, imatrix.chunk_size) and counts == 1.

Usage: python3 tools/imatrix_check.py SCORES.safetensors IMATRIX.gguf N_LAYERS
Exit 0 when every tensor agrees to 1e-6 relative, 1 otherwise.
"""
import sys

import gguf
import numpy as np

from checklib import finish, has_metadata, read_f32_safetensors


def main():
    scores_path, imatrix_path, n_layers = sys.argv[1], sys.argv[2], int(sys.argv[3])
    scores = read_f32_safetensors(scores_path)
    reader = gguf.GGUFReader(imatrix_path)
    fields = {k: f for k, f in reader.fields.items()}
    ok = has_metadata(fields, ("general.type", "imatrix.datasets", "imatrix.chunk_count", "imatrix.chunk_size"))
    if ok:
        print("general.type =", fields["general.type"].contents(), "| chunk_count =", fields["imatrix.chunk_count"].contents(),
              "| chunk_size =", fields["imatrix.chunk_size"].contents(), "| datasets =", fields["imatrix.datasets"].contents())
        ok = fields["general.type"].contents() == "imatrix"
    tensors = {t.name: t for t in reader.tensors}
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layers)
    checked = 0
    worst = 0.0
    for hf, r in scores.items():
        if r.ndim != 2 or not hf.endswith(".weight"):
            continue
        g = names.get_name(hf, try_suffixes=(".weight",))
        if g is None:
            continue
        s, c = tensors.get(g + ".in_sum2"), tensors.get(g + ".counts")
        if s is None or c is None:
            print(f"{g}: missing in the imatrix"); ok = False; continue
        mean = np.abs(r.astype(np.float64)).mean(axis=0)
        avg = mean.mean()
        expected = np.maximum(mean, 1e-6 * avg) if avg > 0 else np.ones_like(mean)
        got = np.asarray(s.data, dtype=np.float64).reshape(-1)
        if got.shape != expected.shape or list(s.shape) != [expected.shape[0], 1] or np.asarray(c.data).reshape(-1).tolist() != [1.0]:
            print(f"{g}: shape {list(s.shape)} / counts {np.asarray(c.data).reshape(-1).tolist()}"); ok = False; continue
        rel = float(np.max(np.abs(got - expected) / np.maximum(np.abs(expected), 1e-30)))
        worst = max(worst, rel)
        checked += 1
    print(f"{checked} tensors checked, largest relative difference {worst:.3g}")
    ok = ok and checked > 0 and worst < 1e-6
    finish(ok)


if __name__ == "__main__":
    main()
