#!/usr/bin/env bash
# prune killed with SIGKILL just before each of its store mutations in turn
# (PILOTLIGHT_TEST_PRUNE_KILL_AT=N, a -Dtest_hooks=true build): after every
# kill the repository verifies clean with --read-data and every snapshot
# restores byte-identical; a rerun completes and loses nothing referenced.
# Each point starts from the same history. Runs on a folder and on S3.
# PRUNE_KILL_RANDOM=N adds N kills at random times (tests/stress/ uses it).
source "$(dirname "$0")/lib.sh"

TOOL=${S3_TOOL:-$(dirname "$PL")/tests/unit/s3-tool}
[ -x "$TOOL" ] || fail "s3-tool not built: $TOOL"

# The history, built once in a folder: ten backups of a small disk that
# overwrite one region (dead once overwritten) and add data elsewhere, seven
# snapshots deleted, and two unindexed packs from an interrupted writer.
pristine=$TMP/pristine
$PL -r "$pristine" init >/dev/null
make_disk "$TMP/d" 12
ids=()
for i in $(seq 0 9); do
  if [ "$i" -gt 0 ]; then
    scribble "$TMP/d" $((2 << 20)) 1500000 >/dev/null
    scribble "$TMP/d" $(((6 + i / 2) << 20)) 300000 >/dev/null
  fi
  cp "$TMP/d" "$TMP/d$i"
  ids+=("$($PL -r "$pristine" backup --disk a "$TMP/d" --json | json_field id)")
done
keep=(0 6 9)
$PL -r "$pristine" forget $(for i in 1 2 3 4 5 7 8; do echo "a@${ids[$i]}"; done) >/dev/null
other=$TMP/other
$PL -r "$other" init >/dev/null
for i in 1 2; do
  head -c 1000000 /dev/urandom >"$TMP/o"
  $PL -r "$other" backup --disk "o$i" "$TMP/o" >/dev/null
done
(cd "$other" && find packs -type f) | while read -r p; do
  mkdir -p "$pristine/$(dirname "$p")"
  cp "$other/$p" "$pristine/$p"
done
echo junk >"$pristine/packs/00.tmp.9.9"

n=0
fresh_repo() {
  n=$((n + 1))
  if [ "${PL_TEST_REPO_KIND:-local}" = s3 ]; then
    repo="s3:$PL_TEST_S3_ENDPOINT/${PL_TEST_S3_BUCKET}/$(basename "$TMP")-k$n"
    (cd "$pristine" && find . -type f ! -name '*.tmp.*' | sed 's|^\./||') |
      xargs -P 8 -I{} "$TOOL" "$repo" put {} "$pristine/{}"
  else
    repo=$TMP/repo$n
    rm -rf "$TMP/repo$((n - 1))"
    cp -a "$pristine" "$repo"
  fi
}

# check WHAT ALL: verify --read-data, and restore every kept snapshot (ALL=1)
# or one of them, in turn.
check() {
  $PL -r "$repo" verify --read-data >"$TMP/v" 2>&1 || fail "$1: verify: $(cat "$TMP/v")"
  local i j=0
  for i in "${keep[@]}"; do
    j=$((j + 1))
    [ "$2" = 1 ] || [ $(((n + j) % ${#keep[@]})) -eq 0 ] || continue
    $PL -r "$repo" restore "a@${ids[$i]}" "$TMP/r" >/dev/null || fail "$1: restore of snapshot $i"
    cmp -s "$TMP/d$i" "$TMP/r" || fail "$1: snapshot $i differs"
    rm -f "$TMP/r"
  done
}

# One prune, killed at mutation $1 (or, with "time:S", after S seconds);
# prints "killed" or "done".
killed_prune() {
  local rc=0
  case $1 in
    time:*)
      $PL -r "$repo" prune --grace 0 --max-unused 0 >/dev/null 2>"$TMP/perr" &
      local pid=$!
      sleep "${1#time:}"
      kill -9 $pid 2>/dev/null || true
      wait $pid || rc=$? ;;
    *)
      PILOTLIGHT_TEST_PRUNE_KILL_AT=$1 $PL -r "$repo" prune --grace 0 --max-unused 0 \
        >/dev/null 2>"$TMP/perr" || rc=$? ;;
  esac
  case $rc in
    0) echo done ;;
    137) echo killed ;;
    *) fail "prune at $1 failed with $rc: $(cat "$TMP/perr")" ;;
  esac
}

after_kill() {
  check "after a kill at $1" 1
  $PL -r "$repo" prune --grace 0 --max-unused 0 --json >"$TMP/rerun.json" 2>"$TMP/perr" ||
    fail "rerun after a kill at $1: $(cat "$TMP/perr")"
  check "after the rerun of a kill at $1" 0
  # The rerun finished the job: nothing unreferenced is left.
  [ "$(json_field unused_after <"$TMP/rerun.json")" -eq 0 ] ||
    fail "after the rerun of a kill at $1: unused bytes left: $(cat "$TMP/rerun.json")"
}

points=0
for at in $(seq 1 200); do
  fresh_repo
  r=$(killed_prune "$at")
  [ "$r" = done ] && break
  points=$((points + 1))
  after_kill "$at"
done
[ "$points" -ge 20 ] || fail "prune made only $points store mutations; the test wants at least 20"
check "an uninterrupted prune" 1

for _ in $(seq 1 "${PRUNE_KILL_RANDOM:-0}"); do
  fresh_repo
  t=0.$(printf '%03d' $((RANDOM % 400)))
  killed_prune "time:$t" >/dev/null
  after_kill "time:$t"
done
echo "OK (killed at $points points)"
