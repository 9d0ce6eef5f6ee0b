#!/usr/bin/env bash
# Session 10 device call 4 (main 4c943be: s10-b, s10-q, s10-k2 merged): the GPU test binaries, one per call because
# each now carries ~25 MB of compressed kernels (group 32 doubled the instantiations) and the travelling tree is
# capped at 64 MiB. `session10_call4.sh PACK...`: extracts .gpu/PACK.tar.xz (s10m = the three models, into
# build-w/, kept on the warm machine for the next calls; s10t1..4 = slq_gpu_test, slq_kernels_gpu_test,
# slq_gpu_ops_test, slq_gpu_eval_test with their libraries; s10d = the texts; s10kb = slq_kernel_bench --quick)
# and runs the test binary (or the bench) each brings.
set -uo pipefail
W=$PWD/build-w; mkdir -p $W $OUT/r
for p in "$@"; do rm -rf $W/fwd; tar -xJf .gpu/$p.tar.xz -C $W
  [ -d $W/fwd ] || continue
  source $W/fwd/env.sh
  export SLQ_SHARED_DIR=$W/shared
  ls $W/shared/models | tr '\n' ' '; echo
  for b in $W/fwd/bin/*; do n=$(basename $b)
    s=$(date +%s)
    if [ $n = slq_kernel_bench ]; then  # the default tables (uniform widths, 4b g128 / g64 / g32 side by side)
      timeout 420 $b --quick --out $OUT/r/kbench.md > $OUT/r/$n.log 2>&1; echo "$n rc=$? $(( $(date +%s) - s )) s"
      grep -A12 "g32" $OUT/r/kbench.md | head -30
      continue
    fi
    timeout 420 $b --gtest_brief=1 > $OUT/r/$n.log 2>&1; echo "$n rc=$? $(( $(date +%s) - s )) s"
    grep -E "^\[  (PASSED|FAILED|SKIPPED)|FAILED|Failure" $OUT/r/$n.log | head -12
  done
done
