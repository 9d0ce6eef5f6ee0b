#!/usr/bin/env bash
# Installs what is missing (Debian packages, npm test tools), builds everything and runs the
# tests. Idempotent. Usage:
#   scripts/test.sh            fast suites, then every libFuzzer target for 10 s (what CI runs;
#                              SLQ_CI_FUZZ_SECONDS sets the seconds per target, 0 skips fuzzing)
#   scripts/test.sh --all      fast + slow suites (+ the bounded fuzzing)
#   scripts/test.sh --sanitize address|thread   fast suites under ASan+UBSan or TSan
#                                               (build dir build-address / build-thread)
#   scripts/test.sh --fuzz [SECONDS]            only the libFuzzer targets, SECONDS each (default
#                                               20; scripts/fuzz.sh, clang, build dir build-fuzz)
# Sanitizer runs fail on the first UBSan report, on any ASan/LSan report and on any TSan
# warning (see docs/RELIABILITY.md).
set -euo pipefail
cd "$(dirname "$0")/.."

labels="fast"
sanitize=""
fuzz=""
build_dir="build"
while [ $# -gt 0 ]; do
  case "$1" in
    --all) labels="fast|slow" ;;
    --sanitize) sanitize="$2"; build_dir="build-$2"; shift ;;
    --fuzz)
      fuzz=20
      if [ $# -gt 1 ] && [[ "$2" =~ ^[0-9]+$ ]]; then fuzz="$2"; shift; fi ;;
    *) echo "usage: scripts/test.sh [--all] [--sanitize address|thread] [--fuzz [SECONDS]]" >&2; exit 2 ;;
  esac
  shift
done

# The default run ends with bounded fuzzing (clang); sanitizer runs do not fuzz.
ci_fuzz="${SLQ_CI_FUZZ_SECONDS:-10}"
[[ "$ci_fuzz" =~ ^[0-9]+$ ]] || { echo "SLQ_CI_FUZZ_SECONDS must be a whole number of seconds" >&2; exit 2; }
[ -z "$sanitize" ] || ci_fuzz=0
want_clang=""
if [ -n "$fuzz" ] || [ "$ci_fuzz" -gt 0 ]; then want_clang=--fuzz; fi
bash scripts/install-deps.sh $want_clang
jobs=$(nproc)

if [ -n "$fuzz" ]; then
  exec scripts/fuzz.sh "$fuzz"
fi
case "$sanitize" in
  address)
    export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1}"
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
    export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/cmake/lsan.supp:print_suppressions=0}" ;;
  thread)
    export TSAN_OPTIONS="${TSAN_OPTIONS:-suppressions=$PWD/cmake/tsan.supp:second_deadlock_stack=1:print_suppressions=0}" ;;
esac

# The code's format (.clang-format) is checked first: it takes seconds and needs no build.
scripts/check-format.sh

cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSLQ_SANITIZE="$sanitize" -DSLQ_BUILD_TESTS=ON -DSLQ_BUILD_BENCH=ON
cmake --build "$build_dir" -j "$jobs"
exclude=()
if [ "$sanitize" = thread ]; then
  # These suites make gRPC calls from a TSan-built process (an in-process server and client,
  # or the TSan-built slqctl / workers of the integration scripts). Debian's libgrpc is not
  # TSan-instrumented, so TSan cannot see its completion-queue hand-offs: it reports the call
  # arenas and slices that move between gRPC's threads, and the client exits 66. All reports
  # of 2026-11-23 were inside gRPC's own allocations (docs/RELIABILITY.md). These suites run
  # under ASan; under TSan they are skipped until an instrumented gRPC is available.
  grpc_suites='slq_inference_api_test|bad_input_sweep_test|security_test|integration_job_e2e|integration_job_recovery|integration_tls|reliability_crash_sqlite_subset|reliability_crash_postgres_subset|reliability_disk'
  exclude=(-E "^($grpc_suites)\$")
  echo "TSan: skipping the suites that make gRPC calls from TSan-built processes (uninstrumented libgrpc): ${grpc_suites//|/, }"
fi
ctest --test-dir "$build_dir" -L "^($labels)\$" "${exclude[@]}" --output-on-failure -j "$jobs"
if [ "$ci_fuzz" -gt 0 ]; then
  # Bounded fuzzing of the 8 parsers and request validators (docs/RELIABILITY.md): a crash,
  # leak, sanitizer report or slow input fails the run. Longer runs: scripts/test.sh --fuzz N.
  echo "fuzzing each libFuzzer target for ${ci_fuzz} s (scripts/fuzz.sh)"
  scripts/fuzz.sh "$ci_fuzz"
fi
