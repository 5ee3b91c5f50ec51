#!/usr/bin/env bash
# Prune beside running backups: two writers back up disk "a" (each from its
# own source file) and one backs up disk "b", while a forget --prune loop
# runs, for a bounded time. Afterwards every snapshot still listed restores
# byte-identical to the source as it was when that snapshot was taken, and
# verify --read-data is clean. Locks keep prune and backups apart (docs/FORMAT.md).
. "$(dirname "$0")/lib.sh"

repo=$(new_repo)
$PL init -r "$repo" >/dev/null
secs=${PL_TEST_CONCURRENCY_SECONDS:-25}
mkdir "$TMP/keep"
for w in a1 a2 b1; do make_disk "$TMP/$w" 6; done

# writer NAME DISK: back up $TMP/NAME as DISK until the deadline, changing it
# between backups; keep a copy of the source for each committed snapshot.
writer() {
  local name=$1 disk=$2 end=$(($(date +%s) + secs)) n=0 id
  while [ "$(date +%s)" -lt "$end" ]; do
    n=$((n + 1))
    scribble "$TMP/$name" $(((n * 37 % 90) * 65536)) 20000 >/dev/null
    cp "$TMP/$name" "$TMP/$name.cur"
    if id=$($PL -r "$repo" backup --disk "$disk" "$TMP/$name.cur" --json 2>>"$TMP/$name.err" |
      json_field id); then
      [ -n "$id" ] && mv "$TMP/$name.cur" "$TMP/keep/$id"
    fi
    sleep 0.2 # room for the pruner's exclusive lock between backups
  done
  echo "$n" >"$TMP/$name.count"
}
pruner() {
  local end=$(($(date +%s) + secs)) n=0
  while [ "$(date +%s)" -lt "$end" ]; do
    n=$((n + 1))
    $PL -r "$repo" forget --keep-last 2 --prune --grace 0 >/dev/null 2>>"$TMP/prune.err" ||
      echo "forget --prune failed: $(tail -n1 "$TMP/prune.err")" >>"$TMP/prune.fail"
    sleep 0.5
  done
  echo "$n" >"$TMP/prune.count"
}
writer a1 a & p1=$!
writer a2 a & p2=$!
writer b1 b & p3=$!
pruner & p4=$!
wait $p1 $p2 $p3 $p4
[ ! -s "$TMP/prune.fail" ] || fail "$(head -n3 "$TMP/prune.fail")"
# Backups may fail only by waiting out the lock, never by damage.
if grep -hv "locked by\|waiting up to" "$TMP"/a1.err "$TMP"/a2.err "$TMP"/b1.err | grep -q .; then
  fail "a backup failed: $(grep -hv 'locked by\|waiting up to' "$TMP"/*.err | head -n3)"
fi
ids=$($PL -r "$repo" snapshots --json | grep -o '"id":"[0-9a-f]*"' | sed 's/.*:"//; s/"//')
[ -n "$ids" ] || fail "no snapshots left"
checked=0
for id in $ids; do
  disk=$($PL -r "$repo" snapshots --json | grep -o "{[^{}]*\"id\":\"$id\"[^{}]*}" | json_field disk)
  [ -f "$TMP/keep/$id" ] || fail "snapshot $id of $disk was never reported committed"
  rm -f "$TMP/r"
  $PL -r "$repo" restore "$disk@$id" "$TMP/r" >/dev/null || fail "restore $disk@$id"
  cmp "$TMP/keep/$id" "$TMP/r" || fail "snapshot $disk@$id differs from its source"
  checked=$((checked + 1))
done
$PL -r "$repo" verify --read-data >/dev/null || fail "verify --read-data after the run"
echo "writers: a1 $(cat "$TMP/a1.count"), a2 $(cat "$TMP/a2.count"), b1 $(cat "$TMP/b1.count") backups;" \
  "prune runs $(cat "$TMP/prune.count"); $checked snapshots restored and compared"
