#!/usr/bin/env bash
# Session 9, helper K (branch s9-gpu): the GPU checks of the grid-kernel work, for one device call
# on an H200. Expects slq_kernels_gpu_test, slq_gpu_ops_test, slq_gpu_test, slq_gpu_eval_test,
# slq_kernel_bench and slq_gpu_decode_bench on PATH (e.g. a gpu-bundle's env.sh sourced first)
# and writes under $OUT (default /tmp/slq-out). Steps (default all): test bench decode.
#   test:   the grid cases of the fused kernels (every width, g64/g128, fp16/bf16, n 1..128, random
#           and all-zero ids, both streaming lookups), then the full GPU test binaries.
#   bench:  slq_kernel_bench --grids (uniform, grid and cuBLASLt bf16 side by side, both
#           activation types, plus one 8B layer at batch 1 in a CUDA graph).
#   decode: slq_gpu_decode_bench, uniform vs grid 4-bit and mix, fp16 and bf16, CUDA graphs.
set -uo pipefail
OUT=${OUT:-/tmp/slq-out}
mkdir -p "$OUT"
steps=${*:-test bench decode}
want() { [[ " $steps " == *" $1 "* ]]; }
T0=$(date +%s)
t() { echo "t=$(($(date +%s) - T0)) s: $*"; }
rc=0
if want test; then
  timeout 240 slq_kernels_gpu_test --gtest_brief=1 --gtest_filter='Bits/QGemmAllBits.GridMatrices/*' \
    > "$OUT/grid_tests.log" 2>&1 || rc=1
  t "grid tests"; grep -E "^\[  (PASSED|FAILED)|FAILED" "$OUT/grid_tests.log" | head -20
  for b in slq_kernels_gpu_test slq_gpu_ops_test slq_gpu_test slq_gpu_eval_test; do
    timeout 240 $b --gtest_brief=1 > "$OUT/$b.log" 2>&1 || rc=1
    t "$b"; grep -E "^\[  (PASSED|FAILED)|FAILED|SKIPPED \]" "$OUT/$b.log" | head -8
  done
fi
if want bench; then
  timeout 300 slq_kernel_bench --grids --out "$OUT/kbench-grids.md" > "$OUT/kbench-grids.log" 2>&1 || rc=1
  t "kernel bench"; tail -12 "$OUT/kbench-grids.md" | cut -c1-200
fi
if want decode; then
  timeout 300 slq_gpu_decode_bench --tokens 64 --configs q4,q4-grid,mix,mix-grid,q4-bf16,q4-grid-bf16 \
    --out "$OUT/decode-grids.md" > "$OUT/decode-grids.log" 2>&1 || rc=1
  t "decode bench"; head -14 "$OUT/decode-grids.md" | cut -c1-220
fi
exit $rc
