#!/usr/bin/env bash
# Session 10 device call 2 (main 1135a47 = helper K's bf16 grid streaming kernels merged), in two back-to-back
# parts because each CUDA binary carries ~16 MB of compressed kernels and the travelling tree is capped at 64 MiB:
#   a: .gpu/s10c2a.tar.xz (slq_kernels_gpu_test, slq_gpu_decode_bench): bench/gpu/session10_grid_bf16.sh test decode
#      (the grid cases, the full kernel test; decode with dense bf16/f16 beside uniform and grid configs)
#   b: .gpu/s10c2b.tar.xz (slq_kernel_bench): bench/gpu/session10_grid_bf16.sh bench
# The model-level tests (slq_gpu_ops_test, slq_gpu_test, slq_gpu_eval_test) are not in these packs: the
# script's test step reports them as missing; they run in a later call.
set -uo pipefail
part=$1
W=$PWD/build-w2; mkdir -p $W && tar -xJf .gpu/s10c2$part.tar.xz -C $W
source $W/fwd/env.sh
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader
if [ "$part" = a ]; then OUT=$OUT/a bash bench/gpu/session10_grid_bf16.sh test decode; else OUT=$OUT/b bash bench/gpu/session10_grid_bf16.sh bench; fi
echo "rc=$?"
