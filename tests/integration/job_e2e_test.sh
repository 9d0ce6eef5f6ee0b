#!/usr/bin/env bash
# The job service as a user drives it: real slq-server on loopback, slqctl, a real model.
#   submit -> watch to completion -> certificate -> download (sha256-checked) -> idempotency;
#   bad inputs each give a clear error; the store stays consistent.
source "$(dirname "$0")/lib.sh"
start_server

MODEL="file://$SHARED/models/tinystories-656k"
job=$(ctl --json submit "$MODEL" --target 'ear>=0.99' --formats 4-8 --calibration tinystories \
      --idempotency-key e2e-1 | json_field '["job"]["id"]')
check "submit returns a job id" test -n "$job"
again=$(ctl --json submit "$MODEL" --target 'ear>=0.99' --formats 4-8 --calibration tinystories \
      --idempotency-key e2e-1 | json_field '["job"]["id"]')
check "retried submit with the same idempotency key returns the same job" test "$job" = "$again"
expect_exit "same key, other parameters -> bad request" 2 \
  ctl submit "$MODEL" --target 'ear>=0.95' --formats 4-8 --idempotency-key e2e-1

expect_exit "watch follows the job to success" 0 timeout 600 "$CTL_BIN" watch "$job"
state=$(ctl --json get "$job" | json_field '["state"]')
check "job SUCCEEDED (got $state)" test "$state" = JOB_STATE_SUCCEEDED
artifact=$(ctl --json get "$job" | json_field '["artifact_id"]')
check "job has an artifact" test -n "$artifact"
ctl --json artifact "$artifact" > "$STATE/artifact.json" || true
check "certificate: target met, EAR lower bound >= 0.99" python3 - "$STATE/artifact.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
c = d["certificate"]
assert c["target_met"], c
assert c["ear"]["lower"] >= 0.99, c["ear"]
assert c["ear"]["lower"] <= c["ear"]["mean"] <= c["ear"]["upper"] <= 1.0, c["ear"]
assert c["sequences"] > 0 and int(c["tokens"]) > 0
assert 4 <= c["avg_bits_quantized"] <= 8.5, c["avg_bits_quantized"]
assert all(l["bits"] in (4, 8, 16) for l in c["layers"]), c["layers"]
assert len(c["dataset_sha256"]) == 64 and len(c["source_sha256"]) == 64
PY
expect_exit "download checks every sha256" 0 ctl download "$artifact" --out "$STATE/dl"
check "downloaded manifest hashes to the artifact id" \
  test "$(sha256sum "$STATE/dl/manifest.json" | cut -d' ' -f1)" = "$artifact"
check "downloaded artifact has the packed weights" test -s "$STATE/dl/weights.safetensors"

# Bad inputs: each a clear error, nothing created.
before=$(ctl --json list --all | wc -l)
expect_exit "unknown scheme" 2 ctl submit "ftp://x/y" --target 'ear>=0.99'
expect_exit "missing model" 3 ctl submit "file://$SHARED/models/nope" --target 'ear>=0.99'
expect_exit "path traversal" 4 ctl submit "file://$SHARED/models/../../etc" --target 'ear>=0.99' || true
expect_exit "outside allowed roots" 4 ctl submit "file:///etc" --target 'ear>=0.99'
expect_exit "malformed target" 2 ctl submit "$MODEL" --target 'ear>=1.5'
expect_exit "malformed formats" 2 ctl submit "$MODEL" --target 'ear>=0.99' --formats four
expect_exit "bad group size" 2 ctl submit "$MODEL" --target 'ear>=0.99' --group-size 100
SLQ_TOKEN_FILE=/dev/null expect_exit "no token -> auth error" 4 env SLQ_TOKEN_FILE= "$CTL_BIN" list
echo wrong > "$STATE/bad_token"
expect_exit "wrong token -> auth error" 4 env SLQ_TOKEN_FILE="$STATE/bad_token" "$CTL_BIN" list
check "health needs no token" env SLQ_TOKEN_FILE= "$CTL_BIN" health
after=$(ctl --json list --all | wc -l)
check "rejected submits created no job ($before -> $after)" test "$before" = "$after"

curl -fsS "http://127.0.0.1:$METRICS_PORT/metrics" > "$STATE/metrics.txt"
check "metrics: a succeeded job" grep -q 'slq_jobs_finished_total{state="SUCCEEDED"} 1' "$STATE/metrics.txt"
check "metrics: stage durations" grep -q 'slq_job_stage_duration_seconds_count' "$STATE/metrics.txt"
stop_server
summary
