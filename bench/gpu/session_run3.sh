#!/usr/bin/env bash
# Third device call of session 6: the kernels after the host/prologue refactor (MakeParams,
# SumOfX shared by the streaming kernels): all kernel GPU tests + the quick kernel bench.
# Pack: gpu-bundle of slq_kernels_gpu_test and slq_kernel_bench as .gpu/pack4.tar.xz.
set -uo pipefail
W=/tmp/w; mkdir -p $W && tar -xJf .gpu/pack4.tar.xz -C $W
source $W/fwd/env.sh
O=$OUT/r; mkdir -p $O
timeout 150 slq_kernels_gpu_test --gtest_brief=1 > $O/slq_kernels_gpu_test.log 2>&1; echo "kernels test rc=$?"
grep -E "^\[  (PASSED|FAILED)|FAILED" $O/slq_kernels_gpu_test.log | head
timeout 60 slq_kernel_bench --quick --out $O/kbench_quick.md > $O/kbench.log 2>&1; echo "kbench rc=$?"
grep -A12 "One layer" $O/kbench_quick.md
tar -C $OUT -czf $OUT/r4.tgz r && rm -rf $O
