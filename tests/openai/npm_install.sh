#!/usr/bin/env bash
# Installs the pinned openai npm client (package-lock.json) once; a no-op when present.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
if [ ! -f node_modules/openai/package.json ]; then
  # A lock (flock) keeps parallel CTest runs from installing twice.
  exec 9>"$here/.npm.lock"
  flock 9
  [ -f node_modules/openai/package.json ] || npm ci --no-audit --no-fund --loglevel=error
fi
