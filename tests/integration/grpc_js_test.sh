#!/usr/bin/env bash
# Runs grpc_js_client_test.mjs (grpc-js, loading the protos) against a real slq-server.
source "$(dirname "$0")/lib.sh"
bash "$(dirname "$0")/../proto/npm_install.sh"
start_server
set +e
node "$(dirname "$0")/grpc_js_client_test.mjs" "127.0.0.1:$PORT" "$(cat "$STATE/token")" \
  "file://$SHARED/models/tinystories-656k"
rc=$?
set -e
[ "$rc" -eq 0 ] && pass "grpc-js client" || fail "grpc-js client"
stop_server
summary
