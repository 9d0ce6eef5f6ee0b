#!/usr/bin/env bash
# Second device call of session 6: the quantized linears' PDL on by default (GpuWorkspaceOptions::
# linear_pdl). GPU forward/engine tests, decode bench on/off in one call, and serving the
# 8B-shaped 4.25-bit artifact through slq-server (whose engine now uses it). Pack as
# session_run.sh's, with only these binaries, as .gpu/pack3.tar.xz.
set -uo pipefail
T0=$(date +%s)
W=/tmp/w; mkdir -p $W && tar -xJf .gpu/pack3.tar.xz -C $W
source $W/fwd/env.sh
export SLQ_SHARED_DIR=$W/shared
O=$OUT/r; mkdir -p $O
step() { echo "== $1 (t=$(( $(date +%s) - T0 )) s)"; }
step tests
for t in slq_gpu_test slq_inference_gpu_test; do
  timeout 100 $t --gtest_brief=1 > $O/$t.log 2>&1; echo "$t rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED" $O/$t.log | head -6
done
step decode
timeout 50 slq_gpu_decode_bench --configs q4,mix --prompt 16 --tokens 128 --out $O/decode16_on.md > $O/d1.log 2>&1; echo "on rc=$?"
timeout 50 slq_gpu_decode_bench --configs q4,mix --prompt 16 --tokens 128 --no-linear-pdl --out $O/decode16_off.md > $O/d2.log 2>&1; echo "off rc=$?"
grep -E "^\| (q4|mix) " $O/decode16_on.md $O/decode16_off.md | cut -c1-200
step serve
A=/tmp/a8b
make_random_artifact $A --layers 32 --vocab 128256 --bits 4 --group 128 --tokenizer-from $W/tok > $O/make8b.log 2>&1; echo "make rc=$?"
s=$(date +%s.%N)
slq-server --listen 127.0.0.1:17381 --metrics-listen "" --data-dir /tmp/srv --in-process-worker=false \
  --device cuda --kv-cache-bytes 8589934592 --serve-models "$A" > $O/server8b.log 2>&1 &
pid=$!
t=""
for i in $(seq 1 1200); do
  if grep -q "] serving " $O/server8b.log; then t=$(python3 -c "import time; print(round(time.time() - $s, 2))"); break; fi
  kill -0 $pid 2>/dev/null || break; sleep 0.1
done
echo "server start -> serving: ${t:-NOT REACHED} s" | tee $O/serve8b.md
if [ -n "$t" ]; then
  timeout 90 slq_load_gen --address 127.0.0.1:17381 --model a8b --concurrency 1,16,64 --requests 64 \
    --max-tokens 64 --temperature 0 >> $O/serve8b.md 2>> $O/loadgen.log; echo "loadgen rc=$?"
  cat $O/serve8b.md
fi
kill $pid 2>/dev/null; wait $pid 2>/dev/null
step done
tar -C $OUT -czf $OUT/r3.tgz r && rm -rf $O
