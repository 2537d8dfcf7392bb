#!/usr/bin/env python3
"""HF transformers reference logits -> Tests/Fixtures/goldens/hf_logits.json

    WORKBENCH_ASSETS=/work/shared/assets python tools/hf_goldens.py

For each model (stories260K/hf from $WORKBENCH_ASSETS, default /work/shared/assets;
tiny-opt, tiny-llama-bias, tiny-llama-bias-bf16 from Tests/Fixtures):
  single: one sequence of 12 fixed ids -> logits [12, vocab]
  batch:  right-padded batch of 2 sequences (lengths 7 and 4) with attention_mask
          [[1]*7, [1]*4 + [0]*3] -> logits of the real positions only
          (batch.logits[b] has shape [lengths[b], vocab]).
Model: from_pretrained(dtype=float32, attn_implementation="eager"), eval(), no_grad.
The bf16 fixture is upcast to f32 on load (bf16 weights -> exact f32 values), then run in f32.
Logits are float32, written rounded to 6 decimals.
"""
import json
import os
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
FIX = os.path.join(ROOT, "Tests", "Fixtures")
OUT = os.path.join(FIX, "goldens", "hf_logits.json")
ASSETS = os.environ.get("WORKBENCH_ASSETS", "/work/shared/assets")
RECIPE = ("tools/setup_pyenv.sh .venv && WORKBENCH_ASSETS=/work/shared/assets "
          ".venv/bin/python tools/hf_goldens.py")

# stories260K ids from stories260K/hf/tokenizer.model (BOS 1 prepended):
#  single: first 12 ids of "Once upon a time, there was a little girl named ..." (decodes to
#          "Once upon a time, there was a little gir")
#  batch[0]: "One day, a little b" (7 ids)   batch[1]: "The cat" (4 ids)
# tiny models: fixed arbitrary ids (OPT starts with </s>=2, Llama with BOS 1; no pad id 1 in OPT).
MODELS = {
    "stories260K": dict(
        path=os.path.join(ASSETS, "stories260K", "hf"), path_label="$WORKBENCH_ASSETS/stories260K/hf",
        single=[1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315],
        batch=[[1, 385, 328, 432, 261, 376, 268], [1, 291, 280, 294]], pad_id=0),
    "tiny-opt": dict(
        path=os.path.join(FIX, "tiny-opt"), path_label="Tests/Fixtures/tiny-opt",
        single=[2, 45, 187, 9, 233, 71, 120, 3, 254, 88, 160, 17],
        batch=[[2, 200, 31, 77, 5, 142, 99], [2, 64, 128, 250]], pad_id=1),
    "tiny-llama-bias": dict(
        path=os.path.join(FIX, "tiny-llama-bias"), path_label="Tests/Fixtures/tiny-llama-bias",
        single=[1, 45, 187, 9, 233, 71, 120, 3, 254, 88, 160, 17],
        batch=[[1, 200, 31, 77, 5, 142, 99], [1, 64, 128, 250]], pad_id=0),
    "tiny-llama-bias-bf16": dict(
        path=os.path.join(FIX, "tiny-llama-bias-bf16"), path_label="Tests/Fixtures/tiny-llama-bias-bf16",
        single=[1, 45, 187, 9, 233, 71, 120, 3, 254, 88, 160, 17],
        batch=[[1, 200, 31, 77, 5, 142, 99], [1, 64, 128, 250]], pad_id=0),
}


def r6(t):
    return [[round(float(x), 6) for x in row] for row in t.tolist()]


def run(spec):
    model = AutoModelForCausalLM.from_pretrained(spec["path"], dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    for p in model.parameters():
        assert p.dtype == torch.float32
    single = spec["single"]
    assert len(single) == 12
    with torch.no_grad():
        ids = torch.tensor([single])
        l_single = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0]
        seqs = spec["batch"]
        lengths = [len(s) for s in seqs]
        assert lengths == [7, 4]
        T = max(lengths)
        bids = torch.tensor([s + [spec["pad_id"]] * (T - len(s)) for s in seqs])
        mask = torch.tensor([[1] * len(s) + [0] * (T - len(s)) for s in seqs])
        l_batch = model(input_ids=bids, attention_mask=mask).logits
        # consistency (informational): each padded row vs the same sequence alone
        diffs = []
        for b, s in enumerate(seqs):
            alone = model(input_ids=torch.tensor([s])).logits[0]
            diffs.append(float((alone - l_batch[b, :len(s)]).abs().max()))
    assert l_single.dtype == torch.float32
    entry = {
        "path": spec["path_label"],
        "model_type": model.config.model_type,
        "vocab_size": model.config.vocab_size,
        "single": {"ids": single, "logits": r6(l_single)},
        "batch": {
            "ids": bids.tolist(), "attention_mask": mask.tolist(), "lengths": lengths,
            "pad_id": spec["pad_id"],
            "logits": [r6(l_batch[b, :n]) for b, n in enumerate(lengths)],
            "max_abs_diff_vs_unpadded_run": max(diffs),
        },
    }
    print(f"{spec['path_label']}: single logits[0,:4]={l_single[0,:4].tolist()} "
          f"batch-vs-unpadded max|d|={max(diffs):.3g}")
    return entry


def main():
    import importlib.metadata as md
    out = {
        "recipe": RECIPE,
        "generator": "tools/hf_goldens.py",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "safetensors": md.version("safetensors")},
        "definition": (
            "HF AutoModelForCausalLM, dtype=float32, attn_implementation='eager', eval, no_grad. "
            "single: logits[t, v] for t in 0..11 of the 12 ids in single.ids (attention_mask all ones). "
            "batch: right-padded batch of 2 (pad_id in the padded slots, attention_mask 0 there); "
            "batch.logits[b] = logits[b, 0:lengths[b], :] (real positions only). "
            "Positions: Llama uses 0..T-1; OPT derives them from cumsum(attention_mask) (offset 2 "
            "into embed_positions). tiny-llama-bias-bf16 is loaded from BF16 safetensors and upcast "
            "to f32 before the f32 forward. Values rounded to 6 decimals."),
        "models": {},
    }
    for name, spec in MODELS.items():
        out["models"][name] = run(spec)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    size = os.path.getsize(OUT)
    print(f"wrote {OUT}: {size} bytes")
    assert size < 1_500_000


if __name__ == "__main__":
    sys.exit(main())
