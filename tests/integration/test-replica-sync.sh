#!/usr/bin/env bash
# replica sync across many snapshots with random changes (including blocks
# that become zero and size changes), going backwards, a kill -9 in the
# middle of a sync, a target modified behind pilotlight's back, and --watch.
# Every step ends with cmp against the disk the snapshot was taken of.
source "$(dirname "$0")/lib.sh"

repo=$(new_repo)
$PL -r "$repo" init >/dev/null
make_disk "$TMP/disk" 48
ids=()
jbool() { grep -o "\"$1\":\(true\|false\)" | head -n1 | cut -d: -f2; }
backup() { # backup N: snapshot the disk, keep a copy as $TMP/v.N
  $PL -r "$repo" backup --disk vm "$TMP/disk" --json >"$TMP/b.json"
  ids+=("$(json_field id <"$TMP/b.json")")
  cp --sparse=always "$TMP/disk" "$TMP/v.$1"
}
backup 0
$PL -r "$repo" replica sync --disk vm "$TMP/rep" --json >"$TMP/s.json"
cmp "$TMP/disk" "$TMP/rep"
[ "$(jbool full <"$TMP/s.json")" = true ] || fail "first sync not full: $(cat "$TMP/s.json")"
grep -q '^status clean$' "$TMP/rep.pilotlight-state" || fail "state not clean"
grep -q "^applied ${ids[0]}$" "$TMP/rep.pilotlight-state" || fail "state does not name the snapshot"
# Sparse: the replica allocates no more than the source.
[ "$(du -k "$TMP/rep" | cut -f1)" -le "$(du -k "$TMP/disk" | cut -f1)" ] || fail "replica not sparse"

# A second run has nothing to do.
$PL -r "$repo" replica sync --disk vm "$TMP/rep" --json >"$TMP/s.json"
[ "$(jbool up_to_date <"$TMP/s.json")" = true ] || fail "not up to date: $(cat "$TMP/s.json")"

# Many snapshots with random changes; each sync writes only what changed.
RANDOM=7
for i in 1 2 3 4 5 6; do
  size=$(stat -c %s "$TMP/disk")
  for _ in 1 2 3; do
    off=$(( (RANDOM * 32768 + RANDOM) % (size - 300000) ))
    scribble "$TMP/disk" "$off" $((RANDOM % 200000 + 1)) >/dev/null
  done
  # Zero a whole aligned MiB that held data: that block must become a hole.
  dd if=/dev/zero of="$TMP/disk" bs=1M seek=$((i * 3)) count=1 conv=notrunc status=none
  [ "$i" -eq 4 ] && truncate -s 56M "$TMP/disk"                  # grow
  [ "$i" -eq 5 ] && truncate -s $((40 * 1048576 + 4096)) "$TMP/disk"  # shrink, not block-aligned
  backup "$i"
  $PL -r "$repo" replica sync --disk vm "$TMP/rep" --json >"$TMP/s.json"
  cmp "$TMP/disk" "$TMP/rep" || fail "replica differs after snapshot $i"
  [ "$(jbool full <"$TMP/s.json")" = false ] || fail "sync $i was full: $(cat "$TMP/s.json")"
  written=$(json_field bytes_written <"$TMP/s.json")
  [ "$written" -le $((8 << 20)) ] || fail "sync $i wrote $written bytes for a few small changes"
done

# Backwards, to every older snapshot in turn, then forwards again.
for i in 3 0 5 1; do
  $PL -r "$repo" replica sync --disk vm "$TMP/rep" --snapshot "${ids[$i]:0:12}" >/dev/null
  cmp "$TMP/v.$i" "$TMP/rep" || fail "replica differs after going back to snapshot $i"
done
$PL -r "$repo" replica sync --disk vm "$TMP/rep" --verify >/dev/null
cmp "$TMP/disk" "$TMP/rep"

# kill -9 in the middle of a sync (the test hook sends SIGKILL after N blocks
# have been written), at several points; the next run finishes the job.
for n in 1 3 6; do
  $PL -r "$repo" replica sync --disk vm "$TMP/rep" --snapshot "${ids[0]}" >/dev/null
  rc=0
  PILOTLIGHT_TEST_KILL_AFTER_BLOCKS=$n $PL -r "$repo" replica sync --disk vm "$TMP/rep" \
    --snapshot "${ids[6]}" >/dev/null 2>&1 || rc=$?
  [ "$rc" -eq 137 ] || fail "sync was not killed (exit $rc)"
  grep -q '^status syncing$' "$TMP/rep.pilotlight-state" || fail "no syncing state after kill"
  ! cmp -s "$TMP/v.6" "$TMP/rep" || fail "kill after $n blocks left a finished target"
  # Finish towards the snapshot that was being applied...
  $PL -r "$repo" replica sync --disk vm "$TMP/rep" --snapshot "${ids[6]}" --json >"$TMP/s.json"
  [ "$(jbool resumed <"$TMP/s.json")" = true ] || fail "not resumed: $(cat "$TMP/s.json")"
  cmp "$TMP/v.6" "$TMP/rep" || fail "replica differs after finishing a killed sync ($n)"
  grep -q '^status clean$' "$TMP/rep.pilotlight-state" || fail "state not clean after resume"
done
# ...or towards another snapshot than the one being applied when killed.
rc=0
PILOTLIGHT_TEST_KILL_AFTER_BLOCKS=3 $PL -r "$repo" replica sync --disk vm "$TMP/rep" \
  --snapshot "${ids[2]}" >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 137 ] || fail "sync was not killed (exit $rc)"
$PL -r "$repo" replica sync --disk vm "$TMP/rep" --snapshot "${ids[1]}" >/dev/null
cmp "$TMP/v.1" "$TMP/rep" || fail "replica differs after a killed sync was redirected"

# A target modified behind our back (as a booted VM would) is refused...
$PL -r "$repo" replica sync --disk vm "$TMP/rep" >/dev/null
cmp "$TMP/disk" "$TMP/rep"
printf 'booted' | dd of="$TMP/rep" bs=1 seek=4096 conv=notrunc status=none
expect_fail $PL -r "$repo" replica sync --disk vm "$TMP/rep" --snapshot "${ids[2]}"
grep -q 'modified' "$TMP/err" || fail "unclear message: $(cat "$TMP/err")"
# ...even when it is already at the requested snapshot (nothing silently kept)...
expect_fail $PL -r "$repo" replica sync --disk vm "$TMP/rep"
# ...and --force resyncs it fully and exactly.
$PL -r "$repo" replica sync --disk vm "$TMP/rep" --snapshot "${ids[2]}" --force --json >"$TMP/s.json"
[ "$(jbool full <"$TMP/s.json")" = true ] || fail "forced sync not full"
cmp "$TMP/v.2" "$TMP/rep"

# A state folder instead of a file beside the target.
$PL -r "$repo" replica sync --disk vm "$TMP/rep2" --state-dir "$TMP/states" >/dev/null
cmp "$TMP/disk" "$TMP/rep2"
[ ! -e "$TMP/rep2.pilotlight-state" ] || fail "state written beside the target with --state-dir"
ls "$TMP/states"/*.pilotlight-state >/dev/null || fail "no state in the state folder"
$PL -r "$repo" replica sync --disk vm "$TMP/rep2" --state-dir "$TMP/states" --json >"$TMP/s.json"
[ "$(jbool up_to_date <"$TMP/s.json")" = true ] || fail "state folder not used on the second run"
# The same target named another way (relative, with ./ and //) finds the same state.
(cd "$TMP" && $PL -r "$repo" replica sync --disk vm .//./rep2 --state-dir "$TMP/states" --json) >"$TMP/s.json"
[ "$(jbool up_to_date <"$TMP/s.json")" = true ] || fail "relative target name did not find its state"

# --watch applies each new snapshot as it appears.
$PL -r "$repo" replica sync --disk vm "$TMP/rep" --snapshot "${ids[0]}" >/dev/null
$PL -r "$repo" replica sync --disk vm "$TMP/rep" --watch 1 --json >"$TMP/watch.log" 2>&1 &
wpid=$!
cleanup_add "kill $wpid 2>/dev/null"
for _ in $(seq 50); do grep -q "${ids[6]}" "$TMP/watch.log" && break; sleep 0.2; done
cmp "$TMP/disk" "$TMP/rep" || fail "--watch did not bring the replica to the latest snapshot"
scribble "$TMP/disk" 2000000 70000 >/dev/null
backup 7
for _ in $(seq 50); do grep -q "${ids[7]}" "$TMP/watch.log" && break; sleep 0.2; done
grep -q "${ids[7]}" "$TMP/watch.log" || fail "--watch missed a new snapshot: $(cat "$TMP/watch.log")"
kill "$wpid"
wait "$wpid" || true
cmp "$TMP/disk" "$TMP/rep" || fail "replica differs after --watch applied a new snapshot"
echo OK
