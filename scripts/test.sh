#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine (as root):
#   1. installs the Debian packages (scripts/deps.sh);
#   2. builds build/ with warnings as errors, build-asan/ with ASan+UBSan and
#      build-tsan/ with ThreadSanitizer;
#   3. starts a private Ceph RADOS Gateway;
#   4. runs every test tests/meson.build registers (unit tests, fuzz-corpus
#      replays, integration tests against a local folder, the style checks),
#      the round-trip suite again against S3, everything but the style checks
#      under ASan+UBSan, and the threaded tests (backup, restore, replica,
#      verify, S3) under TSan on folders and on S3;
#   5. stops the gateway and prints one line "N passed, N failed".
# With CI=true a test that skips fails, unless tests/skip-allowed.txt lists it.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash scripts/deps.sh || exit 1

build() { # DIR -DOPTION=VALUE...: a build folder with these options, made or updated
  local dir=$1
  shift
  if [ -f "$dir/build.ninja" ]; then
    # e.g. build/ made by quickstart.sh without the test hooks
    meson configure "$dir" "$@" >/dev/null || return 1
  else
    meson setup "$dir" "$@" >/dev/null || return 1
  fi
  ninja -C "$dir" >/dev/null || ninja -C "$dir"
}
build build -Dwerror=true -Dtest_hooks=true || exit 1
build build-asan -Dwerror=true -Dtest_hooks=true -Db_sanitize=address,undefined -Db_lundef=false || exit 1
build build-tsan -Dwerror=true -Dtest_hooks=true -Db_sanitize=thread || exit 1

total_pass=0 total_fail=0 total_skip=0
tally() { # LOG: add the runner's closing counts
  local line
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -n1)
  if [ -z "$line" ]; then
    total_fail=$((total_fail + 1))
    return
  fi
  total_pass=$((total_pass + $(echo "$line" | awk '{print $1}')))
  total_fail=$((total_fail + $(echo "$line" | awk '{print $3}' | tr -d ,)))
  total_skip=$((total_skip + $(echo "$line" | awk '{print $5}')))
}
run() { # LABEL KIND SUITES ARGS...: run tests/run-tests.sh with repositories of KIND and tally
  local label=$1 kind=$2 suites=$3 log
  shift 3
  log=$(mktemp /tmp/pl-suite.XXXXXX)
  echo "== $label"
  PL_TEST_REPO_KIND=$kind SUITES=$suites bash tests/run-tests.sh "$@" 2>&1 | tee "$log" | sed 's/^/  /'
  tally "$log"
  rm -f "$log"
}
# TSan writes its reports to files (a test that expects a failure would hide
# a report's exit status); any report file fails the run. tests/tsan.supp
# lists the reports in libraries that are not races of ours.
tsan_logs=$(mktemp -d /tmp/pl-tsan.XXXXXX)
tsan_check() {
  if compgen -G "$tsan_logs/tsan.*" >/dev/null; then
    echo "== ThreadSanitizer reports (in $tsan_logs):"
    grep -h -A12 '^WARNING: ThreadSanitizer' "$tsan_logs"/tsan.* | sed 's/^/  /' | head -n 200
    total_fail=$((total_fail + 1))
  else
    rm -rf "$tsan_logs"
  fi
}
# The threaded work: backup's uploaders, restore's, replica's and export's workers,
# verify, and the S3 store (tests/integration names; a new threaded test
# joins by name).
tsan_tests='^test-(roundtrip|dedup|extents|errors|kill9|verify|locks|restore-shrink|replica-sync|replica-errors|export-repo|export-formats|sink-safety|s3-.*)$'

# One gateway for the whole run; the S3 tests reuse it.
rgwdir=$(mktemp -d /tmp/pl-rgw.XXXXXX)
stop_rgw() { bash tests/integration/rgw.sh stop "$rgwdir" >/dev/null 2>&1 || true; rm -rf "$rgwdir"; }
trap stop_rgw EXIT
rgw_env=$(bash tests/integration/rgw.sh start "$rgwdir") || { echo "could not start Ceph RGW"; exit 1; }
eval "$rgw_env"
export PL_TEST_S3_ENDPOINT PL_TEST_S3_BUCKET AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION

# Folder repositories (the S3-specific tests find the gateway in the environment).
run "folder repositories" local "unit fuzz integration style" build
run "the round-trip and lifecycle suite against S3" s3 "" build '^test-(roundtrip|extents|dedup|errors|kill9|locks|forget|prune|prune-kill9|repair|concurrency|history-cache|daemon|daemon-outage|throttle|serve)$'
run "ASan+UBSan" local "unit fuzz integration" build-asan
export TSAN_OPTIONS="suppressions=$top/tests/tsan.supp log_path=$tsan_logs/tsan second_deadlock_stack=1"
export MESON_TEST_ARGS="--timeout-multiplier 3"
run "TSan" local "" build-tsan "$tsan_tests"
run "TSan, the round-trip suite against S3" s3 "" build-tsan '^test-(roundtrip|extents|dedup|errors|kill9)$'
unset TSAN_OPTIONS MESON_TEST_ARGS
tsan_check

echo "$total_pass passed, $total_fail failed, $total_skip skipped"
[ "$total_fail" -eq 0 ]
