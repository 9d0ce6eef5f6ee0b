#!/usr/bin/python3
"""KLD of llama.cpp's quantization types and of slq artifacts, on the same weights and text.

For one model and one text:
  1. `slq split` writes the calibration / held-out documents of slq's own split (calib.txt,
     heldout.txt); slq artifacts are meant to be made with `slq quantize --data calib.txt
     --eval heldout.txt --quantize-head`.
  2. `slq export MODEL --format gguf --dtype f32` writes the base model as F32 GGUF.
  3. `llama-imatrix` on calib.txt; `llama-quantize` for each type, without and with the imatrix.
  4. `llama-perplexity` scores the base once (--kl-divergence-base) and every GGUF against it
     (--kl-divergence) on heldout.txt at one context length; slq artifacts are scored through
     their dequantized export (`slq export ARTIFACT --format gguf --dtype f32`).
  5. bits/param over the linears + LM head: from each GGUF's tensor types (llama.cpp) and from
     each artifact's manifest (slq); a markdown table and a JSON file.
Every step skips work whose output exists in --work, so a rerun only does what is missing.
Run with Debian's /usr/bin/python3 (numpy) and PYTHONPATH=<llama.cpp>/gguf-py. See README.md.
"""

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time

TYPES = ["Q4_0", "Q4_1", "IQ4_NL", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K", "Q8_0"]
# The ggml type that llama-quantize's --output-tensor-type gets for each file type: the LM head
# is quantized like the rest of the linears (Q4_K is llama.cpp's Q4_K_M recipe, Q5_K Q5_K_M).
HEAD_TYPE = {"Q4_0": "q4_0", "Q4_1": "q4_1", "IQ4_NL": "iq4_nl", "Q5_0": "q5_0", "Q5_1": "q5_1",
             "Q4_K": "q4_K", "Q5_K": "q5_K", "Q6_K": "q6_K", "Q8_0": "q8_0"}
# llama.cpp's own fallback (llama-quant.cpp tensor_type_fallback) for rows that are not a multiple of
# a K-quant's 256-value block: --output-tensor-type bypasses it, so the harness applies it to the head.
K_FALLBACK = {"q4_K": "q5_0", "q5_K": "q5_1", "q6_K": "q8_0"}
LINEAR = re.compile(r"^(blk\.\d+\.(attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down)|output)\.weight$")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(cmd, out_log):
    """Runs cmd (a list), its stdout+stderr into out_log; raises with the log's tail on failure."""
    log(" ".join(cmd))
    t = time.time()
    with open(out_log, "w") as f:
        rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT)
    if rc != 0:
        tail = open(out_log, errors="replace").read()[-2000:]
        raise SystemExit(f"failed (exit {rc}): {' '.join(cmd)}\n--- {out_log} ---\n{tail}")
    return time.time() - t


def linear_bits_gguf(path):
    """bits/param over the linears + LM head of a GGUF, and the per-tensor types written."""
    import gguf  # llama.cpp's gguf-py (PYTHONPATH)
    r = gguf.GGUFReader(path)
    bits = params = 0
    types = {}
    has_output = False
    for t in r.tensors:
        if not LINEAR.match(t.name):
            continue
        has_output |= t.name == "output.weight"
        bits += int(t.n_bytes) * 8
        params += int(t.n_elements)
        name = t.tensor_type.name
        types[name] = types.get(name, 0) + 1
    if not has_output:
        raise SystemExit(f"{path} has no output.weight: the LM head would be the embedding (not counted)")
    return bits / params, types


def head_columns(path):
    """The LM head's row length (ne[0] of output.weight) in a GGUF."""
    import gguf
    for t in gguf.GGUFReader(path).tensors:
        if t.name == "output.weight":
            return int(t.shape[0])
    raise SystemExit(f"{path} has no output.weight")


def artifact_bits(artifact):
    """bits/param over the linears + LM head from an slq artifact's manifest."""
    m = json.load(open(os.path.join(artifact, "manifest.json")))
    bits = params = 0
    kinds = {}
    for name, l in m["linears"].items():
        if l.get("kind") != "packed":
            raise SystemExit(f"{artifact}: linear {name} is not quantized ({l.get('kind')}); make the artifact "
                             "with `slq quantize --quantize-head` so the LM head is counted like llama.cpp's")
        n = l["rows"] * l["cols"]
        bits += l["bits_per_param"] * n
        params += n
        key = f"{l.get('quantizer', 'rtn')}{l['bits']}"
        kinds[key] = kinds.get(key, 0) + 1
    if "lm_head" not in m["linears"]:
        raise SystemExit(f"{artifact}: no lm_head among the manifest's linears")
    return bits / params, kinds, m.get("certificate", {}).get("target", "")


def same_split(artifact, calib, held):
    """Whether the artifact was calibrated on calib and verified on held (its certificate's sha256s)."""
    import hashlib
    c = json.load(open(os.path.join(artifact, "manifest.json"))).get("certificate", {})
    sha = lambda path: hashlib.sha256(open(path, "rb").read()).hexdigest()
    return (c.get("dataset", {}).get("sha256") == sha(calib) and
            c.get("heldout_dataset", {}).get("sha256") == sha(held))


def budget_of(target, bits):
    """The bit budget an artifact is compared at: X of a `bits<=X` target, else its own bits."""
    mm = re.fullmatch(r"\s*bits\s*<=\s*([0-9.]+)\s*", target or "")
    return float(mm.group(1)) if mm else bits


def parse_kld(log_path):
    """Mean KLD, same-top-1 and PPL (each with llama.cpp's +/- standard error) from llama-perplexity."""
    text = open(log_path, errors="replace").read()
    num = r"([-+0-9.eE]+|nan|inf)"

    def grab(label):
        mm = re.search(re.escape(label) + r"\s*:?\s*" + num + r"\s*±\s*" + num, text)
        if not mm:
            raise SystemExit(f"{log_path}: no '{label}' line (did llama-perplexity finish?)")
        return float(mm.group(1)), float(mm.group(2))

    kld, kld_se = grab("Mean    KLD:")
    top, top_se = grab("Same top p:")
    ppl, ppl_se = grab("Mean PPL(Q)")
    base_ppl, _ = grab("Mean PPL(base)")
    chunks = re.search(r"computing over (\d+) chunks, n_ctx=(\d+)", text)
    return {"kld": kld, "kld_se": kld_se, "kld_lo95": kld - 1.96 * kld_se, "kld_hi95": kld + 1.96 * kld_se,
            "same_top1": top / 100, "same_top1_se": top_se / 100, "ppl": ppl, "ppl_se": ppl_se,
            "ppl_base": base_ppl, "chunks": int(chunks.group(1)) if chunks else None}


class Harness:
    def __init__(self, a):
        self.a = a
        self.w = a.work
        os.makedirs(self.w, exist_ok=True)
        self.bin = lambda tool: os.path.join(a.llama_bin, tool)
        self.common = ["-c", str(a.ctx), "-t", str(a.threads), "-fa", "off"]

    def path(self, name):
        return os.path.join(self.w, name)

    def split(self):
        calib, held = self.path("calib.txt"), self.path("heldout.txt")
        if not (os.path.exists(calib) and os.path.exists(held)):
            run([self.a.slq, "split", self.a.text, "--calib", calib + ".part", "--heldout", held + ".part"],
                self.path("split.log"))
            os.rename(calib + ".part", calib)
            os.rename(held + ".part", held)
        return calib, held

    def export_base(self):
        out = self.path("base-f32.gguf")
        if not os.path.exists(out):
            run([self.a.slq, "export", self.a.model, "--format", "gguf", "--dtype", "f32", "--out", out + ".part"],
                self.path("base-export.log"))
            os.rename(out + ".part", out)
        return out

    def imatrix(self, base, calib):
        out = self.path("imatrix.gguf")
        if not os.path.exists(out):
            cmd = [self.bin("llama-imatrix"), "-m", base, "-f", calib, "-o", out + ".part.gguf", "--process-output"]
            if self.a.imatrix_chunks:
                cmd += ["--chunks", str(self.a.imatrix_chunks)]
            run(cmd + self.common, self.path("imatrix.log"))
            os.rename(out + ".part.gguf", out)
        return out

    def quantize(self, base, typ, imatrix):
        out = self.path(f"{typ}{'-imat' if imatrix else ''}.gguf")
        if not os.path.exists(out):
            head = HEAD_TYPE[typ]
            if head in K_FALLBACK and head_columns(base) % 256 != 0:
                head = K_FALLBACK[head]
            cmd = [self.bin("llama-quantize"), "--output-tensor-type", head, "--token-embedding-type", "f32"]
            if imatrix:
                cmd += ["--imatrix", imatrix]
            run(cmd + [base, out + ".part", typ, str(self.a.threads)], out + ".quantize.log")
            os.rename(out + ".part", out)
        return out

    def score_base(self, base, held):
        kld_base = self.path("base.kld")
        if not os.path.exists(kld_base):
            cmd = [self.bin("llama-perplexity"), "-m", base, "-f", held, "--kl-divergence-base", kld_base + ".part"]
            if self.a.chunks:
                cmd += ["--chunks", str(self.a.chunks)]
            run(cmd + self.common, self.path("base.ppl.log"))
            os.rename(kld_base + ".part", kld_base)
        return kld_base

    def score(self, gguf_path, kld_base):
        log_path = gguf_path + ".kld.log"
        if not os.path.exists(log_path) or "Mean    KLD" not in open(log_path, errors="replace").read():
            run([self.bin("llama-perplexity"), "-m", gguf_path, "--kl-divergence-base", kld_base, "--kl-divergence"]
                + self.common, log_path)
        return parse_kld(log_path)

    def export_artifact(self, name, artifact):
        out = self.path(f"slq-{name}-f32.gguf")
        if not os.path.exists(out):
            run([self.a.slq, "export", artifact, "--format", "gguf", "--dtype", "f32", "--out", out + ".part"],
                out + ".export.log")
            os.rename(out + ".part", out)
        return out


def best_at(rows, bits, imatrix_ok):
    """The llama.cpp row with the lowest KLD at <= bits (imatrix rows only when imatrix_ok)."""
    c = [r for r in rows if r["bits"] <= bits + 1e-9 and (imatrix_ok or not r["imatrix"])]
    return min(c, key=lambda r: r["kld"]) if c else None


def markdown(res):
    f = lambda x: f"{x:.3e}" if x < 0.01 else f"{x:.4f}"
    L = [f"model `{res['model']}`, held-out `{res['heldout']}` ({res['heldout_chunks']} chunks of "
         f"{res['ctx']} tokens, KLD over the second half of each), base PPL {res['ppl_base']:.4f}", "",
         "| quantizer | imatrix | bits (linears+head) | KLD [95%] | same top-1 | PPL | tensor types |",
         "|---|---|---|---|---|---|---|"]
    for r in sorted(res["llamacpp"] + res["slq"], key=lambda r: r["bits"]):
        types = " ".join(f"{k}:{v}" for k, v in sorted(r["types"].items()))
        L.append(f"| {r['name']} | {'yes' if r.get('imatrix') else ('-' if r['kind'] == 'slq' else 'no')} | "
                 f"{r['bits']:.3f} | {f(r['kld'])} [{f(r['kld_lo95'])}, {f(r['kld_hi95'])}] | "
                 f"{100 * r['same_top1']:.2f}% | {r['ppl']:.4f} | {types} |")
    if res["slq"]:
        L += ["", "Each artifact against the lowest-KLD llama.cpp type at <= its budget (X of its `bits<=X` target, "
              "else its own bits); ratio = KLD(slq) / KLD(llama.cpp), means.", "",
              "| slq artifact | budget | bits | KLD | best llama.cpp <= budget (no imatrix) | ratio | "
              "best llama.cpp <= budget (imatrix incl.) | ratio |", "|---|---|---|---|---|---|---|---|"]
        for r in sorted(res["slq"], key=lambda r: r["bits"]):
            cells = []
            for key in ("vs_plain", "vs_imatrix"):
                b = r[key]
                cells += [f"{b['name']} ({b['bits']:.3f} b, {f(b['kld'])})", f"{b['ratio']:.2f}x"] if b else \
                    ["none at <= these bits", "-"]
            L.append(f"| {r['name']} | {r['budget']:g} | {r['bits']:.3f} | {f(r['kld'])} | " + " | ".join(cells) + " |")
    return "\n".join(L) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="HF model folder (exported to F32 GGUF as the base)")
    p.add_argument("--text", required=True, help="text that slq split divides into calibration / held-out")
    p.add_argument("--work", required=True, help="folder for every intermediate file (reused on rerun)")
    p.add_argument("--slq", default="build/server/main/slq", help="the slq CLI")
    p.add_argument("--llama-bin", required=True, help="folder with llama-quantize, llama-imatrix, llama-perplexity")
    p.add_argument("--artifact", action="append", default=[], metavar="NAME=DIR",
                   help="an slq artifact to score (made with --data calib.txt --eval heldout.txt --quantize-head)")
    p.add_argument("--types", default=",".join(TYPES), help="llama.cpp file types")
    p.add_argument("--no-imatrix", action="store_true", help="skip the imatrix variants")
    p.add_argument("--ctx", type=int, default=128, help="context length for every llama-perplexity run")
    p.add_argument("--chunks", type=int, default=0, help="at most this many chunks of heldout.txt (0 = all)")
    p.add_argument("--imatrix-chunks", type=int, default=0,
                   help="llama-imatrix on at most this many chunks of calib.txt (0 = all)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", required=True, help="report basename: writes OUT.md and OUT.json")
    a = p.parse_args()
    a.types = [t for t in a.types.split(",") if t]
    for t in a.types:
        if t not in HEAD_TYPE:
            p.error(f"--types: unknown type {t}; known: {', '.join(TYPES)}")
    artifacts = []
    for s in a.artifact:
        if "=" not in s or not os.path.isfile(os.path.join(s.split("=", 1)[1], "manifest.json")):
            p.error(f"--artifact {s}: expected NAME=DIR with DIR/manifest.json")
        artifacts.append(s.split("=", 1))
    for tool in ("llama-perplexity",) + (() if not a.types else ("llama-quantize",)) + \
            (() if a.no_imatrix or not a.types else ("llama-imatrix",)):
        if not os.access(os.path.join(a.llama_bin, tool), os.X_OK):
            p.error(f"--llama-bin: no executable {tool} in {a.llama_bin}")

    h = Harness(a)
    calib, held = h.split()
    base = h.export_base()
    kld_base = h.score_base(base, held)
    imatrix = None if a.no_imatrix or not a.types else h.imatrix(base, calib)
    rows = []
    for typ in a.types:
        for im in [None] + ([imatrix] if imatrix else []):
            g = h.quantize(base, typ, im)
            bits, types = linear_bits_gguf(g)
            rows.append({"kind": "llama.cpp", "name": typ, "imatrix": im is not None, "bits": bits, "types": types,
                         "gguf": g, **h.score(g, kld_base)})
    slq_rows = []
    for name, art in artifacts:
        g = h.export_artifact(name, art)
        bits, kinds, target = artifact_bits(art)
        budget = budget_of(target, bits)
        if not same_split(art, calib, held):
            log(f"WARNING: {name} was not made with --data {calib} --eval {held}: its KLD is still measured on "
                "heldout.txt, but its calibration text differs from llama.cpp's (marked in the report)")
        r = {"kind": "slq", "name": name + ("" if same_split(art, calib, held) else " (other split!)"),
             "artifact": art, "bits": bits, "target": target, "budget": budget,
             "types": kinds, "gguf": g, **h.score(g, kld_base)}
        for key, im_ok in (("vs_plain", False), ("vs_imatrix", True)):
            b = best_at(rows, budget, im_ok)
            r[key] = None if b is None else {"name": b["name"] + (" +imatrix" if b["imatrix"] else ""),
                                             "bits": b["bits"], "kld": b["kld"], "ratio": r["kld"] / b["kld"]}
        slq_rows.append(r)
    ref = (rows + slq_rows)[0] if rows or slq_rows else None
    res = {"model": a.model, "text": a.text, "heldout": held, "calibration": calib, "ctx": a.ctx,
           "heldout_chunks": ref["chunks"] if ref else None, "ppl_base": ref["ppl_base"] if ref else math.nan,
           "llama_bin": a.llama_bin, "llamacpp": rows, "slq": slq_rows}
    for r in rows:
        r["name"] = r["name"] + (" +imatrix" if r["imatrix"] else "")
    with open(a.out + ".json", "w") as f:
        json.dump(res, f, indent=1)
    with open(a.out + ".md", "w") as f:
        f.write(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
