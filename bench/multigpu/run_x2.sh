#!/usr/bin/env bash
# Issue #10 on a 2-GPU host (device kind nvidia-h200-x2): slq-server with its inference engine on
# GPU 1 (--device cuda), one or two slq-worker processes (CUDA_VISIBLE_DEVICES=0 and 1), two
# quantization jobs of the real models; the same jobs with 1 worker and with 2 workers, each on
# a fresh server (no shared profile cache), and the served model's TTFT/ITL idle vs while the
# two workers quantize.
#
# Build and pack here (the pack stays < 64 MiB):
#   cmake --build build-gpu --target slq-server slq-worker slqctl slq_load_gen
#   W=/tmp/mgw; rm -rf $W; /work/shared/tools/gpu-bundle $W/mg build-gpu/server/main/slq-server \
#     build-gpu/server/main/slq-worker build-gpu/client/slqctl build-gpu/bench/inference/slq_load_gen
#   strip --strip-debug $W/mg/bin/*; mkdir -p $W/shared/models $W/shared/data
#   cp -r ../shared/models/{tinystories-656k,docs-19m} $W/shared/models/
#   cp ../shared/data/{debian-docs-val-part1.txt,tinystories-valid-part1.txt} $W/shared/data/
#   tar -C $W -cf - . | xz -T2 > .gpu/mg.tar.xz                # carry .gpu/mg.tar.xz
# There: mkdir -p /tmp/w && tar -xJf .gpu/mg.tar.xz -C /tmp/w && bash bench/multigpu/run_x2.sh
#
# What this does NOT show: the workers' profiling runs on the CPU (each worker gets half the
# host's cores, SLQ_THREADS); GPU profiling in the workers is not implemented yet (issue #7), so
# the 2-worker speed-up here is CPU fan-out, not GPU fan-out.
set -uo pipefail
W=${W:-/tmp/w}
source "$W/mg/env.sh"
OUT=${OUT:-/tmp/slq-out}
mkdir -p "$OUT"
M=$W/shared/models
D=$W/shared/data
DEVICE=${DEVICE:-cuda}   # DEVICE=cpu: a dry run of the script on a machine without GPUs
BIG=${BIG:-docs-19m}      # the first job's model (BIG=tinystories-656k for a quick dry run)
ncpu=$(nproc)
half=$((ncpu / 2))
nvidia-smi --query-gpu=index,name,memory.total --format=csv | tee "$OUT/nvidia-smi.txt" || true
echo "host: $ncpu CPUs; each worker SLQ_THREADS=$half"
tok=$(mktemp); head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$tok"
export SLQ_TOKEN_FILE=$tok
now() { date +%s.%N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# phase TAG NWORKERS SERVE: fresh server + NWORKERS workers, submit the two jobs, wait.
phase() {
  local tag=$1 nw=$2 serve=$3 port mport
  port=$(free_port); mport=$(free_port)
  local METRICS=127.0.0.1:$mport
  [ "${NO_METRICS:-0}" = 1 ] && METRICS=""
  local data=/tmp/mg-$tag
  rm -rf "$data"; mkdir -p "$data"
  export SLQ_SERVER=127.0.0.1:$port
  CUDA_VISIBLE_DEVICES=1 slq-server --listen 127.0.0.1:$port --metrics-listen "$METRICS" \
    --data-dir "$data/data" --auth-token-file "$tok" --allowed-roots "$W" --text-dir "$D" \
    --in-process-worker=false --device "$DEVICE" --kv-cache-bytes 1073741824 \
    --serve-models "file://$M/docs-19m" > "$OUT/$tag-server.log" 2>&1 &
  local spid=$!
  for _ in $(seq 200); do slqctl health > /dev/null 2>&1 && break; sleep 0.2; done
  slqctl health > /dev/null 2>&1 || { echo "$tag: server did not start:"; tail -5 "$OUT/$tag-server.log"; return 1; }
  for _ in $(seq 100); do grep -q "serving" "$OUT/$tag-server.log" && break; sleep 0.2; done
  local wp=()
  for i in $(seq 0 $((nw - 1))); do
    CUDA_VISIBLE_DEVICES=$i SLQ_THREADS=$half slq-worker --server 127.0.0.1:$port \
      --auth-token-file "$tok" --device "cuda:$i" --name "gpu$i" --allowed-roots "$W" \
      --text-dir "$D" --model-cache-dir "$data/wcache$i" > "$OUT/$tag-worker$i.log" 2>&1 &
    wp+=($!)
  done
  if [ "$serve" = 1 ]; then
    echo "## $tag: serving docs-19m on GPU 1, idle (no job running)" >> "$OUT/serve.md"
    slq_load_gen --address 127.0.0.1:$port --token-file "$tok" --model docs-19m --concurrency 1,8 --requests 32 \
      --max-tokens 64 --temperature 0.8 >> "$OUT/serve.md" 2>> "$OUT/loadgen.log"
  fi
  local t0; t0=$(now)
  local j1 j2
  j1=$(slqctl --json submit "file://$M/$BIG" --target 'ear>=0.99' --formats 4-5-6-7-8 \
    --calibration debian-docs | python3 -c 'import json,sys; print(json.load(sys.stdin)["job"]["id"])')
  j2=$(slqctl --json submit "file://$M/tinystories-656k" --target 'ear>=0.98' --formats 4-5-6-7-8 \
    --calibration tinystories | python3 -c 'import json,sys; print(json.load(sys.stdin)["job"]["id"])')
  echo "$tag: jobs $j1 (docs-19m) $j2 (tinystories-656k)"
  if [ "$serve" = 1 ]; then
    sleep 2  # let profiling start
    echo "## $tag: serving docs-19m on GPU 1 while $nw workers quantize" >> "$OUT/serve.md"
    slq_load_gen --address 127.0.0.1:$port --token-file "$tok" --model docs-19m --concurrency 1,8 --requests 32 \
      --max-tokens 64 --temperature 0.8 >> "$OUT/serve.md" 2>> "$OUT/loadgen.log"
    slqctl get "$j1" | grep -iE "state|stage" | head -2 >> "$OUT/serve.md"
  fi
  slqctl watch "$j1" > "$OUT/$tag-job1.log" 2>&1; local r1=$?
  local t1; t1=$(now)
  slqctl watch "$j2" > "$OUT/$tag-job2.log" 2>&1; local r2=$?
  local t2; t2=$(now)
  echo "$tag: docs-19m job exit $r1, tinystories job exit $r2" | tee -a "$OUT/summary.txt"
  python3 -c "print('$tag: workers=$nw  both jobs done in %.1f s (docs-19m %.1f s)' % ($t2-$t0, $t1-$t0))" \
    | tee -a "$OUT/summary.txt"
  for i in $(seq 0 $((nw - 1))); do
    echo "$tag: worker gpu$i tasks by kind: $(grep -oE 'task [^ ]+ \(([a-z]+)\)' "$OUT/$tag-worker$i.log" \
      | sed -E 's/.*\((.*)\)/\1/' | sort | uniq -c | tr '\n' ' ')" | tee -a "$OUT/summary.txt"
    echo "$tag: worker gpu$i docs-19m profile tasks: $(grep "job $j1" "$OUT/$tag-worker$i.log" \
      | grep -c '(profile)')" | tee -a "$OUT/summary.txt"
  done
  slqctl get "$j1" | grep -iE "bits|ear|met" | head -6 >> "$OUT/summary.txt"
  [ -n "$METRICS" ] && curl -s "$METRICS/metrics" | grep -E '^slq_(job_stage_duration_seconds_sum|time_to_first_token_seconds_(sum|count))' \
    > "$OUT/$tag-metrics.txt" || true
  kill "${wp[@]}" 2>/dev/null; kill "$spid" 2>/dev/null; wait 2>/dev/null
}

phase one-worker 1 0
phase two-workers 2 1
cat "$OUT/summary.txt"
echo; cat "$OUT/serve.md"
