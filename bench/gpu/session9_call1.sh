#!/usr/bin/env bash
# First device call of session 9 (built at s9-search 61cbced: S8 scales in the quantizer, GPTQ/mse and the search):
# docs-19m budget artifacts with S8 scales offered per layer, same protocol as the llama.cpp comparison
# (bench/results/llamacpp-kld-2026-12-02.md: split files, --eval heldout, head quantized, formats 4-5-6-7-8, no
# cloze), then ear>=0.99 from the same candidate set; then llama-perplexity --kl-divergence of every artifact on this
# host's CPUs (bench/compare/llamacpp_kld.py --types '': slq artifacts only; base scored here, as in session 8).
# Pack: .gpu/s9c1.tar.xz (gpu-bundle of slq, llama-perplexity + libs, gguf-py, docs-19m, the docs text, calib/heldout).
set -uo pipefail
T0=$(date +%s)
W=/tmp/w; mkdir -p $W && tar -xJf .gpu/s9c1.tar.xz -C $W
source $W/fwd/env.sh
export LD_LIBRARY_PATH=$W/llama:$LD_LIBRARY_PATH
O=$OUT/r; mkdir -p $O/cert $O/cache $O/art
left() { echo $(( ${BUDGET:-570} - ($(date +%s) - T0) )); }
t() { echo "t=$(( $(date +%s) - T0 )) s: $*"; }
M=$W/shared/models/docs-19m
V="--quantizers rtn,gptq --grids on --scales both --group-sizes 64,128"
q() {  # name, then slq quantize flags
  local n=$1; shift
  [ $(left) -gt 60 ] || { echo "skip $n (time)"; return; }
  local s=$(date +%s)
  timeout $(( $(left) - 40 )) slq quantize $M --data $W/calib.txt --eval $W/heldout.txt --formats 4-5-6-7-8 --quantize-head \
    --device cuda --json --cloze-items 0 --profile-cache $O/cache "$@" > $O/cert/$n.json 2> $O/cert/$n.err
  local rc=$?
  python3 - $O/cert/$n.json $n $rc $(( $(date +%s) - s )) <<'PY'
import json, sys
p, n, rc, wall = sys.argv[1:]
try:
    c = json.load(open(p)); h = c["heldout"]
    v = c.get("search", {}).get("outcome", {}).get("variants", {}) or {}
    s8 = sum(1 for x in v.values() if x.endswith("s8")); g64 = sum(1 for x in v.values() if "g64" in x)
    print(f"{n:14s} rc={rc} wall={float(wall):5.1f}s bits={c['avg_bits_per_param_quantized_layers']:.3f} met={c['target_met']} "
          f"EAR={h['ear']['mean']:.5f} [{h['ear']['lo95']:.5f},{h['ear']['hi95']:.5f}] KL={h['kl']['mean']:.3e} "
          f"[{h['kl']['lo95']:.3e},{h['kl']['hi95']:.3e}] s8 {s8}/{len(v)} g64 {g64}/{len(v)} stages {c['stage_wall_seconds']}")
except Exception as e:
    print(f"{n:14s} rc={rc} wall={float(wall):5.1f}s no certificate ({e})"); print(open(p.replace('.json','.err')).read()[-600:])
PY
}
nproc; t start
for X in 4.5 5.0 5.5 6.0; do q s8-b$X $V --target "bits<=$X" --out $O/art/s8-b$X; done
q s8-ear99 $V --target 'ear>=0.99'
rm -f $O/cache/grams-*.bin
t "llama scoring"
A=""; for d in $O/art/*; do [ -f $d/manifest.json ] && A="$A --artifact $(basename $d)=$d"; done
PYTHONPATH=$W/gguf-py timeout $(( $(left) - 15 )) python3 bench/compare/llamacpp_kld.py --model $M \
  --text $W/shared/data/debian-docs-val-part1.txt --work $W/h --slq $(command -v slq) --llama-bin $W/llama --types '' \
  --chunks 16 --threads 16 $A --out $O/kld > $O/kld.log 2>&1
t "harness rc=$?"; tail -12 $O/kld.md 2>/dev/null; tail -5 $O/kld.log
rm -rf $O/art
t end
tar -C $OUT -czf $OUT/s9c1.tgz r && rm -rf $O
