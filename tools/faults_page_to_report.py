#!/usr/bin/env python3
"""Rebuild a `workbench faults` JSON report from one of its HTML pages, for runs whose JSON was not kept.

    python3 tools/faults_page_to_report.py PAGE.html OUT.json
    workbench faults --render OUT.json        # redraws OUT.html with the current page code

Pages written before 2026-12-06 were committed without their JSON reports, and the trials took hours; the page's
provenance and data tables hold every number the page draws (median, 10th/90th percentile, failed fraction,
reliability, gain, failure reduction, protected weights, overhead, flips), so the page can be redrawn from them.
What the page never held is written as such: `values` (the per-trial metric) is empty, `protectedScaleBlocks` is 0,
and `protectedBits` is derived from the overhead's two decimals (overhead = 2 × protected / stored bits); a top-level
`rebuiltFrom` key (ignored by the decoder) says so. The numbers come back as the table printed them (4 significant
digits for the metric, 1 decimal for flips), so a redrawn page's table shows the same text. Standard library only.
"""
import html.parser
import json
import re
import sys


class Tables(html.parser.HTMLParser):
    """Collects <title> and the rows of every <table> as lists of cell texts (th and td alike)."""

    def __init__(self):
        super().__init__()
        self.title, self.tables, self._cell, self._row, self._in_title = "", [], None, None, False

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag == "title" and not self.title:
            self._in_title = True

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(self._cell.strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[-1].append(self._row)
            self._row = None
        elif tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        elif self._in_title:
            self.title += data


def number(text):
    """A table cell's number; None for the page's not-finite marker or a dash."""
    t = text.replace("\u2011", "-").strip()
    if t.startswith("n/a") or t in ("–", "-", ""):
        return None
    return float(t)


def percent(text):
    v = number(text.replace("%", "").replace("pp", "").replace("+", ""))
    return None if v is None else v / 100


def main(page, out):
    p = Tables()
    with open(page, encoding="utf-8") as f:
        p.feed(f.read())
    m = re.match(r"Bit-flip faults: (\S+) under (\S+) storage", p.title)
    if not m or len(p.tables) < 2:
        sys.exit(f"{page}: not a `workbench faults` page (title {p.title!r}, {len(p.tables)} tables)")
    metric, storage = m.groups()
    prov = {r[0]: r[1] for r in p.tables[0] if len(r) == 2}
    sm = re.search(r"; (\d+) weights, (\d+) bits\)", prov["storage"])
    stored_weights, stored_bits = int(sm.group(1)), int(sm.group(2))
    lower = metric == "perplexity"
    fm = re.search(r"[<>] ([0-9.e+-]+)", prov["failure"])
    tm = re.match(r"(\d+) per BER and criterion; seed (\d+)", prov["trials"])
    pm = re.search(r"; ([0-9.]+) % of stored bits", prov["protection"])
    header, *rows = p.tables[1]
    want = ["BER", "criterion", "median", "p10", "p90", "failed", "reliability", "gain vs none", "failure reduction",
            "protected weights", "overhead", "flips / trial", "wrong bits read / trial"]
    if header != want:
        sys.exit(f"{page}: unexpected data table header {header}")
    out_rows = []
    for r in rows:
        c = dict(zip(want, r))
        overhead = percent(c["overhead"])
        out_rows.append({
            "ber": number(c["BER"]), "criterion": c["criterion"], "values": [],
            "median": number(c["median"]), "p10": number(c["p10"]), "p90": number(c["p90"]),
            "failedFraction": percent(c["failed"]), "reliability": percent(c["reliability"]),
            "reliabilityGain": percent(c["gain vs none"]), "failureReduction": percent(c["failure reduction"]),
            "protectedBits": round(overhead * stored_bits / 2), "protectedWeights": int(c["protected weights"]),
            "protectedScaleBlocks": 0, "overhead": overhead,
            "meanPrimaryFlips": number(c["flips / trial"]), "meanReadFlips": number(c["wrong bits read / trial"]),
        })
    report = {
        "rebuiltFrom": f"{page}: its provenance and data tables (the run's JSON was not kept): per-trial values absent, "
                       "protectedScaleBlocks unknown (0), protectedBits from the overhead's two decimals",
        "model": prov["model"], "storage": storage, "metric": metric, "metricDetail": prov["metric"], "lowerIsBetter": lower,
        "dense": number(next(v for k, v in prov.items() if k.startswith("dense"))), "failThreshold": float(fm.group(1)),
        "trials": int(tm.group(1)), "seed": int(tm.group(2)), "protectFraction": float(pm.group(1)) / 100,
        "storedBits": stored_bits, "storedWeights": stored_weights,
        "seconds": float(prov["time"].split()[0]), "rows": out_rows,
    }
    with open(out, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
