#!/usr/bin/env bash
# Third device call of session 9 (main ed4a54c + the call-2 results): the report's docs-19m sweep of the S8 set
# (`scripts/report --sweep-only`, full text, head quantized: v-s8-bits4.5..8.0, then uniform GPTQ + grids + S8 g64
# at 4..8 bits, then v-s8-ear0.99 if time is left). Returns the certificates for build-report/report-cache/docs-19m.
# Pack: .gpu/s9c3.tar.xz (gpu-bundle of slq, docs-19m, the docs text).
set -uo pipefail
T0=$(date +%s)
W=/tmp/w; mkdir -p $W && tar -xJf .gpu/s9c3.tar.xz -C $W
source $W/fwd/env.sh
O=$OUT/r; mkdir -p $O/rc
left() { echo $(( ${BUDGET:-575} - ($(date +%s) - T0) )); }
t() { echo "t=$(( $(date +%s) - T0 )) s: $*"; }
PYTHONUNBUFFERED=1 timeout $(( $(left) - 10 )) python3 scripts/report --slq $(command -v slq) --shared $W/shared --cache $O/rc \
  --device cuda --sweep-only --models docs-19m \
  --only v-s8-bits4.5,v-s8-bits5.0,v-s8-bits5.5,v-s8-bits6.0,v-s8-bits6.5,v-s8-bits7.0,v-s8-bits7.5,v-s8-bits8.0,vu-gptqgrids8-4,vu-gptqgrids8-5,vu-gptqgrids8-6,vu-gptqgrids8-7,vu-gptqgrids8-8,v-s8-ear0.99 \
  2>&1 | grep -v '^docs-19m:$' | tail -30
t "sweep rc=$?"
rm -f $O/rc/docs-19m/profiles/grams-*.bin
tar -C $OUT -czf $OUT/s9c3.tgz r && rm -rf $O
