#!/usr/bin/env bash
# Runs the tests registered in tests/meson.build (unit tests, fuzz-corpus
# replays, integration tests, style checks) against one build folder through
# `meson test`, and prints "N passed, N failed, N skipped" last. Usage:
#   tests/run-tests.sh BUILD_DIR [REGEX]
# With REGEX, only the integration tests whose names match it run. SUITES
# (default "unit fuzz integration style") picks the suites otherwise.
# Extra arguments for `meson test` go in MESON_TEST_ARGS (e.g. a timeout
# multiplier for a sanitizer build).
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
filter=${2:-}
build=$(cd "$build" && pwd)
suites=${SUITES:-unit fuzz integration style}

# Meson lists tests/integration when the build is configured: reconfigure
# when a test was added or removed since.
listed() { meson test -C "$build" --list "$@" 2>/dev/null | sed -n 's/^[^ ]* \/ //p'; }
want=$(cd "$top/tests/integration" && ls test-*.sh | sed 's/\.sh$//' | sort)
if [ "$want" != "$(listed --suite integration | sort)" ]; then
  meson setup --reconfigure "$build" >/dev/null || { echo "meson setup --reconfigure $build failed"; exit 1; }
fi

args=()
if [ -n "$filter" ]; then
  while read -r name; do
    [[ $name =~ $filter ]] && args+=("$name")
  done < <(listed --suite integration)
  if [ ${#args[@]} -eq 0 ]; then
    echo "no integration test matches $filter"
    echo "0 passed, 1 failed, 0 skipped"
    exit 1
  fi
else
  for s in $suites; do args+=(--suite "$s"); done
fi

logbase=run-tests-$$
# shellcheck disable=SC2086 # MESON_TEST_ARGS is split on purpose
meson test -C "$build" --print-errorlogs --logbase "$logbase" ${MESON_TEST_ARGS:-} "${args[@]}"
json=$build/meson-logs/$logbase.json
count() { grep -c "\"result\": \"$1\"" "$json" 2>/dev/null; }
if [ ! -s "$json" ]; then
  echo "meson test wrote no results (build failed?)"
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi
passed=$(count OK) skipped=$(count SKIP)
total=$(grep -c '"result"' "$json")
failed=$((total - passed - skipped))
echo "logs: $build/meson-logs/$logbase.txt"
[ "$failed" -eq 0 ] || echo "failed: $(grep -v -e '"result": "OK"' -e '"result": "SKIP"' "$json" |
  sed -n 's/.*"name": "\([^"]*\)".*/\1/p' | tr '\n' ' ')"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
