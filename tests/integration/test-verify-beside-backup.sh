#!/usr/bin/env bash
# verify --read-data running beside backups reports no false damage: it
# lists snapshots before it loads the index objects written since it opened
# the repository, so every snapshot it checks has its chunks indexed.
source "$(dirname "$0")/lib.sh"

repo=$(new_repo)
$PL -r "$repo" init >/dev/null
make_disk "$TMP/d" 16
$PL -r "$repo" backup --disk d "$TMP/d" >/dev/null
# Each backup stores one new 256 KiB run, commits, and starts again.
(
  for i in $(seq 1 200); do
    [ -e "$TMP/stop" ] && break
    scribble "$TMP/d" $(((i % 48) * 262144)) 262144 >"$TMP/ch"
    $PL -r "$repo" backup --disk d "$TMP/d" --changed-extents "$TMP/ch" >/dev/null 2>&1 || exit 1
  done
) &
writer=$!
cleanup_add "touch $TMP/stop; wait $writer 2>/dev/null"
end=$((SECONDS + 20))
n=0
while [ $SECONDS -lt $end ]; do
  $PL -r "$repo" verify --read-data >"$TMP/out" 2>&1 || fail "false damage beside a backup: $(cat "$TMP/out")"
  n=$((n + 1))
done
touch "$TMP/stop"
wait $writer || fail "backups failed"
[ "$n" -ge 2 ] || fail "verify ran only $n times"
$PL -r "$repo" restore d "$TMP/r"
cmp "$TMP/d" "$TMP/r"
echo OK
