#!/usr/bin/env bash
# First device call of session 8 (main d04ff14, behaviour = 4341463): docs-19m `rtn,gptq` budget artifacts under
# the all-calibration Gram (commit 6632ad3; session 7's docs-19m artifacts predate it), same command as
# bench/results/llamacpp-kld-2026-12-02.md (split files, --eval heldout, head quantized, formats 4-5-6-7-8), no TL
# cloze (--cloze-items 0; it runs on the CPU), then ear>=0.99 from the same profile cache. Returns the
# 4 artifacts (one tar each, for the llama.cpp scoring on the CPU) and certificates + cache + logs.
# Pack: .gpu/s8c1.tar.xz (gpu-bundle of slq, docs-19m, calib.txt, heldout.txt). There: bash bench/gpu/session8_call1.sh
set -uo pipefail
T0=$(date +%s)
W=/tmp/w; mkdir -p $W && tar -xJf .gpu/s8c1.tar.xz -C $W
source $W/fwd/env.sh
O=$OUT/r; mkdir -p $O/cert $O/cache $O/art
left() { echo $(( ${BUDGET:-560} - ($(date +%s) - T0) )); }
M=$W/docs-19m
q() {  # name, then slq quantize flags
  local n=$1; shift
  [ $(left) -gt 30 ] || { echo "skip $n (time)"; return; }
  local s=$(date +%s)
  timeout $(left) slq quantize $M --data $W/calib.txt --eval $W/heldout.txt --formats 4-5-6-7-8 --quantize-head \
    --device cuda --json --cloze-items 0 --profile-cache $O/cache "$@" > $O/cert/$n.json 2> $O/cert/$n.err
  local rc=$?
  python3 - $O/cert/$n.json $n $rc $(( $(date +%s) - s )) <<'PY'
import json, sys
p, n, rc, wall = sys.argv[1:]
try:
    c = json.load(open(p)); h = c["heldout"]
    print(f"{n:24s} rc={rc} wall={float(wall):6.1f}s bits={c['avg_bits_per_param_quantized_layers']:.3f} met={c['target_met']} "
          f"EAR={h['ear']['mean']:.5f} [{h['ear']['lo95']:.5f},{h['ear']['hi95']:.5f}] KL={h['kl']['mean']:.3e} [{h['kl']['lo95']:.3e},{h['kl']['hi95']:.3e}]")
except Exception as e:
    print(f"{n:24s} rc={rc} wall={float(wall):6.1f}s no certificate ({e})")
PY
}
for X in 5.0 4.5 5.5 6.0; do q gptq-b$X --quantizers rtn,gptq --target "bits<=$X" --out $O/art/gptq-b$X; done
q gptq-ear99 --quantizers rtn,gptq --target 'ear>=0.99'
echo "== end (t=$(( $(date +%s) - T0 )) s)"
for X in 4.5 5.0 5.5 6.0; do [ -d $O/art/gptq-b$X ] && tar -C $O/art -cf $OUT/art-gptq-b$X.tar gptq-b$X; done
rm -rf $O/art; tar -C $OUT -czf $OUT/s8c1.tgz r && rm -rf $O
ls -la $OUT
