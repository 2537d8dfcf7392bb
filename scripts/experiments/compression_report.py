#!/usr/bin/env python3
"""Aggregate the SparC³ Table-1 compression run (scripts/experiments/compression.sh) into
docs/results/compression.{json,md,svg}. Standard library only; the product never needs this.

  python3 scripts/experiments/compression_report.py --out out/experiments/compression --results docs/results

The Markdown's discussion lives between the markers <!-- discussion:begin --> and <!-- discussion:end -->;
it is written by hand and kept when the report is regenerated.
"""
import argparse
import glob
import json
import math
import os
import re
import statistics
import sys

METHODS = ["magnitude", "wanda", "gradient", "lrp", "lrp-apt"]
LABEL = {"dense": "dense", "magnitude": "magnitude", "wanda": "Wanda", "gradient": "gradient", "lrp": "LRP",
         "lrp-apt": "LRP, |R| per position"}
COLOR = {"magnitude": "#7f7f7f", "wanda": "#1f77b4", "gradient": "#2ca02c", "lrp": "#d62728", "lrp-apt": "#9467bd",
         "dense": "#000000"}
MARK_BEGIN, MARK_END = "<!-- discussion:begin -->", "<!-- discussion:end -->"


def read_json(path, default=None):
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return default
    try:
        return json.loads(text)
    except ValueError:
        # result files written before the script printed bc's output with printf: ".004" -> "0.004"
        try:
            return json.loads(re.sub(r'(:\s*)(-?)\.(\d)', r'\g<1>\g<2>0.\3', text))
        except ValueError:
            return default


def read_text(path, default=""):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def mean_sem(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None, None, 0
    m = statistics.fmean(xs)
    sem = statistics.stdev(xs) / math.sqrt(len(xs)) if len(xs) > 1 else None
    return m, sem, len(xs)


def fmt(x, nd=2):
    if x is None:
        return "—"
    if x >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{nd}f}"


def fmt_ms(m, sem, n):
    if m is None:
        return "—"
    if sem is None:
        return f"{fmt(m)} (n={n})"
    return f"{fmt(m)} ± {fmt(sem)} (n={n})"


def load(out):
    results = []
    for path in sorted(glob.glob(os.path.join(out, "results", "*.json"))):
        if re.search(r"\.(pruning|sparsity)\.json$", path):
            continue
        r = read_json(path)
        if not r:
            continue
        key = r["key"]
        pj = read_json(os.path.join(out, "results", key + ".pruning.json"))
        if pj:
            ach = pj.get("achieved", {})
            r["achieved"] = {k: ach.get(k) for k in ("decoder_linear", "targeted_weights", "all_parameters")}
            meta = (pj.get("scores") or {}).get("metadata") or {}
            r["score_metadata"] = meta
            r["pruning"] = {k: pj.get(k) for k in ("scheme", "scheme_definition", "rank", "tie_break",
                                                   "method", "input", "output_format")}
        sp = read_json(os.path.join(out, "results", key + ".sparsity.json"))
        if sp:
            r["sparsity_check"] = {k: v for k, v in sp.items() if k != "tensors"}
        results.append(r)
    return results


def ppl(r):
    return r["perplexity"]["perplexity"]


def ach(r):
    a = (r.get("achieved") or {}).get("decoder_linear") or {}
    return a.get("sparsity")


def svg_plot(sweep, dense, title, path):
    W, H = 790, 480
    L, R, T, B = 78, 200, 52, 62
    pw, ph = W - L - R, H - T - B
    pts = [(s, p) for m in sweep for s, p in sweep[m]]
    ys = [p for _, p in pts] + ([dense] if dense else [])
    if not ys:
        return
    ymin, ymax = min(ys), max(ys)
    lo, hi = math.floor(math.log10(ymin)), math.ceil(math.log10(ymax))
    if hi == lo:
        hi += 1
    xmin, xmax = 0.0, 0.8

    def X(s):
        return L + (s - xmin) / (xmax - xmin) * pw

    def Y(p):
        return T + (hi - math.log10(p)) / (hi - lo) * ph

    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
         'font-family="Helvetica, Arial, sans-serif" font-size="12">',
         f'<rect x="0" y="0" width="{W}" height="{H}" fill="#ffffff"/>',
         f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">{title[0]}</text>',
         f'<text x="{W / 2}" y="37" text-anchor="middle" font-size="11" fill="#333">{title[1]}</text>']
    # grid + y ticks (decades labelled, 2 and 5 minor)
    for d in range(lo, hi + 1):
        for k in (1, 2, 5):
            v = k * 10 ** d
            if v < 10 ** lo or v > 10 ** hi:
                continue
            y = Y(v)
            major = k == 1
            o.append(f'<line x1="{L}" y1="{y:.1f}" x2="{L + pw}" y2="{y:.1f}" stroke="{"#cccccc" if major else "#eeeeee"}"/>')
            o.append(f'<line x1="{L - (6 if major else 3)}" y1="{y:.1f}" x2="{L}" y2="{y:.1f}" stroke="#000"/>')
            lab = f"{v:g}" if v < 1e5 else f"1e{d}" if k == 1 else f"{k}e{d}"
            style = "" if major else ' fill="#555" font-size="10"'
            o.append(f'<text x="{L - 9}" y="{y + 4:.1f}" text-anchor="end"{style}>{lab}</text>')
    for i in range(0, 9):
        s = i / 10
        x = X(s)
        o.append(f'<line x1="{x:.1f}" y1="{T + ph}" x2="{x:.1f}" y2="{T + ph + 6}" stroke="#000"/>')
        o.append(f'<text x="{x:.1f}" y="{T + ph + 20}" text-anchor="middle">{s:.1f}</text>')
    o.append(f'<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="#000"/>')
    o.append(f'<text x="{L + pw / 2}" y="{H - 18}" text-anchor="middle">sparsity (fraction of decoder linear weights pruned, row-wise)</text>')
    o.append(f'<text transform="translate(20 {T + ph / 2}) rotate(-90)" text-anchor="middle">WikiText-2 perplexity (log scale)</text>')
    if dense:
        y = Y(dense)
        o.append(f'<line x1="{L}" y1="{y:.1f}" x2="{L + pw}" y2="{y:.1f}" stroke="#000" stroke-dasharray="5 4"/>')
    ly = T + 8
    for m in METHODS:
        if m not in sweep or not sweep[m]:
            continue
        c = COLOR[m]
        seq = sorted(sweep[m])
        if dense:
            seq = [(0.0, dense)] + seq
        d = " ".join(f"{'M' if i == 0 else 'L'}{X(s):.1f},{Y(p):.1f}" for i, (s, p) in enumerate(seq))
        o.append(f'<path d="{d}" fill="none" stroke="{c}" stroke-width="2"/>')
        for s, p in seq[1 if dense else 0:]:
            o.append(f'<circle cx="{X(s):.1f}" cy="{Y(p):.1f}" r="3.5" fill="{c}"><title>{LABEL[m]} {s:g}: {p:.2f}</title></circle>')
        o.append(f'<line x1="{L + pw + 14}" y1="{ly + 6}" x2="{L + pw + 40}" y2="{ly + 6}" stroke="{c}" stroke-width="2"/>')
        o.append(f'<circle cx="{L + pw + 27}" cy="{ly + 6}" r="3.5" fill="{c}"/>')
        legend = LABEL[m] + (" (signed mean)" if m in ("gradient", "lrp") else "")
        o.append(f'<text x="{L + pw + 46}" y="{ly + 10}">{legend}</text>')
        ly += 22
    if dense:
        o.append(f'<line x1="{L + pw + 14}" y1="{ly + 6}" x2="{L + pw + 40}" y2="{ly + 6}" stroke="#000" stroke-dasharray="5 4"/>')
        o.append(f'<text x="{L + pw + 46}" y="{ly + 10}">dense ({dense:.2f})</text>')
    o.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(o) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="out/experiments/compression")
    ap.add_argument("--results", default="docs/results")
    a = ap.parse_args()
    out, res_dir = a.out, a.results
    os.makedirs(res_dir, exist_ok=True)

    cfg = read_json(os.path.join(out, "config.json"), {})
    env = dict(line.split(": ", 1) for line in read_text(os.path.join(out, "environment.txt")).splitlines() if ": " in line)
    started, finished = read_text(os.path.join(out, "started_at")), read_text(os.path.join(out, "finished_at"))
    steps = []
    for line in read_text(os.path.join(out, "steps.tsv")).splitlines()[1:]:
        p = line.split("\t")
        if len(p) >= 2:
            steps.append({"step": p[0], "seconds": float(p[1]), "finished": p[2] if len(p) > 2 else ""})
    results = load(out)
    if not results:
        sys.exit(f"no results under {out}/results")
    by = {r["key"]: r for r in results}
    samples = int(cfg.get("samples", 0))
    seeds = str(cfg.get("seeds", "")).split()
    sweep_seed = str(cfg.get("sweep_seed", "0"))
    dense = ppl(by["dense"]) if "dense" in by else None

    # Table 1
    table = {}
    for scheme, tag in (("row", "row0.5"), ("nm:2:4", "nm2-4")):
        rows = {}
        for m in METHODS:
            if m == "magnitude":
                rs = [by[k] for k in (f"magnitude_{tag}",) if k in by]
            else:
                rs = [by[f"{m}_seed{s}_n{samples}_{tag}"] for s in seeds if f"{m}_seed{s}_n{samples}_{tag}" in by]
            if not rs:
                continue
            mu, sem, n = mean_sem([ppl(r) for r in rs])
            rows[m] = {"mean": mu, "sem": sem, "n": n, "per_seed": {r["seed"]: ppl(r) for r in rs},
                       "achieved_sparsity": [ach(r) for r in rs]}
        table[scheme] = rows

    # LRP vs reference-set size (seed sweep_seed), plus the seed mean at `samples`
    trend = []
    for r in results:
        if r["method"] == "lrp" and r["seed"] == sweep_seed and r["sparsity"] in ("0.5",):
            trend.append({"samples": int(r["samples"]), "scheme": r["scheme"], "perplexity": ppl(r),
                          "tokens": int(r["samples"]) * int(r["calib_seqlen"])})
    trend.sort(key=lambda t: (t["scheme"], t["samples"]))

    # sweep (row, seed sweep_seed)
    sweep = {}
    for r in results:
        if r["scheme"] != "row":
            continue
        if r["method"] == "magnitude" or (r["seed"] == sweep_seed and int(r["samples"]) == samples):
            sweep.setdefault(r["method"], []).append((float(r["sparsity"]), ppl(r)))
    for m in sweep:
        sweep[m].sort()

    meta = next((r["score_metadata"] for r in results if r.get("score_metadata", {}).get("method") == "lrp"), {})
    meta_by_method = {}
    for r in results:
        md = r.get("score_metadata") or {}
        if md.get("method") and r["method"] not in meta_by_method:   # keyed by the run's method ("lrp-abs" apart)
            meta_by_method[r["method"]] = {k: md.get(k) for k in (
                "rule", "target", "seed_value", "abs_per_sample", "epsilon", "aggregation", "model_sha256",
                "prompts_sha256", "corpus")}
    dp = by.get("dense", {}).get("perplexity", {})
    inp = next((r["pruning"]["input"] for r in results if r.get("pruning")), {})
    total_steps = sum(s["seconds"] for s in steps if not s["step"].startswith("run("))
    by_kind = {}
    for s in steps:
        if s["step"].startswith("run("):
            continue
        k = s["step"].split("/")[0] + ("/" + s["step"].split("/")[1] if s["step"].startswith("attribute") else "")
        by_kind[k] = by_kind.get(k, 0) + s["seconds"]

    blob = {
        "experiment": "SparC³ Table 1 (compression) on SmolLM2-135M-Instruct",
        "configuration": cfg, "environment": env, "started_at": started, "finished_at": finished,
        "step_seconds_total": total_steps, "step_seconds_by_kind": by_kind, "steps": steps,
        "dense_perplexity": dense, "table1": table, "lrp_vs_samples": trend,
        "sweep_row": {m: [{"sparsity": s, "perplexity": p} for s, p in v] for m, v in sweep.items()},
        "score_settings": meta_by_method, "perplexity_protocol": {k: dp.get(k) for k in ("protocol", "seqlen", "tokens", "windows", "scored", "text")},
        "model_input": inp, "raw": results,
    }
    with open(os.path.join(res_dir, "compression.json"), "w") as f:
        json.dump(blob, f, indent=1, sort_keys=False, ensure_ascii=False)
        f.write("\n")

    svg_plot(sweep, dense, ("SmolLM2-135M-Instruct, row-wise one-shot pruning, WikiText-2 perplexity",
                            f"eval {dp.get('windows')} windows × {dp.get('seqlen')} tokens; calibration seed {sweep_seed}, "
                            f"{samples} C4 windows × {cfg.get('seqlen')} tokens; magnitude needs no calibration"),
             os.path.join(res_dir, "compression.svg"))

    # ---- Markdown
    md_path = os.path.join(res_dir, "compression.md")
    old = read_text(md_path)
    if MARK_BEGIN in old and MARK_END in old:
        discussion = old[old.index(MARK_BEGIN) + len(MARK_BEGIN):old.index(MARK_END)].strip("\n")
    else:
        discussion = "_(discussion to be written after the run)_"

    full = {"seqlen": 2048, "samples": 128, "seeds": "0 1 2", "eval_seqlen": 2048, "eval_windows": "all",
            "sparsities": "0.1 0.2 0.3 0.4 0.5 0.6 0.7", "extra_lrp_samples": "512 1024"}
    L = []
    w = L.append
    w("# SparC³ Table 1 (compression) — SmolLM2-135M-Instruct")
    w("")
    w("Generated by `scripts/experiments/compression_report.py` from `out/experiments/compression/` "
      "(raw numbers: [compression.json](compression.json), plot: [compression.svg](compression.svg)). "
      "One-shot pruning, no fine-tuning, WikiText-2 perplexity. **This is a reduced configuration, not the full "
      "protocol** — see the first table.")
    w("")
    w("## Configuration used here vs. the full protocol")
    w("")
    w("| setting | full protocol (script defaults) | used here |")
    w("|---|---|---|")
    rowsdef = [
        ("calibration window length (tokens, `SEQLEN`)", "seqlen", "2048 (SparC³/Wanda)"),
        ("calibration samples per seed (`SAMPLES`)", "samples", "128"),
        ("calibration seeds (`SEEDS`)", "seeds", "0 1 2"),
        ("WikiText-2 window length (`EVAL_SEQLEN`)", "eval_seqlen", "2048"),
        ("WikiText-2 windows (`EVAL_WINDOWS`)", "eval_windows", f"all ({301948 // 2048} at 2048)"),
        ("sweep sparsities, row, seed 0 (`SPARSITIES`)", "sparsities", "0.1 … 0.7"),
        ("extra LRP reference-set sizes (`EXTRA_LRP_SAMPLES`)", "extra_lrp_samples", "512 1024"),
    ]
    for name, k, fullv in rowsdef:
        w(f"| {name} | {fullv} | **{cfg.get(k, '?')}** |")
    toks = dp.get("scored")
    w("")
    w(f"Calibration tokens per (method, seed): {samples} × {cfg.get('seqlen')} = {samples * int(cfg.get('seqlen', 0)):,} "
      f"(full protocol: 128 × 2048 = 262,144). Evaluated WikiText-2 tokens per model: {dp.get('windows')} windows × "
      f"{dp.get('seqlen')} = {(dp.get('windows') or 0) * (dp.get('seqlen') or 0):,} of {dp.get('tokens'):,} "
      f"({toks:,} scored predictions).")
    w("")
    w("## Setup")
    w("")
    w(f"- **Model:** `{inp.get('path', cfg.get('model'))}` — SmolLM2-135M-Instruct, {inp.get('family')}, "
      f"GGUF `{inp.get('dtype')}`; every weight is dequantized to F32 at load and the whole computation is F32. "
      f"Pruned checkpoints are F32 HF directories (`--format dense`). sha256 `{meta.get('model_sha256', '?')}`. "
      "30 layers × 7 decoder linears = 210 pruned matrices, 106,168,320 weights; embeddings/`lm_head` (tied) are not pruned.")
    w(f"- **Binary:** `{env.get('workbench_bin')}` built from commit `{env.get('binary_git_head')}` "
      f"(sha256 `{env.get('binary_sha256', '?')[:16]}…`), {env.get('nproc')} cores shared with other jobs.")
    w(f"- **Calibration data:** `{os.path.basename(cfg.get('c4', ''))}` (1,480 C4 documents, a stand-in for Wanda's "
      "`c4-train.00000-of-01024` shard), `--text` windows: window k picks a document with SplitMix64(seed) and crops "
      f"{cfg.get('seqlen')} tokens at a random offset (short documents joined with EOS).")
    w("- **Scores** (`workbench attribute`, computed once per (method, seed, samples) and reused for every scheme and "
      "sparsity via `prune --scores`):")
    w("  - magnitude: |W| (no data; `prune --method magnitude`).")
    w("  - Wanda: |W_ij|·‖X_j‖₂ over all calibration tokens, activations of the *dense* model for every layer "
      "(not Wanda's sequential pruned-prefix inputs).")
    for mth in ("gradient", "lrp"):
        md = meta_by_method.get(mth)
        if md:
            w(f"  - {LABEL[mth]}: `{md.get('aggregation')}`; rule `{md.get('rule')}`, target `{md.get('target')}` "
              f"(corpus → next-token at every position), seed value `{md.get('seed_value')}`, "
              f"abs per sample `{md.get('abs_per_sample')}`, ε = {md.get('epsilon')}.")
    if any(k.endswith("-abs") for k in meta_by_method):
        w("  - Probes `gradient-abs` / `lrp-abs`: the same with `--abs-per-sample` (|R| per sample, then the mean).")
    if any(k.endswith("-apt") for k in meta_by_method):
        w("  - Probes `gradient-apt` / `lrp-apt`: the same with `--abs-per-token` (Σ_t |R_t| = |W| ⊙ Σ_t |δ_t||x_t|ᵀ: "
          "no cancellation between positions, then the mean over samples).")
    w("  - Pruning ranks |score| (`--rank abs`), ties: lower flat index first.")
    w("- **Schemes:** `row` — every output row of every decoder linear loses exactly ⌊cols·s⌋ weights "
      "(Wanda/SparC³; magnitude also row-wise here, whereas Wanda's magnitude baseline is per-layer); "
      "`nm:2:4` — the 2 lowest of every 4 consecutive input columns of each row.")
    w(f"- **Perplexity:** `workbench perplexity --protocol {dp.get('protocol')} --seqlen {dp.get('seqlen')}"
      f"{'' if cfg.get('eval_windows') in (None, 'all') else ' --max-windows ' + str(cfg.get('eval_windows'))}`. "
      "Join rule: `wiki.test.raw` CRLF → LF, non-empty lines joined with `\"\\n\\n\"` (Wanda's "
      "`\"\\n\\n\".join(test[\"text\"])`; the raw file has no blank rows, so this is close to, not identical with, "
      f"the HF dataset text), tokenized once ({dp.get('tokens'):,} tokens) with the tokenizer's BOS rule; "
      "non-overlapping windows from the start; mean cross-entropy over every shifted position of every window, exp. "
      "The first windows are the same for every model, so comparisons between methods are paired.")
    w("")
    w("## Results")
    w("")
    w(f"Dense: **{fmt(dense)}**. Mean ± SEM over calibration seeds ({', '.join(seeds)}; SEM = sample sd/√n); "
      "magnitude needs no calibration (one value). Achieved sparsity = zeros/numel over the 210 decoder linear "
      "matrices from `pruning.json` (includes the few weights that are already exactly zero after Q4_1 dequantization).")
    w("")
    w("| method | 50% `row` PPL | 2:4 PPL | achieved sparsity (row / 2:4) |")
    w("|---|---|---|---|")
    w(f"| dense | {fmt(dense)} | {fmt(dense)} | 0 |")
    for m in METHODS:
        r1, r2 = table["row"].get(m), table["nm:2:4"].get(m)
        if not r1 and not r2:
            continue
        a1 = ", ".join(f"{x:.6f}" for x in sorted(set(r1["achieved_sparsity"]))) if r1 else "—"
        a2 = ", ".join(f"{x:.6f}" for x in sorted(set(r2["achieved_sparsity"]))) if r2 else "—"
        w(f"| {LABEL[m]} | {fmt_ms(r1['mean'], r1['sem'], r1['n']) if r1 else '—'} | "
          f"{fmt_ms(r2['mean'], r2['sem'], r2['n']) if r2 else '—'} | {a1} / {a2} |")
    w("")
    checks = [r for r in results if r.get("sparsity_check") and r.get("achieved")]
    agree = [r for r in checks if (r["sparsity_check"].get("decoder_linear") or {}).get("zeros")
             == (r["achieved"].get("decoder_linear") or {}).get("zeros")]
    blob["sparsity_cross_check"] = {"checked": len(checks), "agree": len(agree),
                                    "keys": [r["key"] for r in checks]}
    if checks:
        w(f"Cross-check: `workbench sparsity --json` on the written checkpoint counted the same number of zero decoder "
          f"weights as `pruning.json` in {len(agree)} of {len(checks)} checked checkpoints (all seed-{sweep_seed} / "
          "magnitude 50%-row and 2:4 ones).")
        w("")
    w("Per seed:")
    w("")
    w("| method | scheme | " + " | ".join(f"seed {s}" for s in seeds) + " |")
    w("|---|---|" + "---|" * len(seeds))
    for scheme in ("row", "nm:2:4"):
        for m in METHODS:
            r = table[scheme].get(m)
            if not r or m == "magnitude":
                continue
            w(f"| {LABEL[m]} | {'50% row' if scheme == 'row' else '2:4'} | " +
              " | ".join(fmt(r["per_seed"].get(s)) for s in seeds) + " |")
    w("")
    w(f"### LRP vs. number of reference samples (seed {sweep_seed}, {cfg.get('seqlen')}-token windows)")
    w("")
    w("| samples | tokens | 50% row PPL | 2:4 PPL |")
    w("|---|---|---|---|")
    ns = sorted({t["samples"] for t in trend})
    for n in ns:
        pr = next((t["perplexity"] for t in trend if t["samples"] == n and t["scheme"] == "row"), None)
        pn = next((t["perplexity"] for t in trend if t["samples"] == n and t["scheme"] == "nm:2:4"), None)
        w(f"| {n} | {n * int(cfg.get('seqlen', 0)):,} | {fmt(pr)} | {fmt(pn)} |")
    wr, wn = table["row"].get("wanda"), table["nm:2:4"].get("wanda")
    if wr:
        w(f"| (Wanda, {samples} samples, seed {sweep_seed}) | | {fmt(wr['per_seed'].get(sweep_seed))} | "
          f"{fmt(wn['per_seed'].get(sweep_seed)) if wn else '—'} |")
    w("")
    w(f"### Sparsity sweep (`row`, seed {sweep_seed}, {samples} samples)")
    w("")
    w("![perplexity vs sparsity](compression.svg)")
    w("")
    sps = sorted({s for v in sweep.values() for s, _ in v})
    w("| method | " + " | ".join(f"{s:g}" for s in sps) + " |")
    w("|---|" + "---|" * len(sps))
    for m in METHODS:
        if m in sweep:
            d = dict(sweep[m])
            w(f"| {LABEL[m]} | " + " | ".join(fmt(d.get(s)) for s in sps) + " |")
    w("")
    # Probe rows are the 50% row and 2:4 runs only (lrp-apt also has sweep runs at other sparsities).
    probes = sorted((r for r in results if r["method"].endswith(("-abs", "-apt"))
                     and (r["scheme"] != "row" or float(r["sparsity"]) == 0.5)), key=lambda r: (r["method"], r["scheme"]))
    blob["probes"] = [{"method": r["method"], "seed": r["seed"], "samples": int(r["samples"]), "scheme": r["scheme"],
                       "perplexity": ppl(r), "achieved_sparsity": ach(r)} for r in probes]
    if probes:
        pseeds = sorted({r["seed"] for r in probes})
        w(f"### Aggregation probes: |R| per sample or per position instead of the signed mean ({samples} samples, seeds {', '.join(pseeds)})")
        w("")
        w("Not part of SparC³ Table 1. The same attribution aggregated three ways, everything else unchanged: the "
          "signed mean of R_W over samples (Table 1 rows above), `--abs-per-sample` (PXP's convention: |R| of each "
          "sample, then the mean) and `--abs-per-token` (Σ_t |R_t| per weight, so contributions of different "
          "positions cannot cancel; computed as |W| ⊙ Σ_t |δ_t||x_t|ᵀ with one extra GEMM per layer). Mean ± SEM "
          "over the same calibration seeds.")
        w("")
        w("| method | aggregation | 50% row | 2:4 | per seed (row; 2:4) |")
        w("|---|---|---|---|---|")
        for base in ("gradient", "lrp"):
            sr, sn = table["row"].get(base), table["nm:2:4"].get(base)
            if sr or sn:
                w(f"| {LABEL[base]} | signed mean | {fmt_ms(sr['mean'], sr['sem'], sr['n']) if sr else '—'} | "
                  f"{fmt_ms(sn['mean'], sn['sem'], sn['n']) if sn else '—'} | (Table 1) |")
            for suffix, label in (("-abs", "mean of \\|R\\| per sample"), ("-apt", "\\|R\\| per position")):
                rr = [r for r in probes if r["method"] == base + suffix]
                if not rr:
                    continue
                ar = mean_sem([ppl(r) for r in rr if r["scheme"] == "row"])
                an = mean_sem([ppl(r) for r in rr if r["scheme"] == "nm:2:4"])
                per = "; ".join(", ".join(f"s{r['seed']} {fmt(ppl(r))}" for r in rr if r["scheme"] == sc) for sc in ("row", "nm:2:4"))
                w(f"| {LABEL[base]} | {label} | {fmt_ms(*ar)} | {fmt_ms(*an)} | {per} |")
                blob.setdefault("probe_summary", {})[base + suffix] = {"row": ar, "nm:2:4": an}
        w("")
    w("## Wall time")
    w("")
    wall = None
    try:
        from datetime import datetime
        t0 = datetime.strptime(started, "%Y-%m-%dT%H:%M:%SZ")
        t1 = datetime.strptime(finished, "%Y-%m-%dT%H:%M:%SZ")
        wall = (t1 - t0).total_seconds()
    except ValueError:
        pass
    blob["wall_seconds"] = wall
    with open(os.path.join(res_dir, "compression.json"), "w") as f:
        json.dump(blob, f, indent=1, sort_keys=False, ensure_ascii=False)
        f.write("\n")
    w(f"**Wall time {wall / 60:.1f} min** (first start to finish of the script, resumes included). " if wall else "")
    w(f"Started {started}, finished {finished or '(not finished)'}; sum of step times {total_steps / 60:.1f} min "
      f"on {env.get('nproc')} shared cores (load from other engineers' builds/tests varied during the run).")
    w("")
    w("| step kind | minutes |")
    w("|---|---|")
    for k, v in sorted(by_kind.items()):
        w(f"| {k} | {v / 60:.1f} |")
    w("")
    w("## Discussion")
    w("")
    w(MARK_BEGIN)
    w(discussion)
    w(MARK_END)
    w("")
    w("## Regenerate")
    w("")
    w("Full protocol (script defaults). Estimate for this 2-core machine at the throughput measured here: about "
      "1.5–2 days, mostly ≈45 full WikiText-2 evaluations at 2048 context (~40 min each) and the 512/1024-sample LRP runs:")
    w("")
    w("```sh")
    w("swift build -c release")
    w("mkdir -p out/experiments/compression")
    w("nohup scripts/experiments/compression.sh > out/experiments/compression/log.txt 2>&1 &")
    w("```")
    w("")
    w("The reduced configuration used here:")
    w("")
    w("```sh")
    envs = (f"SEQLEN={cfg.get('seqlen')} SAMPLES={cfg.get('samples')} SEEDS=\"{cfg.get('seeds')}\" "
            f"EVAL_SEQLEN={cfg.get('eval_seqlen')} EVAL_WINDOWS={'' if cfg.get('eval_windows') == 'all' else cfg.get('eval_windows')} "
            f"SPARSITIES=\"{cfg.get('sparsities')}\" EXTRA_LRP_SAMPLES=\"{cfg.get('extra_lrp_samples')}\"")
    w("mkdir -p out/experiments/compression")
    w(f"{envs} \\")
    w("  nohup scripts/experiments/compression.sh > out/experiments/compression/log.txt 2>&1 &")
    w("```")
    w("")
    w("Here the script was first started with `EXTRA_LRP_SAMPLES=128` and without the probes, and then resumed three "
      "times with steps added (the probes at seed 0, `EXTRA_LRP_SAMPLES=\"128 512\"`, the probes at seeds 1 and 2); "
      "every resume skipped the finished steps, so the single command above produces the same set of results.")
    w("")
    w("(Here `WORKBENCH_BIN` pointed at a release build of the committed HEAD in a separate worktree, so that other "
      "engineers' in-progress edits could not change the binary mid-run; `python3 scripts/experiments/compression_report.py` "
      "regenerates these three files from `out/experiments/compression/`.)")
    with open(md_path, "w") as f:
        f.write("\n".join(L) + "\n")
    print(f"wrote {res_dir}/compression.md, compression.json, compression.svg ({len(results)} results)")


if __name__ == "__main__":
    main()
