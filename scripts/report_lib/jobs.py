"""The sweep: which `slq quantize` runs make up the report, and a cached runner for them.

Every run is `slq quantize MODEL --data TEXT ... --json` under `/usr/bin/time -v`; the
certificate (stdout), the exit code, wall time and maximum resident set size are stored as one
JSON file per run under CACHE/<model>/<run name>.json. A cached file is reused when its
command line is identical (so a rerun only computes what changed); --refresh ignores it.
Measured profiles are shared between runs of a model through --profile-cache CACHE/<model>/profiles
(one file per bitwidth), so they are computed once per model.
"""
import datetime
import json
import os
import re
import subprocess
import sys
import time

UNIFORM_BITS = [3, 4, 5, 6, 7, 8]
EAR_TARGETS = [0.95, 0.97, 0.98, 0.99, 0.995]
BIT_BUDGETS = [3.5, 4.0, 4.5, 5.0, 5.5, 6.0, 6.5, 7.0, 7.5, 7.75, 8.0, 8.125, 8.25, 8.375]
FORMATS = ["4-8", "4-5-6-7-8", "2..8"]
KL_BUDGET = 0.01  # the KL budget the `tl` target searches with (kTlKlBudget in search.h)
TL_RUN = "slq-2..8-tl"  # target tl: search on the KL budget, certified by the held-out cloze


class Model:
    def __init__(self, name, path, data, tokenizer=None, core_only=False, shared=""):
        self.name, self.path, self.data, self.tokenizer = name, path, data, tokenizer
        self.core_only = core_only  # run only the PRIORITY runs unless --full
        self.shared = shared  # the ../shared folder the paths are under (normalised in the cache)


def real_models(shared):
    m, d = os.path.join(shared, "models"), os.path.join(shared, "data")
    ts = os.path.join(d, "tinystories-valid-part1.txt")
    return [
        Model("stories260k", os.path.join(m, "stories260k", "stories260K.bin"), ts,
              tokenizer=os.path.join(m, "stories260k", "tok512.bin"), shared=shared),
        Model("tinystories-656k", os.path.join(m, "tinystories-656k"), ts, shared=shared),
        Model("docs-19m", os.path.join(m, "docs-19m"), os.path.join(d, "debian-docs-val-part1.txt"),
              core_only=True, shared=shared),
    ]


class Run:
    """One `slq quantize` call. `method` groups runs into plot series."""

    def __init__(self, name, method, args):
        self.name, self.method, self.args = name, method, args


def sweep(core_only=False):
    """The runs of the report, in the order they are computed (PRIORITY first)."""
    runs = []
    for b in UNIFORM_BITS:
        runs.append(Run(f"uniform-asym-{b}", "uniform asym RTN",
                        ["--uniform-bits", str(b), "--target", "ear>=0.99"]))
        runs.append(Run(f"uniform-sym-{b}", "uniform sym RTN",
                        ["--uniform-bits", str(b), "--symmetric", "--target", "ear>=0.99"]))
    # The measured profiles of all bitwidths 2..8 are computed by the first 2..8 run and cached.
    for fmt in reversed(FORMATS):
        for t in EAR_TARGETS:
            runs.append(Run(f"slq-{fmt}-ear{t}", f"SLQ {fmt} (EAR target)",
                            ["--formats", fmt, "--target", f"ear>={t}"]))
    runs.append(Run(TL_RUN, "SLQ 2..8 (TL target: cloze)", ["--formats", "2..8", "--target", "tl"]))
    for beta in BIT_BUDGETS:
        runs.append(Run(f"slq-2..8-bits{beta}", "SLQ 2..8 measured DP (budget)",
                        ["--formats", "2..8", "--target", f"bits<={beta}"]))
        runs.append(Run(f"proxy-2..8-bits{beta}", "linearity-theorem DP 2..8 (budget)",
                        ["--formats", "2..8", "--target", f"bits<={beta}", "--estimator", "proxy"]))
    runs.append(Run("proxy-2..8-ear0.99", "linearity-theorem DP 2..8 (EAR target)",
                    ["--formats", "2..8", "--target", "ear>=0.99", "--estimator", "proxy"]))
    # The width-only search with RTN, as these sections were written for (the default of slq
    # quantize is rtn,gptq since issue #17; report_lib/variants.py compares the roundings).
    # The cloze keeps its size of these sections (256 items; the default 2000 costs minutes per
    # docs-19m run) except in the TL run, whose target needs the test's power.
    for r in runs:
        r.args = r.args + ["--quantizers", "rtn"] + ([] if r.name == TL_RUN else ["--cloze-items", "256"])
    if core_only:
        runs = [r for r in runs if r.name in PRIORITY]
    return sorted(runs, key=lambda r: PRIORITY.index(r.name) if r.name in PRIORITY else len(PRIORITY))


# Computed first (the large model takes minutes per run on a shared 2-core machine): the
# uniform asymmetric baselines (one evaluation each), the search at ear>=0.99 (the issue's
# done-when) and the TL target, the symmetric baselines, then the rest. Models marked `core_only` run only this list unless --full is given (the
# proxy estimator is not cached: each proxy run costs one noise pass per layer).
PRIORITY = ["uniform-asym-8", "uniform-asym-7", "uniform-asym-6", "uniform-asym-5", "uniform-asym-4",
            "uniform-asym-3",
            "slq-2..8-ear0.99", "slq-4-5-6-7-8-ear0.99", "slq-4-8-ear0.99", TL_RUN,
            "uniform-sym-8", "uniform-sym-7", "uniform-sym-6", "uniform-sym-5", "uniform-sym-4",
            "uniform-sym-3", "slq-2..8-bits8.0",
            "slq-2..8-bits7.75", "slq-2..8-bits7.5", "proxy-2..8-ear0.99",
            "slq-4-5-6-7-8-ear0.98", "slq-4-5-6-7-8-ear0.995", "slq-4-8-ear0.98",
            "slq-2..8-bits5.0", "proxy-2..8-bits5.0", "slq-2..8-bits6.0", "proxy-2..8-bits6.0",
            "slq-2..8-bits4.0", "proxy-2..8-bits4.0", "slq-2..8-ear0.98", "slq-2..8-ear0.995",
            "slq-4-5-6-7-8-ear0.97", "slq-2..8-ear0.97", "slq-2..8-bits7.0", "slq-2..8-bits6.5",
            "slq-2..8-bits5.5", "slq-2..8-bits4.5", "slq-2..8-bits3.5", "slq-2..8-bits8.125",
            "slq-2..8-bits8.25", "slq-4-8-ear0.97", "slq-4-5-6-7-8-ear0.95", "slq-2..8-ear0.95"]


def base_command(slq, model, profile_cache=None, device=None):
    cmd = [slq, "quantize", model.path, "--data", model.data, "--json"]
    if model.tokenizer:
        cmd += ["--tokenizer", model.tokenizer]
    if profile_cache:
        cmd += ["--profile-cache", profile_cache]
    if device:
        cmd += ["--device", device]
    return cmd


def normalized(cmd, shared, cache_root):
    """The command as the cache compares it: without the slq path and `--device X`, with the
    shared folder and the cache root as placeholders. So a run made on another machine (e.g. the
    GPU machine, `scripts/report --device cuda --sweep-only`, whose cache is copied back) is
    reused here; its certificate records where it was verified (verification_device)."""
    out, skip = [], False
    for i, a in enumerate(cmd[1:]):
        if skip:
            skip = False
            continue
        if a == "--device":
            skip = True
            continue
        if shared:
            a = a.replace(os.path.abspath(shared), "$SHARED")
        if cache_root:  # absolute, or relative to where the run was started
            for form in (os.path.abspath(cache_root), os.path.relpath(cache_root)):
                if a.startswith(form + os.sep):
                    a = "$CACHE" + a[len(form):]
        out.append(a)
    return out


def parse_time_v(text):
    """Wall seconds and max RSS (KiB) from GNU time -v's report."""
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    secs = None
    if wall:
        secs = 0.0
        for part in wall.group(1).split(":"):
            secs = secs * 60 + float(part)
    return (secs, int(rss.group(1)) if rss else None)


def execute(cmd, nice=0):
    """Runs cmd under /usr/bin/time -v; returns a record (certificate or error)."""
    timer = ["/usr/bin/time", "-v"] if os.path.exists("/usr/bin/time") else []  # absent on some machines
    full = (["nice", "-n", str(nice)] if nice else []) + timer + cmd
    t0 = time.time()
    p = subprocess.run(full, capture_output=True, text=True)
    wall, rss = parse_time_v(p.stderr)
    rec = {"cmd": cmd, "rc": p.returncode, "wall_s": wall or time.time() - t0, "max_rss_kb": rss,
           "date": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
           "load_before": os.getloadavg()[0]}
    try:
        rec["cert"] = json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        rec["cert"] = None
        rec["error"] = p.stderr[-2000:]
    return rec


def run_cached(slq, model, run, cache_root, nice=0, refresh=False, offline=False, log=print, device=None):
    """The record of `run` on `model`, from the cache when its command is unchanged."""
    cache_root = os.path.abspath(cache_root)
    mdir = os.path.join(cache_root, model.name)
    os.makedirs(mdir, exist_ok=True)
    cmd = base_command(slq, model, os.path.join(mdir, "profiles"), device) + run.args
    path = os.path.join(mdir, run.name + ".json")
    if os.path.exists(path) and not refresh:
        with open(path) as f:
            rec = json.load(f)
        if (normalized(rec.get("cmd", []), rec.get("shared", ""), rec.get("cache_root", "")) ==
                normalized(cmd, model.shared, cache_root) and rec.get("cert")):
            return rec
    if offline:
        return None
    log(f"  run {model.name} {run.name} ...")
    rec = execute(cmd, nice)
    rec["shared"], rec["cache_root"] = os.path.abspath(model.shared), os.path.abspath(cache_root)
    if rec.get("cert") is None:
        log(f"  FAILED ({rec['rc']}): {rec.get('error', '')[-400:]}")
    else:
        h = rec["cert"]["heldout"]
        log(f"    {rec['wall_s']:.0f}s bits {rec['cert']['avg_bits_per_param_quantized_layers']:.3f} "
            f"EAR {h['ear']['mean']:.4f} [{h['ear']['lo95']:.4f}] KL {h['kl']['mean']:.5f} "
            f"met={rec['cert']['target_met']}")
    with open(path + ".tmp", "w") as f:
        json.dump(rec, f)
    os.replace(path + ".tmp", path)
    return rec
