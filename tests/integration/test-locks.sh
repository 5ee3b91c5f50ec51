#!/usr/bin/env bash
# Repository locks: a command that locks leaves no lock behind; a held
# exclusive lock makes a backup wait (--lock-wait) and then fail naming the
# holder; stale locks (a dead process here, an old refresh elsewhere) are
# ignored and removed by unlock, held ones kept; unlock --remove-all removes
# everything; a backup whose lock is removed before it commits commits
# nothing; readers work with read-only S3 credentials.
. "$(dirname "$0")/lib.sh"

repo=$(new_repo)
$PL init -r "$repo" >/dev/null
make_disk "$TMP/d" 8
$PL -r "$repo" backup --disk d "$TMP/d" >/dev/null
[ -z "$(store_tool "$repo" list locks/)" ] || fail "backup left a lock behind"

# forge_lock NAME EXCLUSIVE HOST PID REFRESHED: write a lock object as
# another process would (docs/FORMAT.md, Locks).
forge_lock() {
  printf 'pilotlight-lock=1\nexclusive=%s\nhost=%s\npid=%s\ncommand=prune\ncreated=%s\nrefreshed=%s\nend=\n' \
    "$2" "$3" "$4" "$5" "$5" >"$TMP/lock"
  store_tool "$repo" put "locks/$1" "$TMP/lock" >/dev/null
}
now=$(date +%s)
host=$(hostname)

# A fresh exclusive lock from another host: backup fails at once with 0 wait,
# naming the holder, and after waiting with --lock-wait.
forge_lock 00000000000000000000000000000001 1 otherhost 4242 "$now"
expect_fail $PL -r "$repo" --lock-wait 0 backup --disk d "$TMP/d"
grep -q "locked by prune (pid 4242 on otherhost" "$TMP/err" || fail "holder not named: $(cat "$TMP/err")"
grep -q "pilotlight unlock" "$TMP/err" || fail "no advice: $(cat "$TMP/err")"
start=$(date +%s%N)
expect_fail $PL -r "$repo" backup --disk d "$TMP/d" --lock-wait 2s
elapsed=$((($(date +%s%N) - start) / 1000000))
[ "$elapsed" -ge 1900 ] || fail "--lock-wait 2s waited only $elapsed ms"
grep -q "waiting up to 2 s" "$TMP/err" || fail "no waiting message: $(cat "$TMP/err")"
# A malformed duration is a usage error.
rc=0; $PL -r "$repo" --lock-wait soon snapshots >/dev/null 2>"$TMP/err" || rc=$?
[ "$rc" -eq 2 ] && grep -q "not a duration" "$TMP/err" || fail "bad --lock-wait accepted (rc $rc)"
# Restore (a shared lock) is refused by the exclusive lock too.
expect_fail $PL -r "$repo" --lock-wait 0 restore d "$TMP/r"
# unlock keeps a held lock.
$PL -r "$repo" unlock >"$TMP/out"
grep -q "^kept locks/00000000000000000000000000000001: exclusive lock of prune" "$TMP/out" ||
  fail "unlock output: $(cat "$TMP/out")"
[ -n "$(store_tool "$repo" list locks/)" ] || fail "unlock removed a held lock"

# Stale locks: refreshed 31 minutes ago on another host; a dead process here.
forge_lock 00000000000000000000000000000001 1 otherhost 4242 $((now - 31 * 60))
sleep 30 & live=$!
cleanup_add "kill $live"
sh -c 'exit 0' & dead=$!; wait $dead
forge_lock 00000000000000000000000000000002 1 "$host" "$dead" "$now"
forge_lock 00000000000000000000000000000003 0 "$host" "$live" "$now"
# The shared lock of a live process does not stop a backup; stale ones do not either.
$PL -r "$repo" --lock-wait 0 backup --disk d "$TMP/d" >/dev/null || fail "stale locks blocked a backup"
$PL -r "$repo" unlock >"$TMP/out"
grep -q "^removed locks/00000000000000000000000000000001" "$TMP/out" || fail "old lock kept: $(cat "$TMP/out")"
grep -q "^removed locks/00000000000000000000000000000002" "$TMP/out" || fail "dead pid's lock kept: $(cat "$TMP/out")"
grep -q "^kept locks/00000000000000000000000000000003: shared lock" "$TMP/out" || fail "live lock removed: $(cat "$TMP/out")"
grep -q "^2 lock(s) removed, 1 kept$" "$TMP/out" || fail "summary: $(cat "$TMP/out")"
$PL -r "$repo" unlock --remove-all | grep -q "^1 lock(s) removed, 0 kept$" || fail "--remove-all"
[ -z "$(store_tool "$repo" list locks/)" ] || fail "locks remain after --remove-all"

# A lock removed while a backup holds it: the backup commits nothing.
before=$($PL -r "$repo" snapshots --disk d --json | grep -o '"id"' | wc -l)
cp "$TMP/d" "$TMP/d.committed"
scribble "$TMP/d" 4096 8192 >/dev/null
PILOTLIGHT_TEST_BEFORE_COMMIT="$PL -r '$repo' unlock --remove-all >/dev/null" \
  expect_fail $PL -r "$repo" backup --disk d "$TMP/d"
grep -q "lock .* was removed .* nothing was committed" "$TMP/err" || fail "lost lock: $(cat "$TMP/err")"
after=$($PL -r "$repo" snapshots --disk d --json | grep -o '"id"' | wc -l)
[ "$before" -eq "$after" ] || fail "a backup without its lock committed a snapshot"

# A lock is refreshed while held (PILOTLIGHT_TEST_LOCK_REFRESH shortens the period).
PILOTLIGHT_TEST_LOCK_REFRESH=1 PILOTLIGHT_TEST_SINK_DELAY_US=1500000 \
  $PL -r "$repo" restore d "$TMP/r" >/dev/null &
pid=$!
key=
for _ in $(seq 1 100); do key=$(store_tool "$repo" list locks/ | awk '{print $1}'); [ -n "$key" ] && break; sleep 0.05; done
[ -n "$key" ] || fail "restore took no lock"
first=$(store_tool "$repo" get "$key" | grep '^refreshed=')
second=$first
for _ in $(seq 1 50); do
  second=$(store_tool "$repo" get "$key" 2>/dev/null | grep '^refreshed=' || true)
  [ "$second" = "$first" ] || break
  sleep 0.1
done
wait $pid || fail "slow restore failed"
cmp "$TMP/d.committed" "$TMP/r" || fail "restore differs"
[ -n "$second" ] && [ "$first" != "$second" ] || fail "lock not refreshed ($first / $second)"
[ -z "$(store_tool "$repo" list locks/)" ] || fail "restore left a lock behind"

# Read-only credentials: readers work unlocked and say nothing alarming.
if ! is_local "$repo" && [ -n "${PL_TEST_S3_READONLY_ACCESS_KEY_ID:-}" ]; then
  ro() { AWS_ACCESS_KEY_ID=$PL_TEST_S3_READONLY_ACCESS_KEY_ID \
    AWS_SECRET_ACCESS_KEY=$PL_TEST_S3_READONLY_SECRET_ACCESS_KEY "$@"; }
  rm -f "$TMP/r"
  ro $PL -r "$repo" restore d "$TMP/r" >/dev/null 2>"$TMP/err" || fail "read-only restore: $(cat "$TMP/err")"
  cmp "$TMP/d.committed" "$TMP/r" || fail "read-only restore differs"
  ro $PL -r "$repo" verify >/dev/null 2>>"$TMP/err" || fail "read-only verify: $(cat "$TMP/err")"
  ro $PL -r "$repo" export d "$TMP/e.raw" >/dev/null 2>>"$TMP/err" || fail "read-only export: $(cat "$TMP/err")"
  cmp "$TMP/d.committed" "$TMP/e.raw" || fail "read-only export differs"
  [ ! -s "$TMP/err" ] || fail "read-only readers printed: $(cat "$TMP/err")"
  # A backup with read-only credentials fails clearly.
  ro expect_fail $PL -r "$repo" backup --disk d "$TMP/d"
fi
echo ok
