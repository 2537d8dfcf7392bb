#!/usr/bin/env python3
"""Build the tiny synthetic HF checkpoints under Tests/Fixtures/.

    python tools/make_fixtures.py [--out Tests/Fixtures]

Produces (deterministic: fixed seeds, fixed fill order):
  tiny-opt/              OPTForCausalLM, F32 safetensors (lm_head tied to embed_tokens)
  tiny-llama-bias/       LlamaForCausalLM with attention_bias/mlp_bias, untied lm_head, F32
  tiny-llama-bias-bf16/  the same Llama weights saved as BF16

Every parameter is re-drawn after HF init (HF init leaves biases at 0 and
norm weights at 1, which would make loader/forward tests blind to them):
  * 1-D "*.weight" (LayerNorm / RMSNorm gains):  1 + 0.1 * N(0,1)
  * "*.bias" (linear and LayerNorm biases):      0.1 * N(0,1)
  * everything else (linear weights, token and position embeddings, lm_head): 0.2 * N(0,1)
Parameters are filled in sorted-name order from one torch.Generator per model.
"""
import argparse
import hashlib
import os
import sys

import torch
from transformers import LlamaConfig, LlamaForCausalLM, OPTConfig, OPTForCausalLM

SEED_OPT = 20240601
SEED_LLAMA = 20240602


def randomise_(model, seed):
    g = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())  # tied params appear once
    with torch.no_grad():
        for name in sorted(params):
            p = params[name]
            n = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if name.endswith(".bias"):
                v = 0.1 * n
            elif p.ndim == 1 and name.endswith(".weight"):
                v = 1.0 + 0.1 * n
            else:
                v = 0.2 * n
            p.copy_(v.to(p.dtype))
    return model


def opt_config():
    return OPTConfig(vocab_size=256, hidden_size=32, ffn_dim=64, num_hidden_layers=2,
                     num_attention_heads=4, max_position_embeddings=64, word_embed_proj_dim=32,
                     do_layer_norm_before=True, pad_token_id=1, bos_token_id=2, eos_token_id=2)


def llama_config():
    return LlamaConfig(vocab_size=256, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                       max_position_embeddings=64, rope_theta=500.0, attention_bias=True,
                       mlp_bias=True, tie_word_embeddings=False, rms_norm_eps=1e-6)


def dir_size(d):
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


POINTER = ("Synthetic fixture written by tools/make_fixtures.py; see tools/README.md "
           "for its definition and regeneration recipe.\n")


def save(model, out_dir, dtype=None):
    os.makedirs(out_dir, exist_ok=True)
    if dtype is not None:
        model = model.to(dtype)
    model.save_pretrained(out_dir, safe_serialization=True)
    with open(os.path.join(out_dir, "README.md"), "w") as f:
        f.write(POINTER)
    size = dir_size(out_dir)
    assert size < 200_000, (out_dir, size)
    print(f"{out_dir}: {size} bytes, model.safetensors sha256 "
          f"{sha(os.path.join(out_dir, 'model.safetensors'))}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "Tests", "Fixtures"))
    args = ap.parse_args()
    out = os.path.normpath(args.out)
    torch.manual_seed(0)  # HF init draws (overwritten anyway)

    opt = randomise_(OPTForCausalLM(opt_config()).float().eval(), SEED_OPT)
    assert opt.lm_head.weight is opt.model.decoder.embed_tokens.weight
    save(opt, os.path.join(out, "tiny-opt"))

    llama = randomise_(LlamaForCausalLM(llama_config()).float().eval(), SEED_LLAMA)
    assert llama.lm_head.weight.data_ptr() != llama.model.embed_tokens.weight.data_ptr()
    save(llama, os.path.join(out, "tiny-llama-bias"))
    save(llama, os.path.join(out, "tiny-llama-bias-bf16"), dtype=torch.bfloat16)


if __name__ == "__main__":
    sys.exit(main())
