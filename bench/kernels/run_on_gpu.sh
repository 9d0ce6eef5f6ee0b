#!/usr/bin/env bash
# Runs on the GPU machine (device tool) from the repo root, with the bundle carried in .gpu/:
#   GPU correctness tests, compute-sanitizer (memcheck + racecheck on a subset), the benchmark.
# Build and bundle here first:
#   ninja -C build-kernels slq_kernels_gpu_test slq_kernel_bench
#   ../shared/tools/gpu-bundle .gpu/kernels build-kernels/kernels/slq_kernels_gpu_test \
#       build-kernels/bench/kernels/slq_kernel_bench
# Usage: bash bench/kernels/run_on_gpu.sh [test|sanitize|bench|sweep|ncu|all]...   (default: all but ncu
# and sweep)
set -uo pipefail
source .gpu/kernels/env.sh
OUT=${OUT:-/tmp/slq-out}
mkdir -p "$OUT"
steps=${*:-all}
want() { [[ " $steps " == *" $1 "* || ( " $steps " == *" all "* && $1 != ncu && $1 != sweep ) ]]; }
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem \
  --format=csv | tee "$OUT/nvidia-smi.txt"
rc=0
if want test; then
  slq_kernels_gpu_test --gtest_brief=1 2>&1 | tee "$OUT/gpu_test.log" | tail -25
  [ "${PIPESTATUS[0]}" = 0 ] || rc=1
fi
if want sanitize; then
  for tool in memcheck racecheck; do
    compute-sanitizer --tool $tool --error-exitcode 3 slq_kernels_gpu_test --gtest_brief=1 \
      --gtest_filter='Bits/QGemmAllBits.RaggedShapesAllTileConfigs/1:Bits/QGemmAllBits.RaggedShapesAllTileConfigs/6' \
      > "$OUT/sanitize_$tool.log" 2>&1
    s=$?
    echo "compute-sanitizer $tool: exit $s"; tail -3 "$OUT/sanitize_$tool.log"
    [ $s = 0 ] || rc=1
  done
fi
if want bench; then
  slq_kernel_bench --out "$OUT/bench.md" > "$OUT/bench.log" 2>&1 || rc=1
  tail -60 "$OUT/bench.md"
fi
if want sweep; then  # kernel variants side by side (streaming / legacy / tiled / cuBLASLt)
  slq_kernel_bench --sweep --out "$OUT/sweep.md" > "$OUT/sweep.log" 2>&1 || rc=1
  tail -12 "$OUT/sweep.md"
fi
if want ncu; then  # one launch of a few cases (gate_up shape), after 2 warm-up launches
  for c in "24576 4096 4 1" "24576 4096 2 1" "24576 4096 4 64"; do
    timeout 90 ncu -k regex:QGem --launch-skip 2 --launch-count 1 --section SpeedOfLight \
      --section WarpStateStats --section SchedulerStats --section Occupancy --section MemoryWorkloadAnalysis \
      slq_kernel_bench --profile $c > "$OUT/ncu_$(echo $c | tr ' ' _).txt" 2>&1
  done
fi
exit $rc
