#!/usr/bin/env bash
# Equal chunks are stored once: within a disk, across snapshots and across disks.
source "$(dirname "$0")/lib.sh"

repo=$(new_repo)
$PL -r "$repo" init >/dev/null
make_disk "$TMP/a" 48
# Within a disk: the same 4 MiB twice.
dd if="$TMP/a" of="$TMP/a" bs=1M skip=8 seek=40 count=4 conv=notrunc status=none
$PL -r "$repo" backup --disk a "$TMP/a" --json >"$TMP/a.json"
read_a=$(json_field bytes_read <"$TMP/a.json")
new_a=$(json_field bytes_new <"$TMP/a.json")
[ "$new_a" -le $((read_a - (4 << 20) + 65536)) ] || fail "duplicate blocks within a disk stored twice ($new_a of $read_a)"

# Across disks: a copy of the disk under another name adds only a page or two.
cp "$TMP/a" "$TMP/b"
$PL -r "$repo" backup --disk b "$TMP/b" --json >"$TMP/b.json"
new_b=$(json_field bytes_new <"$TMP/b.json")
[ "$new_b" -le 65536 ] || fail "second disk with the same content added $new_b bytes"
$PL -r "$repo" restore b "$TMP/rb"
cmp "$TMP/a" "$TMP/rb"
if is_local "$repo"; then
  s1=$(du -sb "$repo" | cut -f1)
  $PL -r "$repo" backup --disk c "$TMP/a" --full >/dev/null
  s2=$(du -sb "$repo" | cut -f1)
  [ $((s2 - s1)) -le 65536 ] || fail "third copy grew the repository by $((s2 - s1)) bytes"
fi
echo OK
