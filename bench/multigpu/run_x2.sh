#!/usr/bin/env bash
# Issue #10 on a 2-GPU host (device kind nvidia-h200-x2): slq-server with its inference engine on
# GPU 1 (--device cuda), one or two slq-worker processes that profile and verify on their GPU
# (--device cuda, CUDA_VISIBLE_DEVICES=0 / 1), and three quantization jobs: two of an 8B-shaped
# model (Llama-3-8B transformer blocks, random weights, docs-19m's tokenizer; made here by
# bench/gpu/make_random_llama.py) and one of tinystories-656k. Phase "one-worker": 1 worker on
# GPU 0 while the server streams docs-19m on GPU 1 (TTFT/ITL idle vs during quantization).
# Phase "two-workers": the same jobs on a fresh server with 2 workers (profile tasks fan out).
#
# Build and pack here (the pack stays < 64 MiB):
#   cmake --build build-gpu --target slq-server slq-worker slqctl slq_load_gen
#   W=/tmp/mgw; rm -rf $W; /work/shared/tools/gpu-bundle $W/mg build-gpu/server/main/slq-server \
#     build-gpu/server/main/slq-worker build-gpu/client/slqctl build-gpu/bench/inference/slq_load_gen
#   strip --strip-debug $W/mg/bin/*; mkdir -p $W/shared/models $W/shared/data
#   cp -r ../shared/models/{tinystories-656k,docs-19m} $W/shared/models/
#   cp ../shared/data/{debian-docs-val-part1.txt,tinystories-valid-part1.txt} $W/shared/data/
#   tar -C $W -cf - . | xz -T2 > .gpu/mg.tar.xz                # carry .gpu/mg.tar.xz
# There: mkdir -p /tmp/w && tar -xJf .gpu/mg.tar.xz -C /tmp/w && bash bench/multigpu/run_x2.sh [PHASES]
# PHASES: one-worker two-workers (default both; each fits one 10-minute device command).
# Env: JOBS (default ABC; A alone times one job's stages), SERVE (0: no streaming in phase
# one-worker), FORMATS (default 4,8), TARGET_A (job A's target, default ear>=0.99), DEVICE (cuda; cpu = a dry run without GPUs), BIG (the 8B model
# folder; default $W/m8b, made when missing), LAYERS (of the made model; default 32).
set -uo pipefail
W=${W:-/tmp/w}
source "$W/mg/env.sh"
OUT=${OUT:-/tmp/slq-out}
mkdir -p "$OUT"
M=$W/shared/models
D=$W/shared/data
DEVICE=${DEVICE:-cuda}
FORMATS=${FORMATS:-4,8}
BIG=${BIG:-$W/m8b}
phases=${*:-one-worker two-workers}
TARGET_A=${TARGET_A:-ear>=0.99}
JOBS=${JOBS:-ABC}  # A: 8B-shaped ear>=0.99; B: 8B-shaped bits<=5; C: tinystories-656k
ncpu=$(nproc)
half=$((ncpu / 2))
nvidia-smi --query-gpu=index,name,memory.total --format=csv | tee "$OUT/nvidia-smi.txt" || true
echo "host: $ncpu CPUs, $(free -g | awk '/Mem:/ {print $2}') GiB; each worker SLQ_THREADS=$half" | tee -a "$OUT/summary.txt"
if [ ! -f "$BIG/config.json" ]; then
  python3 bench/gpu/make_random_llama.py "$BIG" --tokenizer-from "$M/docs-19m" --layers "${LAYERS:-32}" \
    2>&1 | tee -a "$OUT/summary.txt"
fi
tok=$(mktemp); head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$tok"
export SLQ_TOKEN_FILE=$tok
now() { date +%s.%N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# Reads `slqctl --json watch` lines on stdin; writes "<unix time> <line>".
stamp() { python3 -u -c 'import sys, time
for l in sys.stdin: print("%.3f %s" % (time.time(), l.rstrip()), flush=True)'; }
# Seconds per stage of a job from its stamped watch log.
stages() { python3 - "$1" <<'PY'
import json, sys
first = {}
for line in open(sys.argv[1]):
    t, _, js = line.partition(" ")
    try:
        ev = json.loads(js)
    except Exception:
        continue
    st = ev.get("stage", "")
    first.setdefault(st, float(t))
    last = (float(t), ev.get("state", ""))
order = sorted(first.items(), key=lambda kv: kv[1])
out = []
for i, (st, t) in enumerate(order):
    end = order[i + 1][1] if i + 1 < len(order) else last[0]
    out.append("%s %.1f s" % (st.replace("JOB_STAGE_", "").lower(), end - t))
print(", ".join(out), "| final", last[1])
PY
}

# loadgen WHAT: streams docs-19m from the server (GPU 1) at concurrency 1 and 8 ($REQUESTS requests
# each) and appends the table to serve.md, with both GPUs' utilization sampled every 200 ms.
REQUESTS=${REQUESTS:-128}
loadgen() {
  echo "## $tag: serving docs-19m on GPU 1, $1" >> "$OUT/serve.md"
  local util=$OUT/$tag-util-${1%% *}.csv
  nvidia-smi --query-gpu=index,utilization.gpu --format=csv,noheader,nounits -lms 200 > "$util" 2>/dev/null &
  local smi=$!
  slq_load_gen --address "$SLQ_SERVER" --token-file "$tok" --model docs-19m --concurrency 1,8 \
    --requests "$REQUESTS" --max-tokens 64 --temperature 0.8 >> "$OUT/serve.md" 2>> "$OUT/loadgen.log"
  kill "$smi" 2>/dev/null; wait "$smi" 2>/dev/null
  python3 - "$util" >> "$OUT/serve.md" <<'PY'
import sys
u = {}
for line in open(sys.argv[1]):
    p = [x.strip() for x in line.split(",")]
    if len(p) == 2 and p[1].isdigit():
        u.setdefault(p[0], []).append(int(p[1]))
print("GPU utilization during the streams (nvidia-smi, 200 ms samples): " + "; ".join(
    "GPU %s mean %.0f%% min %d%% (%d samples)" % (g, sum(v) / len(v), min(v), len(v)) for g, v in sorted(u.items())))
PY
}

# phase TAG NWORKERS SERVE
phase() {
  local tag=$1 nw=$2 serve=$3 port mport
  port=$(free_port); mport=$(free_port)
  local METRICS=127.0.0.1:$mport
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
      --auth-token-file "$tok" --device "$DEVICE" --name "gpu$i" --allowed-roots "$W" \
      --text-dir "$D" --model-cache-dir "$data/wcache$i" > "$OUT/$tag-worker$i.log" 2>&1 &
    wp+=($!)
  done
  if [ "$serve" = 1 ]; then
    loadgen "idle (no job running)"
  fi
  local t0; t0=$(now)
  local ja jb="" jc=""
  submit() { slqctl --json submit "$@" | python3 -c 'import json,sys; print(json.load(sys.stdin)["job"]["id"])'; }
  ja=$(submit "file://$BIG" --target "$TARGET_A" --formats "$FORMATS" --calibration debian-docs)
  [[ $JOBS == *B* ]] && jb=$(submit "file://$BIG" --target 'bits<=5' --formats "$FORMATS" --calibration debian-docs)
  [[ $JOBS == *C* ]] && jc=$(submit "file://$M/tinystories-656k" --target 'ear>=0.98' --formats 4-5-6-7-8 --calibration tinystories)
  echo "$tag: jobs A=$ja (8B-shaped, $TARGET_A) B=${jb:-} (8B-shaped, bits<=5) C=${jc:-} (tinystories-656k)" | tee -a "$OUT/summary.txt"
  local pids=() sel=(A:$ja)
  [ -n "${jb:-}" ] && sel+=(B:$jb)
  [ -n "${jc:-}" ] && sel+=(C:$jc)
  for j in "${sel[@]}"; do
    (slqctl --json watch "${j#*:}" 2>&1 | stamp > "$OUT/$tag-job${j%%:*}.log") &
    pids+=($!)
  done
  if [ "$serve" = 1 ]; then
    # Stream while the worker computes on GPU 0: job A has profiled its first layer (the session
    # is open: model loaded, mirror uploaded) AND GPU 0 is busy.
    for _ in $(seq 300); do grep -q '"1/[0-9]* layer groups profiled' "$OUT/$tag-jobA.log" 2>/dev/null && break; sleep 1; done
    for _ in $(seq 300); do
      command -v nvidia-smi > /dev/null || break  # a CPU dry run
      u=$(nvidia-smi -i 0 --query-gpu=utilization.gpu --format=csv,noheader,nounits 2>/dev/null | tr -d ' ')
      [ "${u:-0}" -ge 20 ] 2>/dev/null && break
      sleep 1
    done
    echo "(job A before: $(tail -1 "$OUT/$tag-jobA.log" | cut -c1-170))" >> "$OUT/serve.md"
    loadgen "while $nw worker(s) quantize on GPU 0"
    echo "(job A after: $(tail -1 "$OUT/$tag-jobA.log" | cut -c1-170))" >> "$OUT/serve.md"
  fi
  wait "${pids[@]}"
  local t1; t1=$(now)
  python3 -c "print('$tag: workers=$nw  all jobs ($JOBS, formats $FORMATS) done in %.1f s' % ($t1-$t0))" | tee -a "$OUT/summary.txt"
  for j in "${sel[@]}"; do j=${j%%:*}; echo "$tag: job $j: $(stages "$OUT/$tag-job$j.log")" | tee -a "$OUT/summary.txt"; done
  for i in $(seq 0 $((nw - 1))); do
    echo "$tag: worker gpu$i: $(grep -m1 -o 'evaluations on [^)]*' "$OUT/$tag-worker$i.log"); tasks by kind: $(grep -oE 'task [^ ]+ \(([a-z]+)\)' "$OUT/$tag-worker$i.log" \
      | sed -E 's/.*\((.*)\)/\1/' | sort | uniq -c | tr '\n' ' ')" | tee -a "$OUT/summary.txt"
    echo "$tag: worker gpu$i job A profile tasks: $(grep "job $ja" "$OUT/$tag-worker$i.log" | grep -c '(profile)')" \
      | tee -a "$OUT/summary.txt"
  done
  for j in $ja ${jb:-} ${jc:-}; do slqctl get "$j" | grep -iE "state|bits|ear|kl |status" | head -6 >> "$OUT/summary.txt"; done
  env -u LD_LIBRARY_PATH curl -s "$METRICS/metrics" | grep -E '^slq_(job_stage_duration_seconds_sum|time_to_first_token_seconds_(sum|count))' \
    > "$OUT/$tag-metrics.txt" || true
  kill "${wp[@]}" 2>/dev/null; kill "$spid" 2>/dev/null; wait 2>/dev/null
}

for p in $phases; do
  case $p in
    one-worker) phase one-worker 1 "${SERVE:-1}" ;;
    two-workers) phase two-workers 2 0 ;;
  esac
done
cat "$OUT/summary.txt"
if [ -f "$OUT/serve.md" ]; then echo; cat "$OUT/serve.md"; fi
