#!/usr/bin/env bash
# Fourth device call of session 6: read-only probes of the weight access pattern
# (slq_kernel_bench --probe). Pack: gpu-bundle of slq_kernel_bench as .gpu/pack5.tar.xz.
set -uo pipefail
W=/tmp/w; mkdir -p $W && tar -xJf .gpu/pack5.tar.xz -C $W
source $W/fwd/env.sh
timeout 120 slq_kernel_bench --probe --out $OUT/probe.md > $OUT/probe.log 2>&1; echo "probe rc=$?"
cat $OUT/probe.md
