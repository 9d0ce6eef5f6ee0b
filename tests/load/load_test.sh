#!/usr/bin/env bash
# Bounded load on loopback against the real slq-server (tests/load/load_client.cc drives it):
#   Generate: 1000 concurrent streams (32 tokens each; the client holds every stream open until
#     all have their first message) on tinystories-656k (base model), three rounds on one server
#     with --max-queue 1000, one round on a server with the default queue limit (256), where the
#     documented RESOURCE_EXHAUSTED is allowed. No other error; the server's
#     slq_inference_requests_total{status} and generated-token counters move by exactly the
#     client's counts; fd count returns to its baseline and RSS does not grow round over round.
#   SubmitJob: 200 concurrent calls over 100 idempotency keys (every key twice, concurrently):
#     all OK, exactly 100 jobs, both calls of a key get the same job; slq_jobs{state} agrees;
#     the store passes slq_store_check; fd count returns to baseline.
# Figures are printed as "FIGURE ..." lines and appended to $SLQ_RELIABILITY_OUT when set.
source "$(dirname "$0")/../integration/lib.sh"
LOAD_BIN=$SLQ_BUILD_DIR/tests/load/slq_load_client
CHECK_BIN=$SLQ_BUILD_DIR/tests/integration/job_recovery/slq_store_check
MODEL_URI="file://$SHARED/models/tinystories-656k"
STREAMS=${SLQ_LOAD_STREAMS:-1000}
SUBMITS=${SLQ_LOAD_SUBMITS:-200}

figure() { echo "FIGURE $*"; [ -z "${SLQ_RELIABILITY_OUT:-}" ] || echo "$*" >> "$SLQ_RELIABILITY_OUT"; }
metric() {  # metric NAME_WITH_LABELS: the value on /metrics (0 when absent)
  python3 - "$METRICS_PORT" "$1" <<'PY'
import sys, urllib.request
port, want = sys.argv[1], sys.argv[2]
text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
total = 0.0
for line in text.splitlines():
    if line.startswith("#"): continue
    name, _, value = line.rpartition(" ")
    if name == want: total += float(value)
print(int(total) if total == int(total) else total)
PY
}
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$SERVER_PID/status"; }
fds() { ls "/proc/$SERVER_PID/fd" | wc -l; }
settle() {  # wait until the fd count is back at $1 (streams closing), at most 10 s
  for _ in $(seq 100); do [ "$(fds)" -le "$1" ] && return 0; sleep 0.1; done
  return 0
}
jget() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval('d'+sys.argv[2]))" "$1" "$2"; }

gen_round() {  # gen_round LABEL: one round of $STREAMS streams; checks the metrics deltas
  local label=$1 out=$STATE/gen-$1.json
  local ok0 re0 tok0
  ok0=$(metric 'slq_inference_requests_total{model="base",status="OK"}')
  re0=$(metric 'slq_inference_requests_total{model="base",status="RESOURCE_EXHAUSTED"}')
  tok0=$(metric 'slq_inference_generated_tokens_total{model="base"}')
  "$LOAD_BIN" --address "127.0.0.1:$PORT" --token-file "$STATE/token" generate --model base \
    --streams "$STREAMS" --max-tokens 32 > "$out"
  echo "generate $label: $(cat "$out")"
  local ok re other tokens
  ok=$(jget "$out" '["codes"].get("OK",0)')
  re=$(jget "$out" '["codes"].get("RESOURCE_EXHAUSTED",0)')
  other=$((STREAMS - ok - re))
  tokens=$(jget "$out" '["tokens"]')
  check "generate $label: no error other than RESOURCE_EXHAUSTED ($other)" test "$other" -eq 0
  check "generate $label: all $STREAMS streams were answered and open at once (peak $(jget "$out" '["peak_open"]'), hold timeouts $(jget "$out" '["hold_timeouts"]'))" \
    test "$(jget "$out" '["peak_open"]')" -eq "$STREAMS" -a "$(jget "$out" '["hold_timeouts"]')" -eq 0
  check "generate $label: metrics OK count moved by the client's $ok" \
    test "$(( $(metric 'slq_inference_requests_total{model="base",status="OK"}') - ok0 ))" -eq "$ok"
  check "generate $label: metrics RESOURCE_EXHAUSTED count moved by the client's $re" \
    test "$(( $(metric 'slq_inference_requests_total{model="base",status="RESOURCE_EXHAUSTED"}') - re0 ))" -eq "$re"
  check "generate $label: metrics generated tokens moved by the client's $tokens" \
    test "$(( $(metric 'slq_inference_generated_tokens_total{model="base"}') - tok0 ))" -eq "$tokens"
  figure "generate $label streams=$STREAMS ok=$ok resource_exhausted=$re other=$other tokens=$tokens" \
    "wall_s=$(jget "$out" '["wall_s"]') peak_open=$(jget "$out" '["peak_open"]')"
}

# ---- Generate, queue limit large enough for every stream ----
start_server --max-queue 1000
"$LOAD_BIN" --address "127.0.0.1:$PORT" --token-file "$STATE/token" generate --model base \
  --load-uri "$MODEL_URI" --streams 20 --max-tokens 16 > "$STATE/warmup.json"   # load + warm up
sleep 1
base_fd=$(fds); base_rss=$(rss_kb)
rss=()
for r in 1 2 3; do
  gen_round "max-queue-1000-round-$r"
  settle "$base_fd"
  rss+=("$(rss_kb)")
done
end_fd=$(fds)
figure "generate server fds baseline=$base_fd after=$end_fd rss_kb baseline=$base_rss rounds=${rss[*]}"
check "generate: fd count back at baseline ($end_fd vs $base_fd)" test "$end_fd" -le $((base_fd + 2))
check "generate: RSS does not grow round over round (${rss[*]} kB)" \
  test "${rss[2]}" -le $(( rss[0] + rss[0] / 10 ))
stop_server
unset PORT METRICS_PORT

# ---- Generate, the default queue limit: RESOURCE_EXHAUSTED is the documented overload answer ----
start_server
"$LOAD_BIN" --address "127.0.0.1:$PORT" --token-file "$STATE/token" generate --model base \
  --load-uri "$MODEL_URI" --streams 20 --max-tokens 16 > "$STATE/warmup.json"
gen_round default-queue
check "server healthy after the overload" ctl health
stop_server
unset PORT METRICS_PORT

# ---- SubmitJob with idempotency keys (no worker: the jobs wait in the queue) ----
start_server --in-process-worker=false
base_fd=$(fds)
"$LOAD_BIN" --address "127.0.0.1:$PORT" --token-file "$STATE/token" submit --model-uri "$MODEL_URI" \
  --calls "$SUBMITS" --keys $((SUBMITS / 2)) > "$STATE/submit.json"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d.pop("job_ids"); print("submit:", json.dumps(d))' "$STATE/submit.json"
keys=$((SUBMITS / 2))
check "submit: all $SUBMITS calls OK" test "$(jget "$STATE/submit.json" '["codes"].get("OK",0)')" -eq "$SUBMITS"
check "submit: exactly $keys jobs created" test "$(jget "$STATE/submit.json" '["created"]')" -eq "$keys"
check "submit: $keys calls answered with the existing job" test "$(jget "$STATE/submit.json" '["existing"]')" -eq "$keys"
check "submit: $keys distinct job ids" test "$(jget "$STATE/submit.json" '["distinct_jobs"]')" -eq "$keys"
check "submit: both calls of every key got the same job" test "$(jget "$STATE/submit.json" '["keys_with_several_jobs"]')" -eq 0
sleep 2.5  # a scheduler tick refreshes slq_jobs
live=$(( $(metric 'slq_jobs{state="QUEUED"}') + $(metric 'slq_jobs{state="RUNNING"}') ))
check "submit: slq_jobs QUEUED+RUNNING = $keys (got $live)" test "$live" -eq "$keys"
for id in $(jget "$STATE/submit.json" '["job_ids"]' | tr -d "[]',"); do ctl cancel "$id" > /dev/null; done
sleep 2.5
cancelled=$(metric 'slq_jobs{state="CANCELLED"}')
check "submit: slq_jobs CANCELLED = $keys after cancelling them (got $cancelled)" test "$cancelled" -eq "$keys"
settle "$base_fd"
end_fd=$(fds)
check "submit: fd count back at baseline ($end_fd vs $base_fd)" test "$end_fd" -le $((base_fd + 2))
figure "submit calls=$SUBMITS keys=$keys ok=$(jget "$STATE/submit.json" '["codes"].get("OK",0)')" \
  "created=$(jget "$STATE/submit.json" '["created"]') existing=$(jget "$STATE/submit.json" '["existing"]')" \
  "distinct=$(jget "$STATE/submit.json" '["distinct_jobs"]') wall_s=$(jget "$STATE/submit.json" '["wall_s"]')" \
  "metrics_live=$live metrics_cancelled=$cancelled fds=$base_fd->$end_fd"
stop_server
check "submit: store consistent (slq_store_check)" "$CHECK_BIN" --store "sqlite://$STATE/data/jobs.db" --expect-terminal
summary
