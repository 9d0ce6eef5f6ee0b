#!/usr/bin/env bash
# Fourth device call of session 7: the report's issue-#17 sweep of docs-19m (scripts/report --sweep-only
# --device cuda), continuing from call 3's report cache (.gpu/rc7.tgz: its profiles and 3 certificates),
# in priority order under one time budget: the width-only and sym/asym x g64/g128 (RTN) searches and the
# uniform RTN variants (fast), then the GPTQ searches at 4.5-7 bits and ear>=0.99, then uniform GPTQ.
# The "all variants" set (GPTQ x sym/asym x g64/g128) is not run for docs-19m (its profile alone exceeds
# the call). Pack: .gpu/sweep7b.tar.xz (slq, models, texts) + .gpu/rc7.tgz.
set -uo pipefail
T0=$(date +%s)
W=/tmp/w; mkdir -p $W && tar -xJf .gpu/sweep7b.tar.xz -C $W
source $W/fwd/env.sh
O=$OUT/r; mkdir -p $O/rc && tar -xzf .gpu/rc7.tgz -C $O/rc
left() { echo $(( ${BUDGET:-500} - ($(date +%s) - T0) )); }
rep() {
  [ $(left) -gt 20 ] || { echo "skip $1 (time)"; return; }
  PYTHONUNBUFFERED=1 timeout $(left) python3 scripts/report --slq $W/fwd/bin/slq --shared $W/shared --cache $O/rc \
    --device cuda --sweep-only --models docs-19m --only "$1" 2>&1 | grep -v '^docs-19m:$'
}
rep v-rtn-,v-symg-,vu-rtn-,vu-sym-,vu-g64-
for r in v-gptq-bits5.0 v-gptq-bits4.5 v-gptq-bits6.0 v-gptq-bits5.5 v-gptq-bits7.0 v-gptq-bits4.0 vu-gptq-4 vu-gptq-6 vu-gptq-8 v-gptq-bits6.5 vu-gptq-5 vu-gptq-7 v-gptq-bits7.5 v-gptq-bits8.0; do rep $r; done
echo "== end (t=$(( $(date +%s) - T0 )) s)"
tar -C $O -czf $OUT/sweep7c.tgz rc && rm -rf $O
