#!/bin/bash
# bench/prune.sh: the prune benchmark (issue 10 section 7). Builds one history on the benchmark
# workload (the full image, then N increments of gen-workload's change pattern, each with its own
# seed), backs every step up with pilotlight, restic and borg, then times "forget all but the
# last K and prune" for each tool side by side, checks the latest snapshot of each restores byte
# for byte and writes bench/PRUNE-RESULTS.md. Not part of the test run. Usage: see usage().
set -euo pipefail
# pilotlight repositories are encrypted (init's default); this is the benchmark's password.
export PILOTLIGHT_PASSWORD=${PILOTLIGHT_PASSWORD:-bench}

HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(dirname "$HERE")
CMDLINE="bench/prune.sh${*:+ $*}"

usage() {
  cat <<EOF
usage: bench/prune.sh [--scale X] [--increments N] [--keep N] [--reps N]
                      [--work DIR] [--out FILE] [--tools LIST]
  --scale X         workload scale passed to gen-workload (default 0.125: a 1 GiB disk)
  --increments N    increments after the full backup, seeds 1..N (default 30)
  --keep N          snapshots kept by the forget (default 5)
  --reps N          repetitions of the timed forget + prune, each on its own copy of the
                    history; median reported (default 1)
  --work DIR        scratch folder (default bench/work-prune, gitignored)
  --out FILE        report file (default bench/PRUNE-RESULTS.md)
  --tools LIST      subset of pilotlight,restic,borg (default all three)
Environment: PL (pilotlight binary, default build/pilotlight), GEN (gen-workload binary,
default build/bench/gen-workload, else compiled into the work folder).
EOF
}

SCALE=0.125
INCREMENTS=30
KEEP=5
REPS=1
WORK=$HERE/work-prune
OUT=$HERE/PRUNE-RESULTS.md
TOOLS=pilotlight,restic,borg
while [[ $# -gt 0 ]]; do
  case $1 in
  --scale) SCALE=$2; shift ;;
  --increments) INCREMENTS=$2; shift ;;
  --keep) KEEP=$2; shift ;;
  --reps) REPS=$2; shift ;;
  --work) WORK=$2; shift ;;
  --out) OUT=$2; shift ;;
  --tools) TOOLS=$2; shift ;;
  -h | --help) usage; exit 0 ;;
  *) usage >&2; exit 2 ;;
  esac
  shift
done

die() { echo "prune.sh: $*" >&2; exit 1; }
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "bad --reps: $REPS"
[[ $INCREMENTS =~ ^[1-9][0-9]*$ ]] || die "bad --increments: $INCREMENTS"
[[ $KEEP =~ ^[1-9][0-9]*$ ]] || die "bad --keep: $KEEP"
((KEEP <= INCREMENTS)) || die "--keep $KEEP leaves nothing to forget with --increments $INCREMENTS"
[[ $SCALE =~ ^[0-9]*\.?[0-9]+$ ]] || die "bad --scale: $SCALE"
RUN=()
IFS=, read -r -a WANT <<<"$TOOLS"
for t in "${WANT[@]}"; do
  case $t in
  pilotlight | restic | borg) RUN+=("$t") ;;
  *) die "unknown tool in --tools: $t (pilotlight, restic, borg)" ;;
  esac
done
((${#RUN[@]} > 0)) || die "--tools is empty"
has_tool() { [[ " ${RUN[*]} " == *" $1 "* ]]; }
NEED=(/usr/bin/time)
has_tool restic && NEED+=(restic)
has_tool borg && NEED+=(borg)
for t in "${NEED[@]}"; do
  command -v "$t" >/dev/null || die "$t is missing (apt-get install time restic borgbackup)"
done

mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
OUT=$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")
PL=${PL:-$TOP/build/pilotlight}
if [[ -z ${GEN:-} ]]; then
  for g in "$TOP/build/bench/gen-workload" "$TOP/build-bench/bench/gen-workload"; do
    if [[ -x $g && $g -nt $HERE/gen-workload.c ]]; then GEN=$g; break; fi
  done
fi
if [[ -z ${GEN:-} ]]; then
  GEN=$WORK/gen-workload
  cc -std=c17 -O2 -Wall -Wextra -o "$GEN" "$HERE/gen-workload.c"
fi
if has_tool pilotlight; then
  [[ -x $PL ]] || die "no pilotlight binary at $PL (build it, set PL, or use --tools without pilotlight)"
fi
# Run private copies, so a rebuild of the tree during the run cannot mix two versions.
mkdir -p "$WORK/bin"
cp -f "$GEN" "$WORK/bin/gen-workload.run"
GEN=$WORK/bin/gen-workload.run
if has_tool pilotlight; then
  PL_SRC=$PL
  cp -f "$PL" "$WORK/bin/pilotlight.run"
  PL=$WORK/bin/pilotlight.run
fi

# Everything the run makes lives under $WORK; old results are removed first.
cd "$WORK"
rm -rf -- pilotlight restic borg out log
rm -f -- disk.raw results.tsv stored.tsv objects.tsv backups.tsv meta.txt time.out
mkdir -p log
IMG=$WORK/disk.raw
RES=$WORK/results.tsv
: >"$RES"
: >stored.tsv
: >objects.tsv
: >backups.tsv
: >meta.txt
START=$(date +%s)
NOTES=()

meta() { printf '%s=%s\n' "$1" "$2" >>"$WORK/meta.txt"; }
getmeta() { sed -n "s/^$1=//p" "$WORK/meta.txt" | tail -n1; }

# warm_dir DIR...: flush dirty pages left by the preparation (so their writeback does not land in
# the timed step), then read every file so the page cache holds them.
warm_dir() {
  sync
  find "$@" -type f -exec cat {} + >/dev/null
}

# timed TOOL STEP REP CMD...: one timed run; output goes to log/, figures to results.tsv.
timed() {
  local tool=$1 step=$2 rep=$3
  shift 3
  local log=$WORK/log/$tool-$step-$rep.log
  if ! /usr/bin/time -f '%e %U %S %M' -o "$WORK/time.out" "$@" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "$tool $step (rep $rep) failed: $*"
  fi
  local e u s m
  read -r e u s m < <(tail -n 1 "$WORK/time.out")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$step" "$rep" "$e" "$u" "$s" "$m" >>"$RES"
  printf '  %-10s %-8s #%s  wall %7.2f s  cpu %7.2f s  rss %5d MiB\n' "$tool" "$step" "$rep" \
    "$e" "$(awk -v u="$u" -v s="$s" 'BEGIN {print u + s}')" $((m / 1024))
}

# backup_timed TOOL STEP CMD...: a history backup (setup, not a prune figure): wall time only.
backup_timed() {
  local tool=$1 step=$2
  shift 2
  local log=$WORK/log/$tool-backup-$step.log
  if ! /usr/bin/time -f '%e %M' -o "$WORK/time.out" "$@" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "$tool backup of step $step failed: $*"
  fi
  printf '%s\t%s\t%s\n' "$tool" "$step" "$(tail -n 1 "$WORK/time.out" | tr ' ' '\t')" >>"$WORK/backups.tsv"
}

# check FILE: byte comparison with the last image; a mismatch ends the benchmark.
check() {
  "$GEN" cmp "$IMG" "$1" >/dev/null || die "$1 differs from $IMG"
}

# fresh DIR FROM: make DIR (and its sidecars DIR.*) an exact copy of FROM (and FROM.*).
fresh() {
  local dst=$1 src=$2 side
  rm -rf -- "$dst" "$dst".*
  cp -a -- "$src" "$dst"
  for side in "$src".*; do
    [[ -e $side ]] && cp -a -- "$side" "$dst${side#"$src"}"
  done
  return 0
}

# objects TOOL DIR: the repository's data objects, one relative path a line, sorted: pilotlight's
# packs, restic's data/ pack files, borg's data/ segment files.
objects() {
  local sub=data
  [[ $1 == pilotlight ]] && sub=packs
  (cd "$2/$sub" && find . -type f -printf '%P\n' | LC_ALL=C sort)
}

stored() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$(du -sb "$4" | cut -f1)" >>"$WORK/stored.tsv"; }

# Every tool encrypts (issue 11): restic always does, borg with repokey-blake2.
export RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench
export RESTIC_CACHE_DIR=$WORK/restic/repo.cache
export BORG_BASE_DIR=$WORK/borg/repo.home
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
# pilotlight caches only remote repositories' objects; keep any cache out of $HOME anyway.
export PILOTLIGHT_CACHE_DIR=$WORK/pilotlight/repo.cache

meta command "$CMDLINE"
meta date "$(date -u '+%Y-%m-%d %H:%M UTC')"
meta scale "$SCALE"
meta increments "$INCREMENTS"
meta keep "$KEEP"
meta reps "$REPS"
meta tools "${RUN[*]}"
meta niceness "$(nice)"
meta nproc "$(nproc)"
meta cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
meta mem "$(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
meta kernel "$(uname -r)"
meta fstype "$(findmnt -n -o FSTYPE --target "$WORK")"
meta load_start "$(cut -d' ' -f1-3 /proc/loadavg)"
if has_tool restic; then meta restic_version "$(restic version | cut -d' ' -f1-2)"; fi
if has_tool borg; then meta borg_version "$(borg --version)"; fi
if has_tool pilotlight; then
  meta pl_version "$("$PL" --version 2>/dev/null | head -n1 || true) ($PL_SRC built $(date -u -r "$PL_SRC" '+%Y-%m-%d %H:%M UTC'), sha256 $(sha256sum "$PL" | cut -c1-12); tree at git $(git -C "$TOP" rev-parse --short HEAD)$(git -C "$TOP" diff --quiet HEAD -- src 2>/dev/null || echo ', src modified'))"
fi

# ---- the history: the full image, then INCREMENTS changes in place, every tool after each ----
echo "== generating the workload (scale $SCALE) into $WORK"
"$GEN" --scale "$SCALE" base "$IMG" | tee log/gen-base.txt
meta disk_bytes "$(stat -c %s "$IMG")"
meta alloc_bytes "$("$GEN" map "$IMG" | awk '{s += $2} END {print s}')"

for t in "${RUN[@]}"; do mkdir -p "$t"; done
if has_tool pilotlight; then "$PL" -r pilotlight/repo init >log/pilotlight-init.log 2>&1 || die "pilotlight init failed"; fi
if has_tool restic; then restic -r restic/repo init >log/restic-init.log 2>&1 || die "restic init failed"; fi
if has_tool borg; then borg init -e repokey-blake2 borg/repo >log/borg-init.log 2>&1 || die "borg init failed"; fi

# backup_all STEP: every tool backs up the image as it is now.
backup_all() {
  local s=$1 t
  for t in "${RUN[@]}"; do
    case $t in
    pilotlight) backup_timed pilotlight "$s" "$PL" -r pilotlight/repo backup --disk d0 "$IMG" ;;
    restic) backup_timed restic "$s" restic -r restic/repo backup --host bench "$IMG" ;;
    borg) backup_timed borg "$s" borg create --compression zstd,3 "borg/repo::s$s" "$IMG" ;;
    esac
  done
}

echo "== history: full backup, then $INCREMENTS increments (seeds 1..$INCREMENTS)"
backup_all 0
CHANGED=0
for ((i = 1; i <= INCREMENTS; i++)); do
  "$GEN" --scale "$SCALE" --seed "$i" change "$IMG" "log/changes-$i.txt" >"log/gen-change-$i.txt"
  CHANGED=$((CHANGED + $(awk '{s += $2} END {print s + 0}' "log/changes-$i.txt")))
  backup_all "$i"
  printf '  step %2d/%d: %s\n' "$i" "$INCREMENTS" "$(tail -n1 "log/gen-change-$i.txt" | sed 's/^change: //')"
done
meta changed_bytes_total "$CHANGED"
meta change_first "$(head -n1 log/gen-change-1.txt | sed 's/^change: //')"
meta alloc_bytes_last "$("$GEN" map "$IMG" | awk '{s += $2} END {print s}')"
meta history_seconds "$(($(date +%s) - START))"

# snapshot_count TOOL DIR: the number of snapshots in the repository DIR.
snapshot_count() {
  case $1 in
  pilotlight) "$PL" -r "$2" snapshots --disk d0 --json | grep -c '"id":' ;;
  restic) restic -r "$2" snapshots --json | grep -o '"short_id"' | wc -l ;;
  borg) borg list --short "$2" | wc -l ;;
  esac
}

# Keep the history as $TOOL/hist (with its sidecars: restic's cache, borg's base folder), at the
# path the timed copies will use again, so that borg's and restic's caches stay valid.
for t in "${RUN[@]}"; do
  n=$(snapshot_count "$t" "$t/repo")
  [[ $n == $((INCREMENTS + 1)) ]] || die "$t has $n snapshots after the history, not $((INCREMENTS + 1))"
  objects "$t" "$t/repo" >"$t/objects-before.txt"
  mv "$t/repo" "$t/hist"
  for side in "$t"/repo.*; do
    if [[ -e $side ]]; then mv "$side" "$t/hist${side#"$t/repo"}"; fi
  done
done

# ---- the timed step: forget all but the last KEEP, then prune ----
# prune_step TOOL REP: on a fresh copy of the history in $TOOL/repo.
prune_step() {
  local t=$1 r=$2
  fresh "$t/repo" "$t/hist"
  stored "$t" before "$r" "$t/repo"
  local warm=("$t/repo") side
  for side in "$t"/repo.*; do
    if [[ -e $side ]]; then warm+=("$side"); fi
  done
  warm_dir "${warm[@]}"
  case $t in
  pilotlight)
    timed pilotlight forget+prune "$r" "$PL" -r pilotlight/repo forget --disk d0 --keep-last "$KEEP" \
      --prune --grace 0 --json
    ;;
  restic)
    timed restic forget+prune "$r" restic -r restic/repo forget --keep-last "$KEEP" --prune
    ;;
  borg)
    timed borg prune "$r" borg prune --keep-last "$KEEP" borg/repo
    timed borg compact "$r" borg compact borg/repo
    ;;
  esac
  stored "$t" after "$r" "$t/repo"
  objects "$t" "$t/repo" >"$t/objects-after.txt"
  local gone new before after
  before=$(wc -l <"$t/objects-before.txt")
  after=$(wc -l <"$t/objects-after.txt")
  gone=$(LC_ALL=C comm -23 "$t/objects-before.txt" "$t/objects-after.txt" | wc -l)
  new=$(LC_ALL=C comm -13 "$t/objects-before.txt" "$t/objects-after.txt" | wc -l)
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$r" "$before" "$after" "$gone" "$new" >>"$WORK/objects.tsv"
}

# Repetitions are the outer loop, so that a busy moment on a shared machine hits every tool
# rather than one.
echo "== forget all but the last $KEEP, then prune"
for ((r = 1; r <= REPS; r++)); do
  for t in "${RUN[@]}"; do prune_step "$t" "$r"; done
done

# jfield NAME: a number from pilotlight prune's JSON document (the fields after "actions").
jfield() { sed -n 's/.*\],"dry_run":/"dry_run":/p' | grep -o "\"$1\":[0-9]*" | head -n1 | cut -d: -f2; }
if has_tool pilotlight; then
  pj=$(grep '^{"actions":' "log/pilotlight-forget+prune-$REPS.log" | tail -n1)
  [[ -n $pj ]] || die "no prune JSON document in log/pilotlight-forget+prune-$REPS.log"
  for f in packs_before packs_after packs_deleted packs_rewritten packs_written index_before \
    index_written bytes_before bytes_after unused_before unused_after bytes_deleted bytes_written \
    chunks chunks_live pages leftover_packs leftover_temp; do
    meta "pl_$f" "$(jfield "$f" <<<"$pj")"
  done
  removed=$(grep -o '"removed":[0-9]*' "log/pilotlight-forget+prune-$REPS.log" | head -n1 | cut -d: -f2)
  meta pl_forget_removed "$removed"
  [[ $removed == $((INCREMENTS + 1 - KEEP)) ]] || die "pilotlight forget removed $removed snapshots, not $((INCREMENTS + 1 - KEEP))"
  # prune's own counts against the listing of packs/ before and after.
  gone=$(awk -F'\t' -v r="$REPS" '$1 == "pilotlight" && $2 == r { print $5 }' objects.tsv)
  new=$(awk -F'\t' -v r="$REPS" '$1 == "pilotlight" && $2 == r { print $6 }' objects.tsv)
  if [[ $gone != $(($(getmeta pl_packs_deleted) + $(getmeta pl_packs_rewritten) + $(getmeta pl_leftover_packs))) ||
    $new != "$(getmeta pl_packs_written)" ]]; then
    NOTES+=("pilotlight prune's JSON does not match the listing of packs/: $gone files gone (JSON: $(getmeta pl_packs_deleted) deleted + $(getmeta pl_packs_rewritten) rewritten + $(getmeta pl_leftover_packs) leftovers), $new new (JSON: $(getmeta pl_packs_written) written)")
  fi
fi

# ---- checks on the last repetition's result: snapshot count, restore + cmp, integrity ----
echo "== checks: $KEEP snapshots left, the latest restores byte for byte, repositories clean"
for t in "${RUN[@]}"; do
  n=$(snapshot_count "$t" "$t/repo")
  [[ $n == "$KEEP" ]] || die "$t has $n snapshots after the forget, not $KEEP"
  rm -rf out
  mkdir out
  case $t in
  pilotlight)
    "$PL" -r pilotlight/repo restore d0@latest out/disk.raw >log/pilotlight-restore.log 2>&1 ||
      die "pilotlight restore failed (log/pilotlight-restore.log)"
    check out/disk.raw
    "$PL" -r pilotlight/repo verify >log/pilotlight-verify.log 2>&1 ||
      die "pilotlight verify after prune is not clean: $(tail -n 5 log/pilotlight-verify.log)"
    "$PL" -r pilotlight/repo verify --read-data >log/pilotlight-verify-read-data.log 2>&1 ||
      die "pilotlight verify --read-data after prune is not clean: $(tail -n 5 log/pilotlight-verify-read-data.log)"
    meta pl_verify "$(tail -n1 log/pilotlight-verify-read-data.log)"
    ;;
  restic)
    restic -r restic/repo restore latest --target "$WORK/out" >log/restic-restore.log 2>&1 ||
      die "restic restore failed (log/restic-restore.log)"
    check "out$IMG"
    restic -r restic/repo check --read-data >log/restic-check.log 2>&1 ||
      die "restic check after prune failed (log/restic-check.log)"
    ;;
  borg)
    (cd out && borg extract --sparse "$WORK/borg/repo::s$INCREMENTS") >log/borg-extract.log 2>&1 ||
      die "borg extract failed (log/borg-extract.log)"
    check "out$IMG"
    borg check --verify-data borg/repo >log/borg-check.log 2>&1 ||
      die "borg check after prune failed (log/borg-check.log)"
    ;;
  esac
  rm -rf out
  echo "  $t: $n snapshots, the latest restores identical to the last image, repository check clean"
done
if has_tool restic; then
  meta restic_repo_version "$(restic -r restic/repo cat config --no-cache | sed -n 's/.*"version": *\([0-9]*\).*/\1/p')"
fi

meta load_end "$(cut -d' ' -f1-3 /proc/loadavg)"
meta elapsed "$(($(date +%s) - START))"

# ---- the report ----
# fig TOOL WHAT: one figure over the repetitions. WHAT is time (median of the per-rep sum of the
# tool's timed steps), cpu (the same for user + sys), rss (highest peak RSS in KiB of any step),
# before / after (median du -sb).
# median FORMAT: the median of the numbers on standard input, one a line, printed with FORMAT
# ("-" for none).
median() {
  sort -g | awk -v f="$1" '{ a[NR] = $1 } END {
    if (NR == 0) { print "-"; exit }
    printf f "\n", NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
# fig TOOL WHAT: one figure over the repetitions. WHAT is time (median of the per-rep sum of the
# tool's timed steps), cpu (the same for user + sys), range (lowest–highest per-rep time), rss
# (highest peak RSS in KiB of any step), before / after (median du -sb).
fig() {
  case $2 in
  time | cpu)
    awk -F'\t' -v t="$1" -v w="$2" '$1 == t { v[$3] += (w == "time" ? $4 : $5 + $6) }
      END { for (r in v) print v[r] }' "$RES" | median %.2f ;;
  range)
    awk -F'\t' -v t="$1" '$1 == t { v[$3] += $4 } END { for (r in v) print v[r] }' "$RES" |
      sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.2f–%.2f\n", lo, hi }' ;;
  rss)
    awk -F'\t' -v t="$1" '$1 == t && $7 > m { m = $7 } END { print m + 0 }' "$RES" ;;
  before | after)
    awk -F'\t' -v t="$1" -v w="$2" '$1 == t && $2 == w { print $4 }' stored.tsv | median %.0f ;;
  esac
}
# objfig TOOL COLUMN: the last repetition's object counts (3 before, 4 after, 5 gone, 6 new).
objfig() { awk -F'\t' -v t="$1" -v r="$REPS" -v c="$2" '$1 == t && $2 == r { print $c }' objects.tsv; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
# ratio A B, and the target test "A / B <= LIMIT".
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "-" }'; }
# verdict A B LIMIT UNIT: the target "A / B <= LIMIT", with what A would have to be to meet it
# (UNIT s: seconds, KiB: shown in MiB, B: bytes).
verdict() {
  awk -v a="$1" -v b="$2" -v l="$3" -v u="$4" 'BEGIN {
    if (b <= 0) { print "-"; exit }
    if (a / b <= l) { printf "met (%.0f%% of the allowance used)\n", 100 * a / (b * l); exit }
    need = b * l
    if (u == "s") need = sprintf("%.3f s", need)
    else if (u == "KiB") need = sprintf("%.1f MiB", need / 1024)
    else need = sprintf("%.0f bytes", need)
    printf "**not met**: %.0f%% over (pilotlight would need ≤ %s)\n", 100 * (a / (b * l) - 1), need }'
}
hist_secs() { awk -F'\t' -v t="$1" '$1 == t { s += $3 } END { printf "%.1f", s }' backups.tsv; }
hist_rss() { awk -F'\t' -v t="$1" '$1 == t && $4 > m { m = $4 } END { print m + 0 }' backups.tsv; }

{
  echo "# Prune benchmark results (bench/prune.sh)"
  echo
  echo "Written by \`bench/prune.sh\`; a new run replaces this file. Issue 10 section 7: one history on"
  echo "the benchmark workload (the full image, then $INCREMENTS increments of gen-workload's change"
  echo "pattern with seeds 1..$INCREMENTS, applied in place to the same file), backed up by every tool at"
  echo "every step; then each tool forgets all but the last $KEEP snapshots and prunes, timed."
  echo
  echo "- Command: \`$(getmeta command)\` (niceness $(getmeta niceness))"
  echo "- Date: $(getmeta date); elapsed $(getmeta elapsed) s, of which $(getmeta history_seconds) s building the history"
  echo "- Workload: scale $(getmeta scale): disk $(getmeta disk_bytes) bytes, $(getmeta alloc_bytes) allocated at the full backup and $(getmeta alloc_bytes_last) after the last increment; the $INCREMENTS changes total $(getmeta changed_bytes_total) bytes (the first: $(getmeta change_first))"
  echo "- Machine: $(getmeta nproc) × $(getmeta cpu), $(getmeta mem), kernel $(getmeta kernel), $(getmeta fstype)"
  echo "- Load average: $(getmeta load_start) at the start, $(getmeta load_end) at the end"
  echo "- Repetitions of the timed step: $(getmeta reps), each on its own \`cp -a\` copy of the history, page cache warm (every repository file read first)"
  has_tool pilotlight && echo "- pilotlight: $(getmeta pl_version)"
  has_tool restic && echo "- restic: $(getmeta restic_version), repository format version $(getmeta restic_repo_version)"
  has_tool borg && echo "- borg: $(getmeta borg_version), \`--compression zstd,3\` and \`-e repokey-blake2\` as in bench/run.sh"
  echo
  echo "## The timed step"
  echo
  echo "| tool | command timed |"
  echo "| --- | --- |"
  has_tool pilotlight && echo "| pilotlight | \`pilotlight -r REPO forget --disk d0 --keep-last $KEEP --prune --grace 0 --json\` |"
  has_tool restic && echo "| restic | \`restic -r REPO forget --keep-last $KEEP --prune\` |"
  has_tool borg && echo "| borg | \`borg prune --keep-last $KEEP REPO\`, then \`borg compact REPO\` (times summed, RSS the larger) |"
  echo
  echo "History building (not timed for the targets): pilotlight \`backup --disk d0 IMAGE\` (hash-compare"
  echo "against the previous snapshot), restic \`backup --host bench IMAGE\`, borg \`create --compression"
  echo "zstd,3 REPO::sN IMAGE\`."
  echo
  echo "## Side by side"
  echo
  echo "| tool | prune time, median (s) | range (s) | CPU user + sys (s) | peak RSS (MiB) | bytes before | bytes after | objects before → after | objects deleted | objects rewritten |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  for t in "${RUN[@]}"; do
    if [[ $t == pilotlight ]]; then
      del=$(getmeta pl_packs_deleted)
      rew="$(getmeta pl_packs_rewritten) (into $(getmeta pl_packs_written) new)"
    else
      del=$(objfig "$t" 5)
      rew=$(objfig "$t" 6)
    fi
    echo "| $t | $(fig "$t" time) | $(fig "$t" range) | $(fig "$t" cpu) | $(mib "$(fig "$t" rss)") | $(fig "$t" before) | $(fig "$t" after) | $(objfig "$t" 3) → $(objfig "$t" 4) | $del | $rew |"
  done
  echo
  echo "- Time and CPU are medians over the repetitions (for borg, of prune + compact); peak RSS is"
  echo "  the highest of any repetition, read with \`/usr/bin/time -f %M\`."
  echo "- Bytes are \`du -sb\` of the repository folder (restic's cache and borg's cache and security"
  echo "  folders live outside it and are not counted)."
  echo "- Objects: pilotlight's packs (\`packs/\`), restic's pack files (\`data/\`), borg's segment"
  echo "  files (\`data/\`). For restic and borg, *deleted* is the number of files present before and"
  echo "  gone after, and *rewritten* the number of new files (repacked or compacted data). For"
  echo "  pilotlight both come from prune's JSON: \`packs_deleted\` (no live chunk) and"
  echo "  \`packs_rewritten\` (live chunks copied out, the pack then deleted), and the new packs they"
  echo "  went into (\`packs_written\`)."
  if has_tool pilotlight; then
    echo "- pilotlight by the same file count as the peers: $(objfig pilotlight 5) files gone, $(objfig pilotlight 6) new."
    echo "  Prune's JSON: $(getmeta pl_chunks_live) of $(getmeta pl_chunks) chunks live, $(getmeta pl_pages) block-map pages read; indexed pack bytes $(getmeta pl_bytes_before) → $(getmeta pl_bytes_after) (unused $(getmeta pl_unused_before) → $(getmeta pl_unused_after)); $(getmeta pl_bytes_deleted) bytes deleted, $(getmeta pl_bytes_written) written; index objects $(getmeta pl_index_before) → $(getmeta pl_index_written); leftovers removed: $(getmeta pl_leftover_packs) packs, $(getmeta pl_leftover_temp) temporary files."
    echo "- \`--grace 0\`: nothing else runs on these repositories, so pilotlight may free unindexed"
    echo "  leftovers (of interrupted writes) at once rather than after the default 24 h;"
    echo "  $(getmeta pl_leftover_packs) unindexed packs and $(getmeta pl_leftover_temp) temporary files were found and removed."
    echo "  pilotlight and restic both use their default \`--max-unused\` of 5%; borg compact its default"
    echo "  \`--threshold\` of 10%."
  fi
  echo
  echo "## Targets (pilotlight / restic)"
  echo
  if has_tool pilotlight && has_tool restic; then
    pt=$(fig pilotlight time) rt=$(fig restic time)
    pr=$(fig pilotlight rss) rr=$(fig restic rss)
    pa=$(fig pilotlight after) ra=$(fig restic after)
    echo "| figure | pilotlight | restic | ratio | target | result |"
    echo "| --- | --- | --- | --- | --- | --- |"
    echo "| prune time (median) | $pt s | $rt s | $(ratio "$pt" "$rt") | ≤ 0.2 (1/5 of restic's) | $(verdict "$pt" "$rt" 0.2 s) |"
    echo "| peak RSS | $(mib "$pr") MiB | $(mib "$rr") MiB | $(ratio "$pr" "$rr") | ≤ 1 | $(verdict "$pr" "$rr" 1 KiB) |"
    echo "| stored bytes after prune | $pa | $ra | $(ratio "$pa" "$ra") | ≤ 1 | $(verdict "$pa" "$ra" 1 B) |"
    if has_tool borg; then
      echo
      echo "For information, pilotlight / borg: time $(ratio "$pt" "$(fig borg time)"), peak RSS $(ratio "$pr" "$(fig borg rss)"), bytes after $(ratio "$pa" "$(fig borg after)")."
    fi
  else
    echo "Not computed: this run did not include both pilotlight and restic."
  fi
  echo
  echo "## Checks"
  echo
  echo "After the prune, each tool has exactly $KEEP snapshots, and its latest snapshot was restored"
  echo "(pilotlight \`restore d0@latest\`, restic \`restore latest --target\`, borg \`extract --sparse\`)"
  echo "and compared byte for byte with the last image (\`gen-workload cmp\`): all identical."
  if has_tool pilotlight; then
    echo "\`pilotlight verify\` and \`pilotlight verify --read-data\` are clean ($(getmeta pl_verify));"
  fi
  echo "\`restic check --read-data\` and \`borg check --verify-data\` pass where those tools ran."
  echo
  echo "## History building (setup)"
  echo
  echo "| tool | $((INCREMENTS + 1)) backups, total wall (s) | highest backup RSS (MiB) | bytes before the prune |"
  echo "| --- | --- | --- | --- |"
  for t in "${RUN[@]}"; do
    echo "| $t | $(hist_secs "$t") | $(mib "$(hist_rss "$t")") | $(fig "$t" before) |"
  done
  echo
  echo "## Every timed run"
  echo
  echo "| tool | step | rep | wall (s) | user (s) | sys (s) | peak RSS (MiB) |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
  awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %.1f |\n", $1, $2, $3, $4, $5, $6, $7 / 1024 }' "$RES"
  if ((${#NOTES[@]} > 0)); then
    echo
    echo "## Notes"
    echo
    for n in "${NOTES[@]}"; do echo "- $n"; done
  fi
} >"$OUT"
echo "== wrote $OUT"
