#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang + ASan + UBSan) and runs each for a bounded time.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     default 30 s, all targets
#
# Build dir: build-fuzz (override with SLQ_FUZZ_BUILD_DIR). Seeds are regenerated from the real
# models every run (fuzz/make_seeds.py; SLQ_SHARED_DIR, default ../shared); the corpus each
# target grows is kept in build-fuzz/fuzz/corpus/<target> and reused by the next run. A crash,
# leak, UBSan report or timeout (> 10 s on one input) leaves its input in
# build-fuzz/fuzz/crashes/<target>/ and makes the script exit 1. Prints one summary line per
# target: executions, crashes, corpus size. `scripts/test.sh --fuzz` runs this with 20 s.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-30}"
shift || true
build="${SLQ_FUZZ_BUILD_DIR:-build-fuzz}"
shared="${SLQ_SHARED_DIR:-$(cd .. && pwd)/shared}"
all=(safetensors_fuzz config_json_fuzz tokenizer_json_fuzz llama2c_fuzz llama2c_tokenizer_fuzz
     artifact_manifest_fuzz model_uri_fuzz grpc_request_fuzz)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

cxx=$(command -v clang++ || command -v clang++-14 || true)
cc=$(command -v clang || command -v clang-14 || true)
[ -n "$cxx" ] && [ -n "$cc" ] || { echo "fuzz: clang not found (scripts/install-deps.sh --fuzz installs clang-14)" >&2; exit 2; }
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_C_COMPILER="$cc" -DSLQ_BUILD_FUZZ=ON -DSLQ_CUDA=OFF \
  -DSLQ_BUILD_TESTS=OFF -DSLQ_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" --target "${targets[@]}" -j "$(nproc)"

seeds="$build/fuzz/seeds"
rm -rf "$seeds"
python3 fuzz/make_seeds.py "$seeds" "$shared"
"$build/fuzz/artifact_manifest_fuzz" --write-seed="$seeds/artifact_manifest_fuzz" >/dev/null 2>&1

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
failed=0
printf '%-24s %12s %8s %8s %10s\n' target executions crashes corpus corpus_kb
for t in "${targets[@]}"; do
  corpus="$build/fuzz/corpus/$t"
  crashes="$build/fuzz/crashes/$t"
  rm -rf "$crashes"  # inputs of an earlier run: their reports are in that run's log
  mkdir -p "$corpus" "$crashes" "$seeds/$t"
  log="$build/fuzz/$t.log"
  rc=0
  "$build/fuzz/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$crashes/" "$corpus" "$seeds/$t" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  n_crash=$(find "$crashes" -type f | wc -l)
  n_corpus=$(find "$corpus" -type f | wc -l)
  kb=$(du -sk "$corpus" | cut -f1)
  printf '%-24s %12s %8s %8s %10s\n' "$t" "${execs:-?}" "$n_crash" "$n_corpus" "$kb"
  if [ "$rc" -ne 0 ] || [ "$n_crash" -ne 0 ]; then
    failed=1
    echo "fuzz: $t failed (exit $rc); log: $log; inputs: $crashes" >&2
    grep -m5 -E 'ERROR: |runtime error|SUMMARY' "$log" >&2 || true
  fi
done
exit "$failed"
