#!/usr/bin/env bash
# Run every benchmark program of a build in turn; each prints its own tables of ratios against
# the peers it measures in the same run. Benchmarks never assert: this exits 0 unless a program
# crashed. BENCH=name runs only bench_name.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/release}
export LUA_PATH="$PWD/lua/?.lua;$PWD/lua/?/init.lua;;"
export ENGRAM_LIB="$PWD/$BUILD/libengram.so"
export ENGRAM_ROOT="$PWD"
status=0
echo "engram benchmarks — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
for b in "$BUILD"/bench/bench_*; do
  case "$b" in *.d) continue ;; esac
  [ -x "$b" ] || continue
  name=$(basename "$b")
  [ -n "${BENCH:-}" ] && [ "$name" != "bench_$BENCH" ] && continue
  echo
  echo "=== $name"
  "$b" || { echo "$name exited with status $?"; status=1; }
done
exit $status
