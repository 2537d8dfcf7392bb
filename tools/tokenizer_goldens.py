#!/usr/bin/env python3
"""Write Tests/Fixtures/tokenizer_goldens.json: HF reference ids for the Swift byte-level BPE.

Run with the reference env:  /work/pyenv/bin/python tools/tokenizer_goldens.py [--assets DIR]

* "gpt2": transformers.GPT2TokenizerFast(vocab_file=encoder.json, merges_file=vocab.bpe)
  (<|endoftext|> is its special token, matched atomically).
* "smollm": the same vocab/merges through a `tokenizers` pipeline with SmolLM2's pre-tokenizer,
  Sequence([Digits(individual_digits=True), ByteLevel(add_prefix_space=False)]).
* "wikitext": GPT-2 ids for the whole eval/wikitext-2-raw/wiki.test.raw (as read, CRLF kept):
  count, first/last 64 ids and the 64-bit FNV-1a hash of the ids as little-endian uint32s
  (easy to recompute in Swift without a crypto library).
"""
import argparse
import json
import os
import struct
import sys

STRINGS = [
    "Hello, my dog is cute",
    "I'm sure they'll say it's what we've done, isn't it? I'd",
    "CAPS'S 'quoted' don'T o'clock",
    "Numbers: 12345 and 3.14159, 1,000,000 and x2y3",
    "Multiple   spaces   here  ",
    "   leading and trailing   ",
    "Line one\nLine two\r\n\n\tTabbed\t\tend\n",
    "Emoji 😀👍🏽 and 🇺🇸 flags 👨‍👩‍👧",
    "Café naïve résumé Ångström e\u0301",
    "中文字符和日本語のテキスト, 한국어",
    "Special <|endoftext|> token<|endoftext|>inside",
    "non\u00a0breaking\u2003em space \u3000ideographic",
    "#$%^&*()!!! ... -- ?!",
]


def default_assets():
    here = os.path.dirname(os.path.abspath(__file__))
    d = here
    while True:
        cand = os.path.join(d, "shared", "assets")
        if os.path.isdir(cand):
            return cand
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--assets", default=os.environ.get("WORKBENCH_ASSETS") or default_assets())
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "..", "Tests", "Fixtures", "tokenizer_goldens.json"))
    args = ap.parse_args()
    if not args.assets or not os.path.isdir(args.assets):
        sys.exit("assets folder not found (set WORKBENCH_ASSETS)")

    import transformers
    import tokenizers
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = os.path.join(args.assets, "tokenizers", "gpt2", "encoder.json")
    merges = os.path.join(args.assets, "tokenizers", "gpt2", "vocab.bpe")

    gpt2 = transformers.GPT2TokenizerFast(vocab_file=vocab, merges_file=merges)

    smol = Tokenizer(models.BPE.from_file(vocab, merges))
    smol.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    smol.add_special_tokens(["<|endoftext|>"])

    cases = []
    for s in STRINGS:
        ids = gpt2.encode(s)
        assert gpt2.decode(ids) == s, s
        cases.append({
            "text": s,
            "gpt2": ids,
            "smollm": smol.encode(s).ids,
        })

    with open(os.path.join(args.assets, "eval", "wikitext-2-raw", "wiki.test.raw"), encoding="utf-8", newline="") as f:
        wiki = f.read()
    wiki_ids = gpt2.encode(wiki)
    h = 0xCBF29CE484222325
    for b in struct.pack(f"<{len(wiki_ids)}I", *wiki_ids):
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    digest = f"{h:016x}"

    out = {
        "generator": "tools/tokenizer_goldens.py",
        "versions": {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__},
        "vocab": "tokenizers/gpt2/encoder.json",
        "merges": "tokenizers/gpt2/vocab.bpe",
        "cases": cases,
        "wikitext": {
            "file": "eval/wikitext-2-raw/wiki.test.raw",
            "count": len(wiki_ids),
            "head": wiki_ids[:64],
            "tail": wiki_ids[-64:],
            "fnv1a64_ids_u32le": digest,
        },
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    # Compact layout: one case per line, lists inline.
    def dumps(v):
        return json.dumps(v, ensure_ascii=False, separators=(", ", ": "))
    lines = ["{"]
    for key in ("generator", "versions", "vocab", "merges"):
        lines.append(f" {dumps(key)}: {dumps(out[key])},")
    lines.append(' "cases": [')
    lines.append(",\n".join("  " + dumps(c) for c in cases))
    lines.append(" ],")
    lines.append(f' "wikitext": {dumps(out["wikitext"])}')
    lines.append("}")
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == out
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {os.path.normpath(args.out)}: {len(cases)} cases, wikitext {len(wiki_ids)} ids")


if __name__ == "__main__":
    main()
