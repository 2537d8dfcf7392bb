#!/usr/bin/env python3
"""AttnLRP (LXT "efficient" mode) reference relevances -> Tests/Fixtures/goldens/

    WORKBENCH_ASSETS=/work/shared/assets python tools/lxt_goldens.py

Every golden is produced by its own subprocess (`--job NAME`), because LXT's monkey
patches are process-global (they replace LlamaRMSNorm.forward, LlamaMLP.forward,
torch.nn.Dropout.forward and modeling_llama.eager_attention_forward). The parent
collects the scalars of every job into goldens/lrp_goldens.json.

Explained output (identical for every job):
  x = ids (one sequence, batch 1, no padding, causal), logits = model(inputs_embeds=E[x]).logits[0]
  explained entries: (t, x[t+1]) for t = 0..T-2
  seed "logit": F = sum_t logits[t, x[t+1]];  F.backward()
                -> each explained logit is seeded with its own value (relevance = tensor * grad)
  seed "one":   logits.backward(gradient=G), G[t, x[t+1]] = 1 / logits[t, x[t+1]] (detached), 0 elsewhere
                -> each explained logit carries relevance 1
  R_W  = W * W.grad for every decoder linear weight, per sequence, then summed over the sequences
  input relevance per token = sum_hidden(inputs_embeds * inputs_embeds.grad)
  conservation ratio = sum(input relevance) / sum(explained output relevance)
           (explained output relevance = F for seed "logit", T-1 for seed "one")
See tools/README.md for the per-file definitions.
"""
import argparse
import json
import os
import subprocess
import sys
import types
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
FIX = os.path.join(ROOT, "Tests", "Fixtures")
GOLD = os.path.join(FIX, "goldens")
ASSETS = os.environ.get("WORKBENCH_ASSETS", "/work/shared/assets")
STORIES = os.path.join(ASSETS, "stories260K", "hf")
RECIPE = ("tools/setup_pyenv.sh .venv && WORKBENCH_ASSETS=/work/shared/assets "
          ".venv/bin/python tools/lxt_goldens.py")

# stories260K/hf/tokenizer.model ids, BOS 1 prepended:
#   seq0 (16): "One day, a little boy went to the park" (first 16 ids of "... with his mom.")
#   seq1 (24): "The cat sat on the mat and looked at the big red ball. T" (first 24 ids)
STORIES_SEQS = [
    [1, 385, 328, 432, 261, 376, 268, 414, 422, 263, 377, 267, 265, 282, 295, 433],
    [1, 291, 280, 294, 262, 294, 353, 265, 284, 294, 269, 278, 347, 355, 261, 413, 265, 370, 352, 266,
     268, 388, 426, 274],
]
# tiny models: fixed arbitrary ids; OPT starts with </s>=2 (its BOS), Llama with BOS 1.
OPT_SEQS = [
    [2, 45, 187, 9, 233, 71, 120, 3, 254, 88],
    [2, 200, 31, 77, 5, 142, 99, 64, 128, 250, 17, 160, 33, 211],
]
LLAMA_TINY_SEQS = [
    [1, 45, 187, 9, 233, 71, 120, 3, 254, 88, 160, 17, 64, 128, 250, 33],
    [1, 200, 31, 77, 5, 142, 99, 64, 128, 250, 17, 160, 33, 211, 45, 187, 9, 233, 71, 120, 3, 254,
     88, 7],
]

# ----------------------------------------------------------------------------- environment

def import_stack(with_lxt):
    import torch
    import transformers  # noqa: F401  -- must be imported BEFORE the torchvision stub
    if with_lxt:
        # lxt.efficient imports torchvision (vit_torch.py); the PyPI torchvision is CUDA-linked,
        # so stub it. Must come after `import transformers` (its find_spec chokes on the stub).
        tv = types.ModuleType("torchvision")
        tvm = types.ModuleType("torchvision.models")
        vit = types.ModuleType("torchvision.models.vision_transformer")
        vit.nn = torch.nn
        tv.models = tvm
        tvm.vision_transformer = vit
        sys.modules.update({"torchvision": tv, "torchvision.models": tvm,
                            "torchvision.models.vision_transformer": vit})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "zennit not available" (only used for ViT)
            import lxt.efficient  # noqa: F401
    return torch


def versions():
    import importlib.metadata as md
    import torch
    import transformers
    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "lxt": md.version("lxt"), "safetensors": md.version("safetensors")}


def load(path):
    import torch
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    m.eval()
    for p in m.parameters():
        assert p.dtype == torch.float32
        p.requires_grad_(True)
    return m


def llama_linear_names(n_layers):
    out = []
    for i in range(n_layers):
        out += [f"model.layers.{i}.self_attn.{p}_proj.weight" for p in ("q", "k", "v", "o")]
        out += [f"model.layers.{i}.mlp.{p}_proj.weight" for p in ("gate", "up", "down")]
    return out


def opt_linear_names(n_layers):
    out = []
    for i in range(n_layers):
        out += [f"model.decoder.layers.{i}.self_attn.{p}_proj.weight" for p in ("q", "k", "v", "out")]
        out += [f"model.decoder.layers.{i}.{p}.weight" for p in ("fc1", "fc2")]
    return out


# ----------------------------------------------------------------------------- core

def explain_sequence(model, ids, seed, is_opt=False):
    """One forward/backward for one sequence. Returns (grads already in p.grad) info dict."""
    import torch
    model.zero_grad(set_to_none=True)
    x = torch.tensor([ids])
    T = len(ids)
    if is_opt:
        emb_mod = model.model.decoder.embed_tokens
    else:
        emb_mod = model.model.embed_tokens
    emb = emb_mod(x).detach().requires_grad_(True)
    pos_holder = {}
    hook = None
    if is_opt:
        def pos_hook(mod, inp, out):
            out = out.detach().requires_grad_(True)
            pos_holder["pos"] = out
            return out
        hook = model.model.decoder.embed_positions.register_forward_hook(pos_hook)
    logits = model(inputs_embeds=emb, attention_mask=torch.ones_like(x), use_cache=False).logits[0]
    if hook is not None:
        hook.remove()
    assert logits.dtype == torch.float32 and logits.shape[0] == T
    t = torch.arange(T - 1)
    tgt = torch.tensor(ids[1:])
    explained = logits[t, tgt]
    if seed == "logit":
        F = explained.sum()
        F.backward()
        out_rel = float(F.detach())
    elif seed == "one":
        G = torch.zeros_like(logits)
        G[t, tgt] = 1.0 / explained.detach()
        logits.backward(gradient=G)
        out_rel = float(T - 1)
    else:
        raise ValueError(seed)
    tok_rel = (emb * emb.grad).sum(-1)[0].detach()
    info = {"ids": ids, "explained_logits": [float(v) for v in explained.detach()],
            "explained_output_relevance": out_rel, "tok_rel": tok_rel}
    if is_opt:
        pos = pos_holder["pos"]
        info["pos_rel"] = (pos * pos.grad).sum(-1)[0].detach()
    return info


def run_sequences(model, seqs, seed, weight_names, is_opt=False):
    """Runs sequences separately; returns summed R_W, per-seq infos, summed param relevance sums."""
    import torch
    params = dict(model.named_parameters())
    R = {n: torch.zeros_like(params[n]).detach() for n in weight_names}
    skip = ("embed_tokens", "embed_positions", "lm_head")
    psums = {n: 0.0 for n in params if not any(s in n for s in skip)}
    infos = []
    for ids in seqs:
        info = explain_sequence(model, ids, seed, is_opt)
        for n in weight_names:
            R[n] += params[n].detach() * params[n].grad
        for n in psums:
            g = params[n].grad
            if g is not None:
                psums[n] += float((params[n].detach().double() * g.double()).sum())
        infos.append(info)
    return R, infos, psums


def summarise(R, infos, psums, weight_names, is_opt=False):
    import torch
    seqs = []
    tot_in, tot_out = 0.0, 0.0
    for k, info in enumerate(infos):
        s_tok = float(info["tok_rel"].double().sum())
        s_in = s_tok
        d = {"ids": info["ids"], "explained_logits": info["explained_logits"],
             "explained_output_relevance": info["explained_output_relevance"]}
        if is_opt:
            s_pos = float(info["pos_rel"].double().sum())
            s_in = s_tok + s_pos
            d["token_embedding_relevance_sum"] = s_tok
            d["position_embedding_relevance_sum"] = s_pos
        d["input_relevance_sum"] = s_in
        d["conservation_ratio"] = s_in / info["explained_output_relevance"]
        tot_in += s_in
        tot_out += info["explained_output_relevance"]
        seqs.append(d)
    sums = {n: float(R[n].double().sum()) for n in weight_names}
    return {"sequences": seqs, "conservation_ratio_total": tot_in / tot_out,
            "per_tensor_sums": sums, "param_relevance_sums": psums}


def save_st(path, tensors, meta, limit=1_200_000):
    """Byte-deterministic safetensors writer (safetensors.save_file emits __metadata__ in
    HashMap order, which changes from run to run). Layout: u64 LE header length, JSON header
    (keys sorted, tensors in sorted-name order, space-padded to a multiple of 8), raw F32 LE data.
    The file is re-read with safetensors.torch.load_file and compared."""
    import struct
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file
    t = {k: tensors[k].detach().to(torch.float32).contiguous() for k in sorted(tensors)}
    meta = {k: (v if isinstance(v, str) else json.dumps(v, separators=(",", ":")))
            for k, v in sorted(meta.items())}
    header = {"__metadata__": meta}
    blobs, off = [], 0
    for k, v in t.items():
        b = v.numpy().astype("<f4").tobytes()
        header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)
    back = load_file(path)
    assert list(back) == list(t) and all(torch.equal(back[k], t[k]) for k in t)
    with safe_open(path, "pt") as f:
        assert f.metadata() == meta
    size = os.path.getsize(path)
    assert size < limit, (path, size)
    return size


def rel_close(a, b, tol=1e-4):
    return abs(a - b) <= tol * max(abs(a), abs(b), 1e-30)


def pair_checks(sums, n_layers, prefix="model.layers"):
    out = []
    for i in range(n_layers):
        q = sums[f"{prefix}.{i}.self_attn.q_proj.weight"]
        k = sums[f"{prefix}.{i}.self_attn.k_proj.weight"]
        g = sums[f"{prefix}.{i}.mlp.gate_proj.weight"]
        u = sums[f"{prefix}.{i}.mlp.up_proj.weight"]
        v = sums[f"{prefix}.{i}.self_attn.v_proj.weight"]
        o = sums[f"{prefix}.{i}.self_attn.o_proj.weight"]
        d = sums[f"{prefix}.{i}.mlp.down_proj.weight"]
        out.append({"layer": i, "q": q, "k": k, "q_k_rel_diff": abs(q - k) / max(abs(q), abs(k)),
                    "gate": g, "up": u, "gate_up_rel_diff": abs(g - u) / max(abs(g), abs(u)),
                    # without biases also: sum R(v) = sum R(o)/2 (uniform rule on A.V) and
                    # sum R(gate) + sum R(up) = sum R(down) (uniform rule on gate*up)
                    "v": v, "o": o, "v_half_o_rel_diff": abs(v - o / 2) / max(abs(v), abs(o / 2)),
                    "down": d, "gate_up_down_rel_diff": abs(g + u - d) / max(abs(g + u), abs(d))})
    return out


def common_meta(model_label, method, seed, seqs, definition, res):
    return {"generator": "tools/lxt_goldens.py", "recipe": RECIPE, "model": model_label,
            "method": method, "seed": seed, "ids": seqs, "definition": definition,
            "versions": versions(), "per_tensor_sums": res["per_tensor_sums"],
            "conservation_ratio_total": repr(res["conservation_ratio_total"]),
            "conservation_ratio_per_seq": [s["conservation_ratio"] for s in res["sequences"]]}


DEF_W = ("R_W = W * W.grad summed over the sequences (each run separately, batch 1, causal, no padding); "
         "F = sum_{t=0}^{T-2} logits[t, ids[t+1]]")
DEF_IN = "input_relevance.seqK[t] = sum_hidden(inputs_embeds * grad)[t] for sequence K"

# ----------------------------------------------------------------------------- jobs

def job_lrp_llama(label, path, seqs, seed, fname, strict_pairs):
    torch = import_stack(with_lxt=True)
    from lxt.efficient import monkey_patch
    from transformers.models.llama import modeling_llama
    monkey_patch(modeling_llama)  # lxt.efficient.models.llama.attnLRP
    # verify the patches are live
    assert modeling_llama.LlamaRMSNorm.forward.__module__ == "lxt.efficient.patches"
    assert modeling_llama.LlamaMLP.forward.__module__ == "lxt.efficient.patches"
    assert modeling_llama.eager_attention_forward.__module__ == "lxt.efficient.patches"
    assert torch.nn.Dropout.forward.__module__ == "lxt.efficient.patches"
    model = load(path)
    L = model.config.num_hidden_layers
    names = llama_linear_names(L)
    R, infos, psums = run_sequences(model, seqs, seed, names)
    res = summarise(R, infos, psums, names)
    checks = pair_checks(res["per_tensor_sums"], L)
    for c in checks:
        print(f"  [{label} seed={seed}] layer {c['layer']}: sum R(q)={c['q']:.6g} sum R(k)={c['k']:.6g} "
              f"(rel {c['q_k_rel_diff']:.2e}); sum R(gate)={c['gate']:.6g} sum R(up)={c['up']:.6g} "
              f"(rel {c['gate_up_rel_diff']:.2e})", file=sys.stderr)
        if strict_pairs:
            assert rel_close(c["q"], c["k"]), c
            assert rel_close(c["gate"], c["up"]), c
            assert rel_close(c["v"], c["o"] / 2), c
            assert rel_close(c["gate"] + c["up"], c["down"]), c
    res["pair_checks"] = checks
    res["pair_checks_asserted"] = strict_pairs
    tensors = dict(R)
    for k, info in enumerate(infos):
        tensors[f"input_relevance.seq{k}"] = info["tok_rel"]
    meta = common_meta(label, "AttnLRP, lxt.efficient.monkey_patch(modeling_llama) (attnLRP map)",
                       seed, seqs, DEF_W + "; " + DEF_IN, res)
    res["file"] = fname
    res["bytes"] = save_st(os.path.join(GOLD, fname), tensors, meta)
    return res


def job_grad_stories():
    torch = import_stack(with_lxt=False)
    model = load(STORIES)
    L = model.config.num_hidden_layers
    names = llama_linear_names(L)
    R, infos, psums = run_sequences(model, STORIES_SEQS, "logit", names)
    res = summarise(R, infos, psums, names)
    tensors = {n: R[n] for n in names if n.startswith("model.layers.0.")}
    tensors["per_tensor_sums"] = torch.tensor([res["per_tensor_sums"][n] for n in names], dtype=torch.float32)
    for k, info in enumerate(infos):
        tensors[f"input_relevance.seq{k}"] = info["tok_rel"]
    meta = common_meta("stories260K", "plain gradient x input (no LRP patches)", "logit", STORIES_SEQS,
                       DEF_W + "; only layer-0 R_W tensors stored; per_tensor_sums[i] = float64 sum of R_W "
                       "for per_tensor_sums_keys[i] (all layers), stored as f32; " + DEF_IN, res)
    meta["per_tensor_sums_keys"] = names
    fname = "grad_stories260K_logit.safetensors"
    res["file"] = fname
    res["bytes"] = save_st(os.path.join(GOLD, fname), tensors, meta)
    return res


# --- OPT: own AttnLRP rules, replicating lxt's GPT-2 map (lxt.efficient.models.gpt2.attnLRP) ---

def _make_scale_grad():
    import torch

    class ScaleGrad(torch.autograd.Function):
        """Identity forward; backward multiplies the gradient by 1/factor (lxt divide_gradient)."""
        @staticmethod
        def forward(ctx, x, factor):
            ctx.factor = factor
            return x.view_as(x)

        @staticmethod
        def backward(ctx, g):
            return g / ctx.factor, None
    return ScaleGrad


def lrp_layer_norm_forward(self, x):
    """Same arithmetic as lxt.efficient.patches.layer_norm_forward: stop-gradient on std only;
    the mean subtraction (x - mean) stays differentiable; gain and bias plain."""
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    std = (var + self.eps).sqrt()
    y = (x - mean) / std.detach()
    y = y * self.weight
    y = y + self.bias
    return y


def patch_opt_own(model):
    """AttnLRP for HF OPT, applied to one model instance plus the module-level attention fn.
    - every nn.LayerNorm instance (self_attn_layer_norm, final_layer_norm, decoder.final_layer_norm)
      -> lrp_layer_norm_forward
    - modeling_opt.eager_attention_forward wrapped: gradient of query /4, key /4, value /2 at the
      attention-function inputs. HF OPT has already multiplied q_proj's output (incl. bias) by
      head_dim**-0.5 (OPTAttention.forward: `query_states = self.q_proj(hidden_states) * self.scaling`)
      and calls the attention function with scaling=1.0; since the gradient rescale is linear it is
      equivalent to dividing the gradient at the q_proj/k_proj/v_proj outputs.
    - softmax, causal mask, ReLU (nn.ReLU, true gradient), residual adds, biases, learned positions:
      plain autograd. Dropout: identity (eval mode; attention dropout forced to 0.0).
    """
    import torch
    from transformers.models.opt import modeling_opt
    ScaleGrad = _make_scale_grad()
    orig = modeling_opt.eager_attention_forward

    def attention_forward(module, query, key, value, *args, **kwargs):
        query = ScaleGrad.apply(query, 4.0)
        key = ScaleGrad.apply(key, 4.0)
        value = ScaleGrad.apply(value, 2.0)
        if "dropout" in kwargs:
            kwargs["dropout"] = 0.0
        return orig(module, query, key, value, *args, **kwargs)
    modeling_opt.eager_attention_forward = attention_forward
    n_ln = 0
    for m in model.modules():
        if isinstance(m, torch.nn.LayerNorm):
            m.forward = types.MethodType(lrp_layer_norm_forward, m)
            n_ln += 1
        assert not isinstance(m, torch.nn.Dropout)
    assert n_ln == 2 * model.config.num_hidden_layers + 1
    assert isinstance(model.model.decoder.layers[0].activation_fn, torch.nn.ReLU)


def job_lrp_opt():
    torch = import_stack(with_lxt=False)
    model = load(os.path.join(FIX, "tiny-opt"))
    patch_opt_own(model)
    L = model.config.num_hidden_layers
    names = opt_linear_names(L)
    R, infos, psums = run_sequences(model, OPT_SEQS, "logit", names, is_opt=True)
    res = summarise(R, infos, psums, names, is_opt=True)
    for i in range(L):
        q = res["per_tensor_sums"][f"model.decoder.layers.{i}.self_attn.q_proj.weight"]
        k = res["per_tensor_sums"][f"model.decoder.layers.{i}.self_attn.k_proj.weight"]
        print(f"  [tiny-opt] layer {i}: sum R(q)={q:.6g} sum R(k)={k:.6g} (differ: biases)", file=sys.stderr)
    tensors = dict(R)
    for k, info in enumerate(infos):
        tensors[f"token_embedding_relevance.seq{k}"] = info["tok_rel"]
        tensors[f"position_embedding_relevance.seq{k}"] = info["pos_rel"]
    meta = common_meta("tiny-opt", "AttnLRP, own OPT rules (lxt GPT-2 map replicated; see patch_opt_own)",
                       "logit", OPT_SEQS,
                       DEF_W + "; token_embedding_relevance.seqK[t] = sum_hidden(embed_tokens(x)*grad)[t]; "
                       "position_embedding_relevance.seqK[t] = sum_hidden(embed_positions_out*grad)[t] "
                       "(row t+2 of embed_positions)", res)
    fname = "lrp_tiny_opt_logit.safetensors"
    res["file"] = fname
    res["bytes"] = save_st(os.path.join(GOLD, fname), tensors, meta)
    return res


def job_check_opt_lxt():
    """Cross-check: the same OPT run through lxt's own patch functions with a custom patch_map
    (layer_norm_forward on torch.nn.LayerNorm, dropout_forward, patch_attention(modeling_opt))
    must reproduce lrp_tiny_opt_logit.safetensors."""
    torch = import_stack(with_lxt=True)
    from functools import partial
    from lxt.efficient import monkey_patch
    from lxt.efficient.patches import patch_method, patch_attention, layer_norm_forward, dropout_forward
    from transformers.models.opt import modeling_opt
    from safetensors.torch import load_file
    monkey_patch(modeling_opt, patch_map={
        torch.nn.LayerNorm: partial(patch_method, layer_norm_forward),
        torch.nn.Dropout: partial(patch_method, dropout_forward),
        modeling_opt: patch_attention})
    assert torch.nn.LayerNorm.forward.__module__ == "lxt.efficient.patches"
    assert modeling_opt.eager_attention_forward.__module__ == "lxt.efficient.patches"
    model = load(os.path.join(FIX, "tiny-opt"))
    names = opt_linear_names(model.config.num_hidden_layers)
    R, infos, _ = run_sequences(model, OPT_SEQS, "logit", names, is_opt=True)
    ref = load_file(os.path.join(GOLD, "lrp_tiny_opt_logit.safetensors"))
    worst = 0.0
    for n in names:
        d = float((R[n] - ref[n]).abs().max() / ref[n].abs().max())
        worst = max(worst, d)
    for k, info in enumerate(infos):
        for key, v in (("token_embedding_relevance", info["tok_rel"]),
                       ("position_embedding_relevance", info["pos_rel"])):
            r = ref[f"{key}.seq{k}"]
            worst = max(worst, float((v - r).abs().max() / r.abs().max()))
    print(f"  [tiny-opt] own rules vs lxt patch functions: max rel diff {worst:.3e}", file=sys.stderr)
    assert worst < 1e-5, worst
    return {"own_rules_vs_lxt_patch_functions_max_rel_diff": worst}


JOBS = {
    "grad_stories260K_logit": job_grad_stories,
    "lrp_stories260K_logit": lambda: job_lrp_llama("stories260K", STORIES, STORIES_SEQS, "logit",
                                                   "lrp_stories260K_logit.safetensors", True),
    "lrp_stories260K_one": lambda: job_lrp_llama("stories260K", STORIES, STORIES_SEQS, "one",
                                                 "lrp_stories260K_one.safetensors", True),
    "lrp_tiny_llama_bias_logit": lambda: job_lrp_llama("tiny-llama-bias", os.path.join(FIX, "tiny-llama-bias"),
                                                       LLAMA_TINY_SEQS, "logit",
                                                       "lrp_tiny_llama_bias_logit.safetensors", False),
    "lrp_tiny_opt_logit": job_lrp_opt,
    "check_tiny_opt_vs_lxt": job_check_opt_lxt,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--job", choices=list(JOBS))
    args = ap.parse_args()
    if args.job:
        res = JOBS[args.job]()
        print("RESULT " + json.dumps(res, separators=(",", ":")))
        return 0
    os.makedirs(GOLD, exist_ok=True)
    out = {"recipe": RECIPE, "generator": "tools/lxt_goldens.py", "versions": None,
           "definition": __doc__.split("Explained output (identical for every job):")[1].split("See tools/README.md")[0].strip(),
           "jobs": {}}
    for name in JOBS:
        print(f"== {name}", file=sys.stderr)
        p = subprocess.run([sys.executable, os.path.abspath(__file__), "--job", name],
                           stdout=subprocess.PIPE, text=True)
        if p.returncode != 0:
            print(p.stdout, file=sys.stderr)
            raise SystemExit(f"job {name} failed")
        line = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")][-1]
        res = json.loads(line[len("RESULT "):])
        out["jobs"][name] = res
        if "conservation_ratio_total" in res:
            per = ", ".join(f"{s['conservation_ratio']:.6f}" for s in res["sequences"])
            print(f"  conservation ratio total {res['conservation_ratio_total']:.6f} (per seq: {per}); "
                  f"{res['file']} {res['bytes']} bytes", file=sys.stderr)
    import_stack(with_lxt=True)
    out["versions"] = versions()
    path = os.path.join(GOLD, "lrp_goldens.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {path}: {os.path.getsize(path)} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
