#!/usr/bin/env bash
# Installs what is missing (Debian packages, npm test tools), builds everything and runs the
# tests. Idempotent. Usage:
#   scripts/test.sh            fast suites (what CI runs)
#   scripts/test.sh --all      fast + slow suites
#   scripts/test.sh --sanitize address|thread   fast suites under ASan+UBSan or TSan
set -euo pipefail
cd "$(dirname "$0")/.."

labels="fast"
sanitize=""
build_dir="build"
while [ $# -gt 0 ]; do
  case "$1" in
    --all) labels="fast|slow" ;;
    --sanitize) sanitize="$2"; build_dir="build-$2"; shift ;;
    *) echo "usage: scripts/test.sh [--all] [--sanitize address|thread]" >&2; exit 2 ;;
  esac
  shift
done

bash scripts/install-deps.sh
jobs=$(nproc)

cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSLQ_SANITIZE="$sanitize" -DSLQ_BUILD_TESTS=ON -DSLQ_BUILD_BENCH=ON
cmake --build "$build_dir" -j "$jobs"
ctest --test-dir "$build_dir" -L "^($labels)\$" --output-on-failure -j "$jobs"
