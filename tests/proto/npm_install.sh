#!/usr/bin/env bash
# Installs the pinned npm test tools (package-lock.json) once; a no-op when present.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
if [ ! -x node_modules/.bin/buf ] || [ ! -d node_modules/@grpc/grpc-js ]; then
  # A lock (flock) keeps parallel CTest runs from installing twice.
  exec 9>"$here/.npm.lock"
  flock 9
  [ -x node_modules/.bin/buf ] && [ -d node_modules/@grpc/grpc-js ] || \
    npm install --no-audit --no-fund --no-save --loglevel=error
fi
