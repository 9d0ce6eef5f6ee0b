#!/usr/bin/env bash
# Durability and scale-out with real processes: slq-server without its in-process worker,
# separate slq-worker processes, kill -9 of the server and of a worker mid-job, two workers
# sharing one job's tasks, cancel mid-profile. The recovered job must produce the same packed
# weights (sha256) as an undisturbed run.
source "$(dirname "$0")/lib.sh"
MODEL="file://$SHARED/models/tinystories-656k"

start_worker() {  # start_worker NAME
  "$WORKER_BIN" --server "127.0.0.1:$PORT" --auth-token-file "$STATE/token" --name "$1" \
    --allowed-roots "$SHARED/models,$SHARED/data" --text-dir "$SHARED/data" \
    --model-cache-dir "$STATE/wcache" >> "$STATE/worker-$1.log" 2>&1 &
  PIDS+=("$!")
  LAST_WORKER=$!
}
wait_stage() {  # wait_stage JOB STAGE: until the job is RUNNING in STAGE; fails if it ended first
  for _ in $(seq 1200); do
    local s; s=$(ctl --json get "$1" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["stage"], d["state"])')
    case "$s" in *SUCCEEDED*|*FAILED*|*CANCELLED*) return 1 ;; *"$2"*RUNNING*) return 0 ;; esac
    sleep 0.1
  done
  return 1
}
weights_sha() {  # weights_sha JOB
  local a; a=$(ctl --json get "$1" | json_field '["artifact_id"]')
  sha256sum "$STATE/data/artifacts/objects/$a/weights.safetensors" | cut -d' ' -f1
}
submit() { ctl --json submit "$MODEL" --target 'ear>=0.99' --formats 4-8 --calibration tinystories \
           --idempotency-key "$1" | json_field '["job"]["id"]'; }

start_server --in-process-worker=false
start_worker w1
start_worker w2

# 1. An undisturbed run with two workers: the profile tasks spread over both.
ref=$(submit ref)
expect_exit "reference job succeeds with two workers" 0 timeout 600 "$CTL_BIN" watch "$ref"
workers=$(grep -h "task .* (profile) leased to" "$STATE/server.log" | sed 's/.*leased to //' | sort -u | wc -l)
check "profile tasks of one job ran on $workers distinct workers (want 2)" test "$workers" -ge 2
ref_sha=$(weights_sha "$ref")

# 2. kill -9 the server mid-profile, restart it: the job continues from the store.
job=$(submit crash-server)
check "server kill lands mid-profile" wait_stage "$job" PROFILE
kill9_server
start_server --in-process-worker=false
expect_exit "job survives a server kill -9" 0 timeout 600 "$CTL_BIN" watch "$job"
check "same packed weights as the undisturbed run" test "$(weights_sha "$job")" = "$ref_sha"

# 3. kill -9 a worker mid-task: its lease expires, another worker finishes the job.
# Workers keep their session (model + base logits) and the profile cache between tasks, so a
# job on this small model can finish within a poll: the only worker pauses at its first profile
# task (server/jobs/test_pause.h), which makes "mid-profile" certain for this and for step 4.
# Only this run's workers (their command line names this run's state dir), not another run's.
kill_workers() { for p in $(pgrep -f -- "--model-cache-dir $STATE/wcache" || true); do kill -9 "$p" 2>/dev/null || true; done; }
paused() { for _ in $(seq 600); do [ -f "$STATE/pause/paused-profile" ] && return 0; sleep 0.1; done; return 1; }
kill_workers
mkdir -p "$STATE/pause"
SLQ_TEST_PAUSE_AT=profile SLQ_TEST_PAUSE_DIR="$STATE/pause" start_worker w3
job=$(submit crash-worker)
check "worker kill lands mid-profile" paused
kill -9 "$LAST_WORKER" 2>/dev/null || true
start_worker w4
expect_exit "job survives worker kill -9 (lease expiry)" 0 timeout 600 "$CTL_BIN" watch "$job"
check "same packed weights after the worker crash" test "$(weights_sha "$job")" = "$ref_sha"

# 4. Cancel mid-profile: the job ends CANCELLED, watch exits 7, nothing is published for it.
kill_workers
rm -f "$STATE/pause"/*
SLQ_TEST_PAUSE_AT=profile SLQ_TEST_PAUSE_DIR="$STATE/pause" start_worker w5
job=$(submit cancel-me)
check "cancel lands mid-profile" paused
check "the job is RUNNING in PROFILE" wait_stage "$job" PROFILE
expect_exit "cancel succeeds" 0 ctl cancel "$job"
touch "$STATE/pause/resume-profile"
expect_exit "watch of a cancelled job exits 7" 7 timeout 60 "$CTL_BIN" watch "$job"
check "cancelled job has no artifact" test -z "$(ctl --json get "$job" | json_field '.get("artifact_id","")')"
expect_exit "cancelling twice is fine" 0 ctl cancel "$job"

# 5. No partial artifact is ever visible, and the store is consistent.
check "every published artifact verifies" python3 - "$STATE/data/artifacts/objects" <<'PY'
import hashlib, json, os, sys
root = sys.argv[1]
for aid in os.listdir(root):
    d = os.path.join(root, aid)
    m = open(os.path.join(d, "manifest.json"), "rb").read()
    assert hashlib.sha256(m).hexdigest() == aid, aid
    files = json.loads(m)["files"]
    for name, info in files.items():
        data = open(os.path.join(d, name), "rb").read()
        assert hashlib.sha256(data).hexdigest() == info["sha256"], (aid, name)
PY
check "sqlite integrity" test "$(sqlite3 "$STATE/data/jobs.db" 'PRAGMA integrity_check')" = ok
stop_server
summary
