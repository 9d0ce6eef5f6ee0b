"""Issue #17's part of the report: the search over quantizer variants vs each variant used uniformly.

Every run quantizes the LM head too (`--quantize-head`: bits/param count the linears + the LM head, as
the issue's targets do) with the widths 4-5-6-7-8. Search sets (`SETS`) run at each budget of
`BUDGETS` and at ear>=0.99; uniform variants (`UNIFORM`) at each width of `UNIFORM_BITS`. The analysis
answers the issue's questions from these certificates alone: what each variant buys (bits saved at
equal held-out KL against uniform RTN, interpolated log-linearly), whether the search beats every
single variant used uniformly by >= 0.3 bits (median over the budget sweep), and the certified
bits at EAR >= 0.99.
"""
import math

from . import analysis, jobs

# No cloze here (the TL section covers it; 2000 items cost minutes per run on docs-19m).
COMMON = ["--quantize-head", "--formats", "4-5-6-7-8", "--cloze-items", "0"]
BUDGETS = [4.5, 5.0, 5.5, 6.0, 6.5, 7.0, 7.5, 8.0]  # 4.25 is the floor with the head at g128
UNIFORM_BITS = [4, 5, 6, 7, 8]
# (slug, label, arguments): the search's candidate sets, smallest first.
SETS = [
    ("rtn", "search: width (RTN)", ["--quantizers", "rtn"]),
    ("gptq", "search: width x {RTN, GPTQ}", ["--quantizers", "rtn,gptq"]),
    ("symg", "search: width x {sym, asym} x {g64, g128} (RTN)",
     ["--quantizers", "rtn", "--symmetry", "both", "--group-sizes", "64,128"]),
    ("all", "search: width x {RTN, GPTQ} x {sym, asym} x {g64, g128}",
     ["--quantizers", "rtn,gptq", "--symmetry", "both", "--group-sizes", "64,128"]),
    ("grid", "search: width x {RTN, GPTQ} x {uniform grid, Grid Games}", ["--quantizers", "rtn,gptq", "--grids", "both"]),
    ("s8", "search: width x {RTN, GPTQ} x {fp16, S8 scales} x {g64, g128}, Grid Games",
     ["--quantizers", "rtn,gptq", "--grids", "on", "--scales", "both", "--group-sizes", "64,128"]),
]
# (slug, label, arguments): one variant for every layer.
UNIFORM = [
    ("rtn", "uniform RTN asym g128", ["--quantizers", "rtn"]),
    ("gptq", "uniform GPTQ asym g128", ["--quantizers", "gptq"]),
    ("sym", "uniform RTN sym g128", ["--quantizers", "rtn", "--symmetric"]),
    ("g64", "uniform RTN asym g64", ["--quantizers", "rtn", "--group-size", "64"]),
    ("gptqgrid", "uniform GPTQ asym g128 Grid Games", ["--quantizers", "gptq", "--grids", "on"]),
    ("gptqgrids8", "uniform GPTQ asym g64 Grid Games S8", ["--quantizers", "gptq", "--grids", "on", "--scales", "s8",
                                                          "--group-size", "64"]),
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


def _gram(p):
    """The Gram scheme a point's mse/gptq layers were fitted with ("" for RTN-only runs)."""
    return p.get("cert", {}).get("calibration", {}).get("gram", {}).get("scheme", "")


def _median(v):
    v = sorted(v)
    if not v:
        return None
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def _iv(d, fmt):
    return f"{d['mean']:{fmt}} [{d['lo']:{fmt}}, {d['hi']:{fmt}}]"


def section(models_pts, plot_fn, img_dir, llama=None, cache=None):
    """Markdown of the variants section; plot_fn(model, points, path) draws the curves; llama: the
    llama.cpp comparison runs by model (load_llamacpp); cache: the report cache (its per-model
    profiles give the allocation bound of the search-vs-uniform target)."""
    import os
    llama = llama or {}
    out = ["## Stronger quantizers inside the search (issue #17)\n",
           "Every run here quantizes the LM head too (`--quantize-head`), so bits/param count the linears "
           "+ the LM head (embeddings stay fp16), widths 4-5-6-7-8. Held-out KL and 1-EAR with 95% "
           "bootstrap intervals. Search sets: " +
           "; ".join(f"**{label}** (`{' '.join(a)}`)" for _, label, a in SETS) +
           ". Uniform variants: " + "; ".join(f"{label} (`{' '.join(a)}`)" for _, label, a in UNIFORM) +
           ". Bits saved = the uniform curve's bits at the search point's KL (log-linear "
           "interpolation) minus the search point's bits; median over the budgets inside the uniform "
           "curve's range. Models whose runs are missing from the cache are left out; a set or budget "
           "without a certificate shows '-'.\n", targets(models_pts, llama, cache)]
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
        def schemes(label):
            return sorted({_gram(p) for p in vp if p["method"] == label and _gram(p)})

        for label in labels:
            cells = []
            for u in ulabels:
                s = savings(vp, label, u)
                m = _median(s)
                a, b = schemes(label), schemes(u)
                note = f"; Gram {'/'.join(a)} vs {'/'.join(b)}" if a and b and a != b else ""
                cells.append("-" if m is None else f"{m:+.2f} bits (n={len(s)}, {min(s):+.2f}..{max(s):+.2f}{note})")
            out.append(f"| {label} | " + " | ".join(cells) + " |")
        out.append("")
        # Budget table.
        out.append("| target | " + " | ".join(labels) + " |")
        out.append("|---|" + "---|" * len(labels))
        for beta in BUDGETS:
            row = []
            for slug, label, _ in SETS:
                p = next((q for q in vp if q["name"] == f"v-{slug}-bits{beta}"), None)
                gram = _gram(p) if p else ""
                row.append("-" if p is None else f"{p['bits']:.3f} bits, KL {_iv(p['kl'], '.2e')}, "
                                                 f"1-EAR {p['tv']['mean']:.4f}" + (f" (Gram: {gram})" if gram else ""))
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
        widest = next((q for slug, _, _ in reversed(SETS) for q in vp if q["name"] == f"v-{slug}-ear0.99"), None)
        if widest:
            kinds = {}
            for lname, d in widest["layers"].items():
                if d.get("quantized"):
                    k = (f"{d.get('quantizer', 'rtn')}{d['bits']}"
                         f"{'s' if d.get('symmetric') else ''}" +
                         (f"g{d['group_size']}" if d.get("group_size") not in (None, 128) else "") +
                         ("-grid" if d.get("grids") else "") + ("-s8" if d.get("scales") == "s8" else ""))
                    kinds[k] = kinds.get(k, 0) + 1
            out.append(f"Layers of `{widest['name']}` by variant: " +
                       ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items())) + ".\n")
        if name in llama:
            out.append(llamacpp_table(name, llama[name]))
    return "\n".join(out)


def load_llamacpp(root):
    """{model name: harness JSON} of bench/compare/llamacpp_kld.py runs committed under
    bench/results/raw/llamacpp-kld-*/<model>.json (the newest date wins)."""
    import glob
    import json
    import os
    out = {}
    for path in sorted(glob.glob(os.path.join(root, "bench", "results", "raw", "llamacpp-kld-*", "*.json"))):
        with open(path) as f:
            out[os.path.splitext(os.path.basename(path))[0]] = dict(json.load(f), _path=os.path.relpath(path, root))
    return out


def llamacpp_table(name, j):
    out = [f"llama.cpp comparison on {name} (`bench/compare/llamacpp_kld.py`, `{j['_path']}`): every model scored by "
           f"`llama-perplexity --kl-divergence` against the F32 base on slq's held-out side ({j['heldout_chunks']} chunks of "
           f"{j['ctx']} tokens, the second half of each scored; intervals = mean +- 1.96 x llama.cpp's per-token SE, "
           "optimistic); slq artifacts through their dequantized F32 export; bits over the linears + LM head from "
           "the GGUF tensor types / the artifact manifest. Ratio = slq KLD / KLD of the best llama.cpp type at <= the "
           "artifact's budget." + (f" Provenance: {j['note']}" if j.get("note") else "") + "\n",
           "| slq artifact | bits | KLD [95%] | best plain llama.cpp type | ratio | best incl. imatrix | ratio | <= 0.6x? |",
           "|---|---:|---|---|---:|---|---:|---|"]
    for s in sorted(j["slq"], key=lambda s: (s["budget"], s["name"])):
        vp, vi = s.get("vs_plain") or {}, s.get("vs_imatrix") or {}
        ok = vi.get("ratio") is not None and vi["ratio"] <= 0.6
        out.append(f"| {s['name']} | {s['bits']:.3f} | {s['kld']:.4f} [{s['kld_lo95']:.4f}, {s['kld_hi95']:.4f}] | "
                   f"{vp.get('name', '-')} ({vp.get('kld', float('nan')):.4f}) | {vp.get('ratio', float('nan')):.2f}x | "
                   f"{vi.get('name', '-')} ({vi.get('kld', float('nan')):.4f}) | {vi.get('ratio', float('nan')):.2f}x | "
                   f"{'yes' if ok else '**no**'} |")
    return "\n".join(out) + "\n"


# The choice code (server/quant/choice.h) of uniform GPTQ + grids + S8 g64 at width 4 in the search sets' profiles
# (base group 128): 4 + 16 x gptq (2) + 128 x group index of 64 (2) + 1024 grids + 2048 S8.
GPTQ_GRID_S8_G64_CODE4 = 4 + 16 * 2 + 128 * 2 + 1024 + 2048


def allocation_bound_text(cache, name, pts):
    """What the search's own additive model says a per-layer width allocation can save over uniform GPTQ +
    grids + S8 g64 (its widths 4-8), from the model's cached profiles; "" when they are not cached."""
    import os
    if not cache:
        return ""
    cert = next((p for p in pts if p.get("layers") and p["name"].startswith("v-s8-")), None)
    if cert is None:
        return ""
    params = {k: d["params"] for k, d in cert["layers"].items() if d.get("quantized") and d.get("params")}
    b = analysis.allocation_bound(os.path.join(cache, name, "profiles"), params, GPTQ_GRID_S8_G64_CODE4, 64)
    if b is None:
        return ""
    cells = [f"{ub - best:+.2f} at {ub:.2f}" for ub, _, best in b["rows"][1:-1] if best is not None]
    return (f" Under the search's own additive model (the cached per-layer calibration KL of uniform GPTQ + grids + "
            f"S8 g64 at widths 4-8; `scripts/alloc_bound`), the best per-layer allocation of those widths saves only "
            f"{', '.join(cells)} bits at equal predicted KL: the layers' KL per parameter varies too little "
            f"(parameter-weighted sd of its log {b['log_sd']:.2f}; continuous widths would save about "
            f"{b['continuous_saving']:.2f} bits; 0.3 bits needs about 0.91), so a per-layer search cannot reach 0.3 "
            "bits over that variant on this model.")


def _old_rule(p):
    """' (acceptance before 2026-12-02)' for a certificate whose closed loop took the calibration spread as
    measured (server/quant/transfer_bound.h: the rule since then bounds it above; it costs ~0.1 bits here)."""
    acc = p.get("cert", {}).get("calibration", {}).get("acceptance", "")
    return "" if not acc or "upper bound" in acc else " (acceptance before 2026-12-02)"


def zero_margin_bits(cert):
    """Bits at which a certificate's closed-loop steps put the calibration EAR mean at 0.99: a least-squares
    line of log(1 - EAR mean) on bits over its steps (1 - EAR falls about exponentially in the bits), or None
    with fewer than two steps."""
    steps = [(s["avg_bits"], math.log(1 - s["calib_mean"]))
             for s in cert.get("search", {}).get("outcome", {}).get("steps", [])
             if s.get("calib_mean") is not None and s["calib_mean"] < 1]
    if len(steps) < 2:
        return None
    n = len(steps)
    mb, my = sum(b for b, _ in steps) / n, sum(y for _, y in steps) / n
    sxx = sum((b - mb) ** 2 for b, _ in steps)
    if sxx == 0:
        return None
    slope = sum((b - mb) * (y - my) for b, y in steps) / sxx
    if slope >= 0:
        return None
    return mb + (math.log(0.01) - my) / slope


def targets(models_pts, llama, cache=None):
    """The issue's targets, one line each, from the certificates and the llama.cpp runs."""
    out = ["**Issue #17's targets** (held-out numbers; bits over the linears + LM head):\n"]
    for name in ("docs-19m", "tinystories-656k"):
        j = llama.get(name)
        if not j:
            out.append(f"- KL <= 0.6x the best llama.cpp type at 4.5/5.0/5.5/6.0 bits, {name}: not measured.")
            continue
        best = {}
        for s in j["slq"]:
            r = (s.get("vs_imatrix") or {}).get("ratio")
            if r is not None and (s["budget"] not in best or r < best[s["budget"]][0]):
                best[s["budget"]] = (r, s["name"])
        cells = [f"{b:g}: {r:.2f}x ({n})" for b, (r, n) in sorted(best.items())]
        miss = [f"{b:g}" for b, (r, _) in sorted(best.items()) if r > 0.6]
        out.append(f"- KL <= 0.6x the best llama.cpp type (imatrix included) at <= the budget, {name}: best slq artifact "
                   f"per budget {', '.join(cells)} -> " + ("**met** at every budget" if not miss else
                                                           f"**missed** at {', '.join(miss)} bits (means)") + ".")
    pts = dict(models_pts).get("docs-19m", [])
    ear = [p for p in pts if p["name"].startswith("v-") and p["name"].endswith("ear0.99")]
    met = [p for p in ear if p["met"]]
    if ear:
        b = min(met, key=lambda p: p["bits"]) if met else None
        zm = zero_margin_bits(b["cert"]) if b and b.get("cert") else None
        out.append("- docs-19m certified EAR >= 0.99 at <= 7.0 bits with the LM head quantized: " +
                   (f"best {b['bits']:.3f} bits ({b['method']}, EAR lo95 {b['ear']['lo']:.5f}) -> "
                    + ("**met**" if b["bits"] <= 7.0 else "**missed**") if b else "no search set met it") +
                   "; every set: " + ", ".join(f"{p['method'].split(' @')[0]} {p['bits']:.3f}"
                                               f"{'' if p['met'] else ' (not met)'}{_old_rule(p)}" for p in ear) +
                   "." +
                   ("" if zm is None else
                    f" The best run's closed loop puts the calibration EAR mean at 0.99 at about {zm:.2f} bits (a "
                    f"line of log(1-EAR) on bits through its steps): even with no transfer margin (the predicted "
                    f"held-out bound's distance below the mean, {b['cert']['calibration']['sequences']} calibration "
                    f"windows) this model needs more than 7.0 bits with these quantizers."
                    if zm > 7.0 else f" The calibration EAR mean crosses 0.99 at about {zm:.2f} bits."))
    labels = [label for _, label, _ in SETS]
    for name, pts in models_pts:
        vp = [p for p in pts if p["name"].startswith(("v-", "vu-"))]
        have = [l for l in labels if any(p["method"] == l for p in vp)]
        if not have:
            continue
        def per_set(label):
            meds = [(_median(savings(vp, label, u)), u) for _, u, _ in UNIFORM]
            known = [(m, u) for m, u in meds if m is not None]
            return meds, (min(known) if known else None)
        # The set whose smallest saving (over the uniform variants) is largest.
        widest = max(have, key=lambda l: (per_set(l)[1] or (-99, ""))[0])
        meds, worst = per_set(widest)
        sch = lambda label: "/".join(sorted({_gram(p) for p in vp if p["method"] == label and _gram(p)}))  # noqa: E731
        differ = [u for _, u, _ in UNIFORM if sch(u) and sch(widest) and sch(u) != sch(widest)]
        out.append(f"- search beats every single variant used uniformly by >= 0.3 bits at equal KL (median over the "
                   f"budgets), {name}, best set run ({widest}): " +
                   ", ".join(f"vs {u} {m:+.2f}" if m is not None else f"vs {u} -" for m, u in meds) + " -> " +
                   ("-" if worst is None else ("**met**" if worst[0] >= 0.3 else f"**missed** (vs {worst[1]})")) +
                   "".join(f" (the search's Gram: {sch(widest)}, {u}'s: {sch(u)}: not the same text)" for u in differ) +
                   "." + allocation_bound_text(cache, name, vp))
    return "\n".join(out) + "\n"


BEGIN, END = "<!-- section:quantizers (scripts/report --section quantizers) -->", "<!-- /section:quantizers -->"


def wrap(md):
    return f"{BEGIN}\n{md}\n{END}"


def replace_in(path, md, before="## What confirms or contradicts"):
    """Rewrites this section of the report file in place (inserted before `before` when absent)."""
    with open(path) as f:
        doc = f.read()
    block = wrap(md)
    if BEGIN in doc and END in doc:
        a, rest = doc.split(BEGIN, 1)
        doc = a + block + rest.split(END, 1)[1]
    elif before in doc:
        a, b = doc.split(before, 1)
        doc = a + block + "\n\n" + before + b
    else:
        doc = doc.rstrip("\n") + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(doc)
