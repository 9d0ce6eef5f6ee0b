#!/usr/bin/env bash
# Runs on the GPU machine (device tool). Build and pack here first (the pack stays < 64 MiB):
#   cmake --build build-gpu --target slq_gpu_test slq_inference_gpu_test slq_inference_test \
#       slq_gpu_decode_bench slq-server slq slq_load_gen
#   W=/tmp/gpuw; /work/shared/tools/gpu-bundle $W/fwd <those binaries>; strip --strip-debug $W/fwd/bin/*
#   cp -r ../shared/models/{tinystories-656k,docs-19m,stories260k} $W/shared/models/
#   cp ../shared/data/debian-docs-val-part1.txt $W/shared/data/; cp -r <docs-19m profile cache> $W/profiles
#   tar -C $W -cf - . | xz -T2 > .gpu/pack.tar.xz          # then carry .gpu/pack.tar.xz
# There: mkdir -p /tmp/w && tar -xJf .gpu/pack.tar.xz -C /tmp/w && bash bench/gpu/run_on_gpu.sh
# Usage: bash bench/gpu/run_on_gpu.sh [test|bench|serve|all]...   (default: all)
# Logs and results go to $OUT (tests.log, decode.md, serve.md, server and quantize logs).
set -uo pipefail
W=${W:-/tmp/w}
source $W/fwd/env.sh
OUT=${OUT:-/tmp/slq-out}
mkdir -p "$OUT"
export SLQ_SHARED_DIR=$W/shared
steps=${*:-all}
want() { [[ " $steps " == *" $1 "* || " $steps " == *" all "* ]]; }
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv | tee "$OUT/nvidia-smi.txt"
rc=0
if want test; then
  for t in slq_gpu_test slq_inference_gpu_test; do
    echo "== $t" >> "$OUT/tests.log"
    $t --gtest_brief=0 >> "$OUT/tests.log" 2>&1 || rc=1
  done
  echo "== slq_inference_test (Engine.*)" >> "$OUT/tests.log"
  slq_inference_test --gtest_brief=1 --gtest_filter='Engine.*' >> "$OUT/tests.log" 2>&1 || rc=1
  grep -E "^\[  (PASSED|FAILED) |^  (rows|teacher|first-16|backend)|FAILED|^\[  SKIPPED|Failure" "$OUT/tests.log" | head -80
fi
if want bench; then
  slq_gpu_decode_bench --tokens 128 --prompt 16 --out "$OUT/decode.md" 2> "$OUT/decode.log" || rc=1
  cat "$OUT/decode.md"
fi
if want serve; then
  data=/tmp/slq-serve
  rm -rf $data && mkdir -p $data
  # The SLQ artifact of docs-19m: carried in $W/docs19m-slq, else made here (profiles cached:
  # only search + held-out verification run).
  [ -d $W/docs19m-slq ] || ( time timeout 300 slq quantize $W/shared/models/docs-19m --data $W/shared/data/debian-docs-val-part1.txt \
      --formats 2..8 --target 'ear>=0.99' --profile-cache $W/profiles --out $W/docs19m-slq ) 2>&1 \
      | tr '\r' '\n' | grep -v '%$' > "$OUT/quantize.log"
  [ -f "$OUT/quantize.log" ] && tail -8 "$OUT/quantize.log"
  port=17373
  slq-server --listen 127.0.0.1:$port --metrics-listen "" --data-dir $data/data \
    --allowed-roots "$W" --in-process-worker=false --device cuda --kv-cache-bytes 1073741824 \
    --serve-models "file://$W/shared/models/docs-19m,$W/docs19m-slq" > "$OUT/server.log" 2>&1 &
  spid=$!
  for i in $(seq 1 120); do grep -q "serving docs19m-slq" "$OUT/server.log" && break; sleep 0.5; done
  grep -E "serving|device|error" "$OUT/server.log" | head
  {
    echo "# slq-server --device cuda, docs-19m base vs SLQ artifact"
    for m in docs-19m docs19m-slq; do
      echo; echo "## $m"; echo
      slq_load_gen --address 127.0.0.1:$port --model $m --concurrency 1,4,16,64 --requests 64 \
        --max-tokens 64 --temperature 0.8 2>> "$OUT/loadgen.log" || rc=1
    done
  } > "$OUT/serve.md"
  kill $spid; wait $spid 2>/dev/null
  cat "$OUT/serve.md"
fi
exit $rc
