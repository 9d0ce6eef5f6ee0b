#!/usr/bin/env bash
# Call 1b of session 10 (right after call 1, on the warm machine): the model-level GPU tests on main 2b1d37d
# (slq_gpu_test: forward passes with quantized / grid / S8-expanded matrices; slq_gpu_eval_test: the GPU EvalBackend).
# Pack: .gpu/s10c1b.tar.xz (the two test binaries + libs + the small models); docs-19m comes from call 1's build-w/
# when the machine stayed warm (else its cases fail to load it: read the log).
set -uo pipefail
T0=$(date +%s)
W=$PWD/build-w; mkdir -p $W && tar -xJf .gpu/s10c1b.tar.xz -C $W
source $W/fwd/env.sh
export SLQ_SHARED_DIR=$W/shared
ls $W/shared/models
O=$OUT/r; mkdir -p $O
for b in slq_gpu_eval_test slq_gpu_test; do
  s=$(date +%s); timeout 240 $b --gtest_brief=1 > $O/$b.log 2>&1; echo "$b rc=$? $(( $(date +%s) - s )) s"
  grep -E "^\[  (PASSED|FAILED|SKIPPED)|FAILED|tests ran" $O/$b.log | head -12
done
tar -C $OUT -czf $OUT/s10c1b.tgz r
