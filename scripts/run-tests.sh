#!/usr/bin/env bash
# Run every test of one build: the C test programs (spec/c), the embedding examples and the
# busted specs (spec/*_spec.lua). Ends with one line "N passed, N failed[, N skipped]" covering
# all of them and exits non-zero if anything failed.
#
#   BUILD=build/release MODE=release scripts/run-tests.sh [--c-only]
set -uo pipefail
cd "$(dirname "$0")/.."

# MODE and BUILD name the same build; either may be given (MODE wins the default of BUILD).
if [ -z "${MODE:-}" ] && [ -n "${BUILD:-}" ]; then MODE=$(basename "$BUILD"); fi
MODE=${MODE:-release}
BUILD=${BUILD:-build/$MODE}
c_only=0
[ "${1:-}" = "--c-only" ] && c_only=1

passed=0 failed=0 skipped=0
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT

# Sanitizer runtimes: leaks are a failure under ASan; TSan reports are fatal.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}

# The engram Lua module, for busted specs and for Lua states inside C tests and examples.
export LUA_PATH="$PWD/lua/?.lua;$PWD/lua/?/init.lua;$PWD/spec/?.lua;;"
export ENGRAM_LIB="$PWD/$BUILD/libengram.so"
export ENGRAM_ROOT="$PWD"

count_c() {  # $1 = name, $2 = output file, $3 = exit status
  local line p f s
  line=$(grep -E '^# summary: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$2" | tail -n 1)
  if [ -z "$line" ]; then
    echo "not ok - $1 (exited with status $3 before its summary)"
    failed=$((failed + 1))
    return
  fi
  read -r p f s < <(echo "$line" | sed -E 's/^# summary: ([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped$/\1 \2 \3/')
  if [ "$3" -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "not ok - $1 (exited with status $3 after its summary)"
    f=1
  fi
  passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
}

echo "== C tests ($MODE)"
if ! ls "$BUILD"/spec/test_* >/dev/null 2>&1; then
  echo "not ok - no C test programs in $BUILD/spec (build them with: make MODE=$MODE tests)"
  failed=$((failed + 1))
fi
for t in "$BUILD"/spec/test_*; do
  case "$t" in *.d) continue ;; esac
  [ -x "$t" ] || continue
  name=$(basename "$t")
  echo "-- $name"
  timeout 600 "$t" > "$log/$name.out" 2>&1
  status=$?
  cat "$log/$name.out"
  count_c "$name" "$log/$name.out" "$status"
done

if [ -d "$BUILD/examples" ]; then
  echo "== examples ($MODE)"
  for ex in "$BUILD"/examples/*; do
    case "$ex" in *.d) continue ;; esac
    [ -x "$ex" ] || continue
    name=$(basename "$ex")
    if timeout 300 "$ex" > "$log/$name.out" 2>&1; then
      echo "ok - example $name"
      passed=$((passed + 1))
    else
      sed 's/^/    /' "$log/$name.out" | tail -n 30
      echo "not ok - example $name"
      failed=$((failed + 1))
    fi
  done
fi

# busted loads libengram.so into the system luajit, which is not built with a sanitizer: the
# specs run against the release and debug builds; sanitizer runs cover the C tests.
if [ $c_only -eq 0 ] && ls spec/*_spec.lua >/dev/null 2>&1; then
  case "$MODE" in
    asan|tsan|ubsan) echo "== busted specs: not run under MODE=$MODE (the host luajit is not instrumented)" ;;
    *)
      echo "== busted specs ($MODE)"
      busted --lua=luajit -o TAP spec/ > "$log/busted.out" 2>&1
      status=$?
      cat "$log/busted.out"
      p=$(grep -cE '^ok [0-9]+ ' "$log/busted.out" | head -n 1)
      s=$(grep -cE '^ok [0-9]+ .*# (SKIP|TODO)' "$log/busted.out" | head -n 1)
      f=$(grep -cE '^not ok [0-9]+ ' "$log/busted.out" | head -n 1)
      p=$((p - s))
      if [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "not ok - busted exited with status $status"
        f=1
      fi
      passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
      ;;
  esac
fi

# Callers that combine several runs (.ci/run) collect the counts here.
[ -n "${COUNTS_FILE:-}" ] && echo "$passed $failed $skipped" >> "$COUNTS_FILE"

summary="$passed passed, $failed failed"
[ "$skipped" -gt 0 ] && summary="$summary, $skipped skipped"
echo "$summary"
[ "$failed" -eq 0 ]
