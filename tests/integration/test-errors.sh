#!/usr/bin/env bash
# Wrong arguments and bad input: one-line errors, exit 2 for usage, 1 for failures.
source "$(dirname "$0")/lib.sh"

usage() { # command... : must exit 2 with a message
  local rc=0
  "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
  [ "$rc" -eq 2 ] || fail "expected exit 2 from: $* (got $rc: $(cat "$TMP/err"))"
  grep -q '^pilotlight: ' "$TMP/err" || [ "$#" -eq 1 ] || fail "no message from: $*"
}
repo=$(new_repo)
make_disk "$TMP/disk" 8

usage $PL
usage $PL frobnicate
usage env -u PILOTLIGHT_REPOSITORY $PL init
usage $PL -r "$repo" backup "$TMP/disk"
usage $PL -r "$repo" backup --disk d
usage $PL -r "$repo" backup --disk d "$TMP/disk" extra
usage $PL -r "$repo" backup --disk d "$TMP/disk" --bogus
usage $PL -r "$repo" backup --disk d "$TMP/disk" --block-size lots
usage $PL -r "$repo" backup --disk d "$TMP/disk" --full --changed-extents /dev/null
usage $PL -r "$repo" restore d
usage $PL -r "$repo" verify extra
$PL --help | grep -q backup || fail "--help does not list commands"
$PL backup --help | grep -q -- --changed-extents || fail "backup --help"

# Not a repository (yet).
expect_fail $PL -r "$repo" snapshots
grep -q "not a pilotlight repository" "$TMP/err" || fail "not-a-repo message: $(cat "$TMP/err")"

# -r after the command name, and PILOTLIGHT_REPOSITORY.
$PL init -r "$repo" >/dev/null
PILOTLIGHT_REPOSITORY=$repo $PL snapshots >/dev/null
expect_fail $PL -r "$repo" init
grep -q "already holds" "$TMP/err" || fail "init twice: $(cat "$TMP/err")"

# Unreadable sources.
expect_fail $PL -r "$repo" backup --disk d "$TMP/nope"
grep -q "$TMP/nope" "$TMP/err" || fail "missing source not named"
mkdir "$TMP/dir"
expect_fail $PL -r "$repo" backup --disk d "$TMP/dir"
if [ "$(id -u)" -ne 0 ]; then
  cp "$TMP/disk" "$TMP/noread" && chmod 000 "$TMP/noread"
  expect_fail $PL -r "$repo" backup --disk d "$TMP/noread"
fi
expect_fail $PL -r "$repo" backup --disk "bad/name" "$TMP/disk"
grep -q "disk name" "$TMP/err" || fail "bad disk name message"

# Snapshots that do not exist, and ambiguous prefixes.
expect_fail $PL -r "$repo" restore d "$TMP/r"
grep -q "no snapshots" "$TMP/err" || fail "no-snapshot message: $(cat "$TMP/err")"
$PL -r "$repo" backup --disk d "$TMP/disk" >/dev/null
expect_fail $PL -r "$repo" restore d@ffffffffffff "$TMP/r"
grep -q "no snapshot ffffffffffff" "$TMP/err" || fail "unknown snapshot: $(cat "$TMP/err")"
[ ! -e "$TMP/r" ] || fail "a failed restore left a target behind"
for i in $(seq 1 20); do $PL -r "$repo" backup --disk d "$TMP/disk" >/dev/null; done
# Among 21 ids, some single hex digit is shared by two or more.
ids=$($PL -r "$repo" snapshots --disk d --json | grep -o '"id":"[0-9a-f]' | cut -c7 | sort | uniq -d | head -n1)
expect_fail $PL -r "$repo" restore "d@$ids" "$TMP/r"
grep -q "matches" "$TMP/err" || fail "ambiguous prefix: $(cat "$TMP/err")"

# A restore target that exists, and one whose folder is missing.
touch "$TMP/exists"
expect_fail $PL -r "$repo" restore d "$TMP/exists"
expect_fail $PL -r "$repo" restore d "$TMP/no/such/dir/img"
# A block size that is not a power of two.
expect_fail $PL -r "$repo" backup --disk e "$TMP/disk" --block-size 1000000
grep -q "power of two" "$TMP/err" || fail "block size message"
# A changed block size on an existing disk.
expect_fail $PL -r "$repo" backup --disk d "$TMP/disk" --block-size 64K
grep -q -- "--full" "$TMP/err" || fail "block size change message: $(cat "$TMP/err")"

if is_local "$repo"; then
  # A newer format version is refused with advice.
  sed -i 's/^pilotlight-repository=[0-9]*$/pilotlight-repository=9/' "$repo/config"
  expect_fail $PL -r "$repo" snapshots
  grep -q "newer" "$TMP/err" || fail "newer version: $(cat "$TMP/err")"
  [ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "not one line"
fi
echo OK
