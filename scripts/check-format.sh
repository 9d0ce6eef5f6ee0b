#!/usr/bin/env bash
# Checks that every C++/CUDA source tracked by git follows .clang-format (clang-format 14, Debian's
# clang-format package). Usage:
#   scripts/check-format.sh         list the files that differ and exit 1 if any does
#   scripts/check-format.sh --fix   rewrite them in place
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "clang-format not found: apt-get install clang-format" >&2; exit 2; }
mapfile -t files < <(git ls-files -- '*.cc' '*.h' '*.cu' '*.cuh')
if [ "${1:-}" = --fix ]; then
  clang-format -i "${files[@]}"
  echo "formatted ${#files[@]} files"
  exit 0
fi
# One clang-format process for all files; its diagnostics name each file that differs. A failure
# that names no file (a bad .clang-format, a crash) fails the check too.
rc=0
out=$(clang-format --dry-run --Werror "${files[@]}" 2>&1) || rc=$?
mapfile -t bad < <(printf '%s\n' "$out" |
  sed -n 's/^\(.*\):[0-9]*:[0-9]*: error: code should be clang-formatted.*/\1/p' | sort -u)
if [ "$rc" -ne 0 ] && [ ${#bad[@]} -eq 0 ]; then
  printf 'clang-format failed (exit %s):\n%s\n' "$rc" "$out" | head -20 >&2
  exit 1
fi
if [ ${#bad[@]} -gt 0 ]; then
  echo "clang-format: ${#bad[@]} of ${#files[@]} files differ from .clang-format (run scripts/check-format.sh --fix):" >&2
  printf '  %s\n' "${bad[@]}" >&2
  exit 1
fi
echo "clang-format: all ${#files[@]} C++/CUDA files follow .clang-format"
