#!/bin/bash
# bench/history.sh: history at scale (issue 10, section 5). Writes a history
# of COUNT snapshots of one small disk with build/bench/gen-history (which is
# repo_backup in a loop: exactly what backup writes), and one of SMALL
# snapshots, in a folder and on a local Ceph RGW; then measures, on each,
# `pilotlight snapshots` (warm cache) and one incremental backup's metadata
# work (a one-block changed-extents backup: open, load the index, find the
# parent, commit). Reports medians, peak RSS and the COUNT/SMALL ratios
# against the targets, and writes bench/HISTORY-RESULTS.md.
# Not part of the test run. Usage: see usage().
set -euo pipefail
# pilotlight repositories are encrypted (init's default); this is the benchmark's password.
export PILOTLIGHT_PASSWORD=${PILOTLIGHT_PASSWORD:-bench}

HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(dirname "$HERE")
CMDLINE="bench/history.sh${*:+ $*}"

usage() {
  cat <<EOF
usage: bench/history.sh [--count N] [--small N] [--reps N] [--kinds LIST] [--modes LIST] [--work DIR] [--out FILE]
  --count N     snapshots in the large history (default 10000)
  --small N     snapshots in the small one (default 10)
  --reps N      repetitions of each timed command, median reported (default 7)
  --kinds LIST  folder,s3 (default both; s3 uses the gateway in PL_TEST_S3_ENDPOINT and
                PL_TEST_S3_BUCKET, else starts a Ceph RGW with tests/integration/rgw.sh)
  --modes LIST  encrypted,clear (default both): init's default, and init --no-encryption,
                whose backups have no key to unlock, so that only the metadata work is timed
  --work DIR    scratch folder (default bench/work-history)
  --out FILE    report (default bench/HISTORY-RESULTS.md)
Environment: PL (default build/pilotlight), GEN (default build/bench/gen-history).
EOF
}

COUNT=10000 SMALL=10 REPS=7 KINDS=folder,s3 MODES=encrypted,clear WORK=$HERE/work-history OUT=$HERE/HISTORY-RESULTS.md
while [[ $# -gt 0 ]]; do
  case $1 in
  --count) COUNT=$2; shift ;;
  --small) SMALL=$2; shift ;;
  --reps) REPS=$2; shift ;;
  --kinds) KINDS=$2; shift ;;
  --modes) MODES=$2; shift ;;
  --work) WORK=$2; shift ;;
  --out) OUT=$2; shift ;;
  -h | --help) usage; exit 0 ;;
  *) usage >&2; exit 2 ;;
  esac
  shift
done
die() { echo "history.sh: $*" >&2; exit 1; }
for v in "$COUNT" "$SMALL" "$REPS"; do [[ $v =~ ^[1-9][0-9]*$ ]] || die "counts must be positive integers"; done
PL=${PL:-$TOP/build/pilotlight}
GEN=${GEN:-$TOP/build/bench/gen-history}
[[ -x $PL && -x $GEN ]] || die "build first: meson setup build && ninja -C build (need $PL and $GEN)"
command -v /usr/bin/time >/dev/null || die "/usr/bin/time is missing (apt-get install time)"

rm -rf "$WORK"
mkdir -p "$WORK/bin"
WORK=$(cd "$WORK" && pwd)
cp -f "$PL" "$WORK/bin/pilotlight"
cp -f "$GEN" "$WORK/bin/gen-history"
PL=$WORK/bin/pilotlight GEN=$WORK/bin/gen-history
export PILOTLIGHT_CACHE_DIR=$WORK/cache
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

rgw_started=0
cleanup() { [[ $rgw_started == 1 ]] && "$TOP/tests/integration/rgw.sh" stop "$WORK/rgw" >/dev/null 2>&1 || true; }
trap cleanup EXIT

# The measured backup changes the first 64 KiB block of the disk as the
# history left it (restored from its latest snapshot).
echo "0 65536" >"$WORK/changed"

median() { sort -n | awk '{a[NR]=$1} END {printf "%.3f\n", (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# measure CMD...: run REPS times; print "median_seconds max_rss_kib" (the
# time from the clock in nanoseconds: /usr/bin/time's 10 ms steps are too
# coarse for a 30 ms command; RSS from /usr/bin/time).
measure() {
  local i t=() m=0 out s e
  for ((i = 0; i < REPS; i++)); do
    s=$(date +%s%N)
    /usr/bin/time -o "$WORK/time" -f '%M' "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; die "failed: $*"; }
    e=$(date +%s%N)
    out=$(tail -n1 "$WORK/time")
    t+=("$(awk -v a="$s" -v b="$e" 'BEGIN { printf "%.4f", (b - a) / 1e9 }')")
    ((out > m)) && m=$out
  done
  echo "$(printf '%s\n' "${t[@]}" | median) $m"
}

declare -A R
for kind in ${KINDS//,/ }; do
  case $kind in
  folder) base=$WORK/repo ;;
  s3)
    if [[ -z ${PL_TEST_S3_ENDPOINT:-} ]]; then # else: the gateway already exported
      eval "$("$TOP/tests/integration/rgw.sh" start "$WORK/rgw")"
      rgw_started=1
    fi
    base=s3:$PL_TEST_S3_ENDPOINT/$PL_TEST_S3_BUCKET/history-$$
    ;;
  *) die "unknown kind $kind" ;;
  esac
  for mode in ${MODES//,/ }; do
    case $mode in
    encrypted) initopt=() ;;
    clear) initopt=(--no-encryption) ;;
    *) die "unknown mode $mode" ;;
    esac
    for n in "$SMALL" "$COUNT"; do
      repo=$base-$mode-$n
      "$PL" init -r "$repo" "${initopt[@]}" >/dev/null 2>&1
      start=$(date +%s)
      "$GEN" "$repo" d0 "$n" >/dev/null 2>"$WORK/gen.log" || { cat "$WORK/gen.log" >&2; die "gen-history failed"; }
      R[$kind,$mode,$n,gen]=$(($(date +%s) - start))
      "$PL" -r "$repo" snapshots >/dev/null # warms the cache
      rm -f "$WORK/disk"
      "$PL" -r "$repo" restore d0 "$WORK/disk" >/dev/null
      head -c 65536 /dev/urandom | dd of="$WORK/disk" conv=notrunc status=none
      got=$("$PL" -r "$repo" snapshots --disk d0 --json | grep -o '"id"' | wc -l)
      [[ $got == "$n" ]] || die "$repo holds $got snapshots, not $n"
      R[$kind,$mode,$n,snapshots]=$(measure "$PL" -r "$repo" snapshots)
      R[$kind,$mode,$n,backup]=$(measure "$PL" -r "$repo" backup --disk d0 --changed-extents "$WORK/changed" "$WORK/disk")
      # The last backup restores byte-identical (every round trip ends in a comparison).
      "$PL" -r "$repo" restore d0 "$WORK/restored" >/dev/null
      cmp "$WORK/disk" "$WORK/restored" || die "restore from $repo differs from the disk"
      rm -f "$WORK/restored"
    done
  done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
{
  echo "# History at scale: $COUNT snapshots against $SMALL"
  echo
  echo "Command: \`$CMDLINE\` ($(date -u +%Y-%m-%d), pilotlight $("$PL" --version 2>/dev/null | head -n1))."
  echo "Load average at the start $LOAD_START, at the end $LOAD_END; 2 shared cores."
  echo "Each figure is the median of $REPS runs; RSS is the largest of them."
  echo
  echo "The histories are written by \`bench/gen-history\` (repo_backup in one process, a one-block"
  echo "change per snapshot of a 1 MiB disk: a pack, an index object and a snapshot object each)."
  echo "The measured backup is \`pilotlight backup --disk d0 --changed-extents FILE DISK\` of one"
  echo "64 KiB block: almost all of its time is metadata work (open, lock, load the index, find the"
  echo "parent, commit). The cache is warm (one listing before the timed runs)."
  echo
  echo "| store | repository | snapshots | history written in | \`snapshots\` | RSS | backup | RSS |"
  echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
  for kind in ${KINDS//,/ }; do
    for mode in ${MODES//,/ }; do
      for n in "$SMALL" "$COUNT"; do
        read -r st sm <<<"${R[$kind,$mode,$n,snapshots]}"
        read -r bt bm <<<"${R[$kind,$mode,$n,backup]}"
        echo "| $kind | $mode | $n | ${R[$kind,$mode,$n,gen]} s | $st s | $((sm / 1024)) MiB | $bt s | $((bm / 1024)) MiB |"
      done
    done
  done
  echo
  echo "| store | repository | \`snapshots\` at $COUNT | target | backup $COUNT / $SMALL | target |"
  echo "| --- | --- | ---: | --- | ---: | --- |"
  for kind in ${KINDS//,/ }; do
    for mode in ${MODES//,/ }; do
      read -r st _ <<<"${R[$kind,$mode,$COUNT,snapshots]}"
      read -r b1 _ <<<"${R[$kind,$mode,$SMALL,backup]}"
      read -r b2 _ <<<"${R[$kind,$mode,$COUNT,backup]}"
      r=$(ratio "$b2" "$b1")
      if [[ $kind == folder ]]; then lim=1; tgt="< 1 s"; else lim=3; tgt="a few seconds (3 s)"; fi
      sm=$(awk -v a="$st" -v l="$lim" 'BEGIN { print (a < l) ? "met" : "not met" }')
      bm=$(awk -v a="$r" 'BEGIN { print (a != "n/a" && a <= 2) ? "met" : "not met" }')
      echo "| $kind | $mode | $st s | $tgt: $sm | $r× | ≤ 2×: $bm |"
    done
  done
  echo
  echo "An encrypted repository's commands each unlock its key first (scrypt, about 0.65 s"
  echo "here), the same at any history length: its ratio is the one a user sees, the clear"
  echo "repository's is the metadata work alone."
  echo
  echo "No peer is timed here: the targets compare pilotlight with itself at two history"
  echo "lengths, and writing $COUNT snapshots with restic or borg (a process and a full"
  echo "repository scan each) takes hours on this machine."
} >"$OUT"
cat "$OUT"
