#!/usr/bin/env bash
# Third device call of session 7 (main after merging issue #17's branches): (1) the GPU tests of the
# quant library (variants and the Gram windows on the GPU evaluation path); (2) for the llama.cpp
# comparison (bench/compare): on `slq split`'s calibration / held-out sides of docs-19m and
# tinystories-656k, `slq quantize --data calib --eval heldout --quantize-head --formats 4-5-6-7-8` with
# the search sets rtn / rtn,gptq / all variants at bits<=4.5, 5, 5.5, 6 and ear>=0.99 — certificates +
# profile caches come back (the artifacts are re-made on the CPU from the cached profiles); (3) the
# report's issue-#17 sweep of docs-19m (scripts/report --sweep-only --device cuda --only v-,vu-).
# Pack: gpu-bundle of slq + 2 quant GPU tests, 3 models, 2 texts, as .gpu/sweep7b.tar.xz.
set -uo pipefail
T0=$(date +%s)
W=/tmp/w; mkdir -p $W && tar -xJf .gpu/sweep7b.tar.xz -C $W
source $W/fwd/env.sh
export SLQ_SHARED_DIR=$W/shared
O=$OUT/r; mkdir -p $O
left() { echo $(( ${BUDGET:-570} - ($(date +%s) - T0) )); }
for t in slq_quant_gpu_test slq_quant_gpu_eval_test; do
  timeout 100 $t --gtest_brief=1 > $O/$t.log 2>&1; echo "$t rc=$? (t=$(( $(date +%s) - T0 )) s)"; grep -E "^\[  (PASSED|FAILED)|FAILED|SKIPPED \]" $O/$t.log | head -6
done
summ() { python3 - "$@" <<'PY'
import json, sys
p, n, rc, wall = sys.argv[1:]
try:
    c = json.load(open(p)); h = c["heldout"]
    print(f"{n:34s} rc={rc} {float(wall):4.0f}s bits={c['avg_bits_per_param_quantized_layers']:.3f} met={c['target_met']} "
          f"EAR={h['ear']['mean']:.5f} [{h['ear']['lo95']:.5f}] KL={h['kl']['mean']:.3e} [{h['kl']['lo95']:.3e},{h['kl']['hi95']:.3e}]")
except Exception as e:
    print(f"{n:34s} rc={rc} {float(wall):4.0f}s no certificate ({e})")
PY
}
cmp_runs() {  # model-name model-path text
  local n=$1 m=$2 t=$3 P=$O/cmp/$1; mkdir -p $P/cert
  slq split $t --calib $P/calib.txt --heldout $P/heldout.txt > /dev/null
  for set in rtn gptq all; do
    case $set in rtn) a="--quantizers rtn";; gptq) a="--quantizers rtn,gptq";;
      all) a="--quantizers rtn,gptq --symmetry both --group-sizes 64,128";; esac
    for T in 'bits<=4.5' 'bits<=5' 'bits<=5.5' 'bits<=6' 'ear>=0.99'; do
      [ $(left) -gt 200 ] || { echo "skip $n $set $T (time)"; continue; }
      local r="${set}_${T//[<>=]/}" s=$(date +%s)
      timeout $(( $(left) - 150 )) slq quantize $m --data $P/calib.txt --eval $P/heldout.txt --quantize-head --formats 4-5-6-7-8 \
        $a --target "$T" --device cuda --json --cloze-items 0 --profile-cache $P/cache-$set > $P/cert/$r.json 2> $P/cert/$r.err
      summ $P/cert/$r.json "$n $r" $? $(( $(date +%s) - s ))
    done
  done
}
cmp_runs tinystories-656k $W/shared/models/tinystories-656k $W/shared/data/tinystories-valid-part1.txt
cmp_runs docs-19m $W/shared/models/docs-19m $W/shared/data/debian-docs-val-part1.txt
echo "== report sweep (t=$(( $(date +%s) - T0 )) s)"
[ $(left) -gt 60 ] && PYTHONUNBUFFERED=1 timeout $(( $(left) - 25 )) python3 scripts/report --slq $W/fwd/bin/slq --shared $W/shared \
  --cache $O/rc --device cuda --sweep-only --only v-,vu- --models docs-19m 2>&1 | grep -v '^  run ' | tail -80
echo "== end (t=$(( $(date +%s) - T0 )) s)"
tar -C $OUT -czf $OUT/sweep7b.tgz r && rm -rf $O
