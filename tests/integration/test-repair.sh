#!/usr/bin/env bash
# Damage heals: for a flipped byte in a pack, a truncated pack, a deleted
# pack and a deleted index object, verify --read-data reports it with advice;
# running exactly that advice (repair, then a backup of the disk) makes the
# new snapshot and every older snapshot whose blocks the disk still holds
# restore byte-identical, and verify lists exactly the snapshots that stay
# damaged. Damage stays local: a damaged snapshot object of one disk and a
# damaged index object stop nothing else. Folder and S3.
source "$(dirname "$0")/lib.sh"

TOOL=${S3_TOOL:-$(dirname "$PL")/tests/unit/s3-tool}
# Remote index and snapshot objects are cached (and checked against their
# names): damage to the remote copy shows on a host without the cache, so
# the steps below that damage one start such a host by dropping the cache.
export PILOTLIGHT_CACHE_DIR=$TMP/cache
[ -x "$TOOL" ] || fail "s3-tool not built: $TOOL"

# Objects are read and written through the store, so the same steps damage a
# folder and a bucket.
obj_list() { "$TOOL" "$repo" list "$1" | cut -d' ' -f1; }
obj_get() { "$TOOL" "$repo" get "$1" >"$2"; }
obj_put() { "$TOOL" "$repo" put "$1" "$2" >/dev/null; }
obj_del() { "$TOOL" "$repo" del "$1" >/dev/null; }
snap_ids() { $PL -r "$repo" snapshots --disk "$1" --json | grep -o '"id":"[0-9a-f]*"' | cut -d'"' -f4; }

# setup: disks a (two snapshots: v1, then one changed MiB at 4 MiB) and b.
# The pack of a's first backup is $pack1; it holds every chunk of v1.
setup() {
  repo=$(new_repo)
  $PL -r "$repo" init >/dev/null
  rm -f "$TMP/a" "$TMP/b"
  head -c $((3 << 20)) /dev/urandom >"$TMP/a"
  { yes "repair test $RANDOM" || true; } | head -c $((3 << 20)) >>"$TMP/a"
  truncate -s 8M "$TMP/a"
  $PL -r "$repo" backup --disk a "$TMP/a" >/dev/null
  pack1=$(obj_list packs/)
  idx1=$(obj_list index/)
  [ "$(echo "$pack1" | wc -l)" = 1 ] || fail "expected one pack: $pack1"
  cp "$TMP/a" "$TMP/a.v1"
  scribble "$TMP/a" $((4 << 20)) $((1 << 20)) >"$TMP/a.ch"
  $PL -r "$repo" backup --disk a "$TMP/a" --changed-extents "$TMP/a.ch" >/dev/null
  cp "$TMP/a" "$TMP/a.v2"
  make_disk "$TMP/b" 16
  obj_list index/ | sort >"$TMP/idx.before"
  $PL -r "$repo" backup --disk b "$TMP/b" >/dev/null
  idxb=$(obj_list index/ | sort | comm -13 "$TMP/idx.before" -)
  mapfile -t ids < <(snap_ids a)
  [ "${#ids[@]}" = 2 ] || fail "expected two snapshots of a"
}

# Run the commands verify advised (its stderr is in $TMP/err), as a user would.
follow_advice() {
  grep -q "^  pilotlight -r .* repair$" "$TMP/err" || fail "no repair advice: $(cat "$TMP/err")"
  grep -q "^  pilotlight -r .* backup --disk a $TMP/a$" "$TMP/err" ||
    fail "no backup advice for disk a: $(cat "$TMP/err")"
  grep -q -- "--full" "$TMP/err" && fail "advice still says --full: $(cat "$TMP/err")"
  sed -n 's/^  pilotlight /pilotlight /p' "$TMP/err" >"$TMP/advice"
  while read -r _ args; do
    # shellcheck disable=SC2086
    $PL $args >"$TMP/advice.out" 2>&1 || fail "advised command failed: $args: $(cat "$TMP/advice.out")"
    cat "$TMP/advice.out" >>"$TMP/advice.log"
  done <"$TMP/advice"
}

restores() { # SPEC FILE
  $PL -r "$repo" restore "$1" "$TMP/r" 2>"$TMP/rerr" || fail "restore $1: $(cat "$TMP/rerr")"
  cmp "$2" "$TMP/r" || fail "restore $1 differs"
  [ -s "$TMP/rerr" ] && fail "restore $1 warned: $(cat "$TMP/rerr")"
  rm -f "$TMP/r"
}

# after_heal STAYS: new snapshot and v2 restore; v1 restores unless STAYS=v1,
# in which case verify --read-data lists exactly v1 as damaged.
after_heal() {
  local stays=$1 n
  n=$(snap_ids a | wc -l)
  [ "$n" = 3 ] || fail "expected the healing backup's snapshot: $n"
  restores a "$TMP/a.v2"
  restores "a@${ids[1]}" "$TMP/a.v2"
  restores b "$TMP/b"
  if [ "$stays" = v1 ]; then
    grep -q "snapshot ${ids[0]:0:12} of disk a stays damaged" "$TMP/advice.log" ||
      fail "repair did not list v1: $(cat "$TMP/advice.log")"
    expect_fail $PL -r "$repo" verify --read-data
    [ "$(grep -c 'is damaged' "$TMP/out")" = 1 ] && grep -q "snapshot ${ids[0]:0:12} of disk a" "$TMP/out" ||
      fail "verify should list exactly v1: $(cat "$TMP/out")"
  else
    restores "a@${ids[0]}" "$TMP/a.v1"
    $PL -r "$repo" verify --read-data >"$TMP/out" 2>&1 || fail "verify after heal: $(cat "$TMP/out")"
  fi
  [ -z "$(obj_list damage/)" ] || [ "$stays" = v1 ] || fail "damage records left"
  rm -f "$TMP/advice.log"
}

# 1. A flipped byte in a data chunk (block 0 of a; unchanged since v1).
setup
obj_get "$pack1" "$TMP/p"
flip_byte "$TMP/p" 100000
obj_put "$pack1" "$TMP/p"
expect_fail $PL -r "$repo" verify --read-data
grep -q "$(basename "$pack1")" "$TMP/out" || fail "damaged pack not named: $(cat "$TMP/out")"
[ "$(grep -c 'is damaged' "$TMP/out")" = 2 ] || fail "both snapshots of a: $(cat "$TMP/out")"
grep -q "disk b" "$TMP/out" && fail "disk b wrongly reported"
[ -n "$(obj_list damage/)" ] || fail "no damage record written"
# Known damage is never deduplicated against, even before repair: a dry run
# changes nothing, and restores name the damage instead of failing late.
$PL -r "$repo" repair --dry-run >"$TMP/dry" || fail "dry run failed"
grep -q "(dry run)" "$TMP/dry" || fail "dry run output: $(cat "$TMP/dry")"
[ -n "$(obj_list damage/)" ] || fail "dry run deleted the record"
expect_fail $PL -r "$repo" restore a "$TMP/r"
grep -q "damaged" "$TMP/err" || fail "restore of damaged data: $(cat "$TMP/err")"
expect_fail $PL -r "$repo" verify --read-data
follow_advice
[ -n "$(obj_list quarantine/packs/)" ] || fail "damaged pack not moved aside"
after_heal all

# 2. A truncated pack: its trailer and v1's block-map page are lost, so v1
# stays damaged; v2's page is in its own pack, and v2 heals.
setup
obj_get "$pack1" "$TMP/p"
truncate -s $(($(stat -c %s "$TMP/p") - (1 << 20))) "$TMP/p"
obj_put "$pack1" "$TMP/p"
expect_fail $PL -r "$repo" verify --read-data
grep -q "$(basename "$pack1") is truncated" "$TMP/out" || fail "truncation not named: $(cat "$TMP/out")"
follow_advice
after_heal v1

# 3. A deleted pack.
setup
obj_del "$pack1"
expect_fail $PL -r "$repo" verify --read-data
grep -q "$(basename "$pack1") is missing" "$TMP/out" || fail "missing pack not named: $(cat "$TMP/out")"
follow_advice
after_heal v1

# 4. A deleted index object: its pack is indexed again from its trailer.
setup
obj_del "$idx1"
expect_fail $PL -r "$repo" verify --read-data
grep -q "listed by no index object" "$TMP/out" || fail "unreferenced pack not noted: $(cat "$TMP/out")"
follow_advice
after_heal all

# 5. A damaged trailer: reported as what it is, every chunk still readable.
setup
obj_get "$pack1" "$TMP/p"
flip_byte "$TMP/p" $(($(stat -c %s "$TMP/p") - 44 - 52 + 2))
obj_put "$pack1" "$TMP/p"
restores a "$TMP/a.v2"
expect_fail $PL -r "$repo" verify --read-data
grep -q "trailer damaged.*readable through the index" "$TMP/out" || fail "trailer: $(cat "$TMP/out")"
grep -q "is damaged" "$TMP/out" && fail "trailer damage reported as lost blocks: $(cat "$TMP/out")"
$PL -r "$repo" repair >/dev/null
restores "a@${ids[0]}" "$TMP/a.v1"
$PL -r "$repo" verify --read-data >"$TMP/out" 2>&1 || fail "verify after trailer repair: $(cat "$TMP/out")"

# 6. Damage stays local. A damaged snapshot object of disk a: backups and
# restores of b go on with one warning; naming it fails clearly.
obj_get "snapshots/${ids[0]}" "$TMP/s"
flip_byte "$TMP/s" 40
obj_put "snapshots/${ids[0]}" "$TMP/s"
rm -rf "$TMP/cache"
$PL -r "$repo" backup --disk b "$TMP/b" >/dev/null 2>"$TMP/berr" || fail "backup b: $(cat "$TMP/berr")"
[ "$(grep -c 'warning' "$TMP/berr")" = 1 ] || fail "backup b: not one warning: $(cat "$TMP/berr")"
$PL -r "$repo" restore b "$TMP/r" 2>"$TMP/rerr" && cmp "$TMP/b" "$TMP/r" && rm "$TMP/r"
grep -q "warning: snapshots/${ids[0]}: content does not match" "$TMP/rerr" || fail "warning: $(cat "$TMP/rerr")"
expect_fail $PL -r "$repo" restore "a@${ids[0]:0:10}" "$TMP/r"
grep -q "is damaged" "$TMP/err" || fail "naming it: $(cat "$TMP/err")"
$PL -r "$repo" snapshots --disk a 2>/dev/null | grep -q "${ids[1]:0:12}" || fail "listing a"
# A damaged index object (b's): restores still work, with one warning.
obj_get "$idxb" "$TMP/i"
flip_byte "$TMP/i" 20
obj_put "$idxb" "$TMP/i"
rm -rf "$TMP/cache"
$PL -r "$repo" restore b "$TMP/r" 2>"$TMP/rerr" || fail "restore beside a damaged index: $(cat "$TMP/rerr")"
cmp "$TMP/b" "$TMP/r" && rm "$TMP/r"
grep -q "warning: $idxb.*from their trailers" "$TMP/rerr" || fail "index warning: $(cat "$TMP/rerr")"
grep -q "run pilotlight verify" "$TMP/rerr" && fail "warning sends to verify: $(cat "$TMP/rerr")"
expect_fail $PL -r "$repo" verify --read-data
grep -q "run pilotlight verify" "$TMP/out" "$TMP/err" && fail "verify tells to run verify"
$PL -r "$repo" repair >"$TMP/rep" || fail "repair: $(cat "$TMP/rep")"
[ -n "$(obj_list quarantine/snapshots/)" ] || fail "snapshot not quarantined: $(cat "$TMP/rep")"
grep -q "^$idxb \(moved to quarantine\|rebuilt from the pack trailers\)" "$TMP/rep" ||
  fail "index not rebuilt: $(cat "$TMP/rep")"
restores b "$TMP/b"
restores "a@${ids[1]}" "$TMP/a.v2"
$PL -r "$repo" verify --read-data >"$TMP/out" 2>&1 || fail "verify after repair: $(cat "$TMP/out")"
echo OK
