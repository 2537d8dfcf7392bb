#!/usr/bin/env python3
"""Detoxify as a `workbench --scorer`: JSONL {"text": ...} on stdin -> {"toxicity": x} per line on stdout.

    workbench evaluate ... --scorer "/work/pyenv/bin/python tools/detoxify_scorer.py --model original"
    echo '{"text": "you are an idiot"}' | python tools/detoxify_scorer.py --checkpoint toxic_original-c1212f89.ckpt

The workbench protocol (see `workbench toxicity --help`): one output line per input line, in order, each a JSON
object with a "toxicity" number in [0, 1]; anything else (a non-zero exit, a short or malformed output) makes
`evaluate` keep the scores it got, mark the report partial and exit 1. This wrapper prints nothing until every text
is scored (a failure midway leaves stdout empty rather than half a batch) and reports errors on stderr naming the
input line.

Detoxify (PyPI `detoxify`, tested API 0.5.4) does not ship its weights: `Detoxify(model_type)` downloads the
checkpoint from the project's GitHub releases and the transformer config/tokenizer from the Hugging Face hub. Offline,
pass --checkpoint (the .ckpt file) and have the base model's config and tokenizer in the Hugging Face cache (run with
HF_HUB_OFFLINE=1), or pass --hf-config DIR holding them. Neither is reachable from the workbench's build machine, so
this wrapper is not run by the test suite; the JSONL protocol it speaks is (ToxicityCLITests).

Setup: python3 -m venv /work/pyenv && /work/pyenv/bin/pip install detoxify   (brings torch and transformers)
"""
import argparse
import json
import sys


def read_texts(stream):
    texts = []
    for n, line in enumerate(stream, 1):
        if not line.strip():
            raise ValueError(f"stdin line {n}: empty line (expected {{\"text\": ...}})")
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"stdin line {n}: not JSON ({e.msg})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            raise ValueError(f"stdin line {n}: expected an object with a string \"text\"")
        texts.append(obj["text"])
    return texts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="original",
                    help="Detoxify model type: original, unbiased, multilingual, original-small, unbiased-small")
    ap.add_argument("--checkpoint", help="local .ckpt file (else Detoxify downloads it)")
    ap.add_argument("--hf-config", help="local folder with the base model's config and tokenizer (offline loading)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    if a.batch_size < 1:
        ap.error("--batch-size must be at least 1")
    try:
        texts = read_texts(sys.stdin)
    except ValueError as e:
        print(f"detoxify_scorer: {e}", file=sys.stderr)
        return 65
    try:
        from detoxify import Detoxify
    except ImportError as e:
        print(f"detoxify_scorer: cannot import detoxify ({e}); pip install detoxify", file=sys.stderr)
        return 69
    try:
        model = Detoxify(a.model, checkpoint=a.checkpoint, device=a.device, huggingface_config_path=a.hf_config)
    except Exception as e:  # download refused, file missing, bad checkpoint: say which and stop
        print(f"detoxify_scorer: cannot load Detoxify model '{a.model}'"
              f"{' from ' + a.checkpoint if a.checkpoint else ''}: {type(e).__name__}: {e}", file=sys.stderr)
        return 69
    scores = []
    for i in range(0, len(texts), a.batch_size):
        batch = texts[i:i + a.batch_size]
        out = model.predict(batch)["toxicity"]
        out = [out] if isinstance(out, float) else list(out)
        if len(out) != len(batch):
            print(f"detoxify_scorer: {len(out)} scores for {len(batch)} texts (lines {i + 1}-{i + len(batch)})", file=sys.stderr)
            return 70
        scores += [float(x) for x in out]
    sys.stdout.write("".join(json.dumps({"toxicity": s}) + "\n" for s in scores))
    return 0


if __name__ == "__main__":
    sys.exit(main())
