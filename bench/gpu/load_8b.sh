#!/usr/bin/env bash
# Runs on the GPU machine: how long an 8B-shaped 4.25-bit artifact takes from `slq-server
# --device cuda` start to "serving", and where the time goes (slq_load_bench's stages).
# The artifact (Llama-3-8B shapes, random codes at 4 bits g128 asymmetric, fp16 embeddings and
# LM head) is written there by make_random_artifact through the real artifact writer.
#
# Build and bundle here (CUDA build), then carry the bundle folder:
#   cmake --build build --target make_random_artifact slq_load_bench slq-server slq_gpu_test
#   B=/work/main/.gpu/load8b; /work/shared/tools/gpu-bundle $B/b build/bench/inference/make_random_artifact \
#     build/bench/inference/slq_load_bench build/server/main/slq-server build/server/quant/slq_gpu_test
#   strip --strip-debug $B/b/bin/*; mkdir -p $B/tok $B/shared/models && cp /work/shared/models/docs-19m/tokenizer*.json $B/tok/
#   cp -r /work/shared/models/{tinystories-656k,stories260k} $B/shared/models/   # for slq_gpu_test (docs-19m tests skipped)
# There (run with carry [".gpu/load8b"]):
#   B=.gpu/load8b bash bench/gpu/load_8b.sh [LAYERS] [VOCAB] [BITS]     (default 32 128256 4)
# Writes $OUT/load8b.log (summary), $OUT/server8b-*.log, $OUT/gpu_test.log.
set -uo pipefail
B=${B:-.gpu/load8b}
B=$(cd "$B" && pwd)
source "$B/b/env.sh"
OUT=${OUT:-/tmp/slq-out}
mkdir -p "$OUT"
layers=${1:-32}
vocab=${2:-128256}
bits=${3:-4}
A=/tmp/slq-load8b/artifact
log="$OUT/load8b.log"
rm -rf /tmp/slq-load8b && mkdir -p /tmp/slq-load8b
{
  echo "# load_8b.sh: layers $layers vocab $vocab bits $bits; $(nproc) cores; $(date -u)"
  free -g | head -2
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  grep -m1 "model name" /proc/cpuinfo
} > "$log"

s=$(date +%s.%N)
make_random_artifact "$A" --layers "$layers" --vocab "$vocab" --bits "$bits" --group 128 --tokenizer-from "$B/tok" >> "$log" 2>&1 \
  || { echo "make_random_artifact failed" | tee -a "$log"; exit 1; }
echo "artifact written in $(python3 -c "import time; print(round(time.time() - $s, 1))") s; $(du -sh $A | cut -f1)" >> "$log"

# Start to "serving": twice (the artifact was just written, so its pages are cached both times).
rc=0
for run in 1 2; do
  data=/tmp/slq-load8b/data-$run
  s=$(date +%s.%N)
  slq-server --listen 127.0.0.1:1738$run --metrics-listen "" --data-dir $data --in-process-worker=false \
    --device cuda --kv-cache-bytes 1073741824 --serve-models "$A" > "$OUT/server8b-$run.log" 2>&1 &
  pid=$!
  t=""
  for i in $(seq 1 3000); do  # up to 300 s
    if grep -q "serving artifact" "$OUT/server8b-$run.log"; then t=$(python3 -c "import time; print(round(time.time() - $s, 2))"); break; fi
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
  done
  listen=$(grep -c "listening" "$OUT/server8b-$run.log")
  echo "server run $run: start -> 'serving' ${t:-NOT REACHED} s (listening lines: $listen)" >> "$log"
  [ -n "$t" ] || rc=1
  kill $pid 2>/dev/null; wait $pid 2>/dev/null
done
grep -E "serving|error|Error" "$OUT/server8b-1.log" | head -5 >> "$log"

# Stage by stage, on 16 threads and on 1.
slq_load_bench "$A" --threads 16 --repeat 2 >> "$log" 2>&1 || rc=1
slq_load_bench "$A" --threads 1 >> "$log" 2>&1 || rc=1

# The upload path's correctness (Upload vs the CPU forward; the tests on docs-19m are left out:
# it is not carried).
SLQ_SHARED_DIR=$B/shared slq_gpu_test --gtest_brief=1 \
  --gtest_filter='-*docs19m*:GpuForward.Bf16ActivationsMatchCpu:GpuForward.GraphsAreCapturedForRepeatedDecodeShapes:GpuForward.TeacherForcedLogitsMatchCpu' \
  > "$OUT/gpu_test.log" 2>&1 || rc=1
grep -E "^\[  (PASSED|FAILED)|FAILED" "$OUT/gpu_test.log" | head -20 >> "$log"
rm -rf /tmp/slq-load8b
cat "$log"
exit $rc
