#!/usr/bin/env python3
"""Load `workbench prune` output directories the way a user of the HF stack would, and compare weights.

    python tools/compressed_tensors_check.py DENSE_DIR SPARSE_DIR [--without-ct] [--golden OUT.safetensors]

DENSE_DIR is `workbench prune ... --format dense`, SPARSE_DIR the same prune with `--format sparse-bitmask`.
Checks (each prints one line; exit status 1 on any failure):

1. DENSE_DIR with `AutoModelForCausalLM.from_pretrained`: no missing or unexpected keys, every parameter
   bit-identical to DENSE_DIR/model.safetensors; the shard index names model.safetensors only (so loaders that
   glob *.safetensors, as vLLM does for a local folder, never read mask.safetensors).
2. SPARSE_DIR with `from_pretrained` must *fail* (never load with random weights): without compressed-tensors
   (or with --without-ct, which hides it) transformers raises ImportError for the compressed-tensors config; with
   any compressed-tensors it raises OSError, because the weights are not in model.safetensors.
3. With compressed-tensors <= 0.14 (the last versions with sparse compressors): the library's own loader,
   `ModelCompressor.from_pretrained(SPARSE_DIR).decompress(weights_file, model)` on a model built from the config,
   must give every tensor bit-identical to DENSE_DIR. The library's `BitmaskTensor.from_dense` applied to the
   dense weights must give exactly our stored tensors (names, dtypes, shapes, values); --golden writes those
   tensors (the decoder weights' four components only) for `CompressedTensorsGoldenTests`.
   With compressed-tensors >= 0.15 this step is reported as not possible: that library has no sparse
   decompressor at all (its ModelCompressor ignores sparsity_config).
"""
import argparse
import json
import os
import sys

ap = argparse.ArgumentParser()
ap.add_argument("dense")
ap.add_argument("sparse")
ap.add_argument("--without-ct", action="store_true", help="hide compressed-tensors from transformers")
ap.add_argument("--golden", help="write compressed-tensors' own encoding of the dense weights here (needs ct <= 0.14)")
args = ap.parse_args()
if args.without_ct:
    sys.modules["compressed_tensors"] = None  # transformers' is_compressed_tensors_available() is then False

import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import AutoConfig, AutoModelForCausalLM  # noqa: E402

transformers.logging.set_verbosity_error()
failures = []


def check(ok, what):
    print(("OK   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


ct_version = None
if not args.without_ct:
    try:
        import compressed_tensors
        ct_version = compressed_tensors.__version__
    except ImportError:
        pass
print(f"transformers {transformers.__version__}, torch {torch.__version__}, compressed-tensors {ct_version or 'absent'}")

# 1. dense
dense = load_file(os.path.join(args.dense, "model.safetensors"))
with open(os.path.join(args.dense, "model.safetensors.index.json")) as f:
    index = json.load(f)
check(set(index["weight_map"]) == set(dense) and set(index["weight_map"].values()) == {"model.safetensors"},
      f"dense: index names model.safetensors for all {len(dense)} tensors")
model, info = AutoModelForCausalLM.from_pretrained(args.dense, dtype=torch.float32, output_loading_info=True)
sd = model.state_dict()
check(not info["missing_keys"] and not info["unexpected_keys"],
      f"dense: from_pretrained, missing {info['missing_keys']}, unexpected {info['unexpected_keys']}")
bad = [k for k, v in dense.items() if k not in sd or not torch.equal(sd[k], v)]
check(not bad, f"dense: {len(dense) - len(bad)}/{len(dense)} tensors bit-identical after from_pretrained {bad[:3]}")

# 2. sparse-bitmask through from_pretrained must fail loudly
with open(os.path.join(args.sparse, "config.json")) as f:
    qc = json.load(f)["quantization_config"]
weights_file = os.path.join(args.sparse, "model.sparse-bitmask.safetensors")
check(qc["quant_method"] == "compressed-tensors" and qc["sparsity_config"]["format"] == "sparse-bitmask"
      and not os.path.exists(os.path.join(args.sparse, "model.safetensors")) and os.path.exists(weights_file),
      "sparse: config says compressed-tensors sparse-bitmask; weights in model.sparse-bitmask.safetensors only")
try:
    AutoModelForCausalLM.from_pretrained(args.sparse, dtype=torch.float32)
    check(False, "sparse: from_pretrained must fail, but it loaded")
except (ImportError, OSError) as e:
    check(True, f"sparse: from_pretrained fails: {type(e).__name__}: {str(e).splitlines()[0][:160]}")

# 3. compressed-tensors' own decompressor (<= 0.14)
if ct_version is not None:
    from compressed_tensors.compressors import ModelCompressor
    try:
        from compressed_tensors.compressors.sparse_compressors.sparse_bitmask import BitmaskTensor
    except ImportError:
        BitmaskTensor = None
    if BitmaskTensor is None:
        print(f"--   sparse: compressed-tensors {ct_version} has no sparse compressors (removed in 0.15.0); "
              "nothing in it can decompress sparse-bitmask")
    else:
        config = AutoConfig.from_pretrained(args.sparse)
        del config.quantization_config
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)  # random weights: all must be overwritten
        ModelCompressor.from_pretrained(args.sparse).decompress(weights_file, model)
        sd = model.state_dict()
        bad = [k for k, v in dense.items() if not torch.equal(sd[k], v)]
        check(not bad, f"sparse: ModelCompressor.decompress: {len(dense) - len(bad)}/{len(dense)} tensors bit-identical to dense {bad[:3]}")
        targets = qc["sparsity_config"]["targets"]
        ours, theirs = {}, {}
        with safe_open(weights_file, framework="pt") as f:
            for k in f.keys():
                if any(k == f"{t}.{c}" for t in targets for c in ("shape", "compressed", "bitmask", "row_offsets")):
                    ours[k] = f.get_tensor(k)
        for t in targets:
            theirs.update(BitmaskTensor.from_dense(dense[t + ".weight"]).dict(name_prefix=t))
        mism = [k for k in theirs if k not in ours or ours[k].dtype != theirs[k].dtype or not torch.equal(ours[k], theirs[k])]
        check(set(ours) == set(theirs) and not mism,
              f"sparse: {len(theirs)} stored tensors equal BitmaskTensor.from_dense of the dense weights (dtype, shape, values) {mism[:3]}")
        if args.golden:
            save_file({k: v.contiguous() for k, v in sorted(theirs.items())}, args.golden,
                      metadata={"format": "pt", "compressed_tensors": ct_version})
            print(f"wrote {args.golden}")

print("FAILED: " + "; ".join(failures) if failures else "all checks passed")
sys.exit(1 if failures else 0)
