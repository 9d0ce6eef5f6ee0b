#!/usr/bin/env bash
# Generates the Python gRPC stubs of every proto/slq/v1/*.proto into OUT_DIR (default
# build/python/gen) with protoc and grpc_python_plugin (Debian: protobuf-compiler,
# protobuf-compiler-grpc; the runtime is python3-grpcio + python3-protobuf). Nothing is committed.
#   python/gen_stubs.sh build/python/gen && PYTHONPATH=build/python/gen:python python3 ...
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build/python/gen}
plugin=$(command -v grpc_python_plugin || true)
[ -n "$plugin" ] || { echo "gen_stubs.sh: grpc_python_plugin not found (apt-get install protobuf-compiler-grpc)" >&2; exit 1; }
mkdir -p "$out"
protoc --proto_path="$root/proto" --python_out="$out" --grpc_out="$out" --plugin=protoc-gen-grpc="$plugin" \
  "$root"/proto/slq/v1/*.proto
