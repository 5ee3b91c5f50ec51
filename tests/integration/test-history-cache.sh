#!/usr/bin/env bash
# The local cache (docs/FORMAT.md, Local cache): the cache folder is made
# with its parents; the snapshot and index bundles give the same answers as
# the repository, are checked against the listed names (a damaged bundle, an
# object that does not match its name, a forgotten snapshot), and are
# rewritten to what the repository holds; a cache folder that cannot be
# made costs one warning; a backup reuses an interrupted backup's packs
# only when that backup's marker says its process is gone.
. "$(dirname "$0")/lib.sh"

export PILOTLIGHT_CACHE_DIR=$TMP/cache/a/b
repo=$(new_repo)
$PL init -r "$repo" >/dev/null
make_disk "$TMP/d" 8
$PL -r "$repo" backup --disk d "$TMP/d" --block-size 65536 >/dev/null
for i in 1 2 3 4 5; do
  scribble "$TMP/d" $((i << 20)) 5000 >"$TMP/ext"
  $PL -r "$repo" backup --disk d "$TMP/d" --changed-extents "$TMP/ext" >/dev/null
done
$PL -r "$repo" backup --disk e "$TMP/d" >/dev/null
$PL -r "$repo" snapshots >/dev/null # a listing saves what it loaded
cache=$PILOTLIGHT_CACHE_DIR/$(ls "$PILOTLIGHT_CACHE_DIR")
[ -d "$cache" ] || fail "cache folder $cache not made with its parents"
[ -s "$cache/snapshots.bundle" ] && [ -s "$cache/index.bundle" ] || fail "no bundles in $cache"

# bundle_names FILE: the object names a bundle holds, one hex name a line,
# checking its layout (magic, count, lengths, checksum) on the way.
bundle_names() {
  python3 - "$1" <<'EOF'
import hashlib, struct, sys
b = open(sys.argv[1], 'rb').read()
assert b[:10] == b'PLBUNDLE1\n' and hashlib.sha256(b[:-32]).digest() == b[-32:], 'bad bundle'
n, pos = struct.unpack('<I', b[10:14])[0], 14
for _ in range(n):
    name, ln = b[pos:pos + 32], struct.unpack('<I', b[pos + 32:pos + 36])[0]
    assert hashlib.sha256(b[pos + 36:pos + 36 + ln]).digest() == name, 'entry does not match its name'
    print(name.hex())
    pos += 36 + ln
assert pos == len(b) - 32
EOF
}
keys() { store_tool "$repo" list "$1" | cut -d" " -f1 | sed "s|^$1||" | sort; }
[ "$(bundle_names "$cache/snapshots.bundle" | sort)" = "$(keys snapshots/)" ] ||
  fail "the snapshot bundle does not hold exactly the listed snapshots"
# The index bundle is written at a backup's open, before that backup adds its
# own index object; on a folder it is rewritten only once it lacks more than
# a few (64) listed objects, which cost a file read each. It never holds an
# unlisted one, and a command that loads the index with no bundle writes
# one that holds exactly the listed objects.
comm -23 <(bundle_names "$cache/index.bundle" | sort) <(keys index/) | grep -q . &&
  fail "the index bundle holds objects that are not listed"
rm "$cache/index.bundle"
$PL -r "$repo" verify >/dev/null || fail "verify failed"
[ "$(bundle_names "$cache/index.bundle" | sort)" = "$(keys index/)" ] ||
  fail "the index bundle does not hold exactly the listed index objects"

# Through the cache, with an empty one, and with none: the same answers.
$PL -r "$repo" snapshots >"$TMP/warm"
PILOTLIGHT_CACHE_DIR=$TMP/cold $PL -r "$repo" snapshots >"$TMP/cold.out"
cmp "$TMP/warm" "$TMP/cold.out" || fail "snapshots differ between a warm and a cold cache"
[ "$(wc -l <"$TMP/warm")" -ge 7 ] || fail "snapshots listed too few: $(cat "$TMP/warm")"
cp "$cache/snapshots.bundle" "$TMP/good.bundle"

# A damaged bundle is ignored and rewritten the same.
printf 'X' | dd of="$cache/snapshots.bundle" bs=1 seek=100 conv=notrunc status=none
$PL -r "$repo" snapshots >"$TMP/out" 2>"$TMP/err"
cmp "$TMP/warm" "$TMP/out" || fail "a damaged bundle changed the listing"
[ ! -s "$TMP/err" ] || fail "a damaged cache is not worth a message: $(cat "$TMP/err")"
cmp "$TMP/good.bundle" "$cache/snapshots.bundle" || fail "the damaged bundle was not rebuilt"
# A truncated one too.
head -c 50 "$TMP/good.bundle" >"$cache/snapshots.bundle"
$PL -r "$repo" snapshots >"$TMP/out"
cmp "$TMP/warm" "$TMP/out" && cmp "$TMP/good.bundle" "$cache/snapshots.bundle" ||
  fail "a truncated bundle was used or not rebuilt"

# An entry whose bytes are not what its name says (the checksum of the
# file made valid again): never used; the object is read from the store.
python3 - "$cache/snapshots.bundle" <<'EOF'
import hashlib, sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read()[:-32])
i = 14 + 36 + 40                  # inside the first snapshot object
b[i] ^= 1
open(p, 'wb').write(bytes(b) + hashlib.sha256(bytes(b)).digest())
EOF
$PL -r "$repo" snapshots >"$TMP/out"
cmp "$TMP/warm" "$TMP/out" || fail "an entry that does not match its name was used"
cmp "$TMP/good.bundle" "$cache/snapshots.bundle" || fail "the mismatched entry was kept"

# A forgotten snapshot leaves the bundle at the next listing.
gone=$($PL -r "$repo" snapshots --disk d --json | grep -o '"id":"[0-9a-f]\{64\}"' | head -n1 |
  grep -o '[0-9a-f]\{64\}')
$PL -r "$repo" forget "d@$gone" >/dev/null
$PL -r "$repo" snapshots >"$TMP/out"
grep -q "^${gone:0:12}" "$TMP/out" && fail "forgotten snapshot still listed"
bundle_names "$cache/snapshots.bundle" | grep -q "$gone" && fail "forgotten snapshot still cached"
[ "$(bundle_names "$cache/snapshots.bundle" | sort)" = "$(keys snapshots/)" ] ||
  fail "the snapshot bundle does not follow the repository after forget"

# Summaries (disk and time of each snapshot) find a disk's latest without
# decoding every snapshot. In an encrypted repository the summary file is
# sealed: no disk name in it, and an altered one is rebuilt, unused.
$PL -r "$repo" restore d "$TMP/r" >/dev/null && cmp "$TMP/d" "$TMP/r" || fail "restore of latest"
rm -f "$TMP/r"
[ -s "$cache/snapshots.summary" ] || fail "no snapshot summaries in $cache"
$PL -r "$repo" backup --disk secret-disk-name "$TMP/d" --block-size 65536 >/dev/null
grep -aq secret-disk-name "$cache/snapshots.summary" && fail "a disk name in clear in the summaries"
cp "$cache/snapshots.summary" "$TMP/sum.good"
printf 'X' | dd of="$cache/snapshots.summary" bs=1 seek=40 conv=notrunc status=none
$PL -r "$repo" restore d "$TMP/r" >/dev/null 2>"$TMP/err" && cmp "$TMP/d" "$TMP/r" ||
  fail "restore with altered summaries"
[ ! -s "$TMP/err" ] || fail "altered summaries are not worth a message: $(cat "$TMP/err")"
rm -f "$TMP/r"
cmp -s "$TMP/sum.good" "$cache/snapshots.summary" && fail "altered summaries were not rebuilt"

# In a clear repository, one that lies about a snapshot's time is caught
# when the snapshot it chose is read, and the full listing decides.
crepo=$(new_repo)
$PL init -r "$crepo" --no-encryption >"$TMP/out"
grep -q "NOT encrypted" "$TMP/out" || fail "init --no-encryption does not say so: $(cat "$TMP/out")"
cp "$TMP/d" "$TMP/d.old"
$PL -r "$crepo" backup --disk d "$TMP/d.old" >/dev/null
scribble "$TMP/d" $((3 << 20)) 5000 >/dev/null
$PL -r "$crepo" backup --disk d "$TMP/d" >/dev/null
$PL -r "$crepo" restore d "$TMP/r" >/dev/null && cmp "$TMP/d" "$TMP/r" || fail "restore of latest"
ccache=$PILOTLIGHT_CACHE_DIR/$(awk '{print $3}' "$TMP/out")
[ -s "$ccache/snapshots.summary" ] || fail "no snapshot summaries in $ccache"
oldest=$($PL -r "$crepo" snapshots --disk d --json | grep -o '"id":"[0-9a-f]\{64\}"' | head -n1 |
  grep -o '[0-9a-f]\{64\}')
python3 - "$ccache/snapshots.summary" "$oldest" <<'EOF2'
import hashlib, struct, sys
p, want = sys.argv[1], bytes.fromhex(sys.argv[2])
b = bytearray(open(p, 'rb').read()[:-32])
assert b[:10] == b'PLBUNDLE1\n'
n, pos = struct.unpack('<I', b[10:14])[0], 14
found = False
for _ in range(n):
    ln = struct.unpack('<I', b[pos + 32:pos + 36])[0]
    if b[pos:pos + 32] == want:
        b[pos + 36:pos + 44] = struct.pack('<Q', 1 << 40)  # "newest of all"
        found = True
    pos += 36 + ln
assert found, 'summary has no entry for the oldest snapshot'
open(p, 'wb').write(bytes(b) + hashlib.sha256(bytes(b)).digest())
EOF2
rm -f "$TMP/r"
$PL -r "$crepo" restore d "$TMP/r" >/dev/null && cmp "$TMP/d" "$TMP/r" ||
  fail "a lying summary picked the wrong latest snapshot"
rm -f "$TMP/r"
[ ! -e "$ccache/snapshots.summary" ] || fail "the lying summaries were kept"

# A cache folder that cannot be made: one warning naming it; the command works.
touch "$TMP/file"
PILOTLIGHT_CACHE_DIR=$TMP/file/cache $PL -r "$repo" snapshots >"$TMP/out" 2>"$TMP/err"
cmp "$TMP/out" <($PL -r "$repo" snapshots) || fail "snapshots without a cache differ"
[ "$(grep -c "cannot create the cache folder $TMP/file/cache" "$TMP/err")" -eq 1 ] &&
  [ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "want one warning naming the folder: $(cat "$TMP/err")"

# Interrupted backups. One killed just before its commit leaves a pack and
# its marker; without its index object the pack is listed by no index.
make_disk "$TMP/big" 16
interrupted_backup() {
  local before rc=0
  before=$(keys index/)
  PILOTLIGHT_TEST_BEFORE_COMMIT='kill -9 $PPID' $PL -r "$repo" backup --disk big "$TMP/big" \
    >/dev/null 2>&1 || rc=$?
  [ "$rc" -ne 0 ] || fail "the killed backup succeeded"
  comm -13 <(echo "$before") <(keys index/) | while read -r k; do store_tool "$repo" del "index/$k"; done
}
interrupted_backup
ls "$cache/backups/" | grep -q . || fail "the killed backup left no marker"
# A live marker (another backup running here) is no reason to scan packs/:
# the chunks are stored again.
mv "$cache/backups/"* "$TMP/dead-marker"
sleep 60 &
live=$!
cleanup_add "kill $live"
touch "$cache/backups/$(hostname).$live"
new=$($PL -r "$repo" backup --disk big "$TMP/big" --json | json_field bytes_new)
[ "$new" -gt 0 ] || fail "a live marker made the backup scan packs/ (stored $new new bytes)"
[ -e "$cache/backups/$(hostname).$live" ] || fail "a live process's marker was removed"
# A dead one is: the killed backup's chunks are reused, and its marker goes.
big=$($PL -r "$repo" snapshots --disk big --json | grep -o '"id":"[0-9a-f]\{64\}"' | grep -o '[0-9a-f]\{64\}')
$PL -r "$repo" forget "big@$big" >/dev/null
$PL -r "$repo" prune --grace 0 >/dev/null
$PL -r "$repo" snapshots --disk big --json | grep -q '"id"' && fail "disk big still has snapshots"
interrupted_backup
new=$($PL -r "$repo" backup --disk big "$TMP/big" --json | json_field bytes_new)
[ "$new" -eq 0 ] || fail "the interrupted backup's packs were not reused (stored $new new bytes)"
[ "$(ls "$cache/backups/")" = "$(hostname).$live" ] || fail "markers left: $(ls "$cache/backups/")"
$PL -r "$repo" restore big "$TMP/r" >/dev/null && cmp "$TMP/big" "$TMP/r" || fail "restore after reuse"
$PL -r "$repo" verify >/dev/null || fail "verify at the end"
echo "OK"
