#!/usr/bin/env bash
# Lints proto/ with buf (npm @bufbuild/buf, installed into tests/proto/node_modules).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/npm_install.sh"
cd "$here/../../proto"
"$here/node_modules/.bin/buf" lint
echo "buf lint: proto/slq/v1 clean"
