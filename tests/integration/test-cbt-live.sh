#!/usr/bin/env bash
# Live CBT through QMP (--qmp): qemu-storage-daemon serves a qcow2 image to
# a writer over NBD while pilotlight backs it up. Full + CBT cycles restore
# to exactly the state at snapshot time, even with writes during the backup;
# bitmaps survive a clean daemon restart; after kill -9 of the daemon the
# backup falls back to hash-compare and still restores identically.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/cbt-lib.sh"
export TMPDIR=$TMP # private sockets and fleece overlays go away with the test
requires qemu-img
requires qemu-io
requires qemu-storage-daemon
requires nbdcopy
requires python3

repo=$(new_repo)
"$PL" init -r "$repo" >/dev/null
img=$TMP/live.qcow2
qemu-img create -q -f qcow2 "$img" 128M
qemu-io -f qcow2 -c 'write -P 0x11 0 6M' -c 'write -P 0x22 70M 5M' "$img" >/dev/null
qsd_start "$img" live
wuri="nbd+unix:///w?socket=$TMP/live.nbd"
write() { qemu-io -f raw "${@/#/-c}" "$wuri" >/dev/null; }
qmpsock=$TMP/live.qmp

n=0
# backup_check MODE REF [options]: back up, check the mode, restore, cmp REF.
backup_check() {
  local want=$1 ref=$2
  shift 2
  n=$((n + 1))
  "$PL" -r "$repo" backup --disk live --qmp "$qmpsock" --node disk0 --block-size 1M "$@" \
    >"$TMP/out.$n" 2>"$TMP/err.$n" || fail "backup $n failed: $(cat "$TMP/err.$n")"
  local mode
  mode=$(snap_field "$repo" live mode)
  [ "$mode" = "$want" ] || fail "backup $n: mode $mode, expected $want ($(cat "$TMP/err.$n"))"
  rm -f "$TMP/restored.raw"
  "$PL" -r "$repo" restore live "$TMP/restored.raw" >/dev/null
  cmp "$TMP/restored.raw" "$ref" || fail "backup $n ($mode): restore differs from the disk at snapshot time"
  # Torn down: no export, job or fleece node of ours is left; one bitmap of ours, recording.
  qmp "$qmpsock" query-block-exports | grep -q plexport && fail "backup $n: export left"
  qmp "$qmpsock" query-block-jobs | grep -q pljob && fail "backup $n: job left"
  qmp "$qmpsock" query-named-block-nodes | grep -q plfleece && fail "backup $n: fleece node left"
  local bms
  bms=$(qsd_bitmaps "$qmpsock")
  [ "$(echo "$bms" | grep -c '^pilotlight-')" = 1 ] || fail "backup $n: bitmaps left: $bms"
  echo "$bms" | grep -q '^pilotlight-[0-9a-f]*:True:False$' || fail "backup $n: not recording: $bms"
  echo "ok: backup $n $mode, read $(snap_field "$repo" live bytes_read) bytes"
}
snapshot_ref() { rm -f "$TMP/ref.raw"; nbdcopy "$wuri" "$TMP/ref.raw"; }

snapshot_ref
backup_check full "$TMP/ref.raw" --nbd-socket "$TMP/live.nbd"

for cycle in 1 2; do
  write "write -P $((0x40 + cycle)) $((cycle * 3))M 4k" "write -P $((0x50 + cycle)) $((cycle * 30))M 2M"
  snapshot_ref
  backup_check cbt "$TMP/ref.raw" --nbd-socket "$TMP/live.nbd"
  [ "$(snap_field "$repo" live bytes_read)" -le $((4 * 1024 * 1024)) ] || fail "cycle $cycle: not CBT"
done

# Writes during the backup. The hook runs once the point in time is fixed:
# it overwrites a third of the disk, then leaves a writer running while
# pilotlight reads. The snapshot must hold the state before the hook.
write "write -P 0x66 10M 1M" "write -P 0x67 100M 64k"
snapshot_ref
hook="qemu-io -f raw -c 'write -P 0x99 0 40M' '$wuri' >/dev/null &&
  { (while :; do qemu-io -f raw -c 'write -P 0x98 96M 8M' -c 'write -P 0x97 5M 64k' '$wuri'; done) \
    </dev/null >/dev/null 2>&1 & echo \$! >'$TMP/bg.pid'; }"
PILOTLIGHT_TEST_FLEECE_HOOK=$hook backup_check cbt "$TMP/ref.raw" --nbd-socket "$TMP/live.nbd" \
  --verify-cbt
grep -q "equals the disk" "$TMP/err.$n" || fail "--verify-cbt said nothing"
kill "$(cat "$TMP/bg.pid")"
sleep 0.5
rm -f "$TMP/now.raw"
nbdcopy "$wuri" "$TMP/now.raw"
cmp -s "$TMP/now.raw" "$TMP/ref.raw" && fail "the writes during the backup did not happen"
echo "ok: point in time: the restore has none of the writes made during the backup"
# The next CBT backup catches the writes made during the previous one.
snapshot_ref
backup_check cbt "$TMP/ref.raw" --nbd-socket "$TMP/live.nbd"

# A backup that fails after the transaction undoes the rotation.
write "write -P 0x5f 11M 4k"
before=$(qsd_bitmaps "$qmpsock")
expect_fail "$PL" -r "$repo" backup --disk live --qmp "$qmpsock" --node disk0 \
  --nbd-socket "$TMP/live.nbd" --block-size 4M
grep -q "block size" "$TMP/err" || fail "unexpected failure: $(cat "$TMP/err")"
[ "$(qsd_bitmaps "$qmpsock")" = "$before" ] || fail "rotation not undone: $(qsd_bitmaps "$qmpsock")"
snapshot_ref
backup_check cbt "$TMP/ref.raw" --nbd-socket "$TMP/live.nbd"
[ "$(snap_field "$repo" live bytes_read)" = 1048576 ] || fail "the failed run's changes were lost"

# pilotlight killed during a live backup leaves its export, job and fleece
# in the daemon and the old bitmap disabled. The next run removes the
# leftovers, falls back to hash-compare and still restores identically.
write "write -P 0x5d 12M 4k"
snapshot_ref
rc=0
PILOTLIGHT_TEST_FLEECE_HOOK='kill -9 $PPID' "$PL" -r "$repo" backup --disk live --qmp "$qmpsock" --fleece-dir "$TMP" \
  --node disk0 --nbd-socket "$TMP/live.nbd" >/dev/null 2>&1 || rc=$?
[ $rc = 137 ] || fail "the hook did not kill pilotlight (exit $rc)"
qmp "$qmpsock" query-block-exports | grep -q plexport || fail "expected a leftover export"
stale=$(qsd_bitmaps "$qmpsock" | grep ':True:' | sed 's/:.*//')
n=$((n + 1))
"$PL" -r "$repo" backup --disk live --qmp "$qmpsock" --node disk0 --nbd-socket "$TMP/live.nbd" \
  >"$TMP/out.$n" 2>"$TMP/err.$n" || fail "backup after the kill failed: $(cat "$TMP/err.$n")"
[ "$(snap_field "$repo" live mode)" = hash-compare ] || fail "CBT trusted after an interrupted run"
grep -q "is disabled, so it stopped recording" "$TMP/err.$n" || fail "no warning: $(cat "$TMP/err.$n")"
for q in query-block-exports query-block-jobs query-named-block-nodes; do
  qmp "$qmpsock" $q | grep -qE 'plexport|pljob|plfleece' && fail "leftovers remain in $q"
done
rm -f "$TMP/restored.raw"
"$PL" -r "$repo" restore live "$TMP/restored.raw" >/dev/null
cmp "$TMP/restored.raw" "$TMP/ref.raw" || fail "restore after the interrupted run differs"
# The killed run's own new bitmap is left alone (it names no snapshot): remove it here.
for b in $stale; do
  [ "pilotlight-${b#pilotlight-}" != "$(snap_field "$repo" live cbt | sed 's/qemu-bitmap://')" ] &&
    qmp "$qmpsock" block-dirty-bitmap-remove "{\"node\": \"disk0\", \"name\": \"$b\"}" >/dev/null
done
echo "ok: after pilotlight was killed mid-backup: leftovers removed, fallback, identical restore"

# A clean restart keeps the bitmaps; pilotlight's own NBD server this time.
qsd_stop live
qemu-io -f qcow2 -c 'write -P 0x71 20M 1M' "$img" >/dev/null
qsd_start "$img" quiet noexport
qmpsock=$TMP/quiet.qmp
qemu-img convert -U -O raw "$img" "$TMP/ref.raw"
backup_check cbt "$TMP/ref.raw"
qsd_stop quiet

# kill -9 of the daemon while it writes: the bitmap cannot be trusted.
qsd_start "$img" live
qmpsock=$TMP/live.qmp
write "write -P 0x72 50M 3M" "flush"
qsd_stop live KILL
qsd_start "$img" live
qsd_bitmaps "$qmpsock" | grep -q ':True$' || fail "expected an inconsistent bitmap: $(qsd_bitmaps "$qmpsock")"
snapshot_ref
backup_check hash-compare "$TMP/ref.raw" --nbd-socket "$TMP/live.nbd"
grep -q "warning: changed-block tracking not used: .*inconsistent" "$TMP/err.$n" ||
  fail "no warning: $(cat "$TMP/err.$n")"
snap_field "$repo" live note | grep -q inconsistent || fail "fallback reason not recorded"
write "write -P 0x73 60M 64k"
snapshot_ref
backup_check cbt "$TMP/ref.raw" --nbd-socket "$TMP/live.nbd"

# A node that does not exist: a clear message, nothing left behind.
expect_fail "$PL" -r "$repo" backup --disk live --qmp "$qmpsock" --node nope --nbd-socket "$TMP/live.nbd"
grep -q "no block node named nope" "$TMP/err" || fail "unclear message: $(cat "$TMP/err")"
echo PASS
