#!/usr/bin/env bash
# First device call of session 7: run the GPU tests and a short decode bench on 325c49d (the review
# commit of session 6: one WithBits width dispatch, one CaptureGraph), which was compiled but not run.
# Pack (here): gpu-bundle of the GPU test binaries + slq_gpu_decode_bench, tinystories-656k,
# stories260k and the TinyStories text, as .gpu/check7.tar.xz.
set -uo pipefail
W=/tmp/w; mkdir -p $W && tar -xJf .gpu/check7.tar.xz -C $W
source $W/fwd/env.sh
export SLQ_SHARED_DIR=$W/shared
O=$OUT/r; mkdir -p $O
for t in slq_kernels_gpu_test slq_gpu_test slq_gpu_ops_test slq_gpu_eval_test slq_quant_gpu_test slq_quant_gpu_eval_test slq_inference_gpu_test; do
  timeout 150 $t --gtest_brief=1 > $O/$t.log 2>&1; echo "$t rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED|SKIPPED \]" $O/$t.log | head -6
done
timeout 90 slq_gpu_decode_bench --configs bf16,q4,mix --prompt 16 --tokens 128 --out $O/decode16.md > $O/decode16.log 2>&1; echo "decode16 rc=$?"
grep -E "^\| (bf16|q4|mix) " $O/decode16.md | cut -c1-220
tar -C $OUT -czf $OUT/check7.tgz r && rm -rf $O
