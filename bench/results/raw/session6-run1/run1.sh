#!/usr/bin/env bash
# Session-6 first device call: correctness of the device code on main + same-run baselines.
set -uo pipefail
W=/tmp/w; mkdir -p $W && tar -xJf .gpu/pack1.tar.xz -C $W
source $W/fwd/env.sh
export SLQ_SHARED_DIR=$W/shared
O=$OUT/r; mkdir -p $O
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv > $O/nvidia-smi.txt
cat $O/nvidia-smi.txt
for t in slq_kernels_gpu_test slq_gpu_test slq_gpu_eval_test slq_inference_gpu_test; do
  timeout 150 $t --gtest_brief=1 > $O/$t.log 2>&1; echo "$t rc=$?"; grep -E "PASSED|FAILED|SKIPPED" $O/$t.log | head -8
done
timeout 120 slq_kernel_bench --quick --out $O/kbench.md > $O/kbench.log 2>&1; echo "kbench rc=$?"
timeout 150 slq_gpu_decode_bench --tokens 128 --prompt 16 --out $O/decode.md > $O/decode.log 2>&1; echo "decode rc=$?"
cat $O/decode.md
for c in "28672 4096 4 1" "28672 4096 4 16"; do
  timeout 60 ncu --clock-control none -k regex:QGem --launch-skip 2 --launch-count 1 --section SpeedOfLight \
    --section WarpStateStats --section SchedulerStats --section Occupancy --section MemoryWorkloadAnalysis --section LaunchStats \
    slq_kernel_bench --profile $c > "$O/ncu_$(echo $c | tr ' ' _).txt" 2>&1
done
tar -C $OUT -czf $OUT/r1.tgz r && rm -rf $O
