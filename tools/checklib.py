"""What the tools/*_check.py scripts share: reading our safetensors outputs without the safetensors package,
the metadata-key check and the final verdict. Imported by the scripts as `checklib` (Python puts the script's
own folder, tools/, first on sys.path); needs numpy only.
"""
import json
import struct
import sys

import numpy as np


def read_f32_safetensors(path):
    """Every F32 tensor of a safetensors file as a numpy array {name: array} (other dtypes are skipped)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] != "F32":
            continue
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype="<f4").reshape(info["shape"])
    return out


def has_metadata(fields, keys):
    """True when every key is in `fields`; prints one line per missing key."""
    missing = [k for k in keys if k not in fields]
    for k in missing:
        print(f"missing metadata {k}")
    return not missing


def finish(ok):
    """Prints the verdict and exits: 0 when everything agreed, 1 otherwise."""
    print("OK" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)
