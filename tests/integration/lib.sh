# Sourced by every integration test. Provides:
#   $PL         the pilotlight binary under test (from the runner, or build/pilotlight)
#   $TMP        a private temporary folder, removed at exit
#   requires    skip (exit 77) when a command is missing
#   new_repo    prints a fresh repository location: a local folder, or an s3:
#               URL on the gateway in PL_TEST_S3_ENDPOINT (see rgw.sh) when
#               PL_TEST_REPO_KIND=s3
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

# Every repository the suite makes is encrypted (init's default) with this
# password, unless a test says otherwise. Keys are made cheap to open
# (scrypt N = 2^10, a test hook): the suite opens thousands of repositories.
printf 'pilotlight test password %s\n' "$$" >"$TMP/password"
chmod 600 "$TMP/password"
export PILOTLIGHT_PASSWORD_FILE=$TMP/password
export PILOTLIGHT_TEST_KDF_LOG2N=${PILOTLIGHT_TEST_KDF_LOG2N:-10}

requires() {
  command -v "$1" >/dev/null 2>&1 || { echo "SKIP: requires $1"; exit 77; }
}

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

new_repo() {
  if [ "${PL_TEST_REPO_KIND:-local}" = s3 ]; then
    echo "s3:$PL_TEST_S3_ENDPOINT/${PL_TEST_S3_BUCKET}/$(basename "$(mktemp -u "$TMP/rXXXXXX")")"
  else
    mktemp -u "$TMP/repo.XXXXXX"
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

# make_disk FILE MIB: a sparse disk image of MIB MiB with, spread over it,
# random (incompressible) runs, text (compressible) runs, allocated zero runs
# and holes. Deterministic for a given FILE name's seed is not needed.
make_disk() {
  local f=$1 mib=$2 i
  rm -f "$f"
  truncate -s "${mib}M" "$f"
  for ((i = 1; i + 3 < mib; i += 11)); do
    dd if=/dev/urandom of="$f" bs=64K count=$((16 + i % 7)) seek=$((i * 16)) conv=notrunc status=none
    { yes "pilotlight test line $i $(date +%N)" || true; } | head -c $((700000 + i * 1000)) |
      dd of="$f" bs=64K seek=$(((i + 3) * 16 + 1)) conv=notrunc status=none
    dd if=/dev/zero of="$f" bs=64K count=8 seek=$(((i + 6) * 16)) conv=notrunc status=none
  done
}

# scribble FILE OFFSET LEN: overwrite LEN random bytes at OFFSET and print
# the extent as "OFFSET LEN" (a changed-area list line).
scribble() {
  head -c "$3" /dev/urandom | dd of="$1" bs=4096 seek="$2" oflag=seek_bytes conv=notrunc status=none
  echo "$2 $3"
}

# json_field KEY: read one JSON object on stdin and print KEY's number or string.
json_field() {
  grep -o "\"$1\":\(\"[^\"]*\"\|[0-9]*\)" | head -n1 | sed 's/^[^:]*://; s/"//g'
}

# flip_byte FILE OFFSET: change the byte at OFFSET (to its value + 1).
flip_byte() {
  local b
  b=$(dd if="$1" bs=1 skip="$2" count=1 status=none | od -An -tu1 | tr -d ' ')
  printf "\\$(printf %03o $(((b + 1) % 256)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# stop_pid PID: SIGTERM, wait up to 10 s, then SIGKILL; reaps a child. (An
# ASan build's nbdkit can hang in exit, in p11-kit's destructor.)
stop_pid() {
  local i
  kill "$1" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# is_local REPO: true for a folder repository (tests that corrupt files use it).
is_local() { [[ $1 != s3:* ]]; }

# store_tool REPO CMD ARGS...: the object-level tool (tests/s3-tool.c) on a
# folder or s3: repository: put KEY FILE, get KEY, head KEY, del KEY, list PREFIX.
store_tool() {
  local tool=${S3_TOOL:-$(dirname "$PL")/tests/unit/s3-tool}
  [ -x "$tool" ] || fail "s3-tool not built: $tool"
  "$tool" "$@"
}
