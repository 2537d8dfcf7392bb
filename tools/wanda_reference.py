#!/usr/bin/env python3
"""Workbench pruning against the Wanda reference procedure, on the same text and the same calibration tokens.

    /work/pyenv/bin/python tools/wanda_reference.py [--workbench .build/release/workbench] [--work DIR]
        [--calib-samples 32] [--calib-seqlen 512] [--seqlen 512] [--windows 32] [--sparsity 0.5]

(from the package root; needs torch 2.13.0+cpu, transformers<5, gguf — see tools/setup_pyenv.sh.)

Model: SmolLM2-135M-Instruct Q4_1 GGUF (models/), dequantized to F32 by transformers' GGUF loader (reference side)
and by the workbench's loader (workbench side): the same F32 weights.

Text (both sides): `wiki.test.raw` rebuilt as the workbench does (`joinRawTextRows`: CRLF -> LF, every non-empty line
+ "\\n", joined with "\\n\\n"), tokenized by the HF tokenizer from the GGUF; the token count is compared with the
workbench's. Perplexity: the first --windows non-overlapping windows of --seqlen tokens, mean NLL over every shifted
position (Wanda's eval_ppl), exp.

Calibration (both sides, the same token ids): the shared C4 stand-in (eval/c4/c4_pfdecoding_1480.jsonl, prefix +
gold_completion per document) tokenized without BOS, documents joined with EOS into one stream (its documents are all
shorter than 512 tokens, so Wanda's "random document longer than seqlen" rule has nothing to pick), and
--calib-samples crops of --calib-seqlen tokens at random starts (numpy seed 0). Written to WORK/calib.jsonl as
`{"ids": [...]}` lines; the workbench reads them with `--prompts` (ids used exactly).

Reference procedures, re-implemented from locuslab/wanda lib/prune.py (not imported: the repository is not a package):
  wanda (prune_wanda): layer by layer; forward hooks on the layer's nn.Linear modules accumulate WrappedGPT's
    scaler_row (running mean of ||x_j||^2 over samples); the dense layer runs on the inputs that came through the
    already-pruned layers; W_metric = |W| * sqrt(scaler_row); per output row the int(cols*s) lowest (stable sort)
    are zeroed; the pruned layer is run again to give the next layer's inputs.
  wanda-dense: the same scores, every layer's statistics from the dense model (what `prune --method wanda`
    without --sequential does).
  magnitude (prune_magnitude): per matrix, |W| <= the int(numel*s)-th smallest |W| is zeroed.
Workbench side: `prune --method wanda --sequential --scheme row`, `prune --method wanda --scheme row`,
`prune --method magnitude --scheme layer`, then `perplexity` on each output.

Writes WORK/results.json (resumable: finished entries are kept) and prints a Markdown table.
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
ASSETS = os.environ.get("WORKBENCH_ASSETS", "/work/shared/assets")
GGUF = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")


def join_raw_text_rows(raw):
    lf = raw.replace("\r\n", "\n")
    return "\n\n".join(line + "\n" for line in lf.split("\n") if line != "")


def load_model():
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    gdir, gname = os.path.split(GGUF)
    tok = AutoTokenizer.from_pretrained(gdir, gguf_file=gname)
    model = AutoModelForCausalLM.from_pretrained(gdir, gguf_file=gname, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    return model, tok


def causal_mask(t, torch):
    return torch.full((t, t), float("-inf")).triu(1)[None, None]


def layer_call(model, layer, h, torch):
    t = h.shape[1]
    pos = torch.arange(t)[None]
    pe = model.model.rotary_emb(h, pos)
    out = layer(h, attention_mask=causal_mask(t, torch), position_ids=pos, position_embeddings=pe)
    return out[0] if isinstance(out, tuple) else out


def perplexity(model, ids, seqlen, windows, torch):
    nll, n = 0.0, 0
    with torch.no_grad():
        for w in range(windows):
            x = torch.tensor(ids[w * seqlen:(w + 1) * seqlen])[None]
            logits = model(x).logits[0, :-1].double()
            lp = torch.log_softmax(logits, dim=-1)
            nll += -lp.gather(1, x[0, 1:, None]).sum().item()
            n += seqlen - 1
    import math
    return math.exp(nll / n)


def linears(layer, torch):
    return {n: m for n, m in layer.named_modules() if isinstance(m, torch.nn.Linear)}


def prune_wanda(model, calib, sparsity, sequential, torch):
    """locuslab/wanda prune_wanda (unstructured, no variant), with or without the sequential inputs."""
    with torch.no_grad():
        inps = [model.model.embed_tokens(torch.tensor(c)[None]) for c in calib]
        dense_inps = list(inps)
        for layer in model.model.layers:
            subset = linears(layer, torch)
            stats = {n: [torch.zeros(m.in_features), 0] for n, m in subset.items()}

            def hook(name):
                def f(_, inp, out):
                    x = inp[0].data
                    tmp = x.shape[0]                                   # batch size, as WrappedGPT.add_batch
                    x = x.reshape(-1, x.shape[-1]).t().float()
                    s = stats[name]
                    s[0] *= s[1] / (s[1] + tmp)
                    s[1] += tmp
                    s[0] += torch.norm(x, p=2, dim=1) ** 2 / s[1]
                return f
            handles = [subset[n].register_forward_hook(hook(n)) for n in subset]
            src = inps if sequential else dense_inps
            dense_outs = [layer_call(model, layer, h, torch) for h in src]
            for h in handles:
                h.remove()
            for n, m in subset.items():
                metric = m.weight.data.abs() * torch.sqrt(stats[n][0].reshape(1, -1))
                idx = torch.sort(metric, dim=-1, stable=True)[1][:, :int(metric.shape[1] * sparsity)]
                mask = torch.zeros_like(metric, dtype=torch.bool)
                mask.scatter_(1, idx, True)
                m.weight.data[mask] = 0
            if sequential:
                inps = [layer_call(model, layer, h, torch) for h in inps]
            else:
                dense_inps = dense_outs


def prune_magnitude(model, sparsity, torch):
    """locuslab/wanda prune_magnitude (unstructured): per matrix, |W| <= the int(numel*s)-th value is zeroed."""
    with torch.no_grad():
        for layer in model.model.layers:
            for m in linears(layer, torch).values():
                w = m.weight.data
                metric = w.abs()
                thresh = torch.sort(metric.flatten())[0][int(w.numel() * sparsity)]
                w[metric <= thresh] = 0


def wb(args, *cmd):
    r = subprocess.run([args.workbench, *cmd], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"workbench {' '.join(cmd)} failed ({r.returncode}):\n{r.stderr}")
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workbench", default=os.path.join(ROOT, ".build/release/workbench"))
    ap.add_argument("--work", default="/tmp/wanda_reference")
    ap.add_argument("--calib-samples", type=int, default=32)
    ap.add_argument("--calib-seqlen", type=int, default=512)
    ap.add_argument("--seqlen", type=int, default=512)
    ap.add_argument("--windows", type=int, default=32)
    ap.add_argument("--sparsity", type=float, default=0.5)
    ap.add_argument("--only", default="", help="comma-separated subset of: dense,magnitude,wanda,wanda-dense")
    args = ap.parse_args()
    import numpy as np
    import torch
    torch.set_num_threads(int(os.environ.get("OPENBLAS_NUM_THREADS", "2")))
    os.makedirs(args.work, exist_ok=True)
    res_path = os.path.join(args.work, "results.json")
    results = json.load(open(res_path)) if os.path.exists(res_path) else {}

    def save():
        json.dump(results, open(res_path + ".tmp", "w"), indent=1, sort_keys=True)
        os.replace(res_path + ".tmp", res_path)

    model, tok = load_model()
    text_path = os.path.join(ASSETS, "eval/wikitext-2-raw/wiki.test.raw")
    text = join_raw_text_rows(open(text_path, encoding="utf-8").read())
    ids = tok(text, add_special_tokens=False)["input_ids"]
    results["text"] = {"file": text_path, "hf_tokens": len(ids), "seqlen": args.seqlen, "windows": args.windows}
    # Calibration tokens.
    calib_path = os.path.join(args.work, "calib.jsonl")
    docs = [json.loads(l) for l in open(os.path.join(ASSETS, "eval/c4/c4_pfdecoding_1480.jsonl"), encoding="utf-8") if l.strip()]
    stream = []
    for d in docs:
        stream += tok(d["prefix"] + d["gold_completion"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    rng = np.random.default_rng(0)
    starts = rng.integers(0, len(stream) - args.calib_seqlen, size=args.calib_samples)
    calib = [stream[s:s + args.calib_seqlen] for s in starts]
    with open(calib_path, "w") as f:
        for c in calib:
            f.write(json.dumps({"ids": c}) + "\n")
    results["calibration"] = {"samples": args.calib_samples, "seqlen": args.calib_seqlen, "stream_tokens": len(stream),
                              "seed": 0, "file": calib_path}
    save()
    # The workbench's token count on the same text.
    r = wb(args, "perplexity", "--model", GGUF, "--text", text_path, "--seqlen", str(args.seqlen), "--max-windows", "1", "--json")
    results["text"]["workbench_tokens"] = json.loads(r.stdout)["tokens"]
    save()
    dense_state = {k: v.clone() for k, v in model.state_dict().items()}
    runs = {
        "dense": (None, []),
        "magnitude": (lambda: prune_magnitude(model, args.sparsity, torch),
                      ["--method", "magnitude", "--scheme", "layer", "--sparsity", str(args.sparsity)]),
        "wanda": (lambda: prune_wanda(model, calib, args.sparsity, True, torch),
                  ["--method", "wanda", "--sequential", "--prompts", calib_path, "--scheme", "row", "--sparsity", str(args.sparsity)]),
        "wanda-dense": (lambda: prune_wanda(model, calib, args.sparsity, False, torch),
                        ["--method", "wanda", "--prompts", calib_path, "--scheme", "row", "--sparsity", str(args.sparsity)]),
    }
    only = [s for s in args.only.split(",") if s] or list(runs)
    for name in only:
        prune, wb_args = runs[name]
        entry = results.get(name, {})
        if "reference" not in entry:
            model.load_state_dict(dense_state)
            t0 = time.time()
            if prune:
                prune()
            entry["reference_prune_s"] = round(time.time() - t0, 1)
            entry["reference"] = perplexity(model, ids, args.seqlen, args.windows, torch)
            results[name] = entry
            save()
        if "workbench" not in entry:
            target = GGUF
            if prune:
                out = os.path.join(args.work, name)
                t0 = time.time()
                wb(args, "prune", "--model", GGUF, *wb_args, "--out", out, "--force")
                entry["workbench_prune_s"] = round(time.time() - t0, 1)
                target = out
            r = wb(args, "perplexity", "--model", target, "--text", text_path, "--seqlen", str(args.seqlen),
                   "--max-windows", str(args.windows), "--json")
            entry["workbench"] = json.loads(r.stdout)["perplexity"]
            results[name] = entry
            save()
        print(f"{name}: reference {entry['reference']:.4f}  workbench {entry['workbench']:.4f}  "
              f"({100 * (entry['workbench'] / entry['reference'] - 1):+.2f} %)", flush=True)
    print(json.dumps(results, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
