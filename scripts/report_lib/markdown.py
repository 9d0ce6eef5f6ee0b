"""Markdown pieces of docs/RESULTS.md."""


def iv(d, fmt):
    return f"{fmt.format(d['mean'])} [{fmt.format(d['lo'])}, {fmt.format(d['hi'])}]"


def tl_cell(t):
    if not t:
        return "-"
    return (f"{t['acc_quant']:.3f} / {t['acc_base']:.3f} ({t['se_base']:.3f}), "
            f"{'yes' if t['tl_holds'] else '**no**'}")


def points_table(points):
    rows = ["| method | run | target | bits/param | EAR mean [lo95, hi95] | KL nats/tok [lo95, hi95] | "
            "flip rate | PPL ratio | TL cloze: acc quant / base (SE), holds? | target met (held-out) | wall s |",
            "|---|---|---|---:|---|---|---:|---:|---|---|---:|"]
    for p in points:
        met = "yes" if p["met"] else "**no**"
        if not p["met"] and p["calib_met"]:
            met += " (met on calib)"
        rows.append(f"| {p['method']} | {p['name']} | `{p['target']}` | {p['bits']:.3f} | "
                    f"{iv(p['ear'], '{:.4f}')} | {iv(p['kl'], '{:.5f}')} | {p['flip']:.4f} | "
                    f"{p['ppl']:.4f} | {tl_cell(p.get('task'))} | {met} | {p['wall'] or 0:.0f} |")
    return "\n".join(rows)
