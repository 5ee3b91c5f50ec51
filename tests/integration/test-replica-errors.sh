#!/usr/bin/env bash
# Bad inputs to replica sync and export each give a clear one-line error:
# an unknown snapshot, an unreachable repository, a target that is in use,
# read-only, unknown to pilotlight, or holds another disk, a damaged state
# file, and usage mistakes (exit 2).
source "$(dirname "$0")/lib.sh"
requires python3

repo=$(new_repo)
$PL -r "$repo" init >/dev/null
make_disk "$TMP/disk" 16
$PL -r "$repo" backup --disk vm "$TMP/disk" >/dev/null
$PL -r "$repo" backup --disk other "$TMP/disk" >/dev/null

one_line() { [ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "more than one line: $(cat "$TMP/err")"; }

# An unknown snapshot.
expect_fail $PL -r "$repo" replica sync --disk vm "$TMP/rep" --snapshot deadbeef
grep -q deadbeef "$TMP/err" || fail "unclear: $(cat "$TMP/err")"; one_line
[ ! -e "$TMP/rep" ] || fail "a target was created for an unknown snapshot"
expect_fail $PL -r "$repo" replica sync --disk nosuchdisk "$TMP/rep"
grep -q nosuchdisk "$TMP/err" || fail "unclear: $(cat "$TMP/err")"; one_line
expect_fail $PL -r "$repo" export vm@deadbeef "$TMP/x.vmdk"
grep -q deadbeef "$TMP/err" || fail "unclear: $(cat "$TMP/err")"; one_line
[ ! -e "$TMP/x.vmdk" ] && ! ls "$TMP"/x.vmdk.pilotlight-part.* >/dev/null 2>&1 || fail "export left a file behind"

# An unreachable repository.
expect_fail $PL -r "$TMP/no-such-repo" replica sync --disk vm "$TMP/rep"
one_line
expect_fail $PL -r "s3:http://127.0.0.1:9/bucket/prefix" replica sync --disk vm "$TMP/rep"
one_line
expect_fail $PL -r "$TMP/no-such-repo" export vm "$TMP/x.vmdk"
one_line

# Usage mistakes exit 2.
rc=0; $PL -r "$repo" replica sync "$TMP/rep" 2>"$TMP/err" || rc=$?
[ "$rc" -eq 2 ] && grep -q -- --disk "$TMP/err" || fail "missing --disk: exit $rc, $(cat "$TMP/err")"
rc=0; $PL -r "$repo" replica frobnicate 2>"$TMP/err" || rc=$?
[ "$rc" -eq 2 ] || fail "unknown subcommand: exit $rc"
rc=0; $PL -r "$repo" replica sync --disk vm --watch 0 "$TMP/rep" 2>"$TMP/err" || rc=$?
[ "$rc" -eq 2 ] || fail "bad --watch: exit $rc"
rc=0; $PL -r "$repo" export vm "$TMP/x.vmdk" --format qcow2 2>"$TMP/err" || rc=$?
[ "$rc" -eq 2 ] && grep -q qcow2 "$TMP/err" || fail "bad --format: exit $rc"

# An existing file that pilotlight does not know is not overwritten without --force.
head -c 1M /dev/urandom >"$TMP/foreign"
expect_fail $PL -r "$repo" replica sync --disk vm "$TMP/foreign"
grep -q -- --force "$TMP/err" || fail "no --force hint: $(cat "$TMP/err")"; one_line
$PL -r "$repo" replica sync --disk vm "$TMP/foreign" --force >/dev/null
cmp "$TMP/disk" "$TMP/foreign"

# A replica of another disk is not silently switched.
$PL -r "$repo" replica sync --disk vm "$TMP/rep" >/dev/null
expect_fail $PL -r "$repo" replica sync --disk other "$TMP/rep"
grep -q "holds disk vm" "$TMP/err" || fail "unclear: $(cat "$TMP/err")"; one_line
# Nor one made from another repository.
repo2=$(new_repo)
$PL -r "$repo2" init >/dev/null
$PL -r "$repo2" backup --disk vm "$TMP/disk" >/dev/null
expect_fail $PL -r "$repo2" replica sync --disk vm "$TMP/rep"
grep -q "repository" "$TMP/err" || fail "unclear: $(cat "$TMP/err")"; one_line

# A damaged state file.
cp "$TMP/rep.pilotlight-state" "$TMP/state.bak"
printf 'garbage\n' >"$TMP/rep.pilotlight-state"
expect_fail $PL -r "$repo" replica sync --disk vm "$TMP/rep"
grep -q "malformed" "$TMP/err" || fail "unclear: $(cat "$TMP/err")"; one_line
cp "$TMP/state.bak" "$TMP/rep.pilotlight-state"

# A target in use: another process holds a lock on it, as QEMU does on the
# images it runs.
python3 -c 'import fcntl, sys, time
f = open(sys.argv[1], "r+b"); fcntl.lockf(f, fcntl.LOCK_EX); open(sys.argv[2], "w").close(); time.sleep(60)' \
  "$TMP/rep" "$TMP/locked" &
lpid=$!
cleanup_add "kill $lpid 2>/dev/null"
for _ in $(seq 50); do [ -e "$TMP/locked" ] && break; sleep 0.1; done
expect_fail $PL -r "$repo" replica sync --disk vm "$TMP/rep"
grep -q "in use" "$TMP/err" || fail "unclear: $(cat "$TMP/err")"; one_line
kill "$lpid"; wait "$lpid" 2>/dev/null || true
$PL -r "$repo" replica sync --disk vm "$TMP/rep" >/dev/null

# A read-only target (a read-only loop device), where loop devices exist.
if [ "$(id -u)" -eq 0 ] && command -v losetup >/dev/null && losetup -f >/dev/null 2>&1; then
  truncate -s 32M "$TMP/ro"
  ro=$(losetup -f --show -r "$TMP/ro")
  cleanup_add "losetup -d $ro"
  expect_fail $PL -r "$repo" replica sync --disk vm "$ro" --state-dir "$TMP/st" --force
  grep -qi "read-only\|permission" "$TMP/err" || fail "unclear: $(cat "$TMP/err")"; one_line
  expect_fail $PL -r "$repo" restore vm "$ro" --force
  one_line
fi

# Export into a folder that does not exist.
expect_fail $PL -r "$repo" export vm "$TMP/nodir/x.vmdk"
grep -q nodir "$TMP/err" || fail "unclear: $(cat "$TMP/err")"; one_line
echo OK
