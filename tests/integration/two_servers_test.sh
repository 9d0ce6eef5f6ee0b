#!/usr/bin/env bash
# Two slq-server processes on one PostgreSQL job store and one shared artifact dir, one slq-worker
# connected to each. Both schedulers reconcile every job (they race on each stage); server A is
# killed with SIGKILL mid-job and server B must finish the job on its own: its reconciler picks
# the job up, A's worker's lease expires and B's worker re-leases the task.
#
#   two_servers_test.sh          (exit 77 = skipped: no PostgreSQL binaries)
#
# Checked: every stage's tasks exist once per job (psql on the tasks table: 1 fetch, one profile
# per layer, 1 search, 1 pack) although both schedulers reconcile; each job is published once; the
# surviving server finishes the job with the reference weights sha256; slq_store_check (store
# IntegrityCheck, artifacts re-hashed, every job ended) and an empty staging area at the end.
# Results go to stdout as "RESULT ..." lines (docs/RELIABILITY.md records a run).
source "$(dirname "$0")/lib.sh"
MODEL="file://$SHARED/models/tinystories-656k"
LAYERS=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["num_hidden_layers"])' \
  "$SHARED/models/tinystories-656k/config.json")
CHECK_BIN=$SLQ_BUILD_DIR/tests/integration/job_recovery/slq_store_check
PAUSE=$STATE/pause
ART=$STATE/artifacts  # shared by both servers (and the workers, which write its staging dirs)
mkdir -p "$PAUSE" "$ART"

trap 'stop_pg; cleanup' EXIT
start_pg
STORE_URI="postgres://slq@127.0.0.1:$PG_PORT/postgres"
sql() { "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U slq -d postgres -At -c "$1"; }

head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$STATE/token"
# start_named NAME [ENV=VALUE...]: server NAME on its own port and data dir, the shared store and
# artifact dir; sets PORT_<NAME> and PID_<NAME>.
start_named() {
  local name=$1; shift
  local port; port=$(free_port)
  env "$@" "$SERVER_BIN" --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$(free_port)" \
    --data-dir "$STATE/data-$name" --store "$STORE_URI" \
    --artifact-dir "$ART" --auth-token-file "$STATE/token" --in-process-worker=false \
    --allowed-roots "$SHARED/models,$SHARED/data" --text-dir "$SHARED/data" \
    --lease-seconds 10 --log-level info >> "$STATE/server-$name.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  printf -v "PORT_$name" '%s' "$port"
  printf -v "PID_$name" '%s' "$pid"
  for _ in $(seq 100); do
    SLQ_SERVER=127.0.0.1:$port "$CTL_BIN" health >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "server $name did not become healthy; log:"; tail -20 "$STATE/server-$name.log"; return 1
}
export SLQ_TOKEN_FILE=$STATE/token
on() { local port_var="PORT_$1"; shift; SLQ_SERVER=127.0.0.1:${!port_var} "$CTL_BIN" "$@"; }
WORKERS=()
start_worker() {  # start_worker SERVER NAME [ENV=VALUE...]
  local port_var="PORT_$1" name=$2; shift 2
  env "$@" "$WORKER_BIN" --server "127.0.0.1:${!port_var}" --auth-token-file "$STATE/token" --name "$name" \
    --allowed-roots "$SHARED/models,$SHARED/data" --text-dir "$SHARED/data" \
    --model-cache-dir "$STATE/wcache-$name" >> "$STATE/worker-$name.log" 2>&1 &
  PIDS+=("$!")
  WORKERS+=("$!")
}
stop_workers() {
  for p in "${WORKERS[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  WORKERS=()
}
submit() {  # submit SERVER KEY
  on "$1" --json submit "$MODEL" --target 'ear>=0.99' --formats 4-8 --calibration tinystories \
    --idempotency-key "$2" | json_field '["job"]["id"]'
}
weights_sha() {  # weights_sha SERVER JOB
  local a; a=$(on "$1" --json get "$2" | json_field '.get("artifact_id","")')
  [ -n "$a" ] || { echo none; return; }
  sha256sum "$ART/objects/$a/weights.safetensors" | cut -d' ' -f1
}
wait_file() { for _ in $(seq $(($2 * 20))); do [ -e "$1" ] && return 0; sleep 0.05; done; return 1; }
# stage_counts JOB: "fetch=1 pack=1 profile=2 search=1" from the store itself.
stage_counts() {
  sql "SELECT kind || '=' || COUNT(*) FROM tasks WHERE job_id = '$1' GROUP BY kind ORDER BY kind" |
    tr '\n' ' ' | sed 's/ $//'
}
WANT_COUNTS="fetch=1 pack=1 profile=$LAYERS search=1"
watch_on() {  # watch_on SERVER JOB: slqctl watch on that server, output in $STATE/watch.out
  local port_var="PORT_$1"
  timeout 600 env SLQ_SERVER="127.0.0.1:${!port_var}" "$CTL_BIN" watch "$2" > "$STATE/watch.out" 2>&1
}
published_events() { sql "SELECT COUNT(*) FROM job_events WHERE job_id = '$1' AND stage = 'publish'"; }

# ---- 1. both servers up, a worker on each: three jobs, submitted alternately to A and B ----
start_named a
start_named b
start_worker a wa
start_worker b wb
t0=$(date +%s)
jobs=()
for i in 1 2 3; do
  srv=a; [ $((i % 2)) -eq 0 ] && srv=b
  jobs+=("$srv:$(submit $srv "both-$i")")
done
ref_sha=""
for sj in "${jobs[@]}"; do
  srv=${sj%%:*}; job=${sj#*:}
  other=b; [ "$srv" = b ] && other=a
  # Watched on the other server: the job's events come from the shared store.
  expect_exit "both up: $job (submitted to $srv) succeeds, watched on $other" 0 timeout 600 env \
    SLQ_SERVER="127.0.0.1:$(eval echo \$PORT_$other)" "$CTL_BIN" watch "$job"
  check "both up: $job: each stage created once ($(stage_counts "$job"))" test "$(stage_counts "$job")" = "$WANT_COUNTS"
  check "both up: $job: published once" test "$(published_events "$job")" = 1
  sha=$(weights_sha a "$job")
  [ -n "$ref_sha" ] || ref_sha=$sha
  check "both up: $job: same weights as the first job" test "$sha" = "$ref_sha"
done
echo "RESULT both-up 3 jobs $(( $(date +%s) - t0 )) s, weights sha256 $ref_sha"
# A reconcile step the other scheduler took first (the store refused the duplicate): by reason.
races() {
  cat "$STATE"/server-*.log | grep 'another scheduler advanced it first' | python3 -c '
import collections, re, sys
c = collections.Counter()
for line in sys.stdin:
    m = re.search(r"already has \d+ .(\w+). task", line)
    c["stage exists: " + m.group(1) if m else "job already ended"] += 1
print(", ".join(f"{k} x{v}" for k, v in sorted(c.items())) or "none")'
}
echo "RESULT both-up steps lost to the other scheduler: $(races)"
stop_workers

# ---- 2. server A killed (SIGKILL) mid-job, while its worker holds a profile lease ----
# A's worker pauses at its first profile progress report (test hook, server/jobs/test_pause.h), so
# the kill lands while A's worker holds a lease; B's worker takes the other share(s).
start_worker a wa2 SLQ_TEST_PAUSE_AT=profile SLQ_TEST_PAUSE_DIR="$PAUSE"
t0=$(date +%s)
job=$(submit a kill-a-profile)
if wait_file "$PAUSE/paused-profile" 300; then
  start_worker b wb2
  state=$(on b --json get "$job" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["stage"], d["state"])')
  leased=$(sql "SELECT COUNT(*) FROM tasks WHERE job_id = '$job' AND state = 'LEASED'")
  kill -9 "$PID_a" 2>/dev/null || true
  wait "$PID_a" 2>/dev/null || true
  t_kill=$(date +%s)
  echo "killed server A at $(( t_kill - t0 )) s (job $state, $leased task(s) leased)"
  set +e; watch_on b "$job"; rc=$?; set -e
  t_done=$(date +%s)
  check "kill -9 server A at profile: server B finished the job (watch exit $rc)" test "$rc" -eq 0
  check "kill -9 server A at profile: same weights sha256" test "$(weights_sha b "$job")" = "$ref_sha"
  check "kill -9 server A at profile: each stage created once ($(stage_counts "$job"))" \
    test "$(stage_counts "$job")" = "$WANT_COUNTS"
  check "kill -9 server A at profile: published once" test "$(published_events "$job")" = 1
  attempts=$(sql "SELECT MAX(attempts) FROM tasks WHERE job_id = '$job' AND kind = 'profile'")
  check "kill -9 server A at profile: the orphaned share was leased again ($attempts attempts)" \
    test "$attempts" -ge 2
  echo "RESULT kill-a-at-profile killed-at $(( t_kill - t0 )) s," \
    "survivor finished $(( t_done - t_kill )) s later, profile attempts $attempts"
else
  fail "server A's worker never reached profile ($(on a --json get "$job" | json_field '["state"]'))"
fi
touch "$PAUSE/resume-profile"
stop_workers

# ---- 3. server A killed after it renamed the artifact into objects/, before the job row ----
# The only worker is on A, so A's scheduler hears of the finished pack task first (it is poked at
# once; B reconciles at its next tick) and usually publishes: it pauses after the rename. B's
# scheduler reconciles the same job meanwhile and must finish it (adopting the renamed artifact by
# id, or publishing first itself); then A is killed.
rm -f "$PAUSE"/*
start_named a SLQ_TEST_PAUSE_AT=published SLQ_TEST_PAUSE_DIR="$PAUSE"
start_worker a wa3
t0=$(date +%s)
job=$(submit a kill-a-published)
set +e; watch_on b "$job"; rc=$?; set -e
t_done=$(date +%s)
paused=no; [ -e "$PAUSE/paused-published" ] && paused=yes
kill -9 "$PID_a" 2>/dev/null || true
wait "$PID_a" 2>/dev/null || true
check "server A paused at published: server B finished the job (watch exit $rc)" test "$rc" -eq 0
check "server A paused at published: same weights sha256" test "$(weights_sha b "$job")" = "$ref_sha"
check "server A paused at published: each stage created once ($(stage_counts "$job"))" \
  test "$(stage_counts "$job")" = "$WANT_COUNTS"
check "server A paused at published: published once" test "$(published_events "$job")" = 1
echo "RESULT a-paused-at-published (A reached the pause: $paused) job finished by B in $(( t_done - t0 )) s"
touch "$PAUSE/resume-published"
stop_workers
kill "$PID_b" 2>/dev/null || true
wait "$PID_b" 2>/dev/null || true

echo "RESULT all cases: steps lost to the other scheduler: $(races)"
check "store and artifact check (slq_store_check)" \
  "$CHECK_BIN" --store "$STORE_URI" --artifact-dir "$ART" --expect-terminal
check "no staging container left behind" test -z "$(ls -A "$ART/tmp")"
summary
