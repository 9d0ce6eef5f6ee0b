#!/usr/bin/env bash
# Third device call of session 8: the rest of the report's docs-19m sweep of the Grid Games set
# (scripts/report --sweep-only --device cuda --only v-grid-bits*), continuing call 2's report cache.
# Pack: .gpu/s8c3.tar.xz (gpu-bundle of slq, docs-19m, debian-docs-val-part1.txt, the docs-19m report cache).
set -uo pipefail
T0=$(date +%s)
W=/tmp/w; mkdir -p $W && tar -xJf .gpu/s8c3.tar.xz -C $W
source $W/fwd/env.sh
O=$OUT/r; mkdir -p $O/rc && cp -r $W/rc/docs-19m $O/rc/
left() { echo $(( ${BUDGET:-500} - ($(date +%s) - T0) )); }
PYTHONUNBUFFERED=1 timeout $(left) python3 scripts/report --slq $W/fwd/bin/slq --shared $W/shared --cache $O/rc --device cuda \
  --sweep-only --models docs-19m --only v-grid-bits5.0,v-grid-bits4.5,v-grid-bits6.0,v-grid-bits5.5,v-grid-bits7.0,v-grid-bits6.5,v-grid-bits7.5,v-grid-bits8.0 \
  2>&1 | grep -v '^docs-19m:$'
echo "== end (t=$(( $(date +%s) - T0 )) s)"
rm -f $O/rc/docs-19m/profiles/grams-*.bin
tar -C $OUT -czf $OUT/s8c3.tgz r && rm -rf $O
