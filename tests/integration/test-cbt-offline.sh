#!/usr/bin/env bash
# Offline qcow2 CBT (--qcow2): several full + CBT cycles, each restored and
# compared with qemu-img compare; then the ways CBT must not be trusted: the
# image in use, a writer killed with kill -9 (bitmaps left in-use), a renamed
# bitmap and a resized disk. Each falls back to hash-compare, says why, and
# still restores identically.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/cbt-lib.sh"
export TMPDIR=$TMP # private sockets and fleece overlays go away with the test
requires qemu-img
requires qemu-io
requires qemu-nbd
requires python3

repo=$(new_repo)
"$PL" init -r "$repo" >/dev/null
img=$TMP/vm.qcow2
qemu-img create -q -f qcow2 "$img" 128M
qemu-io -f qcow2 -c 'write -P 0x11 0 6M' -c 'write -P 0x22 70M 5M' -c 'write -P 0x33 127M 1M' \
  "$img" >/dev/null

# backup_check MODE [pilotlight options]: back up (1 MiB blocks, which the
# expected block counts and offsets below assume), check the recorded mode,
# restore and compare with the image.
n=0
backup_check() {
  local want=$1
  shift
  n=$((n + 1))
  "$PL" -r "$repo" backup --disk vm --qcow2 "$img" --block-size 1M "$@" >"$TMP/out.$n" 2>"$TMP/err.$n" ||
    fail "backup $n failed: $(cat "$TMP/err.$n")"
  local mode
  mode=$(snap_field "$repo" vm mode)
  [ "$mode" = "$want" ] || fail "backup $n: mode $mode, expected $want ($(cat "$TMP/err.$n"))"
  rm -f "$TMP/restored.raw"
  "$PL" -r "$repo" restore vm "$TMP/restored.raw" >/dev/null
  qemu-img compare -q -f raw -F qcow2 "$TMP/restored.raw" "$img" ||
    fail "backup $n ($mode): restore differs from the image"
  # Exactly one bitmap of ours is left, recording.
  local bms
  bms=$(bitmaps "$img")
  [ "$(echo "$bms" | grep -c '^pilotlight-')" = 1 ] || fail "backup $n: bitmaps left: $bms"
  echo "$bms" | grep -q '^pilotlight-[0-9a-f]*:auto$' || fail "backup $n: bitmap not recording: $bms"
  [ "$(snap_field "$repo" vm cbt)" = "qemu-bitmap:$(echo "$bms" | grep '^pilotlight-' | sed 's/:.*//')" ] || fail "backup $n: cookie mismatch"
  echo "ok: backup $n $mode, read $(snap_field "$repo" vm bytes_read) bytes"
}

backup_check full

# Several CBT cycles with scattered small writes and one larger run.
for cycle in 1 2 3; do
  qemu-io -f qcow2 -c "write -P $((0x40 + cycle)) $((cycle * 3))M 4k" \
    -c "write -P $((0x50 + cycle)) $((cycle * 17 + 1))M 64k" \
    -c "write -P $((0x60 + cycle)) $((cycle * 20 + 20))M 2M" \
    -c "write -z $((70 + cycle))M 512k" "$img" >/dev/null
  if [ $cycle = 2 ]; then
    backup_check cbt --verify-cbt
    grep -q "equals the disk" "$TMP/err.$n" || fail "--verify-cbt said nothing"
  else
    backup_check cbt
  fi
  read_bytes=$(snap_field "$repo" vm bytes_read)
  [ "$read_bytes" -le $((6 * 1024 * 1024)) ] || fail "cycle $cycle read $read_bytes bytes: not CBT"
  [ -z "$(snap_field "$repo" vm note)" ] || fail "cycle $cycle: unexpected note"
done

# No change at all: CBT reads nothing.
backup_check cbt
[ "$(snap_field "$repo" vm bytes_read)" = 0 ] || fail "an unchanged disk was read"

# A bitmap that missed writes (disabled around them by hand) looks fine to
# the checks; --verify-cbt catches it loudly, and the new bitmap is dropped
# so that the next backup reads everything and repairs the chain.
cur=$(bitmaps "$img" | sed 's/:.*//')
qemu-img bitmap --disable "$img" "$cur"
qemu-io -f qcow2 -c 'write -P 0x5e 13M 4k' "$img" >/dev/null
qemu-img bitmap --enable "$img" "$cur"
expect_fail "$PL" -r "$repo" backup --disk vm --qcow2 "$img" --verify-cbt
[ "$(cat "$TMP/rc")" = 1 ] || fail "a CBT mismatch must exit 1"
grep -q "CBT MISMATCH: snapshot .* differs from disk vm in 1 of 128 blocks (first: block 13 " \
  "$TMP/err" || fail "mismatch not reported: $(cat "$TMP/err")"
[ -z "$(bitmaps "$img")" ] || fail "the distrusted bitmap was kept: $(bitmaps "$img")"
n=$((n + 1))
"$PL" -r "$repo" backup --disk vm --qcow2 "$img" 2>"$TMP/err.$n" >/dev/null
[ "$(snap_field "$repo" vm mode)" = hash-compare ] || fail "the next backup trusted CBT"
rm -f "$TMP/restored.raw"
"$PL" -r "$repo" restore vm "$TMP/restored.raw" >/dev/null
qemu-img compare -q -f raw -F qcow2 "$TMP/restored.raw" "$img" || fail "not repaired"
echo "ok: --verify-cbt caught a bitmap that missed a write; the next backup repaired it"

# A backup that fails after the rotation undoes it: the parent's bitmap is
# recording again, the new one is gone, and the next run still uses CBT.
before=$(bitmaps "$img")
qemu-io -f qcow2 -c 'write -P 0x5f 11M 4k' "$img" >/dev/null
expect_fail "$PL" -r "$repo" backup --disk vm --qcow2 "$img" --block-size 4M
grep -q "block size" "$TMP/err" || fail "unexpected failure: $(cat "$TMP/err")"
[ "$(bitmaps "$img")" = "$before" ] || fail "rotation not undone: $(bitmaps "$img") vs $before"
backup_check cbt
[ "$(snap_field "$repo" vm bytes_read)" = 1048576 ] || fail "the failed run's changes were lost"

# The image in use by a writer: a clear refusal, and nothing changed.
before=$(bitmaps "$img")
nbd_serve "$TMP/w.sock" --persistent --format=qcow2 "$img"
expect_fail "$PL" -r "$repo" backup --disk vm --qcow2 "$img"
grep -q "in use by another process" "$TMP/err" || fail "unclear in-use message: $(cat "$TMP/err")"
echo "ok: refused while in use: $(head -n1 "$TMP/err")"

# kill -9 of that writer after it wrote: every bitmap is left in-use.
qemu-io -f raw -c 'write -P 0x77 9M 1M' -c flush "nbd+unix:///?socket=$TMP/w.sock" >/dev/null
kill -9 "$(cat "$TMP/w.sock.pid")"
wait_gone "$(cat "$TMP/w.sock.pid")"
bitmaps "$img" | grep -q 'in-use' || fail "expected in-use bitmaps after kill -9: $(bitmaps "$img")"
[ "$(bitmaps "$img" | sed 's/:.*//')" = "$(echo "$before" | sed 's/:.*//')" ] || fail "bitmaps changed"
backup_check hash-compare
grep -q "warning: changed-block tracking not used: .*in-use" "$TMP/err.$n" ||
  fail "no in-use warning: $(cat "$TMP/err.$n")"
snap_field "$repo" vm note | grep -q "in-use" || fail "fallback reason not recorded"
# The next run trusts the new bitmap again.
qemu-io -f qcow2 -c 'write -P 0x78 33M 8k' "$img" >/dev/null
backup_check cbt

# A renamed bitmap: the parent's bitmap is gone.
cur=$(bitmaps "$img" | sed 's/:.*//')
qemu-img bitmap --add "$img" renamed
qemu-img bitmap --merge "$cur" --enable "$img" renamed
qemu-img bitmap --remove "$img" "$cur"
qemu-io -f qcow2 -c 'write -P 0x79 45M 8k' "$img" >/dev/null
backup_check hash-compare
grep -q "bitmap $cur named by the parent snapshot is not in" "$TMP/err.$n" ||
  fail "no missing-bitmap warning: $(cat "$TMP/err.$n")"
qemu-img bitmap --remove "$img" renamed

# A resized disk.
qemu-img resize -q "$img" 160M
qemu-io -f qcow2 -c 'write -P 0x7a 150M 1M' -c 'write -P 0x7b 2M 4k' "$img" >/dev/null
backup_check hash-compare
grep -q "disk size changed from 134217728 to 167772160" "$TMP/err.$n" ||
  fail "no size warning: $(cat "$TMP/err.$n")"
qemu-io -f qcow2 -c 'write -P 0x7c 155M 4k' "$img" >/dev/null
backup_check cbt

# Without --block-size, a CBT disk gets 64 KiB blocks, QEMU's default bitmap
# granularity: a 4 KiB write costs one 64 KiB block, not a 512 KiB one.
img2=$TMP/small.qcow2
qemu-img create -q -f qcow2 "$img2" 64M
qemu-io -f qcow2 -c 'write -P 0x21 0 3M' "$img2" >/dev/null
"$PL" -r "$repo" backup --disk small --qcow2 "$img2" >/dev/null 2>"$TMP/err" ||
  fail "default-size backup failed: $(cat "$TMP/err")"
bs=$("$PL" -r "$repo" snapshots --disk small --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["block_size"])')
[ "$bs" = 65536 ] || fail "a CBT disk's default block size is $bs, expected 65536"
qemu-io -f qcow2 -c 'write -P 0x22 40M 4k' -c 'write -P 0x23 1M 4k' "$img2" >/dev/null
"$PL" -r "$repo" backup --disk small --qcow2 "$img2" >/dev/null 2>"$TMP/err" ||
  fail "default-size CBT backup failed: $(cat "$TMP/err")"
[ "$(snap_field "$repo" small mode)" = cbt ] || fail "the default-size incremental did not use CBT"
[ "$(snap_field "$repo" small bytes_read)" = $((2 * 65536)) ] ||
  fail "two 4 KiB writes read $(snap_field "$repo" small bytes_read) bytes, expected two 64 KiB blocks"
rm -f "$TMP/restored.raw"
"$PL" -r "$repo" restore small "$TMP/restored.raw" >/dev/null
qemu-img compare -q -f raw -F qcow2 "$TMP/restored.raw" "$img2" || fail "64 KiB restore differs"
echo "ok: CBT disk defaults to 64 KiB blocks; two 4 KiB writes read 128 KiB"

# Not a qcow2 image.
qemu-img convert -q -O raw "$img" "$TMP/plain.raw"
expect_fail "$PL" -r "$repo" backup --disk raw --qcow2 "$TMP/plain.raw"
grep -q "not qcow2" "$TMP/err" || fail "unclear format message: $(cat "$TMP/err")"
echo PASS
