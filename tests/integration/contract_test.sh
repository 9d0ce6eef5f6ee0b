#!/usr/bin/env bash
# The job-spec contract (issue #19) as a user meets it, through the real slq-server and slqctl:
#  * bad targets / formats fail at submit, with exit code 2 and the same text from slqctl (which
#    checks before the RPC) and from the server (raw RPC via --skip-client-checks is not needed:
#    the bad-input sweep covers the server's INVALID_ARGUMENT);
#  * --eval: verification runs on that text, and the certificate names it (its sha256);
#  * a tl target goes through the service as the CLI's task-lossless target, and one whose text is
#    too short for the TL test's power fails with the error (what text to add) in `slqctl watch`.
source "$(dirname "$0")/lib.sh"
start_server

MODEL="file://$SHARED/models/tinystories-656k"
before=$(ctl --json list --all | wc -l)
for f in 9-10 1..8 4,4; do
  expect_exit "--formats $f rejected at submit" 2 ctl submit "$MODEL" --target 'ear>=0.9' --formats "$f"
  check "--formats $f: the error names the formats" grep -q "formats '$f'" "$STATE/last.err"
done
expect_exit "--target bits<=2 rejected at submit" 2 ctl submit "$MODEL" --target 'bits<=2' --formats 2..8
check "bits<=2: says why" grep -q "target 'bits<=2'" "$STATE/last.err"
expect_exit "--target bits<=3.5 with formats 4-8: unreachable" 2 ctl submit "$MODEL" --target 'bits<=3.5' --formats 4-8
check "bits<=3.5: says unreachable" grep -q "unreachable" "$STATE/last.err"
expect_exit "--target tl<=0 rejected" 2 ctl submit "$MODEL" --target 'tl<=0'
after=$(ctl --json list --all | wc -l)
check "rejected submits created no job ($before -> $after)" test "$before" = "$after"

# --eval: calibration on tinystories, held-out verification on debian-docs.
job=$(ctl --json submit "$MODEL" --target 'kl<=1' --formats 4-8 --calibration tinystories --eval debian-docs \
      | json_field '["job"]["id"]')
check "submit with --eval returns a job id" test -n "$job"
# tl (the CLI's spelling, no budget): task-lossless through the service.
tl_job=$(ctl --json submit "$MODEL" --target tl --formats 4-8 --calibration tinystories | json_field '["job"]["id"]')
check "submit --target tl returns a job id" test -n "$tl_job"
check "the job's spec keeps the tl target" sh -c "'$CTL_BIN' --json get '$tl_job' | grep -q task_lossless_kl"

expect_exit "the --eval job succeeds" 0 timeout 600 "$CTL_BIN" watch "$job"
artifact=$(ctl --json get "$job" | json_field '["artifact_id"]')
ctl --json artifact "$artifact" > "$STATE/eval_artifact.json" || true
want=$(sha256sum "$SHARED/data/debian-docs-val-part1.txt" | cut -d' ' -f1)
calib=$(sha256sum "$SHARED/data/tinystories-valid-part1.txt" | cut -d' ' -f1)
check "the certificate names the held-out text (debian-docs, sha256 $want)" python3 - "$STATE/eval_artifact.json" "$want" "$calib" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))["certificate"]
assert c["heldout_dataset_sha256"] == sys.argv[2], c.get("heldout_dataset_sha256")
assert c["heldout_dataset"] == "debian-docs", c.get("heldout_dataset")
assert c["dataset_sha256"] == sys.argv[3], c["dataset_sha256"]  # calibration stays tinystories
full = json.loads(c["json"])
assert full["heldout_dataset"]["source"] == "separate held-out text", full["heldout_dataset"]
assert full["dataset"]["heldout_documents"] == full["heldout_dataset"]["documents"]
PY
ctl artifact "$artifact" > "$STATE/eval_artifact.txt" || true
check "slqctl artifact shows the held-out text" grep -q "held-out text: debian-docs (sha256 $want)" "$STATE/eval_artifact.txt"

# tinystories-valid-part1 gives 110 cloze items: too few to detect a 5-point difference with 80%
# power, so the job fails before profiling and `slqctl watch` shows why and what text to add.
set +e; timeout 600 "$CTL_BIN" watch "$tl_job" > "$STATE/tl_watch.out" 2>&1; tl_rc=$?; set -e
check "the tl job on too little held-out text fails (watch exit $tl_rc)" test "$tl_rc" -ne 0
check "slqctl watch shows the refusal with the items and text needed" sh -c \
  "grep -q 'target tl: the task-lossless cloze has 110 items' '$STATE/tl_watch.out' && grep -q 'KB more held-out text' '$STATE/tl_watch.out'"
check "the tl job's spec still has the tl target" sh -c "'$CTL_BIN' --json get '$tl_job' | grep -q task_lossless_kl"
stop_server
summary
