#!/usr/bin/env bash
# Session 10, helper K2 (branch s10-k2): the GPU checks of group size 32 on the fused path
# (slq-gpu-v1 with 8 groups per 256-column chunk; the streaming kernel's G = 32 instantiations,
# the tiled kernel's 8-slot ones), for one device call on an H200. Expects slq_kernels_gpu_test,
# slq_gpu_ops_test, slq_gpu_test, slq_gpu_eval_test and slq_kernel_bench on PATH (e.g. a
# gpu-bundle's env.sh sourced first) and writes under $OUT (default /tmp/slq-out); at the end it
# tars the logs into $OUT/session10_k2.tgz (the files stay beside it: at most 6 in all).
# Steps (default all): test bench.
#   test:  Bits/QGemmAllBits.Group32/* (every width 2..8, fp16/bf16, n 1/3/8/9/16/33/128, uniform
#          and grid with random and all-zero ids, ragged shapes, every kernel request, split-K,
#          PDL; the streaming grid variant held to the output rounding), then the model-level
#          GpuForward.Group32RunsFusedAndMatchesCpu and GpuForward.Bf16GridMatricesMatchCpu, then
#          the full slq_kernels_gpu_test, slq_gpu_ops_test, slq_gpu_test and slq_gpu_eval_test
#          (the g64/g128 cases: every existing instantiation is PTX-identical, so a failure there
#          is a routing/launch bug of this branch).
#   bench: slq_kernel_bench (default tables: the new "4b g32" row next to "4b g64", Llama-3-8B
#          shapes, n = 1..64) and --grids (4b g32 uniform vs grid rows).
set -uo pipefail
OUT=${OUT:-/tmp/slq-out}
mkdir -p "$OUT"
steps=${*:-test bench}
want() { [[ " $steps " == *" $1 "* ]]; }
T0=$(date +%s)
t() { echo "t=$(($(date +%s) - T0)) s: $*"; }
rc=0
files=()
if want test; then
  timeout 400 slq_kernels_gpu_test --gtest_brief=1 --gtest_filter='Bits/QGemmAllBits.Group32/*' \
    > "$OUT/g32_kernel_tests.log" 2>&1 || rc=1
  t "g32 kernel tests"; grep -E "^\[  (PASSED|FAILED)|FAILED|inexact|worst" "$OUT/g32_kernel_tests.log" | head -20
  timeout 300 slq_gpu_test \
    --gtest_filter='GpuForward.Group32RunsFusedAndMatchesCpu:GpuForward.Bf16GridMatricesMatchCpu' \
    > "$OUT/g32_forward_tests.log" 2>&1 || rc=1
  t "g32 forward tests"; grep -E "^\[  (PASSED|FAILED)|FAILED|EAR mean|gpu model" "$OUT/g32_forward_tests.log" | cut -c1-300 | head -20
  files+=(g32_kernel_tests.log g32_forward_tests.log)
  : > "$OUT/gpu_tests.log"
  for b in slq_kernels_gpu_test slq_gpu_ops_test slq_gpu_test slq_gpu_eval_test; do
    echo "== $b" >> "$OUT/gpu_tests.log"
    timeout 400 $b --gtest_brief=1 >> "$OUT/gpu_tests.log" 2>&1 || rc=1
    t "$b"; grep -E "^\[  (PASSED|FAILED)|FAILED|SKIPPED \]" "$OUT/gpu_tests.log" | tail -4
  done
  files+=(gpu_tests.log)
fi
if want bench; then
  timeout 300 slq_kernel_bench --out "$OUT/kbench-g32.md" > /dev/null 2>&1 || rc=1
  t "kernel bench"; grep -E "^## |4b g(32|64) " "$OUT/kbench-g32.md" | cut -c1-200 | head -30
  timeout 420 slq_kernel_bench --grids --out "$OUT/kbench-grids-g32.md" > /dev/null 2>&1 || rc=1
  t "kernel bench --grids"; grep -E "4b g32" "$OUT/kbench-grids-g32.md" | cut -c1-220 | head -40
  files+=(kbench-g32.md kbench-grids-g32.md)
fi
if ((${#files[@]})); then tar -C "$OUT" -czf "$OUT/session10_k2.tgz" "${files[@]}"; fi
exit $rc
