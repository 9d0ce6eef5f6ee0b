"""PNG plots of the report (matplotlib, Agg backend; small files: dpi 80-90)."""
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

STYLE = {
    "uniform sym RTN": dict(color="tab:red", marker="v", ls="--"),
    "uniform asym RTN": dict(color="tab:orange", marker="^", ls="--"),
    "SLQ 4-8 (EAR target)": dict(color="tab:blue", marker="s", ls="-"),
    "SLQ 4-5-6-7-8 (EAR target)": dict(color="tab:green", marker="o", ls="-"),
    "SLQ 2..8 (EAR target)": dict(color="tab:purple", marker="D", ls="-"),
    "SLQ 2..8 (TL target: cloze)": dict(color="black", marker="*", ls="none", ms=11),
    "SLQ 2..8 measured DP (budget)": dict(color="tab:cyan", marker="P", ls=":"),
    "linearity-theorem DP 2..8 (budget)": dict(color="tab:brown", marker="X", ls=":"),
    "linearity-theorem DP 2..8 (EAR target)": dict(color="tab:brown", marker="*", ls="none", ms=11),
    # issue #17 (report_lib/variants.py)
    "uniform RTN asym g128": dict(color="tab:orange", marker="^", ls="--"),
    "uniform GPTQ asym g128": dict(color="tab:olive", marker="^", ls="--"),
    "uniform RTN sym g128": dict(color="tab:red", marker="v", ls="--"),
    "uniform RTN asym g64": dict(color="tab:pink", marker="<", ls="--"),
    "search: width (RTN)": dict(color="tab:blue", marker="s", ls="-"),
    "search: width x {RTN, GPTQ}": dict(color="tab:green", marker="o", ls="-"),
    "search: width x {sym, asym} x {g64, g128} (RTN)": dict(color="tab:cyan", marker="P", ls="-"),
    "search: all variants": dict(color="tab:purple", marker="D", ls="-"),
}


def _series(points):
    by = {}
    for p in points:
        by.setdefault(p["method"], []).append(p)
    for m in by:
        by[m].sort(key=lambda p: p["bits"])
    return by


def frontier(model, points, path):
    """Two panels: bits/param vs 1-EAR and vs KL (log y), held-out 95% intervals as bars."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    for ax, key, label in ((axes[0], "tv", "1 - EAR (held-out; lower is better)"),
                           (axes[1], "kl", "KL nats/token (held-out; lower is better)")):
        for method, ps in _series(points).items():
            x = np.array([p["bits"] for p in ps])
            y = np.array([max(p[key]["mean"], 1e-7) for p in ps])
            lo = np.array([max(p[key]["lo"], 1e-7) for p in ps])
            hi = np.array([max(p[key]["hi"], 1e-7) for p in ps])
            st = dict(STYLE.get(method, {}))
            ms = st.pop("ms", 6)
            ax.errorbar(x, y, yerr=[np.maximum(y - lo, 0), np.maximum(hi - y, 0)], label=method,
                        capsize=2, ms=ms, lw=1.1, elinewidth=0.8, **st)
        if key == "tv":
            ax.axhline(0.01, color="gray", lw=0.8, ls="-.")
            ax.text(ax.get_xlim()[0], 0.0105, " EAR = 0.99", color="gray", fontsize=8, va="bottom")
        ax.set_yscale("log")
        ax.set_xlabel("average bits/param (quantized linear layers, incl. fp16 scale, + zero if asym)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"{model}: fidelity vs bits (bars: 95% bootstrap over held-out sequences)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def bitmaps(model, panels, path):
    """Heatmaps layer x projection of the chosen bitwidths. panels: [(title, {(layer, proj): bits})]."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 0.5 * _rows(panels) + 2.2))
    if len(panels) == 1:
        axes = [axes]
    cmap = plt.get_cmap("viridis", 7)
    for ax, (title, cells) in zip(axes, panels):
        layers = sorted({k[0] for k in cells})
        projs = _proj_order({k[1] for k in cells})
        grid = np.full((len(layers), len(projs)), np.nan)
        for (l, p), b in cells.items():
            grid[layers.index(l), projs.index(p)] = b
        im = ax.imshow(grid, cmap=cmap, vmin=1.5, vmax=8.5, aspect="auto")
        for i in range(len(layers)):
            for j in range(len(projs)):
                if not np.isnan(grid[i, j]):
                    ax.text(j, i, int(grid[i, j]), ha="center", va="center", fontsize=9,
                            color="white" if grid[i, j] < 5 else "black")
        ax.set_xticks(range(len(projs)), projs, rotation=30, fontsize=8)
        ax.set_yticks(range(len(layers)), [str(l) for l in layers], fontsize=8)
        ax.set_ylabel("layer")
        ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=list(axes), ticks=range(2, 9), label="bits")
    fig.suptitle(f"{model}: per-layer bitwidths", fontsize=11, y=1.04)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)


def _rows(panels):
    return max(len({k[0] for k in cells}) for _, cells in panels)


def _proj_order(projs):
    pref = ["q", "k", "v", "o", "gate", "up", "down", "wq", "wk", "wv", "wo", "w1", "w3", "w2"]

    def key(p):
        for i, s in enumerate(pref):
            if p == s or p.startswith(s + "_") or p == s + "_proj":
                return (i, p)
        return (len(pref), p)
    return sorted(projs, key=key)


def gamma_plot(model, rows, path):
    """Measured sym/asym ratios of KL and (1-EAR) vs the predicted noise-variance ratio."""
    fig, ax = plt.subplots(figsize=(6, 4))
    b = [r["bits"] for r in rows]
    ax.plot(b, [r["kl_ratio"] for r in rows], "o-", label="KL(sym) / KL(asym), held-out")
    ax.plot(b, [r["tv_ratio"] for r in rows], "s-", label="(1-EAR)(sym) / (1-EAR)(asym)")
    if all(r.get("pred_var") for r in rows):
        ax.plot(b, [r["pred_var"] for r in rows], "k--", label="predicted noise variance ratio (gamma^2, from weights)")
        ax.plot(b, [np.sqrt(r["pred_var"]) for r in rows], "k:", label="sqrt of it (gamma)")
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set_xlabel("code bits b (uniform RTN, g=128)")
    ax.set_ylabel("ratio symmetric / asymmetric")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    ax.set_title(f"{model}: gamma-squared law", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
