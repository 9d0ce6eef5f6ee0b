#!/usr/bin/env bash
# Session 10 device call 3 (main after merging s10-b's acceptance rule, s10-q's rounding and s10-k2's kernels), three
# back-to-back parts (each pack < 64 MiB with the tree):
#   a: .gpu/s10c3a.tar.xz (slq, the models, the texts, the report cache of docs-19m with its measured profiles):
#      docs-19m `ear>=0.99` under the new acceptance rule (the calibration spread at its 95% upper bound): the report
#      sweep's v-s8-ear0.99 and v-gptq-ear0.99 refreshed from the cached profiles (new certificates for RESULTS), then
#      the reduced GPTQ + grids + S8 g64 run of call 1 (c16-g64) on the merged code.
#   b: .gpu/s10c3b.tar.xz (slq_gpu_test, slq_gpu_eval_test; the models from part a's build-w/ on a warm machine)
#   c: .gpu/s10c3c.tar.xz (slq_kernels_gpu_test, slq_gpu_ops_test): the kernel tests (g32 / rotation / bf16 grid routing)
set -uo pipefail
part=$1; T0=$(date +%s)
W=$PWD/build-w; mkdir -p $W && tar -xJf .gpu/s10c3$part.tar.xz -C $W
source $W/fwd/env.sh
export SLQ_SHARED_DIR=$W/shared
O=$OUT/r; mkdir -p $O
left() { echo $(( ${BUDGET:-570} - ($(date +%s) - T0) )); }
t() { echo "t=$(( $(date +%s) - T0 )) s: $*"; }
if [ "$part" = a ]; then
  mkdir -p $O/rc && cp -r $W/rc/docs-19m $O/rc/
  PYTHONUNBUFFERED=1 timeout $(( $(left) - 120 )) python3 scripts/report --slq $(command -v slq) --shared $W/shared --cache $O/rc \
    --device cuda --sweep-only --models docs-19m --refresh --only v-s8-ear0.99,v-gptq-ear0.99 2>&1 | grep -v '^docs-19m:$' | tail -8
  t "sweep"
  if [ $(left) -gt 100 ]; then
    mkdir -p $O/cert
    timeout $(( $(left) - 10 )) slq quantize $W/shared/models/docs-19m --data $W/calib.txt --eval $W/heldout.txt --formats 4-5-6-7-8 \
      --quantize-head --device cuda --json --cloze-items 0 --profile-cache $O/cache --quantizers gptq --grids on --scales s8 \
      --target ear>=0.99 --heldout-sequences 64 --group-size 64 --calibration-sequences 16 > $O/cert/c16-g64.json 2> $O/cert/c16-g64.err
    t "c16-g64 rc=$?"; python3 -c "
import json; c=json.load(open('$O/cert/c16-g64.json')); h=c['heldout']['ear']; cal=c['calibration']
print('c16-g64 bits %.3f met %s cal mean %.5f bound %.5f held %.5f [%.5f]' % (c['avg_bits_per_param_quantized_layers'], c['target_met'], cal['mean'], cal['metric'], h['mean'], h['lo95']))" || tail -5 $O/cert/c16-g64.err
  fi
  rm -rf $O/rc/docs-19m/profiles/grams-*.bin $O/cache
  for f in $O/rc/docs-19m/*.json; do cp $f $O/; done; rm -rf $O/rc
elif [ "$part" = b ]; then
  ls $W/shared/models
  for b in slq_gpu_eval_test slq_gpu_test; do
    s=$(date +%s); timeout 240 $b --gtest_brief=1 > $O/$b.log 2>&1; echo "$b rc=$? $(( $(date +%s) - s )) s"
    grep -E "^\[  (PASSED|FAILED|SKIPPED)|FAILED" $O/$b.log | head -12
  done
else
  for b in slq_kernels_gpu_test slq_gpu_ops_test; do
    s=$(date +%s); timeout 300 $b --gtest_brief=1 > $O/$b.log 2>&1; echo "$b rc=$? $(( $(date +%s) - s )) s"
    grep -E "^\[  (PASSED|FAILED|SKIPPED)|FAILED" $O/$b.log | head -12
  done
fi
tar -C $OUT -czf $OUT/s10c3$part.tgz r
