#!/usr/bin/env bash
# [C] benchmark: submit-to-done latency of the job service vs the offline CLI on the same job,
# and job throughput with 1 vs 2 slq-worker processes. Prints a markdown report.
#   bench/jobs/service_overhead.sh [BUILD_DIR] [MODEL] [DATA]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
shared=$(cd ../shared && pwd)
model=${2:-tinystories-656k}
data=${3:-tinystories}
declare -A files=([tinystories]=tinystories-valid-part1.txt [wikitext2]=wikitext-2-raw-test.txt [debian-docs]=debian-docs-val-part1.txt)
target='ear>=0.99'
formats=4-8
state=$(mktemp -d /tmp/slq-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$state"' EXIT
ctl() { "$build/client/slqctl" "$@"; }
now() { date +%s.%N; }

# 1. Offline CLI.
t0=$(now)
"$build/server/main/slq" quantize "$shared/models/$model" --data "$shared/data/${files[$data]}" \
  --target "$target" --formats "$formats" --json > "$state/offline.json" || true
t_cli=$(echo "$(now) - $t0" | bc)

start_server() {  # start_server WORKERS: in-process worker when 0 external workers
  local workers=$1 port; port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  rm -rf "$state/data"
  local inproc=true; [ "$workers" -gt 0 ] && inproc=false
  "$build/server/main/slq-server" --listen "127.0.0.1:$port" --metrics-listen "" --data-dir "$state/data" \
    --allowed-roots "$shared" --text-dir "$shared/data" --in-process-worker=$inproc --log-level warn \
    > "$state/server.log" 2>&1 &
  export SLQ_SERVER=127.0.0.1:$port
  for _ in $(seq 100); do ctl health >/dev/null 2>&1 && break; sleep 0.1; done
  for i in $(seq "$workers"); do
    "$build/server/main/slq-worker" --server "127.0.0.1:$port" --name "w$i" --allowed-roots "$shared" \
      --text-dir "$shared/data" --model-cache-dir "$state/wcache" --log-level warn > "$state/w$i.log" 2>&1 &
  done
}
stop_all() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; }
run_jobs() {  # run_jobs N: submit N jobs (distinct seeds), wait for all; prints seconds
  local n=$1 ids=() t0; t0=$(now)
  for i in $(seq "$n"); do
    ids+=("$(ctl --json submit "file://$shared/models/$model" --target "$target" --formats "$formats" \
      --calibration "$data" --seed "$((1000 + i))" | python3 -c 'import json,sys; print(json.load(sys.stdin)["job"]["id"])')")
  done
  for id in "${ids[@]}"; do ctl watch "$id" > /dev/null || true; done
  echo "$(now) - $t0" | bc
}

# 2. The same job through the service (in-process worker).
start_server 0
t_svc=$(run_jobs 1)
stop_all

# 3. Throughput: 4 jobs with 1 and with 2 external workers.
start_server 1; t_w1=$(run_jobs 4); stop_all
start_server 2; t_w2=$(run_jobs 4); stop_all

cat <<MD
| measurement | seconds |
|---|---|
| offline \`slq quantize\` ($model, $target, $formats) | $(printf %.2f "$t_cli") |
| same job via slq-server (submit -> SUCCEEDED, in-process worker) | $(printf %.2f "$t_svc") |
| service overhead | $(printf %.2f "$(echo "$t_svc - $t_cli" | bc)") ($(printf %.1f "$(echo "100 * ($t_svc - $t_cli) / $t_cli" | bc -l)")%) |
| 4 jobs, 1 slq-worker | $(printf %.2f "$t_w1") |
| 4 jobs, 2 slq-workers | $(printf %.2f "$t_w2") (speed-up $(printf %.2f "$(echo "$t_w1 / $t_w2" | bc -l)")x) |
MD
