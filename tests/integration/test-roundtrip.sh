#!/usr/bin/env bash
# Full and incremental round trips: sparse restores, zero blocks not stored,
# earlier snapshots, hash-compare, size changes, --force onto an existing file.
source "$(dirname "$0")/lib.sh"

repo=$(new_repo)
$PL -r "$repo" init >/dev/null
make_disk "$TMP/disk" 64

# First backup: full.
$PL -r "$repo" backup --disk vm1 "$TMP/disk" --json >"$TMP/b1.json"
[ "$(json_field mode <"$TMP/b1.json")" = full ] || fail "first backup mode: $(cat "$TMP/b1.json")"
cp --sparse=always "$TMP/disk" "$TMP/disk.v1"
$PL -r "$repo" restore vm1 "$TMP/r1"
cmp "$TMP/disk" "$TMP/r1"

# The restore is sparse: no more allocated than the source's non-zero data.
src_alloc=$(du -k "$TMP/disk" | cut -f1)
res_alloc=$(du -k "$TMP/r1" | cut -f1)
[ "$res_alloc" -le "$src_alloc" ] || fail "restore not sparse: $res_alloc KiB vs $src_alloc KiB"

# Zero blocks are not stored: a disk of allocated zeros adds (almost) nothing.
dd if=/dev/zero of="$TMP/zeros" bs=1M count=32 status=none
$PL -r "$repo" backup --disk zeros "$TMP/zeros" --json >"$TMP/bz.json"
[ "$(json_field bytes_stored <"$TMP/bz.json")" -eq 0 ] || fail "zero disk stored bytes: $(cat "$TMP/bz.json")"
[ "$(json_field bytes_read <"$TMP/bz.json")" -eq $((32 << 20)) ] || fail "zero disk not read whole"
$PL -r "$repo" restore zeros "$TMP/rz"
cmp "$TMP/zeros" "$TMP/rz"
[ "$(du -k "$TMP/rz" | cut -f1)" -lt 64 ] || fail "restore of a zero disk is not a hole"

# Incremental with a changed-extent list.
{ scribble "$TMP/disk" 1048576 4096; scribble "$TMP/disk" $((40 << 20)) 200000; } >"$TMP/ch1"
$PL -r "$repo" backup --disk vm1 "$TMP/disk" --changed-extents "$TMP/ch1" --json >"$TMP/b2.json"
[ "$(json_field mode <"$TMP/b2.json")" = changed-extents ] || fail "mode: $(cat "$TMP/b2.json")"
read_bytes=$(json_field bytes_read <"$TMP/b2.json")
[ "$read_bytes" -le $((3 << 20)) ] || fail "incremental read $read_bytes bytes, expected at most 3 MiB"
$PL -r "$repo" restore vm1@latest "$TMP/r2"
cmp "$TMP/disk" "$TMP/r2"

# Incremental by hash-compare (no list): stores only the changed blocks.
scribble "$TMP/disk" $((20 << 20)) 8192 >/dev/null
$PL -r "$repo" backup --disk vm1 "$TMP/disk" --json >"$TMP/b3.json"
[ "$(json_field mode <"$TMP/b3.json")" = hash-compare ] || fail "mode: $(cat "$TMP/b3.json")"
new=$(json_field bytes_new <"$TMP/b3.json")
[ "$new" -le $((2 << 20)) ] || fail "hash-compare stored $new new bytes, expected one block and a page"
$PL -r "$repo" restore vm1 "$TMP/r3"
cmp "$TMP/disk" "$TMP/r3"

# The first snapshot still restores exactly, by id prefix.
first=$(json_field id <"$TMP/b1.json")
$PL -r "$repo" restore "vm1@${first:0:10}" "$TMP/r1b"
cmp "$TMP/disk.v1" "$TMP/r1b"

# The disk grows (with data past the old end), then shrinks to a size that
# is not a multiple of the block size.
truncate -s 80M "$TMP/disk"
scribble "$TMP/disk" $((70 << 20)) 65536 >"$TMP/ch4"
$PL -r "$repo" backup --disk vm1 "$TMP/disk" --changed-extents "$TMP/ch4" >/dev/null
$PL -r "$repo" restore vm1 "$TMP/r4"
cmp "$TMP/disk" "$TMP/r4"
truncate -s $((50 * 1048576 + 12345)) "$TMP/disk"
: >"$TMP/ch5"
$PL -r "$repo" backup --disk vm1 "$TMP/disk" --changed-extents "$TMP/ch5" >/dev/null
$PL -r "$repo" restore vm1 "$TMP/r5"
cmp "$TMP/disk" "$TMP/r5"
[ "$(stat -c %s "$TMP/r5")" -eq $((50 * 1048576 + 12345)) ] || fail "restored size after shrink"
$PL -r "$repo" snapshots --disk vm1 --json >"$TMP/list.json"
[ "$(grep -c '"id"' "$TMP/list.json")" -eq 5 ] || fail "expected 5 snapshots: $(cat "$TMP/list.json")"
grep -q "\"size\":$((50 * 1048576 + 12345))" "$TMP/list.json" || fail "snapshot size not recorded"

# --force restores over an existing, larger file with other content.
head -c $((90 << 20)) /dev/urandom >"$TMP/r6"
expect_fail $PL -r "$repo" restore vm1 "$TMP/r6"
grep -q -- --force "$TMP/err" || fail "no --force hint: $(cat "$TMP/err")"
$PL -r "$repo" restore vm1 "$TMP/r6" --force
cmp "$TMP/disk" "$TMP/r6"

# Non-default block sizes round-trip too.
repo2=$(new_repo)
$PL -r "$repo2" init >/dev/null
for bs in 4096 262144 4M; do
  $PL -r "$repo2" backup --disk "bs$bs" "$TMP/disk" --block-size $bs >/dev/null
  $PL -r "$repo2" restore "bs$bs" "$TMP/rbs$bs"
  cmp "$TMP/disk" "$TMP/rbs$bs"
done
# A block map of many pages (13 at 4 KiB blocks), where an incremental's two
# new pages sit in its own pack and the rest in the parent's: both restore.
cp --sparse=always "$TMP/disk" "$TMP/disk.v7"
{ scribble "$TMP/disk" $((3 << 20)) 4096; scribble "$TMP/disk" $((45 << 20)) 4096; } >"$TMP/ch7"
$PL -r "$repo2" backup --disk bs4096 "$TMP/disk" --changed-extents "$TMP/ch7" >/dev/null
$PL -r "$repo2" restore bs4096 "$TMP/r7"
cmp "$TMP/disk" "$TMP/r7"
old7=$($PL -r "$repo2" snapshots --disk bs4096 --json | json_field id)
$PL -r "$repo2" restore "bs4096@$old7" "$TMP/r7old"
cmp "$TMP/disk.v7" "$TMP/r7old"
$PL -r "$repo" verify --read-data >/dev/null
echo OK
