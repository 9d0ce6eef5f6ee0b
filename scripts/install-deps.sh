#!/usr/bin/env bash
# Installs the Debian 12 packages slq builds, tests and runs with. Idempotent: packages
# already present are skipped, and apt is not touched when nothing is missing.
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libspdlog-dev libfmt-dev prometheus-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libopenblas-dev libsqlite3-dev sqlite3 libpq-dev postgresql
  libcurl4-openssl-dev libssl-dev nlohmann-json3-dev libcli11-dev libyaml-cpp-dev
  libcpp-httplib-dev python3-grpcio python3-protobuf
  python3 python3-numpy python3-matplotlib bc curl openssl procps
  prometheus shellcheck clang-format
)
# --fuzz: also the clang toolchain the libFuzzer targets need (scripts/fuzz.sh).
if [ "${1:-}" = "--fuzz" ]; then PKGS+=(clang-14 libclang-rt-14-dev); fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# Node.js tooling (buf, grpc-js): Debian's nodejs + npm, unless a node with npm is already there.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)

if [ ${#missing[@]} -gt 0 ]; then
  echo "slq: installing ${#missing[@]} missing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
