#!/usr/bin/env bash
# Runs every unit test, fuzz-corpus replay and integration test against one
# build folder and prints "N passed, N failed" last. Usage:
#   tests/run-tests.sh BUILD_DIR [REGEX]
# With REGEX, only the integration tests whose names match it run.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
filter=${2:-}
build=$(cd "$build" && pwd)
export PL=$build/pilotlight
passed=0 failed=0 skipped=0
failures=()
logdir=$(mktemp -d /tmp/pl-testlogs.XXXXXX)

record() { # name rc log
  case $2 in
    0) passed=$((passed + 1)); echo "PASS: $1" ;;
    77) skipped=$((skipped + 1)); echo "SKIP: $1 ($(tail -n1 "$3"))" ;;
    *) failed=$((failed + 1)); failures+=("$1"); echo "FAIL: $1 (exit $2)"; tail -n 30 "$3" | sed 's/^/    /' ;;
  esac
}

if [ -z "$filter" ]; then
  for t in "$build"/tests/unit/test-*; do
    [ -f "$t" ] && [ -x "$t" ] || continue
    name=unit/$(basename "$t")
    log=$logdir/$(basename "$t").log
    "$t" >"$log" 2>&1; rc=$?
    record "$name" "$rc" "$log"
  done
  for t in "$build"/fuzz/replay-*; do
    [ -f "$t" ] && [ -x "$t" ] || continue
    name=fuzz/$(basename "$t")
    corpus=$top/fuzz/corpus/${name#fuzz/replay-}
    log=$logdir/$(basename "$t").log
    "$t" "$corpus" >"$log" 2>&1; rc=$?
    record "$name" "$rc" "$log"
  done
fi

for t in "$top"/tests/integration/test-*.sh; do
  name=$(basename "$t" .sh)
  [ -n "$filter" ] && ! [[ $name =~ $filter ]] && continue
  log=$logdir/$name.log
  timeout 900 bash "$t" >"$log" 2>&1; rc=$?
  record "integration/$name" "$rc" "$log"
done

echo "logs: $logdir"
[ ${#failures[@]} -eq 0 ] || echo "failed: ${failures[*]}"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
