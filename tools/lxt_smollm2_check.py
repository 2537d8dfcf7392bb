#!/usr/bin/env python3
"""Cross-check of the Swift AttnLRP (workbench attribute / heatmap) against lxt 2.1 on SmolLM2-135M (GGUF).

    /work/pyenv/bin/python tools/lxt_smollm2_check.py [--workbench .build/release/workbench]

(from the package root; needs torch 2.13.0+cpu, transformers<5, lxt 2.1, gguf, accelerate, safetensors.)

Both sides explain the same thing:
  ids  = `workbench tokenize` of each text (no BOS for SmolLM2), batch 1, causal, no padding
  F    = sum_{t=0}^{T-2} logits[t, ids[t+1]]   (target next-token, seed value "logit"); F.backward()
  input relevance[t] = sum_hidden(inputs_embeds * grad)[t];  conservation = sum_t input relevance / F
  R_W  = W * W.grad for the 7 linear weights of layers 0, 15, 29 (one sequence per run)
lxt side: transformers' GGUF loader (weights dequantized to F32), eager attention, float32,
lxt.efficient.monkey_patch(modeling_llama) with the attnLRP map (default) or the cp_LRP map.
Swift side: `workbench attribute --prompts <one-sequence .jsonl> --method lrp --target next-token --rule R`
(one run per sequence, so the file's mean over samples is that sequence's R_W) and
`workbench heatmap --target next-token --rule R` (per-token input relevance, parsed from the HTML).

Also recorded on the lxt side: the relevance sum_hidden(h * grad) of the residual stream at the input of
every decoder layer and at the input of the final norm, i.e. where along the depth relevance is lost.

Each lxt run is its own subprocess (`--job lxt --rule ...`): lxt's patches are process-global.
"""
import argparse
import html
import json
import os
import re
import subprocess
import sys
import time
import types
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))

TEXTS = [
    "The capital of France is Paris. The capital of Italy is Rome.",
    # C4-like news sentence, 37 tokens with the SmolLM2 tokenizer
    "The city council approved a new plan on Tuesday to expand bike lanes across the downtown area, "
    "citing safety concerns and a growing number of residents who commute by bicycle every day, "
    "officials said.",
]
LAYERS = [0, 15, 29]
PROJ = [("self_attn", p) for p in ("q_proj", "k_proj", "v_proj", "o_proj")] + \
       [("mlp", p) for p in ("gate_proj", "up_proj", "down_proj")]
RULES = {"attnlrp": "attnlrp", "cplrp": "cp-lrp"}  # lxt map name -> workbench --rule


def weight_names():
    return [f"model.layers.{i}.{blk}.{p}.weight" for i in LAYERS for blk, p in PROJ]


# ----------------------------------------------------------------------------- lxt job (subprocess)

def import_lxt():
    # Same import order and torchvision stub as the golden generator (see its comments).
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from lxt_goldens import import_stack
    return import_stack(with_lxt=True)


def job_lxt(gguf, seqs, rule, out_path):
    torch = import_lxt()
    from lxt.efficient import monkey_patch
    from lxt.efficient.models.llama import attnLRP, cp_LRP
    from transformers import AutoModelForCausalLM
    from transformers.models.llama import modeling_llama
    from safetensors.torch import save_file
    monkey_patch(modeling_llama, patch_map={"attnlrp": attnLRP, "cplrp": cp_LRP}[rule])
    assert modeling_llama.LlamaRMSNorm.forward.__module__ == "lxt.efficient.patches"
    assert modeling_llama.LlamaMLP.forward.__module__ == "lxt.efficient.patches"
    assert modeling_llama.eager_attention_forward.__module__ == "lxt.efficient.patches"
    gdir, gname = os.path.split(os.path.abspath(gguf))
    t0 = time.time()
    model = AutoModelForCausalLM.from_pretrained(gdir, gguf_file=gname, dtype=torch.float32,
                                                 attn_implementation="eager")
    model.eval()
    for p in model.parameters():
        assert p.dtype == torch.float32
        p.requires_grad_(True)
    print(f"  [lxt {rule}] loaded in {time.time() - t0:.1f}s", file=sys.stderr)
    params = dict(model.named_parameters())
    names = weight_names()
    L = model.config.num_hidden_layers

    # residual stream at the input of every decoder layer and of the final norm
    captured = {}

    def pre_hook(key):
        def hook(mod, args, kwargs):
            if args:
                h = args[0]
            else:
                h = kwargs["hidden_states"]
            h.retain_grad()
            captured[key] = h
        return hook
    hooks = [model.model.layers[i].register_forward_pre_hook(pre_hook(f"layer{i}"), with_kwargs=True)
             for i in range(L)]
    hooks.append(model.model.norm.register_forward_pre_hook(pre_hook("final_norm"), with_kwargs=True))

    tensors, seqinfo = {}, []
    for k, ids in enumerate(seqs):
        model.zero_grad(set_to_none=True)
        captured.clear()
        x = torch.tensor([ids])
        T = len(ids)
        emb = model.model.embed_tokens(x).detach().requires_grad_(True)
        logits = model(inputs_embeds=emb, attention_mask=torch.ones_like(x), use_cache=False).logits[0]
        explained = logits[torch.arange(T - 1), torch.tensor(ids[1:])]
        F = explained.sum()
        F.backward()
        tok = (emb * emb.grad).sum(-1)[0].detach()
        tensors[f"input_relevance.seq{k}"] = tok.contiguous()
        for n in names:
            g = params[n].grad  # None for q/k under cp_LRP (attention weights are constants there)
            tensors[f"seq{k}.{n}"] = (params[n].detach() * g).contiguous() if g is not None \
                else torch.zeros_like(params[n]).detach()
        resid = {key: float((h.detach().double() * h.grad.double()).sum()) for key, h in captured.items()}
        seqinfo.append({"ids": ids, "T": T, "F": float(F.detach()),
                        "explained_logits": [float(v) for v in explained.detach()],
                        "input_relevance_sum": float(tok.double().sum()),
                        "conservation_ratio": float(tok.double().sum()) / float(F.detach()),
                        "residual_relevance": [resid[f"layer{i}"] for i in range(L)] + [resid["final_norm"]]})
    for h in hooks:
        h.remove()
    save_file(tensors, out_path)
    return {"rule": rule, "sequences": seqinfo, "file": out_path}


# ----------------------------------------------------------------------------- swift side

def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr}")
    return p.stdout, p.stderr


def swift_tokenize(wb, gguf, text):
    out, _ = run([wb, "tokenize", "--model", gguf, "--text", text])  # ids on stdout
    return [int(v) for v in out.split()]


TITLE_RE = re.compile(r'title="position (\d+) · id (\d+) · R = ([^ ]+) · normalised')
CONS_RE = re.compile(r"conservation \(Σ input relevance / Σ explained\): (?:mean )?([-0-9.eE+naif]+)")
LOGIT_RE = re.compile(r"<li>logit of .*? \(id (\d+)\) at position (\d+) = ([-0-9.eE+]+)</li>")


def swift_heatmap(wb, gguf, text, rule, out_html):
    out, err = run([wb, "heatmap", "--model", gguf, "--prompt", text, "--target", "next-token",
                    "--rule", rule, "--out", out_html])
    page = open(out_html, encoding="utf-8").read()
    rows = TITLE_RE.findall(page)
    ids = [int(r[1]) for r in rows]
    assert [int(r[0]) for r in rows] == list(range(len(rows)))
    rel = [float(r[2]) for r in rows]
    logits = [float(m[2]) for m in LOGIT_RE.findall(html.unescape(page))]
    m = CONS_RE.search(out + err)
    return {"ids": ids, "input_relevance": rel, "explained_logits": logits,
            "conservation_ratio_printed": float(m.group(1)) if m else None}


def swift_attribute(wb, gguf, ids, rule, work, tag):
    pfile = os.path.join(work, f"{tag}.jsonl")
    with open(pfile, "w") as f:
        f.write(json.dumps({"ids": ids}) + "\n")
    out = os.path.join(work, f"{tag}.safetensors")
    so, err = run([wb, "attribute", "--model", gguf, "--prompts", pfile, "--method", "lrp",
                   "--target", "next-token", "--rule", rule, "--out", out, "--quiet"])
    m = CONS_RE.search(so + err)
    from safetensors import safe_open
    with safe_open(out, "np") as f:
        ws = {n: f.get_tensor(n) for n in weight_names()}
        meta = f.metadata()
    os.remove(out)  # ~425 MB each
    return {"conservation_ratio_printed": float(m.group(1)) if m else None, "weights": ws,
            "metadata_keys": sorted(meta) if meta else []}


# ----------------------------------------------------------------------------- compare

def cmp(a, b):
    """cosine(a, b) and relative L2 error |a - b| / |b| (b = lxt reference), in float64."""
    import numpy as np
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 and nb == 0:  # both identically zero (q/k under cp-lrp): exact agreement
        return 1.0, 0.0, 0.0, 0.0
    cos = float(a @ b / (na * nb)) if na > 0 and nb > 0 else float("nan")
    rel = float(np.linalg.norm(a - b) / nb) if nb > 0 else float("inf")
    return cos, rel, float(a.sum()), float(b.sum())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--workbench", default=os.path.join(ROOT, ".build", "release", "workbench"))
    ap.add_argument("--work", default="/tmp/lxt_smollm2_check")
    ap.add_argument("--rules", default="attnlrp,cplrp")
    ap.add_argument("--c4", default="/work/shared/assets/eval/c4/c4_pfdecoding_1480.jsonl",
                    help="extra id-only sequences: consecutive documents of this .jsonl (prefix + gold_completion) "
                         "joined with newlines, cut to each --c4-lens length ('' = none); ratio + R_W only")
    ap.add_argument("--c4-lens", default="256,512")
    ap.add_argument("--job")
    ap.add_argument("--seqs")
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.job == "lxt":
        res = job_lxt(args.gguf, json.loads(args.seqs), args.rules, args.out)
        print("RESULT " + json.dumps(res))
        return 0

    import numpy as np
    from safetensors.numpy import load_file
    os.makedirs(args.work, exist_ok=True)
    wb, gguf = os.path.abspath(args.workbench), os.path.abspath(args.gguf)
    seqs = [swift_tokenize(wb, gguf, t) for t in TEXTS]
    for t, s in zip(TEXTS, seqs):
        print(f"ids ({len(s)}) for {t!r}: {s}", file=sys.stderr)
    texts = list(TEXTS)
    if args.c4 and args.c4_lens:
        docs = [json.loads(l) for l in open(args.c4, encoding="utf-8")]
        nxt = 0
        for n in (int(v) for v in args.c4_lens.split(",")):
            first, parts = nxt, []
            while True:  # join whole documents ("\n" between) until the text has >= n tokens
                d = docs[nxt]
                parts.append(d.get("prefix", "") + d.get("gold_completion", ""))
                nxt += 1
                if sum(len(t) for t in parts) < 3 * n:
                    continue
                ids = swift_tokenize(wb, gguf, "\n".join(parts))
                if len(ids) >= n:
                    break
            seqs.append(ids[:n])
            texts.append(None)
            print(f"ids ({n}): {os.path.basename(args.c4)} documents {first}..{nxt - 1} joined with '\\n', "
                  f"first {n} tokens", file=sys.stderr)
    report = {"gguf": gguf, "workbench": wb, "texts": texts, "ids": seqs, "rules": {}}
    for rule in args.rules.split(","):
        wrule = RULES[rule]
        t0 = time.time()
        lxt_out = os.path.join(args.work, f"lxt_{rule}.safetensors")
        p = subprocess.run([sys.executable, os.path.abspath(__file__), "--job", "lxt", "--rules", rule,
                            "--gguf", gguf, "--seqs", json.dumps(seqs), "--out", lxt_out],
                           stdout=subprocess.PIPE, text=True)
        if p.returncode != 0:
            raise SystemExit(f"lxt job {rule} failed")
        lx = json.loads([l for l in p.stdout.splitlines() if l.startswith("RESULT ")][-1][7:])
        ref = load_file(lxt_out)
        print(f"== {rule}: lxt done in {time.time() - t0:.1f}s", file=sys.stderr)
        per_seq = []
        for k, (text, ids) in enumerate(zip(texts, seqs)):
            li = lx["sequences"][k]
            lref = ref[f"input_relevance.seq{k}"]
            if text is not None:
                hm = swift_heatmap(wb, gguf, text, wrule, os.path.join(args.work, f"heatmap_{rule}_{k}.html"))
                assert hm["ids"] == ids, (hm["ids"], ids)
                c_in = cmp(hm["input_relevance"], lref)
                lg = cmp(hm["explained_logits"], li["explained_logits"])
                ldiff = max(abs(a - b) for a, b in zip(hm["explained_logits"], li["explained_logits"]))
            else:  # id-only sequence: no heatmap (it takes text)
                hm = {"input_relevance": None, "conservation_ratio_printed": None, "explained_logits": None}
                c_in, lg, ldiff = (float("nan"), float("nan")), None, float("nan")
            at = swift_attribute(wb, gguf, ids, wrule, args.work, f"swift_{rule}_seq{k}")
            wrows = []
            for n in weight_names():
                cos, rel, ss, ls = cmp(at["weights"][n], ref[f"seq{k}.{n}"])
                wrows.append({"name": n, "cos": cos, "rel_l2": rel, "sum_swift": ss, "sum_lxt": ls})
            swift_ratio_from_html = (float(np.sum(hm["input_relevance"], dtype=np.float64)) / li["F"]
                                     if hm["input_relevance"] is not None else None)
            d = {"T": len(ids), "F_lxt": li["F"],
                 "lxt_conservation_ratio": li["conservation_ratio"],
                 "swift_attribute_conservation_ratio": at["conservation_ratio_printed"],
                 "swift_heatmap_conservation_ratio": hm["conservation_ratio_printed"],
                 "swift_heatmap_sum_over_F_lxt": swift_ratio_from_html,
                 "explained_logits_cmp": lg, "explained_logits_max_abs_diff": ldiff,
                 "input_relevance_cos": c_in[0], "input_relevance_rel_l2": c_in[1],
                 "input_relevance_lxt": [float(v) for v in lref],
                 "input_relevance_swift": hm["input_relevance"],
                 "weights": wrows,
                 "lxt_residual_relevance": li["residual_relevance"]}
            per_seq.append(d)
            print(f"  seq{k} (T={len(ids)}): ratio lxt {li['conservation_ratio']:.4f}  swift attribute "
                  f"{at['conservation_ratio_printed']}  heatmap {hm['conservation_ratio_printed']}; "
                  f"input rel cos {c_in[0]:.6f} rel {c_in[1]:.2e}; logits max|d| "
                  f"{ldiff:.2e}",
                  file=sys.stderr)
            for w in wrows:
                print(f"    {w['name']:<40} cos {w['cos']:.6f}  rel {w['rel_l2']:.2e}  "
                      f"sum swift {w['sum_swift']:.5g} lxt {w['sum_lxt']:.5g}", file=sys.stderr)
            rr = li["residual_relevance"]
            print("    lxt residual relevance / F at layer inputs 0,5,10,15,20,25,29,final-norm: " +
                  " ".join(f"{rr[i] / li['F']:.3f}" for i in (0, 5, 10, 15, 20, 25, 29, 30)), file=sys.stderr)
        report["rules"][rule] = per_seq
    path = os.path.join(args.work, "report.json")
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
