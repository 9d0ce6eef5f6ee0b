"""Issue #17's part of the report: the search over quantizer variants vs each variant used uniformly.

Every run quantizes the LM head too (`--quantize-head`: bits/param count the linears + the LM head, as
the issue's targets do) with the widths 4-5-6-7-8. Search sets (`SETS`) run at each budget of
`BUDGETS` and at ear>=0.99; uniform variants (`UNIFORM`) at each width of `UNIFORM_BITS`. The analysis
answers the issue's questions from these certificates alone: what each variant buys (bits saved at
equal held-out KL against uniform RTN, interpolated log-linearly), whether the search beats every
single variant used uniformly by >= 0.3 bits (median over the budget sweep), and the certified
bits at EAR >= 0.99.
"""
from . import analysis, jobs

# No cloze here (the TL section covers it; 2000 items cost minutes per run on docs-19m).
COMMON = ["--quantize-head", "--formats", "4-5-6-7-8", "--cloze-items", "0"]
BUDGETS = [4.0, 4.5, 5.0, 5.5, 6.0, 6.5, 7.0, 7.5, 8.0]
UNIFORM_BITS = [4, 5, 6, 7, 8]
# (slug, label, arguments): the search's candidate sets, smallest first.
SETS = [
    ("rtn", "search: width (RTN)", ["--quantizers", "rtn"]),
    ("gptq", "search: width x {RTN, GPTQ}", ["--quantizers", "rtn,gptq"]),
    ("symg", "search: width x {sym, asym} x {g64, g128} (RTN)",
     ["--quantizers", "rtn", "--symmetry", "both", "--group-sizes", "64,128"]),
    ("all", "search: all variants", ["--quantizers", "rtn,gptq", "--symmetry", "both", "--group-sizes", "64,128"]),
]
# (slug, label, arguments): one variant for every layer.
UNIFORM = [
    ("rtn", "uniform RTN asym g128", ["--quantizers", "rtn"]),
    ("gptq", "uniform GPTQ asym g128", ["--quantizers", "gptq"]),
    ("sym", "uniform RTN sym g128", ["--quantizers", "rtn", "--symmetric"]),
    ("g64", "uniform RTN asym g64", ["--quantizers", "rtn", "--group-size", "64"]),
]
BASELINE = "uniform RTN asym g128"


def sweep():
    runs = []
    for slug, label, args in SETS:
        runs.append(jobs.Run(f"v-{slug}-ear0.99", label + " @ ear>=0.99", COMMON + args + ["--target", "ear>=0.99"]))
    for slug, label, args in UNIFORM:
        for b in UNIFORM_BITS:
            runs.append(jobs.Run(f"vu-{slug}-{b}", label, COMMON + args + ["--uniform-bits", str(b),
                                                                            "--target", "ear>=0.99"]))
    for beta in BUDGETS:
        for slug, label, args in SETS:
            runs.append(jobs.Run(f"v-{slug}-bits{beta}", label, COMMON + args + ["--target", f"bits<={beta}"]))
    return runs


def _curve(pts, method):
    return sorted([p for p in pts if p["method"] == method], key=lambda p: p["bits"])


def savings(pts, search_label, uniform_label):
    """Bits saved at equal held-out KL by each budget point of a search set against a uniform curve."""
    uni = _curve(pts, uniform_label)
    out = []
    for p in _curve(pts, search_label):
        e = analysis.equivalent_uniform_bits(uni, p["kl"]["mean"], "kl")
        if e is not None:
            out.append(e - p["bits"])
    return out


def _median(v):
    v = sorted(v)
    if not v:
        return None
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def _iv(d, fmt):
    return f"{d['mean']:{fmt}} [{d['lo']:{fmt}}, {d['hi']:{fmt}}]"


def section(models_pts, plot_fn, img_dir):
    """Markdown of the variants section; plot_fn(model, points, path) draws the curves."""
    import os
    out = ["## Stronger quantizers inside the search (issue #17)\n",
           "Every run here quantizes the LM head too (`--quantize-head`), so bits/param count the linears "
           "+ the LM head (embeddings stay fp16), widths 4-5-6-7-8. Held-out KL and 1-EAR with 95% "
           "bootstrap intervals. Search sets: " +
           "; ".join(f"**{label}** (`{' '.join(a)}`)" for _, label, a in SETS) +
           ". Uniform variants: " + "; ".join(f"{label} (`{' '.join(a)}`)" for _, label, a in UNIFORM) +
           ". Bits saved = the uniform curve's bits at the search point's KL (log-linear "
           "interpolation) minus the search point's bits; median over the budgets inside the uniform "
           "curve's range.\n"]
    labels = [label for _, label, _ in SETS]
    ulabels = [label for _, label, _ in UNIFORM]
    for name, pts in models_pts:
        vp = [p for p in pts if p["name"].startswith(("v-", "vu-"))]
        if not vp:
            continue
        out.append(f"### {name}\n")
        path = os.path.join(img_dir, f"{name}-variants.png")
        plot_fn(f"{name} (LM head quantized)", [p for p in vp if "@" not in p["method"]], path)
        out.append(f"![{name} variants](img/{name}-variants.png)\n")
        # Bits saved at equal KL.
        out.append("| search set | " + " | ".join(f"vs {u}" for u in ulabels) + " |")
        out.append("|---|" + "---|" * len(ulabels))
        for label in labels:
            cells = []
            for u in ulabels:
                s = savings(vp, label, u)
                m = _median(s)
                cells.append("-" if m is None else f"{m:+.2f} bits (n={len(s)}, {min(s):+.2f}..{max(s):+.2f})")
            out.append(f"| {label} | " + " | ".join(cells) + " |")
        out.append("")
        # Budget table.
        out.append("| target | " + " | ".join(labels) + " |")
        out.append("|---|" + "---|" * len(labels))
        for beta in BUDGETS:
            row = []
            for slug, label, _ in SETS:
                p = next((q for q in vp if q["name"] == f"v-{slug}-bits{beta}"), None)
                row.append("-" if p is None else f"{p['bits']:.3f} bits, KL {_iv(p['kl'], '.2e')}, "
                                                 f"1-EAR {p['tv']['mean']:.4f}")
            out.append(f"| bits<={beta} | " + " | ".join(row) + " |")
        row = []
        for slug, label, _ in SETS:
            p = next((q for q in vp if q["name"] == f"v-{slug}-ear0.99"), None)
            row.append("-" if p is None else f"{p['bits']:.3f} bits, EAR {_iv(p['ear'], '.5f')}, "
                                             f"{'met' if p['met'] else '**not met** on held-out'}"
                                             + ("" if p.get("calib_met") is None else
                                                f" (calibration: {'met' if p['calib_met'] else 'not met'})"))
        out.append("| ear>=0.99 | " + " | ".join(row) + " |")
        out.append("")
        # Which variants the widest search set chose.
        widest = next((q for q in vp if q["name"] == f"v-{SETS[-1][0]}-ear0.99"), None)
        if widest:
            kinds = {}
            for lname, d in widest["layers"].items():
                if d.get("quantized"):
                    k = (f"{d.get('quantizer', 'rtn')}{d['bits']}"
                         f"{'s' if d.get('symmetric') else ''}" +
                         (f"g{d['group_size']}" if d.get("group_size") not in (None, 128) else ""))
                    kinds[k] = kinds.get(k, 0) + 1
            out.append(f"Layers of `{widest['name']}` by variant: " +
                       ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items())) + ".\n")
    return "\n".join(out)
