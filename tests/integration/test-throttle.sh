#!/usr/bin/env bash
# Bandwidth limits: a backup of 32 MiB of random data with --limit-upload 2M
# and its restore with --limit-download 2M, on a folder or on S3
# (PL_TEST_REPO_KIND), each hold the rate over every 10 s window once
# started (within 10%), by the limiter's own per-second count (a test hook)
# and, on a folder, by the repository's size sampled from outside; the
# commands take as long as the rate says; the restore is byte-identical; a
# backup running past a window's end (local time) changes speed there. A
# bad RATE is one line naming the option, exit 2; SIGTERM stops a throttled
# restore at once; PILOTLIGHT_LIMIT_DOWNLOAD is the default.
. "$(dirname "$0")/lib.sh"
[ -x "$PL" ] || fail "pilotlight not built: $PL"
requires awk
if [ "${PL_TEST_REPO_KIND:-local}" = s3 ]; then
  . "$(dirname "$0")/rgw.sh"
  rgw_ensure
  export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
fi
unset PILOTLIGHT_LIMIT_UPLOAD PILOTLIGHT_LIMIT_DOWNLOAD || true
LIMIT=$((2 << 20))
MIB=32

# The hook writes "NAME SECOND BYTES" lines; only test builds have it.
probe=$TMP/probe.log
head -c 100000 /dev/urandom >"$TMP/probe"
$PL -r "$TMP/probe-repo" init >/dev/null
PILOTLIGHT_TEST_RATELIMIT_LOG=$probe $PL -r "$TMP/probe-repo" backup --disk p --limit-upload 1M \
  "$TMP/probe" >/dev/null
[ -s "$probe" ] || { echo "SKIP: needs a build with -Dtest_hooks=true"; exit 77; }

# check_windows LOG NAME: every 10 s window of NAME's per-second counts,
# from the second after the first that reached half the limit to the last
# whole second, moved LIMIT bytes per second within 10%; at least 3 windows.
check_windows() {
  awk -v name="$2" -v limit="$LIMIT" '
    $1 == name { b[$2] += $3; if ($2 > last) last = $2 }
    END {
      start = -1
      for (s = 0; s <= last; s++) if (start < 0 && b[s] >= limit / 2) start = s + 1
      if (start < 0) { print "never reached half the limit"; exit 1 }
      n = 0; bad = 0
      for (s = start; s + 10 <= last; s++) {   # second "last" is partial
        sum = 0
        for (i = s; i < s + 10; i++) sum += b[i]
        r = sum / 10 / limit
        printf "%s window %d-%d s: %.3f MiB/s (%.1f%% of the limit)\n", name, s, s + 10, \
          sum / 10 / 1048576, r * 100
        if (r < 0.9 || r > 1.1) bad++
        n++
      }
      if (n < 3) { print "only " n " windows"; exit 1 }
      exit bad ? 1 : 0
    }' "$1" >"$TMP/windows.$2" || fail "$2 rate out of bounds: $(cat "$TMP/windows.$2")"
  cat "$TMP/windows.$2"
}

# secs_between T0 T1: elapsed seconds (from date +%s.%N values).
secs_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# check_duration WHAT SECONDS BYTES: BYTES at LIMIT took SECONDS, give or
# take 10% and a second for what is not throttled.
check_duration() {
  awk -v s="$2" -v b="$3" -v l="$LIMIT" 'BEGIN { e = b / l; exit !(s >= 0.9 * e && s <= 1.1 * e + 1) }' ||
    fail "$1 of $3 bytes at $LIMIT B/s took $2 s"
  echo "$1: $3 bytes in $2 s"
}

repo=$(new_repo)
$PL -r "$repo" init >/dev/null
head -c $((MIB << 20)) /dev/urandom >"$TMP/disk"

# Bad rates: one line naming the option and the form, exit 2, before any work.
for cmd in "backup --disk vm1 --limit-upload 10x $TMP/disk" "restore vm1 $TMP/no --limit-download fast" \
  "verify --limit-download 2M@mon-fri" "prune --limit-upload 100" \
  "replica sync --disk vm1 $TMP/no --limit-download 1M,2M"; do
  rc=0
  # shellcheck disable=SC2086 # the command line is split on purpose
  $PL -r "$repo" $cmd >"$TMP/out" 2>"$TMP/err" || rc=$?
  [ "$rc" -eq 2 ] || fail "$cmd: exit $rc, expected 2 ($(cat "$TMP/err"))"
  [ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "$cmd: $(cat "$TMP/err")"
  grep -q '^pilotlight: --limit-\(upload\|download\): .*(see pilotlight' "$TMP/err" ||
    fail "$cmd: $(cat "$TMP/err")"
done
[ ! -e "$TMP/no" ] || fail "a refused restore wrote its target"
PILOTLIGHT_LIMIT_DOWNLOAD=fast expect_fail $PL -r "$repo" snapshots
grep -q "PILOTLIGHT_LIMIT_DOWNLOAD='fast': rate 'fast': expected" "$TMP/err" || fail "env: $(cat "$TMP/err")"

# Backup at 2 MiB/s.
if is_local "$repo"; then
  # From outside: the repository folder's size every half second.
  (while :; do
    printf '%s %s\n' "$(date +%s.%N)" "$(du -sb "$repo" 2>/dev/null | cut -f1)"
    sleep 0.5
  done) >"$TMP/du.log" &
  du_pid=$!
  cleanup_add "kill $du_pid 2>/dev/null"
fi
t0=$(date +%s.%N)
PILOTLIGHT_TEST_RATELIMIT_LOG=$TMP/up.log $PL -r "$repo" backup --disk vm1 --limit-upload 2M \
  --json "$TMP/disk" >"$TMP/b.json"
t1=$(date +%s.%N)
stored=$(json_field bytes_stored <"$TMP/b.json")
[ "$stored" -ge $((MIB << 20)) ] || fail "random data stored in $stored bytes"
check_duration backup "$(secs_between "$t0" "$t1")" "$stored"
check_windows "$TMP/up.log" upload
! grep -q '^download ' "$TMP/up.log" || fail "backup limited its downloads without a download limit"
if is_local "$repo"; then
  kill "$du_pid"
  wait "$du_pid" 2>/dev/null || true
  # Growth over each span of 10 s or more between samples, from the first
  # sample that shows a whole piece written to the last before the end.
  awk -v limit="$LIMIT" -v end="$t1" '
    { t[NR] = $1; s[NR] = $2 }
    END {
      first = 0
      for (i = 2; i <= NR && !first; i++) if (s[i] - s[1] >= 65536) first = i
      n = 0; bad = 0
      for (i = first; i <= NR; i++) {
        for (j = i + 1; j <= NR && t[j] - t[i] < 10; j++) ;
        if (j > NR || t[j] > end - 0.5) break
        r = (s[j] - s[i]) / (t[j] - t[i]) / limit
        if (r < 0.9 || r > 1.1) { bad++; printf "folder grew %.3f MiB/s from %.1f s\n", r * 2, t[i] - t[1] }
        if (!n || r < lo) lo = r
        if (!n || r > hi) hi = r
        n++
      }
      printf "folder size: %d spans of 10 s, %.1f%% to %.1f%% of the limit, %d outside 10%%\n", \
        n, lo * 100, hi * 100, bad
      exit (bad || n < 3)
    }' "$TMP/du.log" >"$TMP/du.out" || fail "repository growth: $(cat "$TMP/du.out")"
  cat "$TMP/du.out"
fi

# Restore at 2 MiB/s, byte-identical.
t0=$(date +%s.%N)
PILOTLIGHT_TEST_RATELIMIT_LOG=$TMP/down.log $PL -r "$repo" restore vm1 "$TMP/r1" --limit-download 2M \
  >/dev/null
t1=$(date +%s.%N)
cmp "$TMP/disk" "$TMP/r1"
down=$(awk '$1 == "download" { n += $3 } END { print n + 0 }' "$TMP/down.log")
[ "$down" -ge "$stored" ] || fail "restore counted $down bytes through the limiter, less than the $stored stored"
check_duration restore "$(secs_between "$t0" "$t1")" "$down"
check_windows "$TMP/down.log" download

# The rate follows the clock: with a TZ that makes it local noon 4 s from
# now, 512K ("512K@daily 00:00-12:00") holds until noon and 4M from then on,
# in the same backup.
head -c $((18 << 20)) /dev/urandom >"$TMP/disk2"
now=$(date -u +%s)
east=$(((43200 - 4 - now % 86400 + 86400) % 86400))
tz=$(printf 'XXX-%02d:%02d:%02d' $((east / 3600)) $((east % 3600 / 60)) $((east % 60)))
TZ=$tz PILOTLIGHT_TEST_RATELIMIT_LOG=$TMP/tz.log $PL -r "$repo" backup --disk vm2 \
  --limit-upload '4M, 512K@daily 00:00-12:00' "$TMP/disk2" >/dev/null
awk -v lo=$((512 << 10)) -v hi=$((4 << 20)) '
  { b[$2] = $3; if ($2 > last) last = $2 }
  END {
    bad = 0; n = 0
    for (s = 1; s <= 2; s++) { printf "second %d: %.0f KiB\n", s, b[s] / 1024; if (b[s] < 0.9 * lo || b[s] > 1.1 * lo) bad++ }
    for (s = 6; s < last; s++) { printf "second %d: %.0f KiB\n", s, b[s] / 1024; if (b[s] < 0.9 * hi || b[s] > 1.1 * hi) bad++; n++ }
    exit bad || !n
  }' "$TMP/tz.log" >"$TMP/tz.out" || fail "the rate did not change at the window's end: $(cat "$TMP/tz.out")"
echo "512K until local noon, 4M after: $(tr '\n' ' ' <"$TMP/tz.out")"
echo "  (every second: $(awk '{ printf "%d:%.0fK ", $2, $3 / 1024 }' "$TMP/tz.log"))"
$PL -r "$repo" restore vm2 "$TMP/r4" >/dev/null
cmp "$TMP/disk2" "$TMP/r4"

# SIGTERM stops a throttled restore at once (here 32 MiB at 64 KiB/s would
# take 8 minutes), leaving nothing under the target's name.
PILOTLIGHT_LIMIT_DOWNLOAD=64K $PL -r "$repo" restore vm1 "$TMP/r2" 2>"$TMP/err" &
pid=$!
cleanup_add "kill $pid 2>/dev/null"
sleep 1.5
kill -TERM "$pid"
t0=$(date +%s.%N)
rc=0
wait "$pid" || rc=$?
t1=$(date +%s.%N)
[ "$rc" -eq 143 ] || fail "throttled restore after SIGTERM: exit $rc ($(cat "$TMP/err"))"
awk -v s="$(secs_between "$t0" "$t1")" 'BEGIN { exit !(s < 2) }' ||
  fail "throttled restore took $(secs_between "$t0" "$t1") s to stop"
grep -q 'interrupted by SIGTERM' "$TMP/err" || fail "SIGTERM: $(cat "$TMP/err")"
! ls "$TMP"/r2* >/dev/null 2>&1 || fail "an interrupted restore left $(ls "$TMP"/r2*)"

# Without limits no limiter runs.
PILOTLIGHT_TEST_RATELIMIT_LOG=$TMP/none.log $PL -r "$repo" restore vm1 "$TMP/r3" >/dev/null
cmp "$TMP/disk" "$TMP/r3"
[ ! -e "$TMP/none.log" ] || fail "an unlimited restore was counted: $(head -3 "$TMP/none.log")"
echo "ok"
