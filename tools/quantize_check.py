#!/usr/bin/env python3
"""Independent check of a `workbench quantize` GGUF (not a golden; writes nothing).

Reads the GGUF with the `gguf` package (0.19.0): the metadata llama.cpp needs, every tensor dequantised by
`gguf.quants.dequantize`, named back to HF with gguf's own TensorNameMap, q/k rows un-permuted from llama.cpp's
interleaved RoPE order (the inverse of convert_hf_to_gguf.py's LlamaModel.permute), and compares with the HF
checkpoint it was made from (model.safetensors, F32, parsed here): F32 tensors must be bit-identical, quantised ones
within the type's error (relative RMS error below 2 % for Q8_0, 20 % for Q4_0/Q4_1; a wrong row order or layout gives
errors of the weights' own size, ~140 %).

Usage: python3 tools/quantize_check.py HF_DIR OUT.gguf      (exit 0 when everything agrees)
"""
import json
import sys

import gguf
import numpy as np

from checklib import finish, has_metadata, read_f32_safetensors


def unpermute(w, n_head):
    # convert_hf_to_gguf.py: w.reshape(n_head, 2, d // n_head // 2, *rest).swapaxes(1, 2).reshape(w.shape)
    shape = w.shape
    return w.reshape(n_head, shape[0] // n_head // 2, 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def main():
    hf_dir, path = sys.argv[1], sys.argv[2]
    cfg = json.load(open(f"{hf_dir}/config.json"))
    hf = read_f32_safetensors(f"{hf_dir}/model.safetensors")
    r = gguf.GGUFReader(path)
    fields = {k: f.contents() for k, f in r.fields.items() if not k.startswith("GGUF.")}
    ok = has_metadata(fields, ("general.architecture", "llama.block_count", "llama.embedding_length", "llama.attention.head_count",
                               "llama.attention.head_count_kv", "llama.rope.freq_base", "llama.attention.layer_norm_rms_epsilon"))
    if fields.get("general.architecture") != "llama":
        ok = False
    n_layers = cfg["num_hidden_layers"]
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layers)
    to_hf = {}
    for h in hf:
        g = names.get_name(h, try_suffixes=(".weight", ".bias"))
        if g is not None:
            to_hf[g] = h
    seen = set()
    for t in r.tensors:
        h = to_hf.get(t.name)
        if h is None:
            print(f"{t.name}: no HF tensor"); ok = False; continue
        w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32).reshape(hf[h].shape)
        if t.name.endswith("attn_q.weight") or t.name.endswith("attn_q.bias"):
            w = unpermute(w, cfg["num_attention_heads"])
        if t.name.endswith("attn_k.weight") or t.name.endswith("attn_k.bias"):
            w = unpermute(w, cfg.get("num_key_value_heads", cfg["num_attention_heads"]))
        ref = hf[h]
        kind = t.tensor_type.name
        if kind == "F32":
            good = np.array_equal(w.view(np.uint32), ref.view(np.uint32))
            print(f"{t.name:28s} {kind:5s} bit-identical: {good}")
        else:
            rel = float(np.sqrt(np.mean((w - ref) ** 2) / np.mean(ref ** 2)))
            limit = 0.02 if kind == "Q8_0" else 0.20
            good = rel < limit
            print(f"{t.name:28s} {kind:5s} relative RMS error {rel:.4f} (limit {limit})")
        ok = ok and good
        seen.add(h)
    missing = set(hf) - seen
    if missing:
        print("HF tensors missing from the GGUF:", sorted(missing)); ok = False
    finish(ok)


if __name__ == "__main__":
    main()
