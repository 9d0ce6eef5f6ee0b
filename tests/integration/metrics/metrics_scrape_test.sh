#!/usr/bin/env bash
# /metrics of the real binaries of this build: slq-server and slq-worker each started with
# --metrics-listen on a free loopback port, then scraped with curl. Guards against a build
# (e.g. CUDA-enabled: cuBLAS linked at load time made civetweb's thread creation fail) whose
# binaries start but cannot serve /metrics.
source "$(dirname "$0")/../lib.sh"

# scrape NAME PORT PID OUT: polls http://127.0.0.1:PORT/metrics until it answers or PID exits.
scrape() {
  local name=$1 port=$2 pid=$3 out=$4
  for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$port/metrics" > "$out" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { echo "$name exited before serving /metrics"; return 1; }
    sleep 0.1
  done
  echo "$name did not serve /metrics within 10 s"; return 1
}

start_server --in-process-worker=false --device cpu
check "slq-server serves /metrics" scrape slq-server "$METRICS_PORT" "$SERVER_PID" "$STATE/server.metrics"
check "slq-server /metrics has the job gauges" grep -q '^# TYPE slq_jobs gauge' "$STATE/server.metrics"
check "slq-server /metrics has the queue depth" grep -q '^slq_task_queue_depth ' "$STATE/server.metrics"

WORKER_METRICS_PORT=$(free_port)
"$WORKER_BIN" --server "127.0.0.1:$PORT" --auth-token-file "$STATE/token" --device cpu --model-cache-dir "$STATE/models" \
  --metrics-listen "127.0.0.1:$WORKER_METRICS_PORT" >> "$STATE/worker.log" 2>&1 &
WORKER_PID=$!
PIDS+=("$WORKER_PID")
check "slq-worker serves /metrics" scrape slq-worker "$WORKER_METRICS_PORT" "$WORKER_PID" "$STATE/worker.metrics"
check "slq-worker /metrics is Prometheus text" grep -q '^# TYPE ' "$STATE/worker.metrics"

if [ "$FAILED" -ne 0 ]; then
  echo "--- server log"; tail -20 "$STATE/server.log"
  echo "--- worker log"; tail -20 "$STATE/worker.log" 2>/dev/null || true
fi
summary
