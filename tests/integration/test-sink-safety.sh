#!/usr/bin/env bash
# The sink's safety rules, as a user meets them: an interrupted restore to a
# new file leaves nothing under the target's name (and its leftover never
# blocks a rerun); an interrupted restore over an existing file marks it
# incomplete for every later command; SIGINT/SIGTERM print one line and exit
# 130/143; a file that qemu-nbd holds is refused; export follows restore's
# --force rule and refuses an extension that contradicts --format; "-" is
# standard output for raw restore and for raw/vmdk export, refused for VHD.
# Slow writes come from the test_hooks build (PILOTLIGHT_TEST_SINK_DELAY_US).
source "$(dirname "$0")/lib.sh"
requires qemu-img
requires qemu-nbd
requires script

repo=$(new_repo)
$PL -r "$repo" init >/dev/null
make_disk "$TMP/disk" 24
$PL -r "$repo" backup --disk vm "$TMP/disk" >/dev/null
one_line() { [ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "not one line: $(cat "$TMP/err")"; }

# wait_for GLOB: until a file matching it exists (the restore is writing).
wait_for() {
  for _ in $(seq 200); do compgen -G "$1" >/dev/null && return 0; sleep 0.02; done
  fail "nothing matching $1 appeared"
}

# run_signal SIG GLOB CMD...: start CMD, send SIG once GLOB exists, keep its
# exit status in $rc and stderr in $TMP/err. Writes are slowed to 0.1 s each,
# so that even a loaded machine sends the signal long before the last one.
run_signal() {
  local sig=$1 glob=$2
  shift 2
  "$@" >"$TMP/out" 2>"$TMP/err" &
  local pid=$!
  wait_for "$glob"
  sleep 0.1
  kill -s "$sig" $pid
  rc=0
  wait $pid || rc=$?
}

# a. kill -9 during a restore to a new file: nothing under the target's
# name; the temporary left behind does not block a rerun.
env PILOTLIGHT_TEST_SINK_DELAY_US=100000 $PL -r "$repo" restore vm "$TMP/r1" --threads 1 >/dev/null 2>&1 &
pid=$!
wait_for "$TMP/r1.pilotlight-part.*"
kill -9 $pid
wait $pid 2>/dev/null || true
[ ! -e "$TMP/r1" ] || fail "kill -9 left a file under the target's name"
$PL -r "$repo" restore vm "$TMP/r1" >/dev/null || fail "rerun after kill -9"
cmp "$TMP/disk" "$TMP/r1"
rm -f "$TMP"/r1.pilotlight-part.*

# c. SIGINT and SIGTERM during a restore to a new file: one line, 130/143,
# the temporary removed.
run_signal INT "$TMP/r2.pilotlight-part.*" env PILOTLIGHT_TEST_SINK_DELAY_US=100000 $PL -r "$repo" restore vm "$TMP/r2" --threads 1
[ "$rc" -eq 130 ] || fail "SIGINT: exit $rc, $(cat "$TMP/err")"
grep -q "^pilotlight: restore of vm@.* interrupted by SIGINT: .*rerun" "$TMP/err" ||
  fail "SIGINT message: $(cat "$TMP/err")"
one_line
[ ! -e "$TMP/r2" ] && ! compgen -G "$TMP/r2.pilotlight-part.*" >/dev/null ||
  fail "SIGINT left a file behind"
run_signal TERM "$TMP/r2.pilotlight-part.*" env PILOTLIGHT_TEST_SINK_DELAY_US=100000 $PL -r "$repo" restore vm "$TMP/r2" --threads 1
[ "$rc" -eq 143 ] || fail "SIGTERM: exit $rc, $(cat "$TMP/err")"
grep -q "interrupted by SIGTERM" "$TMP/err" || fail "SIGTERM message: $(cat "$TMP/err")"
one_line
[ ! -e "$TMP/r2" ] || fail "SIGTERM left a file behind"

# b. An interrupted restore --force over an existing file marks it
# incomplete; restore, replica sync and export then say so.
cp "$TMP/disk" "$TMP/r3"
run_signal TERM "$TMP/r3.pilotlight-incomplete" env PILOTLIGHT_TEST_SINK_DELAY_US=100000 $PL -r "$repo" restore vm "$TMP/r3" --force --threads 1
[ "$rc" -eq 143 ] || fail "SIGTERM over an existing file: exit $rc, $(cat "$TMP/err")"
grep -q "r3 is marked incomplete; rerun restore --force" "$TMP/err" || fail "message: $(cat "$TMP/err")"
[ -e "$TMP/r3.pilotlight-incomplete" ] || fail "no incomplete marker"
for cmd in "restore vm $TMP/r3" "replica sync --disk vm $TMP/r3" "export vm $TMP/r3 --format raw"; do
  expect_fail $PL -r "$repo" $cmd
  grep -q "r3 is incomplete: an earlier restore of vm@[0-9a-f]* was interrupted; rerun restore --force" \
    "$TMP/err" || fail "$cmd: $(cat "$TMP/err")"
  one_line
done
$PL -r "$repo" restore vm "$TMP/r3" --force >/dev/null || fail "restore --force over an incomplete file"
cmp "$TMP/disk" "$TMP/r3"
[ ! -e "$TMP/r3.pilotlight-incomplete" ] || fail "marker kept after a finished restore"

# c. SIGINT during replica sync and export.
run_signal INT "$TMP/rep.pilotlight-state" env PILOTLIGHT_TEST_SINK_DELAY_US=100000 $PL -r "$repo" replica sync --disk vm "$TMP/rep" --threads 1
[ "$rc" -eq 130 ] && grep -q "replica sync of disk vm to .* interrupted by SIGINT: rerun replica sync" "$TMP/err" ||
  fail "replica SIGINT: exit $rc, $(cat "$TMP/err")"
one_line
$PL -r "$repo" replica sync --disk vm "$TMP/rep" >/dev/null || fail "replica rerun"
cmp "$TMP/disk" "$TMP/rep"
run_signal INT "$TMP/x.raw.pilotlight-part.*" env PILOTLIGHT_TEST_SINK_DELAY_US=100000 $PL -r "$repo" export vm "$TMP/x.raw" --threads 1
[ "$rc" -eq 130 ] && grep -q "export of vm@.* interrupted by SIGINT" "$TMP/err" ||
  fail "export SIGINT: exit $rc, $(cat "$TMP/err")"
one_line
[ ! -e "$TMP/x.raw" ] && ! compgen -G "$TMP/x.raw.pilotlight-part.*" >/dev/null ||
  fail "export SIGINT left a file behind"

# d. A file that qemu-nbd serves is refused by restore --force.
cp "$TMP/disk" "$TMP/served"
qemu-nbd --fork --persistent --pid-file="$TMP/nbd.pid" -f raw "$TMP/served" -k "$TMP/nbd.sock"
cleanup_add "kill \$(cat $TMP/nbd.pid) 2>/dev/null"
expect_fail $PL -r "$repo" restore vm "$TMP/served" --force
grep -q "served is in use" "$TMP/err" || fail "qemu-nbd's file: $(cat "$TMP/err")"
one_line
expect_fail $PL -r "$repo" export vm "$TMP/served" --format raw --force
grep -q "in use" "$TMP/err" || fail "export over qemu-nbd's file: $(cat "$TMP/err")"
kill "$(cat "$TMP/nbd.pid")"

# e. export: --force for an existing file; the extension must agree with
# --format; without --format the extension decides.
echo old >"$TMP/e.vmdk"
expect_fail $PL -r "$repo" export vm "$TMP/e.vmdk"
grep -q "e.vmdk exists: add --force" "$TMP/err" || fail "export over a file: $(cat "$TMP/err")"
[ "$(cat "$TMP/e.vmdk")" = old ] || fail "export changed the file without --force"
$PL -r "$repo" export vm "$TMP/e.vmdk" --force >/dev/null
qemu-img compare -f vmdk "$TMP/e.vmdk" -F raw "$TMP/disk" >/dev/null || fail "export --force"
for bad in "x.vmdk --format vhd" "x.vhd --format vmdk" "x.raw --format vmdk" "x.img --format vhd"; do
  set -- $bad
  rc=0; $PL -r "$repo" export vm "$TMP/$1" "$2" "$3" 2>"$TMP/err" || rc=$?
  [ "$rc" -eq 2 ] && grep -q "names a .* image but --format is" "$TMP/err" || fail "$bad: exit $rc, $(cat "$TMP/err")"
  one_line
  [ ! -e "$TMP/$1" ] || fail "$bad wrote a file"
done
$PL -r "$repo" export vm "$TMP/f.vhd" >/dev/null
qemu-img info "$TMP/f.vhd" | grep -q "file format: vpc" || fail "the extension did not choose VHD"
$PL -r "$repo" export vm "$TMP/g.vhd" --format vhd-fixed >/dev/null || fail ".vhd with vhd-fixed"

# g. A file another program creates under the name while a restore writes
# its temporary is never replaced: one line, exit 1, that file untouched.
env PILOTLIGHT_TEST_SINK_DELAY_US=100000 $PL -r "$repo" restore vm "$TMP/r5" --threads 1 \
  >"$TMP/out" 2>"$TMP/err" &
pid=$!
wait_for "$TMP/r5.pilotlight-part.*"
echo theirs >"$TMP/r5"
rc=0
wait $pid || rc=$?
[ "$rc" -eq 1 ] || fail "a file created meanwhile: exit $rc"
one_line
grep -q "created by another program" "$TMP/err" || fail "created meanwhile: $(cat "$TMP/err")"
[ "$(cat "$TMP/r5")" = theirs ] || fail "a file created meanwhile was replaced"
! compgen -G "$TMP/r5.pilotlight-part.*" >/dev/null || fail "the temporary was left behind"

# f. "-" is standard output.
$PL -r "$repo" restore vm - | cmp - "$TMP/disk" || fail "restore to standard output"
$PL -r "$repo" export vm - --format raw | cmp - "$TMP/disk" || fail "raw export to standard output"
$PL -r "$repo" export vm - --format vmdk >"$TMP/s.vmdk" 2>/dev/null
qemu-img compare -f vmdk "$TMP/s.vmdk" -F raw "$TMP/disk" >/dev/null || fail "vmdk to standard output"
expect_fail $PL -r "$repo" export vm - --format vhd
grep -q "cannot be written to standard output" "$TMP/err" || fail "vhd to stdout: $(cat "$TMP/err")"
one_line
# A terminal is refused (script(1) gives the command a real pseudo-terminal).
rc=0
script -qec "$PL -r '$repo' restore vm -" /dev/null >"$TMP/tty" 2>&1 </dev/null || rc=$?
[ "$rc" -eq 1 ] || fail "restore to a terminal: exit $rc"
grep -q "standard output is a terminal" "$TMP/tty" || fail "restore to a terminal: $(head -c 300 "$TMP/tty")"
[ "$(wc -c <"$TMP/tty")" -lt 200 ] || fail "restore to a terminal wrote data to it"
[ ! -e ./- ] && [ ! -e "$TMP/-" ] || fail "a file named - was created"
echo ok
