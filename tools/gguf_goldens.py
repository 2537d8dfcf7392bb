#!/usr/bin/env python3
# Regenerate (from the package root):
#   /work/pyenv/bin/python tools/gguf_goldens.py
# (defaults: --gguf models/SmolLM2-135M-Instruct.Q4_1.gguf --out Tests/Fixtures/smollm2_goldens.json;
#  needs torch 2.13.0+cpu, transformers<5, `pip install gguf accelerate` in /work/pyenv)
"""Reference numbers for the Swift GGUF path, computed by HF transformers' own GGUF loader.

transformers dequantizes every tensor to F32 (via gguf-py) and un-permutes attn_q/attn_k
itself, so its state dict is an independent check of our dequant + q/k un-permutation, and
its forward pass gives reference logits for "The capital of France is".

Tokenizer note: transformers rebuilds the GGUF tokenizer with the plain GPT-2 pre-tokenizer
and ignores `tokenizer.ggml.pre = "smollm"`. llama.cpp's smollm pre-tokenizer (and SmolLM2's
own tokenizer.json) first splits every digit (\\p{N}) on its own. `ids` below use that
(transformers' backend with a Digits(individual_digits) + ByteLevel pre-tokenizer);
`ids_transformers_gguf` are transformers' unmodified ids, kept when they differ.
"""
import argparse
import importlib.metadata
import json
import os
import sys
import time

import numpy as np
import torch
from tokenizers import pre_tokenizers
from transformers import AutoModelForCausalLM, AutoTokenizer

RECIPE = "/work/pyenv/bin/python tools/gguf_goldens.py  (from the package root)"
PROMPTS = [
    "The capital of France is",
    "In 2024 there were 12345 cats.",
    "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
]
# (HF name, rows to sample): rows straddle the q/k head-half boundary (hd = 64 → rows 31/32, 63/64).
SAMPLES = [
    ("model.embed_tokens.weight", [0, 1, 1000, 49151]),
    ("model.layers.0.self_attn.q_proj.weight", [0, 1, 31, 32, 63, 64, 575]),
    ("model.layers.0.self_attn.k_proj.weight", [0, 1, 32, 64, 191]),
    ("model.layers.29.self_attn.k_proj.weight", [0, 33, 96, 191]),
    ("model.layers.0.self_attn.v_proj.weight", [0, 191]),
    ("model.layers.3.mlp.down_proj.weight", [0, 575]),
    ("model.layers.0.input_layernorm.weight", [0]),
    ("model.norm.weight", [0]),
]
N_VALUES = 8


def compact_json(obj):
    """One line per top-level key, and one line per element of top-level lists: small and diffable."""
    dump = lambda v: json.dumps(v, ensure_ascii=False, separators=(", ", ": "))
    lines = []
    for k, v in obj.items():
        if isinstance(v, list):
            lines.append(f" {dump(k)}: [\n" + ",\n".join("  " + dump(e) for e in v) + "\n ]")
        else:
            lines.append(f" {dump(k)}: {dump(v)}")
    return "{\n" + ",\n".join(lines) + "\n}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gguf", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--out", default="Tests/Fixtures/smollm2_goldens.json")
    args = ap.parse_args()
    gdir, gname = os.path.split(os.path.abspath(args.gguf))
    torch.manual_seed(0)
    t0 = time.time()
    tok = AutoTokenizer.from_pretrained(gdir, gguf_file=gname)
    model = AutoModelForCausalLM.from_pretrained(gdir, gguf_file=gname, dtype=torch.float32,
                                                 attn_implementation="eager")
    model.eval()
    print(f"loaded in {time.time() - t0:.1f}s", file=sys.stderr)

    smol = AutoTokenizer.from_pretrained(gdir, gguf_file=gname)
    smol.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])

    prompts = []
    for text in PROMPTS:
        entry = {"text": text, "ids": smol.encode(text, add_special_tokens=False)}
        hf_ids = tok.encode(text, add_special_tokens=False)
        if hf_ids != entry["ids"]:
            entry["ids_transformers_gguf"] = hf_ids
        entry["decoded"] = smol.decode(entry["ids"])
        prompts.append(entry)

    sd = model.state_dict()
    samples = []
    for name, rows in SAMPLES:
        w = sd[name].detach().to(torch.float64).numpy()
        w2 = w.reshape(w.shape[0], -1) if w.ndim == 2 else w.reshape(1, -1)
        samples.append({"name": name, "shape": list(w.shape), "rows": rows,
                        "values": [[float(np.float32(x)) for x in w2[r, :N_VALUES]] for r in rows],
                        "sum": float(w.sum())})

    first = prompts[0]["ids"]
    ids = torch.tensor([first])
    with torch.no_grad():
        logits = model(ids).logits[0, -1].to(torch.float32)
        top = torch.topk(logits, 10)
        gen = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False,
                             pad_token_id=tok.eos_token_id)
    cont = gen[0, len(first):].tolist()

    out = {
        "recipe": RECIPE,
        "source": os.path.basename(args.gguf),
        "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__,
                     "gguf": importlib.metadata.version("gguf")},
        "notes": "F32 forward with transformers' dequantized weights (eager attention). ids use llama.cpp's "
                 "'smollm' pre-tokenizer (digits split individually), no BOS (add_bos_token=false).",
        "config": {"tie_word_embeddings": bool(model.config.tie_word_embeddings),
                   "rope_theta": model.config.rope_theta, "rms_norm_eps": model.config.rms_norm_eps},
        "prompts": prompts,
        "next_token": {"prompt": PROMPTS[0], "input_ids": first,
                       "top10_ids": top.indices.tolist(), "top10_logits": [float(x) for x in top.values],
                       "top10_tokens": [smol.decode([i]) for i in top.indices.tolist()]},
        "greedy": {"prompt": PROMPTS[0], "new_tokens": 8, "ids": cont, "text": smol.decode(cont)},
        "tensor_samples": samples,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(compact_json(out) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
