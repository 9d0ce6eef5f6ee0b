#!/usr/bin/env bash
# Session 10, helper K (branch s10-k): the GPU checks of bf16 grid layers on the streaming kernel
# (hi + lo split of the levels, two mma per fragment; kAuto routes bf16 grid matrices there for
# n <= 16), for one device call on an H200. Expects slq_kernels_gpu_test, slq_gpu_ops_test,
# slq_gpu_test, slq_gpu_eval_test, slq_kernel_bench and slq_gpu_decode_bench on PATH (e.g. a
# gpu-bundle's env.sh sourced first) and writes under $OUT (default /tmp/slq-out); at the end it
# tars the logs and tables into $OUT/session10_grid_bf16.tgz (the files stay beside it: 7 in all).
# Steps (default all): test bench decode.
#   test:   the grid cases of the fused kernels (GridStreamIsExact: the streaming grid variant held
#           to the output rounding, bf16 and fp16, every width, g64/g128, n 1/3/8/9/16, random and
#           all-zero ids, both lookups; GridMatrices: every kernel request at the usual
#           tolerance), then the full slq_kernels_gpu_test, slq_gpu_ops_test, slq_gpu_test and
#           slq_gpu_eval_test.
#   bench:  slq_kernel_bench --grids (cuBLASLt bf16, bf16 uniform auto / tiled, bf16 grid auto
#           (= streaming for n <= 16) / stream per-code / tiled, and the fp16 columns, one run;
#           plus one 8B layer at batch 1 in a CUDA graph with bf16 grid auto and forced tiled).
#   decode: slq_gpu_decode_bench: dense bf16 and f16 beside uniform and grid 4-bit and mix, both
#           activation types, CUDA graphs.
set -uo pipefail
OUT=${OUT:-/tmp/slq-out}
mkdir -p "$OUT"
steps=${*:-test bench decode}
want() { [[ " $steps " == *" $1 "* ]]; }
T0=$(date +%s)
t() { echo "t=$(($(date +%s) - T0)) s: $*"; }
rc=0
files=()
if want test; then
  timeout 300 slq_kernels_gpu_test --gtest_brief=1 \
    --gtest_filter='Bits/QGemmAllBits.GridStreamIsExact/*:Bits/QGemmAllBits.GridMatrices/*' \
    > "$OUT/grid_tests.log" 2>&1 || rc=1
  t "grid tests"; grep -E "^\[  (PASSED|FAILED)|FAILED|inexact|worst" "$OUT/grid_tests.log" | head -20
  files+=(grid_tests.log)
  : > "$OUT/gpu_tests.log"
  for b in slq_kernels_gpu_test slq_gpu_ops_test slq_gpu_test slq_gpu_eval_test; do
    echo "== $b" >> "$OUT/gpu_tests.log"
    timeout 300 $b --gtest_brief=1 >> "$OUT/gpu_tests.log" 2>&1 || rc=1
    t "$b"; grep -E "^\[  (PASSED|FAILED)|FAILED|SKIPPED \]" "$OUT/gpu_tests.log" | tail -4
  done
  files+=(gpu_tests.log)
fi
if want bench; then
  timeout 420 slq_kernel_bench --grids --out "$OUT/kbench-grids.md" > "$OUT/kbench-grids.log" 2>&1 || rc=1
  t "kernel bench"; tail -12 "$OUT/kbench-grids.md" | cut -c1-200
  files+=(kbench-grids.md kbench-grids.log)
fi
if want decode; then
  timeout 300 slq_gpu_decode_bench --tokens 64 \
    --configs bf16,f16,q4,q4-grid,q4-bf16,q4-grid-bf16,mix-bf16,mix-grid-bf16 \
    --out "$OUT/decode-grids.md" > "$OUT/decode-grids.log" 2>&1 || rc=1
  t "decode bench"; head -16 "$OUT/decode-grids.md" | cut -c1-220
  files+=(decode-grids.md decode-grids.log)
fi
if ((${#files[@]})); then tar -C "$OUT" -czf "$OUT/session10_grid_bf16.tgz" "${files[@]}"; fi
exit $rc
