#!/usr/bin/env bash
# The main job end to end on the embedded defaults (README command 1):
#   start slq-server (SQLite store, in-process worker, auth token, /metrics),
#   quantize ../shared/models/tinystories-656k to EAR >= 0.99 over formats 4-5-6-7-8,
#   show the fidelity certificate, load the artifact and the base model,
#   stream a generation from each, and show the Prometheus metrics.
# Installs what is missing and builds first. Idempotent: every run uses a fresh state dir.
# Environment: SLQ_DEMO_MODEL (default tinystories-656k), SLQ_DEMO_TARGET (ear>=0.98),
# SLQ_DEMO_FORMATS (4-5-6-7-8), SLQ_DEMO_DATA (tinystories), SLQ_DEMO_KEEP=1 keeps the server.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
shared=$(cd "$root/../shared" 2>/dev/null && pwd) || {
  echo "demo: ../shared (models and texts) not found next to the repository" >&2; exit 1; }
model=${SLQ_DEMO_MODEL:-tinystories-656k}
target=${SLQ_DEMO_TARGET:-ear>=0.98}
formats=${SLQ_DEMO_FORMATS:-4-5-6-7-8}
data=${SLQ_DEMO_DATA:-tinystories}

build=${SLQ_BUILD_DIR:-build}
bash scripts/install-deps.sh
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)" --target slq-server slqctl

state=$(mktemp -d /tmp/slq-demo.XXXXXX)
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$state/token"
grpc_port=${SLQ_DEMO_PORT:-17070}
metrics_port=${SLQ_DEMO_METRICS_PORT:-19090}
export SLQ_SERVER=127.0.0.1:$grpc_port SLQ_TOKEN_FILE=$state/token
ctl() { "$root/$build/client/slqctl" "$@"; }

echo "== starting slq-server (state in $state)"
"$root/$build/server/main/slq-server" --listen "127.0.0.1:$grpc_port" \
  --metrics-listen "127.0.0.1:$metrics_port" --data-dir "$state" \
  --auth-token-file "$state/token" --allowed-roots "$shared/models,$shared/data" \
  --text-dir "$shared/data" --log-level warn > "$state/server.log" 2>&1 &
server_pid=$!
cleanup() {
  if [ "${SLQ_DEMO_KEEP:-0}" != 1 ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT
for _ in $(seq 50); do ctl health >/dev/null 2>&1 && break; sleep 0.2; done
ctl health

echo "== quantizing $model to $target with formats $formats"
job=$(ctl --json submit "file://$shared/models/$model" --target "$target" --formats "$formats" \
  --calibration "$data" --idempotency-key "demo-$model-$target-$formats" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["job"]["id"])')
echo "job $job"
set +e
ctl watch "$job"
rc=$?
set -e
artifact=$(ctl --json get "$job" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("artifact_id",""))')
[ -n "$artifact" ] || { echo "demo: the job produced no artifact (exit $rc); server log: $state/server.log" >&2; exit 1; }

echo "== the fidelity certificate"
ctl artifact "$artifact" || true

echo "== serving the artifact and the base model side by side"
ctl load --artifact "$artifact" --name "$model-slq"
ctl load --uri "file://$shared/models/$model" --name "$model-base"
ctl models
for m in "$model-slq" "$model-base"; do
  echo "-- $m (greedy, 96 tokens)"
  ctl generate "$m" "Once upon a time" --max-tokens 96 --stats
done

echo "== Prometheus metrics (http://127.0.0.1:$metrics_port/metrics)"
curl -fsS "http://127.0.0.1:$metrics_port/metrics" | grep -E '^slq_(jobs|jobs_finished_total|job_stage_duration_seconds_count|inference_requests_total|inference_ttft_seconds_(sum|count)|inference_generated_tokens_total|kv_cache_usage_ratio|model_memory_bytes|artifact_certified_ear)' || true
echo "== done: job $job, artifact $artifact (state dir $state)"
