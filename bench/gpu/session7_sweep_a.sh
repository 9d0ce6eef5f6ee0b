#!/usr/bin/env bash
# Second device call of session 7 (main 325c49d): (1) the GPU tests that need docs-19m (the first call
# lacked the model); (2) docs-19m searches with the LM head quantized, formats 4-5-6-7-8, quantizers
# rtn vs rtn,gptq, targets bits<=4.5/5/5.5/6 and ear>=0.99, plus uniform rtn/gptq 4..8 baselines, on
# the H200 (`--device cuda`). Returns the certificates and the measured profile cache (reusable on the
# CPU: the cache key has no device). Pack: gpu-bundle of slq + GPU tests, the 3 models, 2 texts, as
# .gpu/sweep7a.tar.xz. There: bash bench/gpu/session7_sweep_a.sh
set -uo pipefail
T0=$(date +%s)
W=/tmp/w; mkdir -p $W && tar -xJf .gpu/sweep7a.tar.xz -C $W
source $W/fwd/env.sh
export SLQ_SHARED_DIR=$W/shared
O=$OUT/r; mkdir -p $O/cert $O/cache
left() { echo $(( ${BUDGET:-560} - ($(date +%s) - T0) )); }
for t in slq_gpu_test slq_quant_gpu_test slq_gpu_eval_test slq_quant_gpu_eval_test slq_inference_gpu_test; do
  timeout 150 $t --gtest_brief=1 > $O/$t.log 2>&1; echo "$t rc=$? (t=$(( $(date +%s) - T0 )) s)"; grep -E "^\[  (PASSED|FAILED)|FAILED|SKIPPED \]" $O/$t.log | head -6
done
M=$W/shared/models/docs-19m; D=$W/shared/data/debian-docs-val-part1.txt
q() {  # name, then slq quantize flags
  local n=$1; shift
  [ $(left) -gt 30 ] || { echo "skip $n (time)"; return; }
  local s=$(date +%s)
  timeout $(left) slq quantize $M --data $D --formats 4-5-6-7-8 --quantize-head --device cuda --json \
    --profile-cache $O/cache "$@" > $O/cert/$n.json 2> $O/cert/$n.err
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
for Q in rtn rtn,gptq; do
  for T in 'bits<=4.5' 'bits<=5' 'bits<=5.5' 'bits<=6' 'ear>=0.99'; do
    q "${Q/,/+}_${T//[<>=]/}" --quantizers $Q --target "$T"
  done
done
for b in 4 5 6 7 8; do q uniform_rtn_$b --uniform-bits $b --quantizers rtn; q uniform_gptq_$b --uniform-bits $b --quantizers gptq; done
tar -C $OUT -czf $OUT/sweep7a.tgz r && rm -rf $O
