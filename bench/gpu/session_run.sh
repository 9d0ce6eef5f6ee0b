#!/usr/bin/env bash
# One device call that checks and measures a build of main on the GPU machine, in priority order
# (each step has its own time limit; later steps are skipped when the call's time runs short):
#   1. GPU tests (kernels, forward, attention/argmax ops, GPU eval, inference engine)
#   2. end-to-end decode (slq_gpu_decode_bench: bf16 / q4 / mix; PDL of the linears off and on;
#      16 and 2048 tokens of context)
#   3. kernel bench (--quick: every width at batch 1-4 + the layer graph; --sweep for 4/8 bits)
#   4. an 8B-shaped 4.25-bit artifact: written there, slq-server start -> serving, the load
#      stages (slq_load_bench), then slq_load_gen at concurrency 1, 16, 64 against it
# Pack (here): binaries of those steps + their library closure (../shared/tools/gpu-bundle),
# tinystories-656k, stories260k, docs-19m, the two texts, docs-19m's tokenizer files, as
# .gpu/pack2.tar.xz (xz with a dictionary larger than one binary, so the identical kernel
# fatbins of the binaries compress once). There: bash bench/gpu/session_run.sh
set -uo pipefail
T0=$(date +%s)
W=/tmp/w; mkdir -p $W && tar -xJf .gpu/pack2.tar.xz -C $W
source $W/fwd/env.sh
export SLQ_SHARED_DIR=$W/shared
O=$OUT/r; mkdir -p $O
left() { echo $(( ${BUDGET:-540} - ($(date +%s) - T0) )); }
step() { echo "== $1 (t=$(( $(date +%s) - T0 )) s)"; }
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv > $O/nvidia-smi.txt
nproc >> $O/nvidia-smi.txt
step tests
for t in slq_kernels_gpu_test slq_gpu_test slq_gpu_ops_test slq_gpu_eval_test slq_inference_gpu_test; do
  timeout 120 $t --gtest_brief=1 > $O/$t.log 2>&1; echo "$t rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED|SKIPPED \]" $O/$t.log | head -6
done
step decode
timeout 60 slq_gpu_decode_bench --configs bf16,q4,mix --prompt 16 --tokens 128 --out $O/decode16.md > $O/decode16.log 2>&1; echo "decode16 rc=$?"
timeout 60 slq_gpu_decode_bench --configs bf16,q4,mix --prompt 16 --tokens 128 --linear-pdl --out $O/decode16_lpdl.md > $O/decode16_lpdl.log 2>&1; echo "decode16 linear-pdl rc=$?"
timeout 60 slq_gpu_decode_bench --configs q4,mix --prompt 2048 --tokens 128 --linear-pdl --out $O/decode2048_lpdl.md > $O/decode2048_lpdl.log 2>&1; echo "decode2048 rc=$?"
grep -E "^\| (bf16|q4|mix) " $O/decode16.md $O/decode16_lpdl.md $O/decode2048_lpdl.md | cut -c1-220
step kbench
[ $(left) -gt 300 ] && { timeout 80 slq_kernel_bench --quick --out $O/kbench_quick.md > $O/kbench_quick.log 2>&1; echo "kbench quick rc=$?"; }
[ $(left) -gt 240 ] && { timeout 100 slq_kernel_bench --sweep --sweep-bits 48 --out $O/kbench_sweep.md > $O/kbench_sweep.log 2>&1; echo "kbench sweep rc=$?"; }
step artifact
A=/tmp/a8b
if [ $(left) -gt 120 ]; then
  ( time make_random_artifact $A --layers 32 --vocab 128256 --bits 4 --group 128 --tokenizer-from $W/tok ) > $O/make8b.log 2>&1; echo "make rc=$?"; du -sh $A | tee -a $O/make8b.log
  s=$(date +%s.%N)
  slq-server --listen 127.0.0.1:17381 --metrics-listen "" --data-dir /tmp/srv --in-process-worker=false \
    --device cuda --kv-cache-bytes 8589934592 --serve-models "$A" > $O/server8b.log 2>&1 &
  pid=$!
  t=""
  for i in $(seq 1 1500); do
    if grep -q "] serving " $O/server8b.log; then t=$(python3 -c "import time; print(round(time.time() - $s, 2))"); break; fi
    kill -0 $pid 2>/dev/null || break; sleep 0.1
  done
  echo "server start -> serving: ${t:-NOT REACHED} s" | tee $O/serve8b.md
  grep -E "serving|rror" $O/server8b.log | head -5
  if [ -n "$t" ] && [ $(left) -gt 50 ]; then
    model=$(grep -o "] serving [^ ]* (" $O/server8b.log | head -1 | awk '{print $3}')
    timeout $(( $(left) - 25 )) slq_load_gen --address 127.0.0.1:17381 --model "$model" --concurrency 1,16,64 --requests 64 \
      --max-tokens 64 --temperature 0 >> $O/serve8b.md 2>> $O/loadgen.log; echo "loadgen rc=$?"
    cat $O/serve8b.md
  fi
  kill $pid 2>/dev/null; wait $pid 2>/dev/null
  [ $(left) -gt 30 ] && timeout $(( $(left) - 15 )) slq_load_bench $A --threads 16 > $O/loadbench16.log 2>&1; echo "loadbench rc=$?"; tail -12 $O/loadbench16.log
fi
step done
tar -C $OUT -czf $OUT/r2.tgz r && rm -rf $O
