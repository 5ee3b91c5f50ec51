#!/usr/bin/env bash
# NBD sources: a raw file served by nbdkit, and qcow2, VMDK (monolithicSparse,
# streamOptimized) and VHD (dynamic, fixed) served by qemu-nbd. Each is
# backed up, restored and compared with its source; allocation from
# base:allocation keeps the holes unread.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/cbt-lib.sh"
requires qemu-img
requires qemu-io
requires qemu-nbd
requires nbdkit
requires python3

repo=$(new_repo)
"$PL" init -r "$repo" >/dev/null

# 96 MiB with data in a few places, a zero-filled run and holes.
raw=$TMP/disk.raw
truncate -s 96M "$raw"
head -c 3M /dev/urandom | dd of="$raw" bs=1M seek=1 conv=notrunc status=none
{ yes pilotlight || true; } | head -c 5M | dd of="$raw" bs=1M seek=40 conv=notrunc status=none
dd if=/dev/zero of="$raw" bs=1M seek=60 count=2 conv=notrunc status=none
head -c 100k /dev/urandom | dd of="$raw" bs=1k seek=$((95 * 1024)) conv=notrunc status=none

# Raw through nbdkit.
sock=$TMP/kit.sock
nbdkit --unix "$sock" --pidfile "$TMP/kit.pid" file "$raw"
for _ in $(seq 100); do [ -s "$TMP/kit.pid" ] && [ -S "$sock" ] && break; sleep 0.05; done
cleanup_add "kill $(cat "$TMP/kit.pid") 2>/dev/null"
"$PL" -r "$repo" backup --disk kit "nbd+unix:///?socket=$sock" >/dev/null
read_bytes=$(snap_field "$repo" kit bytes_read)
[ "$read_bytes" -lt $((40 * 1024 * 1024)) ] || fail "nbdkit: read $read_bytes bytes: holes were read"
"$PL" -r "$repo" restore kit "$TMP/kit.out" >/dev/null
cmp "$raw" "$TMP/kit.out" || fail "nbdkit raw round trip differs"
kill "$(cat "$TMP/kit.pid")"
echo "ok: raw via nbdkit (read $read_bytes bytes of 96 MiB)"

# Image formats through qemu-nbd.
check_format() { # NAME FORMAT [create options]
  local name=$1 fmt=$2 img=$TMP/$1.img s=$TMP/$1.sock
  shift 2
  qemu-img convert -q -f raw -O "$fmt" "$@" "$raw" "$img"
  nbd_serve "$s" --read-only --format="$fmt" "$img"
  "$PL" -r "$repo" backup --disk "$name" "nbd+unix:///?socket=$s" >/dev/null
  nbd_stop "$s"
  local size
  size=$(snap_field "$repo" "$name" size)
  [ "$size" -ge $((96 * 1024 * 1024)) ] || fail "$name: size $size from the server"
  "$PL" -r "$repo" restore "$name" "$TMP/$name.out" >/dev/null
  qemu-img compare -q -f raw -F "$fmt" "$TMP/$name.out" "$img" || fail "$name round trip differs"
  cmp -n $((96 * 1024 * 1024)) "$raw" "$TMP/$name.out" || fail "$name differs from the raw data"
  echo "ok: $name (read $(snap_field "$repo" "$name" bytes_read) bytes)"
}
check_format qcow2 qcow2
check_format vmdk-sparse vmdk -o subformat=monolithicSparse
check_format vmdk-stream vmdk -o subformat=streamOptimized
check_format vhd-dynamic vpc -o subformat=dynamic
check_format vhd-fixed vpc -o subformat=fixed,force_size=on

# qemu-nbd --shared=2 offers multi-conn but serves only two clients: four
# backup threads must not wait for ever on a third connection.
nbd_serve "$TMP/s2.sock" --read-only --format=qcow2 --shared=2 --persistent "$TMP/qcow2.img"
timeout 60 "$PL" -r "$repo" backup --disk shared2 --threads 4 "nbd+unix:///?socket=$TMP/s2.sock" \
  >/dev/null || fail "backup from qemu-nbd --shared=2 with 4 threads failed or hung"
nbd_stop "$TMP/s2.sock"
rm -f "$TMP/s2.out"
"$PL" -r "$repo" restore shared2 "$TMP/s2.out" >/dev/null
cmp "$raw" "$TMP/s2.out" || fail "--shared=2 round trip differs"
echo "ok: qemu-nbd --shared=2 with 4 threads"

# A fixed VHD reports its holes as "data,zero": those must not be read.
[ "$(snap_field "$repo" vhd-fixed bytes_read)" -lt $((40 * 1024 * 1024)) ] ||
  fail "vhd-fixed: zero extents were read"

# An NBD server that is not there: a clear message.
expect_fail "$PL" -r "$repo" backup --disk gone "nbd+unix:///?socket=$TMP/nothing.sock"
grep -q "cannot connect to the NBD server" "$TMP/err" || fail "unclear message: $(cat "$TMP/err")"
echo PASS
