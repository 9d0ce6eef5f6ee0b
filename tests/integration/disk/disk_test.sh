#!/usr/bin/env bash
# Disk full and read-only artifact volume, with the real server (in-process worker):
#   1. the artifact dir is a tiny tmpfs (smaller than one artifact): the job ends FAILED with an
#      error naming the staging path and "No space left on device"; nothing appears in objects/,
#      the partial staging dir is removed, the server stays healthy; after the volume is grown
#      (remount) the next job on the same server succeeds.
#   2. the artifact dir is remounted read-only: the job ends FAILED naming the path and
#      "Read-only file system"; the server stays healthy; remounted read-write, the next job
#      succeeds.
# Needs root (mount); exits 77 (CTest: skipped) with the reason otherwise. Root bypasses chmod,
# so a read-only mount is the only honest way to get EROFS here.
source "$(dirname "$0")/../lib.sh"
MODEL="file://$SHARED/models/tinystories-656k"
ART=$STATE/art
mkdir -p "$ART"
if [ "$(id -u)" != 0 ] || ! mount -t tmpfs -o size=192k slq-disk-test "$ART" 2>/dev/null; then
  echo "SKIP: needs root and mount(2) (tmpfs) to make a full / read-only artifact volume"
  exit 77
fi
umount_art() { umount "$ART" 2>/dev/null || umount -l "$ART" 2>/dev/null || true; }
trap 'kill_all_and_umount' EXIT
kill_all_and_umount() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; umount_art; cleanup; }

submit() { ctl --json submit "$MODEL" --target 'ear>=0.99' --formats 4-8 --calibration tinystories \
           --idempotency-key "$1" | json_field '["job"]["id"]'; }
job_error() { ctl --json get "$1" | json_field '.get("message","")'; }  # a failed job's error
objects_empty() { test -z "$(ls -A "$ART/objects")"; }
staging_empty() { test -z "$(ls -A "$ART/tmp")"; }

start_server --artifact-dir "$ART"

# 1. Disk full.
job=$(submit full-1)
expect_exit "disk full: the job ends FAILED (watch exit 6)" 6 timeout 600 "$CTL_BIN" watch "$job"
err=$(job_error "$job")
echo "disk full error: $err"
check "disk full: the error says 'No space left on device'" grep -q "No space left on device" <<< "$err"
check "disk full: the error names the artifact path" grep -q "$ART/" <<< "$err"
check "disk full: nothing visible in objects/" objects_empty
check "disk full: the partial staging dir was removed" staging_empty
check "disk full: server still healthy" ctl health
mount -o remount,size=64m "$ART"
job=$(submit full-2)
expect_exit "disk full: after the volume grew, the next job succeeds on the same server" 0 \
  timeout 600 "$CTL_BIN" watch "$job"

# 2. Read-only artifact volume.
mount -o remount,ro "$ART"
job=$(submit ro-1)
expect_exit "read-only: the job ends FAILED (watch exit 6)" 6 timeout 600 "$CTL_BIN" watch "$job"
err=$(job_error "$job")
echo "read-only error: $err"
check "read-only: the error says 'Read-only file system'" grep -q "Read-only file system" <<< "$err"
check "read-only: the error names the artifact path" grep -q "$ART/" <<< "$err"
check "read-only: server still healthy" ctl health
mount -o remount,rw "$ART"
job=$(submit ro-2)
expect_exit "read-only: remounted read-write, the next job succeeds on the same server" 0 \
  timeout 600 "$CTL_BIN" watch "$job"
check "every published artifact verifies" "$SLQ_BUILD_DIR/tests/integration/job_recovery/slq_store_check" \
  --store "sqlite://$STATE/data/jobs.db" --artifact-dir "$ART" --expect-terminal
stop_server
summary
