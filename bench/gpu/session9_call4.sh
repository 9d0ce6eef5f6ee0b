#!/usr/bin/env bash
# Fourth device call of session 9 (main after call 3): (1) the model-level GPU tests (slq_gpu_test, slq_gpu_eval_test:
# grid slots with the per-width level table cache, forward passes with grid matrices); (2) docs-19m ear>=0.99 on the
# llama.cpp comparison's split with GPTQ + grids + S8 g64 (a reduced candidate set: the width only), measured on
# 16 vs 128 calibration windows (--calibration-sequences; 64 held-out windows for both): how many bits the
# calibration -> held-out transfer margin costs.
# Pack: .gpu/s9c4.tar.xz (gpu-bundle of slq + the 2 tests, the 3 models, the texts, calib/heldout).
set -uo pipefail
T0=$(date +%s)
W=/tmp/w; mkdir -p $W && tar -xJf .gpu/s9c4.tar.xz -C $W
source $W/fwd/env.sh
export SLQ_SHARED_DIR=$W/shared
O=$OUT/r; mkdir -p $O/cert $O/cache
left() { echo $(( ${BUDGET:-330} - ($(date +%s) - T0) )); }
t() { echo "t=$(( $(date +%s) - T0 )) s: $*"; }
for b in slq_gpu_eval_test slq_gpu_test; do
  timeout 90 $b --gtest_brief=1 > $O/$b.log 2>&1; t "$b rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED" $O/$b.log | head -6
done
M=$W/shared/models/docs-19m
q() {  # name, then slq quantize flags
  local n=$1; shift
  [ $(left) -gt 40 ] || { echo "skip $n (time)"; return; }
  local s=$(date +%s)
  timeout $(( $(left) - 10 )) slq quantize $M --data $W/calib.txt --eval $W/heldout.txt --formats 4-5-6-7-8 --quantize-head \
    --device cuda --json --cloze-items 0 --profile-cache $O/cache "$@" > $O/cert/$n.json 2> $O/cert/$n.err
  local rc=$?
  python3 - $O/cert/$n.json $n $rc $(( $(date +%s) - s )) <<'PY'
import json, sys
p, n, rc, wall = sys.argv[1:]
try:
    c = json.load(open(p)); h = c["heldout"]; cal = c["calibration"]
    print(f"{n:10s} rc={rc} wall={float(wall):5.1f}s bits={c['avg_bits_per_param_quantized_layers']:.3f} met={c['target_met']} "
          f"cal {cal['sequences']} win mean {cal['mean']:.5f} bound {cal['metric']:.5f}; held {h['sequences']} win "
          f"EAR={h['ear']['mean']:.5f} [{h['ear']['lo95']:.5f},{h['ear']['hi95']:.5f}] "
          f"stages {dict((k, round(v, 1)) for k, v in c['stage_wall_seconds'].items() if v > 1)}")
except Exception as e:
    print(f"{n:10s} rc={rc} wall={float(wall):5.1f}s no certificate ({e})"); print(open(p.replace('.json','.err')).read()[-400:])
PY
}
V="--quantizers gptq --grids on --scales s8 --group-size 64 --target ear>=0.99 --heldout-sequences 64"
q ear-c16 $V --calibration-sequences 16
q ear-c128 $V --calibration-sequences 128
rm -f $O/cache/grams-*.bin
t end
tar -C $OUT -czf $OUT/s9c4.tgz r && rm -rf $O
