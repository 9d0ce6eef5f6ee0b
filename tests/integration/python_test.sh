#!/usr/bin/env bash
# The Python client (python/slq_client) against a real slq-server: stubs generated from
# proto/slq/v1/*.proto into the build dir (python/gen_stubs.sh), then the example
# python/examples/quantize_and_generate.py submits a job on tinystories-656k with a loose target,
# watches it, loads the artifact and streams a generation.
source "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)
# Debian's interpreter: python3-grpcio and python3-protobuf live in its dist-packages.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
gen=$SLQ_BUILD_DIR/python/gen
check "stubs generated from every proto/slq/v1/*.proto" "$root/python/gen_stubs.sh" "$gen"
export PYTHONPATH=$gen:$root/python
check "stubs and slq_client import" "$PY" -c 'import slq_client; from slq.v1 import job_service_pb2_grpc, inference_service_pb2_grpc'

start_server
# tinystories-656k: the job service's fetch needs an HF folder (a llama2.c .bin has no
# tokenizer.json beside it).
MODEL=${SLQ_PY_MODEL:-file://$SHARED/models/tinystories-656k}
set +e
"$PY" "$root/python/examples/quantize_and_generate.py" --server "127.0.0.1:$PORT" --token-file "$STATE/token" \
  --model "$MODEL" --target-ear 0.9 --formats 4-8 --calibration tinystories --max-tokens 16 --name py-slq \
  > "$STATE/example.out" 2>&1
rc=$?
set -e
cat "$STATE/example.out"
check "example: job submitted, watched, artifact loaded, generation streamed" \
  test "$rc" = 0 -a "$(grep -c -e '^job job-' -e '^artifact ' -e '^loaded py-slq' -e 'tokens, finish FINISH_REASON_' "$STATE/example.out")" = 4

# Errors are typed: a wrong token is UNAUTHENTICATED, an unknown model NOT_FOUND.
check "SlqError carries the gRPC code" "$PY" - "127.0.0.1:$PORT" "$STATE/token" <<'PY'
import sys, grpc
from slq_client import Client, SlqError
addr, token_file = sys.argv[1], sys.argv[2]
try:
    list(Client(addr, token="wrong").list_models())
    sys.exit("no error for a wrong token")
except SlqError as e:
    assert e.code == grpc.StatusCode.UNAUTHENTICATED, e
c = Client(addr, token_file=token_file)
try:
    list(c.generate("no-such-model", "x"))
    sys.exit("no error for an unknown model")
except SlqError as e:
    assert e.code == grpc.StatusCode.NOT_FOUND, e
assert any(m.name == "py-slq" for m in c.list_models())
PY
stop_server
summary
