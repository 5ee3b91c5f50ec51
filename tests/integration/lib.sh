# Sourced by every integration test. Provides:
#   $PL         the pilotlight binary under test (from the runner, or build/pilotlight)
#   $TMP        a private temporary folder, removed at exit
#   requires    skip (exit 77) when a command is missing
#   new_repo    prints a fresh repository location: a local folder, or an s3:
#               URL when the runner exports PL_TEST_S3_ENDPOINT (see rgw.sh)
#   cleanup_add register a command to run at exit (kill only what we started)
#   fail        print a message and exit 1
#   expect_fail run a command that must exit non-zero; its stderr is in $TMP/err
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PL=${PL:-$top/build/pilotlight}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pl-test.XXXXXX")
_cleanups=()
cleanup_add() { _cleanups+=("$*"); }
_run_cleanups() {
  local i
  for ((i = ${#_cleanups[@]} - 1; i >= 0; i--)); do eval "${_cleanups[$i]}" || true; done
  rm -rf "$TMP"
}
trap _run_cleanups EXIT

requires() {
  command -v "$1" >/dev/null 2>&1 || { echo "SKIP: requires $1"; exit 77; }
}

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

_repo_n=0
new_repo() {
  _repo_n=$((_repo_n + 1))
  if [ -n "${PL_TEST_S3_ENDPOINT:-}" ]; then
    echo "s3:$PL_TEST_S3_ENDPOINT/${PL_TEST_S3_BUCKET}/$(basename "$TMP")-r$_repo_n"
  else
    echo "$TMP/repo$_repo_n"
  fi
}

# expect_fail CMD...: the command must fail with exit status 1 and a one-line
# "pilotlight: ..." message; stderr is kept in $TMP/err for further checks.
expect_fail() {
  local rc=0
  "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
  [ "$rc" -ne 0 ] || fail "expected failure from: $*"
  grep -q '^pilotlight: ' "$TMP/err" || fail "no 'pilotlight:' message from: $* ($(cat "$TMP/err"))"
  echo "$rc" >"$TMP/rc"
}
