#!/usr/bin/env bash
# The build steps of slq's container image, as one script, so that the Dockerfile and CI run
# exactly the same commands (CI runs them outside Docker: there is no Docker engine there).
#
# Usage: scripts/docker-build-steps.sh [--dry-run] STEP...
#   deps              install the Debian build dependencies (scripts/install-deps.sh)
#   configure         cmake configure into $SLQ_BUILD_DIR (Release, no tests, no benchmarks)
#   build             ninja build of the binaries (slq-server, slq-worker, slqctl)
#   install           cmake --install into $SLQ_PREFIX
#   runtime-packages  write $SLQ_PREFIX/share/slq/runtime-packages.txt: the Debian packages
#                     that own the shared libraries the installed binaries load (ldd + dpkg -S);
#                     the runtime image installs exactly these
#   all               deps configure build install runtime-packages
# --dry-run prints the commands instead of running them.
#
# Environment (defaults in brackets):
#   SLQ_SRC_DIR [repo root]      SLQ_BUILD_DIR [$SLQ_SRC_DIR/build-docker]
#   SLQ_PREFIX [/opt/slq]        SLQ_CUDA [AUTO] (ON, OFF, AUTO)
#   SLQ_CUDA_ARCH [90]           SLQ_JOBS [number of cores]
#   SLQ_BUILD_TYPE [Release]     SLQ_SKIP_DEPS [0] (1: skip the deps step, e.g. CI with deps)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SLQ_SRC_DIR="${SLQ_SRC_DIR:-$(cd "$here/.." && pwd)}"
SLQ_BUILD_DIR="${SLQ_BUILD_DIR:-$SLQ_SRC_DIR/build-docker}"
SLQ_PREFIX="${SLQ_PREFIX:-/opt/slq}"
SLQ_CUDA="${SLQ_CUDA:-AUTO}"
SLQ_CUDA_ARCH="${SLQ_CUDA_ARCH:-90}"
SLQ_JOBS="${SLQ_JOBS:-$(nproc 2>/dev/null || echo 2)}"
SLQ_BUILD_TYPE="${SLQ_BUILD_TYPE:-Release}"
SLQ_SKIP_DEPS="${SLQ_SKIP_DEPS:-0}"
BINARIES=(slq-server slq-worker slqctl)

dry_run=0
run() {
  if [ "$dry_run" -eq 1 ]; then
    printf '+ %s\n' "$*"
  else
    "$@"
  fi
}

die() { echo "docker-build-steps: $*" >&2; exit 2; }

check_env() {
  case "$SLQ_CUDA" in ON|OFF|AUTO) ;; *) die "SLQ_CUDA='$SLQ_CUDA'; allowed: ON, OFF, AUTO";; esac
  [[ "$SLQ_CUDA_ARCH" =~ ^[0-9]+([;,][0-9]+)*$ ]] ||
    die "SLQ_CUDA_ARCH='$SLQ_CUDA_ARCH'; allowed: CUDA architectures like 90 or 80;90"
  [[ "$SLQ_JOBS" =~ ^[1-9][0-9]*$ ]] || die "SLQ_JOBS='$SLQ_JOBS'; allowed: a positive integer"
  [ -f "$SLQ_SRC_DIR/CMakeLists.txt" ] || die "SLQ_SRC_DIR='$SLQ_SRC_DIR' has no CMakeLists.txt"
}

step_deps() {
  if [ "$SLQ_SKIP_DEPS" = "1" ]; then echo "docker-build-steps: deps skipped"; return; fi
  run bash "$SLQ_SRC_DIR/scripts/install-deps.sh"
}

# nvcc to use: $CUDACXX, nvcc on PATH, /usr/local/cuda, or NVIDIA's versioned
# /usr/local/cuda-X.Y (apt packages do not always create the /usr/local/cuda link).
find_nvcc() {
  local c
  for c in "${CUDACXX:-}" "$(command -v nvcc 2>/dev/null || true)" /usr/local/cuda/bin/nvcc \
           /usr/local/cuda-*/bin/nvcc; do
    if [ -n "$c" ] && [ -x "$c" ]; then echo "$c"; return; fi
  done
}

step_configure() {
  local cuda_args=()
  if [ "$SLQ_CUDA" != "OFF" ]; then
    local nvcc
    nvcc="$(find_nvcc)"
    if [ -n "$nvcc" ]; then cuda_args+=("-DCMAKE_CUDA_COMPILER=$nvcc"); fi
  fi
  run cmake -S "$SLQ_SRC_DIR" -B "$SLQ_BUILD_DIR" -G Ninja "${cuda_args[@]}" \
    -DCMAKE_BUILD_TYPE="$SLQ_BUILD_TYPE" \
    -DCMAKE_INSTALL_PREFIX="$SLQ_PREFIX" \
    -DSLQ_CUDA="$SLQ_CUDA" \
    "-DSLQ_CUDA_ARCH=${SLQ_CUDA_ARCH//,/;}" \
    -DSLQ_BUILD_SERVICES=ON -DSLQ_BUILD_TESTS=OFF -DSLQ_BUILD_BENCH=OFF
}

step_build() {
  run cmake --build "$SLQ_BUILD_DIR" -j "$SLQ_JOBS" --target "${BINARIES[@]}"
}

step_install() {
  run cmake --install "$SLQ_BUILD_DIR" --strip
  # Fail early (not at container start) when a binary did not get installed.
  local b
  for b in "${BINARIES[@]}"; do
    if [ "$dry_run" -eq 0 ] && [ ! -x "$SLQ_PREFIX/bin/$b" ]; then
      die "$SLQ_PREFIX/bin/$b was not installed (does its CMakeLists.txt have install(TARGETS)?)"
    fi
  done
}

# Prints the Debian packages owning the shared libraries that the binaries load. Libraries
# no package owns (the GPU driver's libcuda, injected by the NVIDIA container runtime) are
# reported on stderr and skipped.
runtime_packages() {
  local bin lib real pkg
  for bin in "$@"; do
    ldd "$bin" | awk '/=> \//{print $3}'
  done | sort -u | while read -r lib; do
    real="$(readlink -f "$lib")"
    pkg="$(dpkg -S "$lib" 2>/dev/null || dpkg -S "$real" 2>/dev/null || true)"
    if [ -z "$pkg" ]; then
      echo "docker-build-steps: no Debian package owns $lib (left to the host)" >&2
      continue
    fi
    echo "${pkg%%:*}"
  done | sort -u
}

step_runtime_packages() {
  local out="$SLQ_PREFIX/share/slq/runtime-packages.txt"
  if [ "$dry_run" -eq 1 ]; then
    echo "+ ldd ${BINARIES[*]/#/$SLQ_PREFIX/bin/} | dpkg -S > $out"
    return
  fi
  mkdir -p "$(dirname "$out")"
  local bins=()
  local b
  for b in "${BINARIES[@]}"; do bins+=("$SLQ_PREFIX/bin/$b"); done
  runtime_packages "${bins[@]}" > "$out"
  echo "docker-build-steps: $(wc -l < "$out") runtime packages -> $out"
}

main() {
  if [ "${1:-}" = "--dry-run" ]; then dry_run=1; shift; fi
  [ $# -gt 0 ] || die "no step given; allowed: deps configure build install runtime-packages all"
  check_env
  local s
  for s in "$@"; do
    case "$s" in
      deps) step_deps ;;
      configure) step_configure ;;
      build) step_build ;;
      install) step_install ;;
      runtime-packages) step_runtime_packages ;;
      all) step_deps; step_configure; step_build; step_install; step_runtime_packages ;;
      *) die "unknown step '$s'; allowed: deps configure build install runtime-packages all" ;;
    esac
  done
}

main "$@"
