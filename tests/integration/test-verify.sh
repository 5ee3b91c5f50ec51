#!/usr/bin/env bash
# verify finds a flipped byte and a truncated or missing pack, names them and
# the snapshots they affect, and restores refuse damaged data.
source "$(dirname "$0")/lib.sh"

repo=$(new_repo)
is_local "$repo" || { echo "SKIP: corrupts files in a local repository"; exit 77; }
$PL -r "$repo" init >/dev/null
head -c $((40 << 20)) /dev/urandom >"$TMP/a"   # incompressible: several packs
make_disk "$TMP/b" 16
$PL -r "$repo" backup --disk a "$TMP/a" >/dev/null
$PL -r "$repo" backup --disk b "$TMP/b" >/dev/null
$PL -r "$repo" verify --read-data >/dev/null || fail "fresh repository does not verify"
# On a terminal --read-data shows its progress.
script -qec "$PL -r '$repo' verify --read-data" /dev/null >"$TMP/tty" 2>&1 </dev/null ||
  fail "verify on a terminal: $(cat "$TMP/tty")"
tr '\r' '\n' <"$TMP/tty" | grep -Eq '^verify --read-data: 100.0% +[0-9]+/[0-9]+ MiB' ||
  fail "no verify progress: $(tr '\r' '\n' <"$TMP/tty" | tail -3)"

# Full packs (16 MiB) hold only disk a's data; pages go in the last, smaller pack.
mapfile -t packs < <(find "$repo/packs" -type f -size +15M | sort)
[ "${#packs[@]}" -ge 2 ] || fail "expected at least two large packs"
victim=${packs[0]}
cp "$victim" "$TMP/victim.orig"

# Flip one byte in the middle of the pack's data.
off=$((5 << 20))
byte=$(dd if="$victim" bs=1 skip=$off count=1 status=none | od -An -tu1 | tr -d ' ')
printf "\\$(printf %03o $(((byte + 1) % 256)))" | dd of="$victim" bs=1 seek=$off conv=notrunc status=none
cmp -s "$victim" "$TMP/victim.orig" && fail "byte not flipped"
$PL -r "$repo" verify >/dev/null || fail "structure check should not read data"
# Of four slices exactly one reads the damaged pack and finds the flip; the
# structure check alone does not.
$PL -r "$repo" verify >/dev/null || fail "structure check sees a data flip"
found=0
for k in 1 2 3 4; do
  $PL -r "$repo" verify --read-data-subset $k/4 >"$TMP/slice" 2>&1 || found=$((found + 1))
done
[ "$found" -eq 1 ] || fail "$found of 4 slices found the flipped pack"
expect_fail $PL -r "$repo" verify --read-data-subset 5/4
expect_fail $PL -r "$repo" verify --read-data
grep -q "$(basename "$victim")" "$TMP/out" || fail "damaged pack not named: $(cat "$TMP/out")"
grep -q "disk a is damaged" "$TMP/out" || fail "affected snapshot not named: $(cat "$TMP/out")"
grep -q "disk b" "$TMP/out" && fail "disk b wrongly reported"
expect_fail $PL -r "$repo" restore a "$TMP/ra"
grep -q "damaged pack" "$TMP/err" || fail "restore of damaged data: $(cat "$TMP/err")"
[ ! -e "$TMP/ra" ] || fail "failed restore left a file"
$PL -r "$repo" restore b "$TMP/rb"
cmp "$TMP/b" "$TMP/rb"

# Truncate it: the structure check alone finds it.
cp "$TMP/victim.orig" "$victim"
$PL -r "$repo" verify --read-data >/dev/null || fail "repaired pack does not verify"
# Cut off the trailer and the last chunks: the data is lost, not just the list.
truncate -s $(($(stat -c %s "$victim") - (1 << 20))) "$victim"
expect_fail $PL -r "$repo" verify
grep -q "$(basename "$victim")" "$TMP/out" || fail "truncated pack not named: $(cat "$TMP/out")"
grep -q "disk a is damaged" "$TMP/out" || fail "affected snapshot not named"
expect_fail $PL -r "$repo" restore a "$TMP/ra"

# Damage its trailer (an entry's stored length): the structure check finds it.
cp "$TMP/victim.orig" "$victim"
size=$(stat -c %s "$victim")
printf '\377' | dd of="$victim" bs=1 seek=$((size - 44 - 52 + 36)) conv=notrunc status=none
expect_fail $PL -r "$repo" verify
grep -q "$(basename "$victim").*damaged pack" "$TMP/out" || fail "damaged trailer not found: $(cat "$TMP/out")"

# Remove it: reported as missing.
rm "$victim"
expect_fail $PL -r "$repo" verify --json
grep -q '"damaged":[1-9]' "$TMP/out" || fail "json report: $(cat "$TMP/out")"
cp "$TMP/victim.orig" "$victim"
$PL -r "$repo" verify --read-data >/dev/null || fail "restored pack does not verify"

# A damaged block-map page: the restore names the snapshot and the page, and
# the disk's earlier snapshot, which does not use that page, still restores.
head -c $((8 << 20)) /dev/urandom >"$TMP/c"   # 4 KiB blocks: 2048 blocks, two pages
$PL -r "$repo" backup --disk c "$TMP/c" --block-size 4K >/dev/null
cp "$TMP/c" "$TMP/c.v1"
scribble "$TMP/c" 8192 4096 >"$TMP/c.ch"
$PL -r "$repo" backup --disk c "$TMP/c" --changed-extents "$TMP/c.ch" >/dev/null
# The incremental's pack holds the new 4 KiB chunk, then its new page (32 KiB
# of hashes, stored raw), then the trailer (44 bytes + 52 per chunk).
pagepack=$(ls -t $(find "$repo/packs" -type f) | head -n1)
cp "$pagepack" "$TMP/pagepack.orig"
off=$(($(stat -c %s "$pagepack") - 44 - 2 * 52 - 1000))
byte=$(dd if="$pagepack" bs=1 skip=$off count=1 status=none | od -An -tu1 | tr -d ' ')
printf "\\$(printf %03o $(((byte + 1) % 256)))" | dd of="$pagepack" bs=1 seek=$off conv=notrunc status=none
expect_fail $PL -r "$repo" restore c "$TMP/rpage"
grep -Eq "snapshot [0-9a-f]* block map page 0: chunk .*(content does not match its hash|failed authentication) \(damaged" \
  "$TMP/err" || fail "damaged page not named: $(cat "$TMP/err")"
[ "$(wc -l <"$TMP/err")" = 1 ] || fail "not one line: $(cat "$TMP/err")"
[ ! -e "$TMP/rpage" ] || fail "failed restore left a file"
first_c=$($PL -r "$repo" snapshots --disk c --json | json_field id)
$PL -r "$repo" restore "c@$first_c" "$TMP/rpage1"
cmp "$TMP/c.v1" "$TMP/rpage1"
cp "$TMP/pagepack.orig" "$pagepack"
$PL -r "$repo" restore c "$TMP/rpage"
cmp "$TMP/c" "$TMP/rpage"

# A damaged snapshot object is named.
snap=$(find "$repo/snapshots" -type f | head -n1)
printf 'X' | dd of="$snap" bs=1 seek=40 conv=notrunc status=none
expect_fail $PL -r "$repo" verify
grep -q "$(basename "$snap")" "$TMP/out" || fail "damaged snapshot not named: $(cat "$TMP/out")"
echo OK
