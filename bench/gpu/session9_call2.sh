#!/usr/bin/env bash
# Second device call of session 9 (main after merging s9-fmt, s9-search, s9-gpu): helper K's grid streaming lookups.
# (1) slq_kernels_gpu_test, grid cases first; (2) slq_kernel_bench --grids (cuBLASLt bf16, uniform and grid side by
# side, both activation types, one 8B layer in a CUDA graph); (3) the decode bench, uniform vs grid (random 8B-shaped
# weights). No model files: the model-level GPU tests run in call 3 (the pack limit).
# Pack: .gpu/s9c2.tar.xz (gpu-bundle of slq_kernels_gpu_test, slq_kernel_bench, slq_gpu_decode_bench).
set -uo pipefail
T0=$(date +%s)
W=/tmp/w; mkdir -p $W && tar -xJf .gpu/s9c2.tar.xz -C $W
source $W/fwd/env.sh
O=$OUT/r; mkdir -p $O
t() { echo "t=$(( $(date +%s) - T0 )) s: $*"; }
timeout 200 slq_kernels_gpu_test --gtest_brief=1 --gtest_filter='Bits/QGemmAllBits.GridMatrices/*' > $O/grid_tests.log 2>&1
t "grid tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED" $O/grid_tests.log | head -20
timeout 240 slq_kernels_gpu_test --gtest_brief=1 --gtest_filter='-Bits/QGemmAllBits.GridMatrices/*' > $O/slq_kernels_gpu_test.log 2>&1
t "kernel tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED" $O/slq_kernels_gpu_test.log | head -20
timeout 150 slq_kernel_bench --grids --out $O/kbench-grids.md > $O/kbench-grids.log 2>&1; t "kernel bench rc=$?"
tail -30 $O/kbench-grids.md | cut -c1-250
timeout 120 slq_gpu_decode_bench --tokens 64 --configs q4,q4-grid,mix,mix-grid,q4-bf16,q4-grid-bf16 \
  --out $O/decode-grids.md > $O/decode-grids.log 2>&1; t "decode bench rc=$?"; head -16 $O/decode-grids.md | cut -c1-220
tail -5 $O/decode-grids.log
t end
tar -C $OUT -czf $OUT/s9c2.tgz r && rm -rf $O
