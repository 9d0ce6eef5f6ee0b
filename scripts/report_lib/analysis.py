"""Turns cached run records into plot points and the comparisons the report states."""
import math
import os


def point(run, rec):
    c = rec["cert"]
    h = c["heldout"]
    e, k = h["ear"], h["kl"]
    return {
        "name": run.name, "method": run.method, "target": c.get("target", ""),
        "bits": c["avg_bits_per_param_quantized_layers"],
        "whole_bits": c.get("avg_bits_per_param_whole_model"),
        "ear": {"mean": e["mean"], "lo": e["lo95"], "hi": e["hi95"]},
        "tv": {"mean": 1 - e["mean"], "lo": 1 - e["hi95"], "hi": 1 - e["lo95"]},
        "kl": {"mean": k["mean"], "lo": k["lo95"], "hi": k["hi95"]},
        "flip": h["flip_rate"]["mean"], "ppl": h["ppl_ratio"]["mean"],
        "met": bool(c["target_met"]), "status": c.get("status", ""),
        "calib_met": c.get("calibration", {}).get("target_met"),
        "calib_metric": c.get("calibration", {}).get("metric"),
        "calib_mean": c.get("calibration", {}).get("mean"),
        "acceptance": c.get("calibration", {}).get("acceptance", "calibration 95% bound"),
        # Cloze results from before the leading-space rule (no "spelling") found too few items
        # with SentencePiece / byte-level BPE tokenizers: not shown.
        "task": h.get("task") if (h.get("task") or {}).get("spelling") else None,
        "wall": rec.get("wall_s"), "rss_kb": rec.get("max_rss_kb"),
        "stages": c.get("stage_wall_seconds", {}),
        "layers": c.get("layers", {}), "cert": c,
    }


def interp_log(curve, x, key):
    """log-linear interpolation of curve (sorted by bits) at x; None outside its range."""
    xs = [p["bits"] for p in curve]
    if not curve or x < xs[0] - 1e-9 or x > xs[-1] + 1e-9:
        return None
    for a, b in zip(curve, curve[1:]):
        if a["bits"] <= x <= b["bits"]:
            ya, yb = math.log(max(a[key]["mean"], 1e-12)), math.log(max(b[key]["mean"], 1e-12))
            t = (x - a["bits"]) / (b["bits"] - a["bits"]) if b["bits"] > a["bits"] else 0
            return math.exp(ya + t * (yb - ya))
    return curve[-1][key]["mean"]


def cells(p):
    """{(layer, projection): bits} of a point's quantized layers."""
    out = {}
    for name, d in p["layers"].items():
        if not d.get("quantized"):
            continue
        parts = name.split(".")
        proj = parts[-1]
        if proj == "weight":
            proj = parts[-2]
        proj = proj.replace("_proj", "")
        out[(int(d.get("layer", -1)), proj)] = int(d["bits"])
    return out


def smallest_meeting(points, method, tau):
    ok = [p for p in points if p["method"] == method and p["ear"]["lo"] >= tau]
    return min(ok, key=lambda p: p["bits"]) if ok else None


def gamma_rows(points, pred=None):
    sym = {round(p["bits"] - 0.0): p for p in points if p["method"] == "uniform sym RTN"}
    asym = {round(p["bits"] - 0.0): p for p in points if p["method"] == "uniform asym RTN"}
    rows = []
    for p in sorted(points, key=lambda p: p["bits"]):
        if p["method"] != "uniform asym RTN":
            continue
        b = int(p["name"].rsplit("-", 1)[1])
        s = next((q for q in points if q["name"] == f"uniform-sym-{b}"), None)
        if s is None:
            continue
        rows.append({"bits": b, "kl_ratio": s["kl"]["mean"] / max(p["kl"]["mean"], 1e-12),
                     "tv_ratio": s["tv"]["mean"] / max(p["tv"]["mean"], 1e-12),
                     "sym": s, "asym": p, "pred_var": (pred or {}).get(b)})
    del sym, asym
    return rows


def measured_profiles(profile_dir):
    """(path, key, layers) of each readable measured entry of a `--profile-cache` directory, in directory
    order (layers: {layer: [KL, 1-EAR, ...]})."""
    import glob
    import json
    for f in glob.glob(os.path.join(profile_dir, "profile-*.json")):
        try:
            with open(f) as fh:
                j = json.load(fh)
        except (OSError, ValueError):
            continue
        key = j.get("key", "")
        if key.startswith("measured"):
            yield f, key, j["layers"]


def profile_sums(profile_dir):
    """{bits: (sum over layers of KL, sum of 1-EAR)} of the cached measured asymmetric profiles."""
    import re
    out = {}
    for _, key, layers in measured_profiles(profile_dir):
        m = re.search(r"\|b=(\d+)\|g=128\|sym=0\|clip=0\|rot=0", key)
        if not m:
            continue
        vals = layers.values()
        out[int(m.group(1))] = (sum(v[0] for v in vals), sum(v[1] for v in vals), len(layers))
    return out


def equivalent_uniform_bits(curve, value, key):
    """Bits at which the uniform curve (sorted by bits, decreasing metric) reaches `value` (log-linear)."""
    for a, b in zip(curve, curve[1:]):
        ya, yb = a[key]["mean"], b[key]["mean"]
        if yb <= value <= ya and ya > 0 and yb > 0 and ya != yb:
            t = (math.log(value) - math.log(ya)) / (math.log(yb) - math.log(ya))
            return a["bits"] + t * (b["bits"] - a["bits"])
    return None


def allocation_bound(profile_dir, layer_params, code0, group, widths=5, s8=True, key_contains=""):
    """How many bits a per-layer width allocation can save over one variant used uniformly, under the
    search's own additive model (predicted KL = the sum of the layers' measured calibration KL, as cached
    by `--profile-cache`). code0: the choice code of the variant's lowest width (server/quant/choice.h);
    the next widths-1 codes are its other widths. layer_params: {layer: parameters} (a certificate's
    layers.*.params). Bits per parameter: width + (8 + width) / group with S8 scales (asymmetric), else
    width + 32 / group. Returns None when the cache lacks one of the codes, else
    {"rows": [(uniform bits, predicted KL, allocation bits at that KL or None)],
     "log_sd": parameter-weighted sd of log(KL per parameter) at the middle width,
     "continuous_saving": log4(exp(log_sd^2 / 2)), what continuous widths would save for lognormal spread}.
    The allocation curve is a Lagrangian sweep of the multiple-choice knapsack (its hull points),
    interpolated log-linearly in KL."""
    import re
    prof = {}
    for _, key, layers in sorted(measured_profiles(profile_dir)):
        m = re.search(r"\|b=(\d+)\|", key)
        if not m or (key_contains and key_contains not in key):
            continue
        code = int(m.group(1))
        if code0 <= code < code0 + widths and set(layer_params) <= set(layers):
            prof.setdefault(code, layers)
    codes = sorted(prof)
    if len(codes) != widths:
        return None
    names = list(layer_params)
    total = sum(layer_params.values())

    def bpp(code):
        w = code % 16
        return w + ((8 + w) if s8 else 32) / group

    uniform = [(sum(layer_params[n] * bpp(k) for n in names) / total, sum(prof[k][n][0] for n in names))
               for k in codes]

    def allocate(lam):
        bits = kl = 0.0
        for n in names:
            k = min(codes, key=lambda k: prof[k][n][0] + lam * layer_params[n] * bpp(k))
            bits += layer_params[n] * bpp(k)
            kl += prof[k][n][0]
        return bits / total, kl

    hull = sorted(set(allocate(10 ** (e / 40)) for e in range(-600, 200)))
    rows = []
    for ub, ukl in uniform:
        best = None
        for (b1, k1), (b2, k2) in zip(hull, hull[1:]):
            if (k1 - ukl) * (k2 - ukl) <= 0 and k1 > 0 and k2 > 0 and k1 != k2 and b1 != b2:
                best = b1 + (math.log(ukl) - math.log(k1)) / (math.log(k2) - math.log(k1)) * (b2 - b1)
                break
        rows.append((ub, ukl, best))
    mid = codes[len(codes) // 2]
    dens = [(layer_params[n], prof[mid][n][0] / layer_params[n]) for n in names if prof[mid][n][0] > 0]
    wsum = sum(w for w, _ in dens)
    mu = sum(w * math.log(d) for w, d in dens) / wsum
    sd = math.sqrt(sum(w * (math.log(d) - mu) ** 2 for w, d in dens) / wsum)
    return {"rows": rows, "log_sd": sd, "continuous_saving": sd * sd / 2 / math.log(4)}


def interior_savings(bound):
    """The savings of allocation_bound's rows strictly inside the width range (the ends save nothing)."""
    return [ub - b for ub, _, b in bound["rows"][1:-1] if b is not None]
