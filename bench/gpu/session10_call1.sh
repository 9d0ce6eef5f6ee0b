#!/usr/bin/env bash
# First device call of session 10 (main 2b1d37d): what the docs-19m `ear>=0.99` certificate costs in bits, and why.
# GPTQ + grids + S8 (the variant the search picks almost everywhere), llama.cpp comparison split (calib.txt /
# heldout.txt), LM head quantized, 64 held-out windows:
#   c16-g64     16 calibration windows, g64 only          (the reduced candidate set: the width only)
#   c16-g3264   16 calibration windows, g32 or g64 per layer (headroom above 8 bits: s8 g32 costs +0.25 bits for 0.76x error)
#   c128-g64    128 calibration windows, g64              (the calibration -> held-out transfer margin)
#   c128-g3264  128 calibration windows, g32 or g64
# Pack: .gpu/s10c1.tar.xz (gpu-bundle of slq, the 3 models, the texts, calib/heldout), extracted to build-w/ (ignored;
# kept on a warm machine for call 1b, which runs the model-level GPU tests).
set -uo pipefail
T0=$(date +%s)
W=$PWD/build-w; mkdir -p $W && tar -xJf .gpu/s10c1.tar.xz -C $W
source $W/fwd/env.sh
export SLQ_SHARED_DIR=$W/shared
O=$OUT/r; mkdir -p $O/cert $O/cache
left() { echo $(( ${BUDGET:-575} - ($(date +%s) - T0) )); }
t() { echo "t=$(( $(date +%s) - T0 )) s: $*"; }
M=$W/shared/models/docs-19m
q() {  # name, then slq quantize flags
  local n=$1; shift
  [ $(left) -gt 60 ] || { echo "skip $n (time)"; return; }
  local s=$(date +%s)
  timeout $(( $(left) - 10 )) slq quantize $M --data $W/calib.txt --eval $W/heldout.txt --formats 4-5-6-7-8 --quantize-head \
    --device cuda --json --cloze-items 0 --profile-cache $O/cache "$@" > $O/cert/$n.json 2> $O/cert/$n.err
  local rc=$?
  python3 - $O/cert/$n.json $n $rc $(( $(date +%s) - s )) <<'PY'
import json, sys
p, n, rc, wall = sys.argv[1:]
try:
    c = json.load(open(p)); h = c["heldout"]; cal = c["calibration"]
    print(f"{n:11s} rc={rc} wall={float(wall):5.1f}s bits={c['avg_bits_per_param_quantized_layers']:.3f} met={c['target_met']} "
          f"cal {cal['sequences']} win mean {cal['mean']:.5f} bound {cal['metric']:.5f} gram {cal.get('gram')}; held {h['sequences']} win "
          f"EAR={h['ear']['mean']:.5f} [{h['ear']['lo95']:.5f},{h['ear']['hi95']:.5f}] "
          f"stages {dict((k, round(v, 1)) for k, v in c['stage_wall_seconds'].items() if v > 1)}")
except Exception as e:
    print(f"{n:11s} rc={rc} wall={float(wall):5.1f}s no certificate ({e})"); print(open(p.replace('.json','.err')).read()[-400:])
PY
}
V="--quantizers gptq --grids on --scales s8 --target ear>=0.99 --heldout-sequences 64"
q c16-g64 $V --group-size 64 --calibration-sequences 16
q c16-g3264 $V --group-size 64 --group-sizes 32,64 --calibration-sequences 16
q c128-g64 $V --group-size 64 --calibration-sequences 128
q c128-g3264 $V --group-size 64 --group-sizes 32,64 --calibration-sequences 128
rm -f $O/cache/grams-*.bin
t end
tar -C $OUT -czf $OUT/s10c1.tgz r && rm -rf $O
