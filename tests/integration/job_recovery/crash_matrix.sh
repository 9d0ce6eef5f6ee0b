#!/usr/bin/env bash
# Crash at every job stage: for each case VICTIM:POINT, a job is stopped at POINT by the
# test-only pause hook (server/jobs/test_pause.h), VICTIM (the server or the worker) is killed
# with SIGKILL there, restarted, and the job must end SUCCEEDED with the same packed weights
# (sha256) as an undisturbed run, or FAILED with an error. Throughout, a monitor re-hashes every
# directory that appears in the artifact store's objects/ (no partial artifact may ever be
# visible); at the end slq_store_check verifies the store (IntegrityCheck incl. SQLite PRAGMA
# integrity_check, jobs/tasks/artifact consistency) and the staging area must be empty.
#
#   crash_matrix.sh sqlite|postgres [CASE...]      (exit 77 = skipped: no PostgreSQL binaries)
#       CASE = server|worker:fetch|profile|search|pack|verify|written|publish|published
#
# Points fetch..written pause the worker's task (written: the verified artifact is complete in
# staging, not yet reported); publish/published pause the server's scheduler before/after the
# rename into objects/. Without CASEs: the full matrix (2 victims x 8 points). Results go to
# stdout as "RESULT backend victim point outcome seconds" lines, and are appended to
# $SLQ_RELIABILITY_OUT when set.
source "$(dirname "$0")/../lib.sh"
BACKEND=${1:?usage: crash_matrix.sh sqlite|postgres [CASE...]}
shift
CASES=("$@")
if [ ${#CASES[@]} -eq 0 ]; then
  for v in server worker; do
    for p in fetch profile search pack verify written publish published; do CASES+=("$v:$p"); done
  done
fi
MODEL="file://$SHARED/models/tinystories-656k"
CHECK_BIN=$SLQ_BUILD_DIR/tests/integration/job_recovery/slq_store_check
PAUSE=$STATE/pause
mkdir -p "$PAUSE"
WORKERS=()

# ---- PostgreSQL (a throwaway cluster, like server/jobs/pg_test_server.cc) ----
trap 'stop_pg; cleanup' EXIT

case "$BACKEND" in
  sqlite) STORE_URI="sqlite://$STATE/data/jobs.db" ;;
  postgres) start_pg; STORE_URI="postgres://slq@127.0.0.1:$PG_PORT/postgres" ;;
  *) echo "backend must be sqlite or postgres, got '$BACKEND'"; exit 2 ;;
esac
SERVER_FLAGS=(--in-process-worker=false --store "$STORE_URI")  # lib.sh: --lease-seconds 10

start_worker() {  # start_worker NAME [ENV=VALUE...]
  local name=$1; shift
  env "$@" "$WORKER_BIN" --server "127.0.0.1:$PORT" --auth-token-file "$STATE/token" --name "$name" \
    --allowed-roots "$SHARED/models,$SHARED/data" --text-dir "$SHARED/data" \
    --model-cache-dir "$STATE/wcache" >> "$STATE/worker-$name.log" 2>&1 &
  PIDS+=("$!")
  WORKERS+=("$!")
  LAST_WORKER=$!
}
stop_workers() {
  for p in "${WORKERS[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  WORKERS=()
}
weights_sha() {
  local a; a=$(ctl --json get "$1" | json_field '.get("artifact_id","")')
  [ -n "$a" ] || { echo none; return; }
  sha256sum "$STATE/data/artifacts/objects/$a/weights.safetensors" | cut -d' ' -f1
}
submit() { ctl --json submit "$MODEL" --target 'ear>=0.99' --formats 4-8 --calibration tinystories \
           --idempotency-key "$1" | json_field '["job"]["id"]'; }
wait_file() {  # wait_file PATH SECONDS
  for _ in $(seq $(($2 * 20))); do [ -e "$1" ] && return 0; sleep 0.05; done
  return 1
}
record() { echo "RESULT $*"; [ -z "${SLQ_RELIABILITY_OUT:-}" ] || echo "$*" >> "$SLQ_RELIABILITY_OUT"; }

# ---- the monitor: every directory that ever shows in objects/ must be a complete artifact ----
mkdir -p "$STATE/data/artifacts/objects"
python3 - "$STATE/data/artifacts/objects" "$STATE/monitor.out" "$STATE/monitor.stop" <<'PY' &
import hashlib, json, os, sys, time
root, out, stop = sys.argv[1:4]
seen, bad, scans = set(), [], 0
def check(d):
    m = open(os.path.join(d, "manifest.json"), "rb").read()
    if hashlib.sha256(m).hexdigest() != os.path.basename(d): return "manifest sha256 != name"
    for name, info in json.loads(m)["files"].items():
        data = open(os.path.join(d, name), "rb").read()
        if len(data) != info["bytes"] or hashlib.sha256(data).hexdigest() != info["sha256"]:
            return name + " does not match the manifest"
    return None
while not os.path.exists(stop):
    scans += 1
    for e in os.listdir(root):
        if e in seen: continue
        seen.add(e)
        try: err = check(os.path.join(root, e))
        except Exception as ex: err = repr(ex)
        if err: bad.append(e + ": " + err)
    time.sleep(0.01)
json.dump({"scans": scans, "seen": len(seen), "bad": bad}, open(out, "w"))
PY
MONITOR_PID=$!
PIDS+=("$MONITOR_PID")

start_server "${SERVER_FLAGS[@]}"
start_worker ref
ref=$(submit "ref-$BACKEND")
t0=$(date +%s)
expect_exit "$BACKEND: undisturbed reference job succeeds" 0 timeout 600 "$CTL_BIN" watch "$ref"
ref_sha=$(weights_sha "$ref")
echo "reference job: $(( $(date +%s) - t0 )) s, weights sha256 $ref_sha"
stop_workers

survived=0
tried=0
for c in "${CASES[@]}"; do
  victim=${c%%:*}
  point=${c#*:}
  t0=$(date +%s)
  rm -f "$PAUSE"/*
  hook=(SLQ_TEST_PAUSE_AT="$point" SLQ_TEST_PAUSE_DIR="$PAUSE")
  case "$point" in
    publish|published)  # the scheduler pauses: restart the server with the hook
      stop_server
      SLQ_TEST_PAUSE_AT=$point SLQ_TEST_PAUSE_DIR=$PAUSE start_server "${SERVER_FLAGS[@]}"
      start_worker "a-$c" ;;
    *) start_worker "a-$c" "${hook[@]}" ;;
  esac
  n_before=$(ls "$STATE/data/artifacts/objects" | wc -l)
  job=$(submit "$BACKEND-$c")
  tried=$((tried + 1))
  if ! wait_file "$PAUSE/paused-$point" 300; then
    fail "$BACKEND $c: the job never reached $point ($(ctl --json get "$job" | json_field '["state"]'))"
    record "$BACKEND $victim $point not-reached $(( $(date +%s) - t0 ))"
    stop_workers
    continue
  fi
  seen_stage=$(ctl --json get "$job" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["stage"], d["state"])')
  n_paused=$(ls "$STATE/data/artifacts/objects" | wc -l)
  case "$point" in  # the two sides of the rename really are the two sides
    published) check "$BACKEND $c: artifact already in objects/ at the kill" test "$n_paused" -eq $((n_before + 1)) ;;
    *) check "$BACKEND $c: no new artifact in objects/ at the kill" test "$n_paused" -eq "$n_before" ;;
  esac
  if [ "$victim" = server ]; then
    kill9_server
    start_server "${SERVER_FLAGS[@]}"  # without the hook: the restarted server runs through
  else
    kill -9 "$LAST_WORKER" 2>/dev/null || true
    wait "$LAST_WORKER" 2>/dev/null || true
    start_worker "b-$c"
  fi
  touch "$PAUSE/resume-$point"
  set +e; timeout 600 "$CTL_BIN" watch "$job" > "$STATE/watch.out" 2>&1; rc=$?; set -e
  secs=$(( $(date +%s) - t0 ))
  sha=$(weights_sha "$job")
  if [ "$rc" -eq 0 ] && [ "$sha" = "$ref_sha" ]; then
    outcome=survived
    survived=$((survived + 1))
    pass "$BACKEND: kill -9 $victim at $point (job was $seen_stage): same weights sha256"
  elif [ "$rc" -eq 6 ] && [ -n "$(ctl --json get "$job" | json_field '.get("message","")')" ]; then
    outcome=failed-cleanly
    pass "$BACKEND: kill -9 $victim at $point: FAILED with an error: $(ctl --json get "$job" | json_field '["message"]')"
  else
    outcome=LOST
    fail "$BACKEND: kill -9 $victim at $point: watch exit $rc, weights $sha (want $ref_sha): $(tail -3 "$STATE/watch.out")"
  fi
  record "$BACKEND $victim $point $outcome $secs"
  stop_workers
done

stop_server
touch "$STATE/monitor.stop"
wait "$MONITOR_PID" 2>/dev/null || true
echo "monitor: $(cat "$STATE/monitor.out")"
check "$BACKEND: no partial artifact ever visible in objects/" \
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(1 if d["bad"] or d["scans"] < 10 else 0)' "$STATE/monitor.out"
check "$BACKEND: store and artifact check (slq_store_check)" "$CHECK_BIN" --store "$STORE_URI" \
  --artifact-dir "$STATE/data/artifacts" --expect-terminal
if [ "$BACKEND" = sqlite ]; then
  check "sqlite PRAGMA integrity_check" test "$(sqlite3 "$STATE/data/jobs.db" 'PRAGMA integrity_check')" = ok
fi
check "$BACKEND: no staging container left behind" test -z "$(ls -A "$STATE/data/artifacts/tmp")"
echo "kills survived: $survived / $tried ($BACKEND)"
record "$BACKEND total $survived/$tried"
stop_pg
summary
