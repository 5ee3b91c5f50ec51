#!/usr/bin/env bash
# CBT from bitmaps the user manages (--cbt qemu-bitmap:BITMAP over an NBD
# URI): the documented qemu-img + qemu-nbd -B cycle, then the cases that must
# fall back to hash-compare with a clear reason: a bitmap name that does not
# match the parent's cookie, an export without the bitmap, a server with no
# dirty bitmaps at all (nbdkit), and a resized disk.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/cbt-lib.sh"
requires qemu-img
requires qemu-io
requires qemu-nbd
requires nbdkit
requires python3

repo=$(new_repo)
"$PL" init -r "$repo" >/dev/null
img=$TMP/u.qcow2
sock=$TMP/u.sock
uri="nbd+unix:///?socket=$sock"
qemu-img create -q -f qcow2 "$img" 64M
qemu-io -f qcow2 -c 'write -P 0x11 0 4M' -c 'write -P 0x12 40M 1M' "$img" >/dev/null

n=0
# backup_check MODE [options]: back up through $uri, check the mode, stop
# the server, restore and compare with the image.
backup_check() {
  local want=$1
  shift
  n=$((n + 1))
  "$PL" -r "$repo" backup --disk u "$uri" --block-size 1M "$@" >"$TMP/out.$n" 2>"$TMP/err.$n" ||
    fail "backup $n failed: $(cat "$TMP/err.$n")"
  nbd_stop "$sock"
  local mode
  mode=$(snap_field "$repo" u mode)
  [ "$mode" = "$want" ] || fail "backup $n: mode $mode, expected $want ($(cat "$TMP/err.$n"))"
  rm -f "$TMP/r.raw"
  "$PL" -r "$repo" restore u "$TMP/r.raw" >/dev/null
  qemu-img compare -q -f raw -F qcow2 "$TMP/r.raw" "$img" || fail "backup $n ($mode) differs"
  echo "ok: backup $n $mode, read $(snap_field "$repo" u bytes_read) bytes, cookie $(snap_field "$repo" u cbt)"
}

# The documented cycle: b1 records from the full backup on.
qemu-img bitmap --add "$img" b1
nbd_serve "$sock" --read-only --format=qcow2 "$img"
backup_check full --cbt qemu-bitmap:b1
[ "$(snap_field "$repo" u cbt)" = qemu-bitmap:b1 ] || fail "cookie not recorded"
prev=b1
for next in b2 b3; do
  qemu-io -f qcow2 -c "write -P 0x2${next#b} ${next#b}M 64k" -c "write -P 0x3${next#b} 50M 2M" \
    "$img" >/dev/null
  qemu-img bitmap --disable "$img" "$prev"
  qemu-img bitmap --add "$img" "$next"
  nbd_serve "$sock" --read-only --format=qcow2 --bitmap="$prev" "$img"
  backup_check cbt --cbt "qemu-bitmap:$prev" --cbt-next "$next"
  [ "$(snap_field "$repo" u bytes_read)" -le $((3 * 1024 * 1024)) ] || fail "read too much"
  [ "$(snap_field "$repo" u cbt)" = "qemu-bitmap:$next" ] || fail "next cookie not recorded"
  qemu-img bitmap --remove "$img" "$prev"
  prev=$next
done

# A bitmap that missed a write: --verify-cbt reports it and exits 1.
qemu-img bitmap --disable "$img" b3
qemu-io -f qcow2 -c 'write -P 0x40 21M 4k' "$img" >/dev/null
qemu-img bitmap --add "$img" b4
nbd_serve "$sock" --read-only --format=qcow2 --bitmap=b3 "$img"
expect_fail "$PL" -r "$repo" backup --disk u "$uri" --cbt qemu-bitmap:b3 --cbt-next b4 --verify-cbt
nbd_stop "$sock"
[ "$(cat "$TMP/rc")" = 1 ] || fail "a CBT mismatch must exit 1"
grep -q "CBT MISMATCH: .* in 1 of 64 blocks (first: block 21 at offset 22020096)" "$TMP/err" ||
  fail "mismatch not reported: $(cat "$TMP/err")"
echo "ok: --verify-cbt: $(grep -o 'CBT MISMATCH: [^.]*' "$TMP/err")"
# Recover as the message says: a --full backup.
nbd_serve "$sock" --read-only --format=qcow2 "$img"
backup_check full --cbt qemu-bitmap:b4 --full
qemu-img bitmap --remove "$img" b3
prev=b4

# A bitmap that does not match the parent's cookie (b4 is expected).
qemu-io -f qcow2 -c 'write -P 0x41 7M 4k' "$img" >/dev/null
qemu-img bitmap --add "$img" other
nbd_serve "$sock" --read-only --format=qcow2 --bitmap=other "$img"
backup_check hash-compare --cbt qemu-bitmap:other
grep -q "bitmap other does not match the parent snapshot, which continues from bitmap b4" \
  "$TMP/err.$n" || fail "no mismatch warning: $(cat "$TMP/err.$n")"
qemu-img bitmap --remove "$img" other

# The right name, but the export does not offer it.
qemu-io -f qcow2 -c 'write -P 0x42 8M 4k' "$img" >/dev/null
nbd_serve "$sock" --read-only --format=qcow2 "$img"
backup_check hash-compare --cbt qemu-bitmap:other --cbt-next b4
nbd_serve "$sock" --read-only --format=qcow2 "$img"
backup_check hash-compare --cbt qemu-bitmap:b4
grep -q "does not offer qemu:dirty-bitmap:b4" "$TMP/err.$n" ||
  fail "no missing-context warning: $(cat "$TMP/err.$n")"
snap_field "$repo" u note | grep -q "does not offer" || fail "reason not recorded"

# A server without dirty bitmaps at all: nbdkit serving a raw copy.
qemu-img convert -q -O raw "$img" "$TMP/u.raw"
rm -f "$sock"
nbdkit --unix "$sock" --pidfile "$sock.pid" file "$TMP/u.raw"
for _ in $(seq 100); do [ -s "$sock.pid" ] && [ -S "$sock" ] && break; sleep 0.05; done
cleanup_add "kill $(cat "$sock.pid") 2>/dev/null"
backup_check hash-compare --cbt qemu-bitmap:b4
grep -q "does not offer qemu:dirty-bitmap:b4" "$TMP/err.$n" || fail "unclear: $(cat "$TMP/err.$n")"

# A resized disk, with a bitmap that otherwise matches.
qemu-img resize -q "$img" 80M
qemu-io -f qcow2 -c 'write -P 0x43 70M 1M' "$img" >/dev/null
nbd_serve "$sock" --read-only --format=qcow2 --bitmap=b4 "$img"
backup_check hash-compare --cbt qemu-bitmap:b4
grep -q "disk size changed from 67108864 to 83886080" "$TMP/err.$n" ||
  fail "no size warning: $(cat "$TMP/err.$n")"

# Usage errors.
expect_fail "$PL" -r "$repo" backup --disk u --cbt vmware:52 "$uri"
grep -q "only qemu-bitmap:BITMAP" "$TMP/err" || fail "unclear: $(cat "$TMP/err")"
expect_fail "$PL" -r "$repo" backup --disk u --qcow2 "$img" "$uri"
echo PASS
