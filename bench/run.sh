#!/bin/bash
# bench/run.sh: the benchmark of DESIGN section 5. Generates the workload with gen-workload, then
# measures pilotlight (at several block sizes), restic, borg and the naive split + sync + dd method
# side by side in one run, checks every restore byte for byte and writes bench/RESULTS.md.
# Not part of the test run. Usage: see usage() or bench/README.md.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(dirname "$HERE")
CMDLINE="bench/run.sh${*:+ $*}"

usage() {
  cat <<EOF
usage: bench/run.sh [--quick] [--block-sizes LIST] [--work DIR] [--reps N]
                    [--tools LIST] [--default-bs BYTES] [--out FILE]
  --quick           1/8-scale workload (1 GiB disk, ~200 MB allocated) for a smoke test
  --block-sizes     pilotlight block sizes to sweep (default 262144,524288,1048576,4194304)
  --work DIR        scratch folder (default bench/work; needs ~20 GB free for the full run)
  --reps N          repetitions of each timed step, median reported (default 3)
  --tools LIST      subset of pilotlight,pilotlight-clear,restic,borg,borg-fixed,naive
                    (default all; pilotlight-clear: a clear repository, init --no-encryption,
                    at the default block size, to measure what encryption costs)
  --default-bs B    block size for the side-by-side table (default: picked from the sweep)
  --out FILE        report file (default bench/RESULTS.md)
Environment: PL (pilotlight binary, default build/pilotlight), GEN (gen-workload binary,
default build/bench/gen-workload, else compiled into the work folder).
EOF
}

QUICK=0
BLOCK_SIZES=262144,524288,1048576,4194304
WORK=$HERE/work
REPS=3
TOOLS=pilotlight,pilotlight-clear,restic,borg,borg-fixed,naive
DEFAULT_BS=auto
OUT=$HERE/RESULTS.md
while [[ $# -gt 0 ]]; do
  case $1 in
  --quick) QUICK=1 ;;
  --block-sizes) BLOCK_SIZES=$2; shift ;;
  --work) WORK=$2; shift ;;
  --reps) REPS=$2; shift ;;
  --tools) TOOLS=$2; shift ;;
  --default-bs) DEFAULT_BS=$2; shift ;;
  --out) OUT=$2; shift ;;
  -h | --help) usage; exit 0 ;;
  *) usage >&2; exit 2 ;;
  esac
  shift
done
[[ $REPS =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: bad --reps" >&2; exit 2; }
SCALE=1
[[ $QUICK == 1 ]] && SCALE=0.125

die() { echo "run.sh: $*" >&2; exit 1; }
has_tool() { [[ ,$TOOLS, == *,$1,* ]]; }
for t in /usr/bin/time rclone restic borg python3; do
  command -v "$t" >/dev/null || die "$t is missing (apt-get install time rclone restic borgbackup)"
done

mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
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
rm -rf -- pl-* restic restic.* borg borg.* borg-fixed borg-fixed.* naive naive.* out log
rm -f -- base.raw disk.raw changes.txt base.map results.tsv stored.tsv meta.txt
mkdir -p log
IMG=$WORK/disk.raw
LIST=$WORK/changes.txt
RES=$WORK/results.tsv
: >"$RES"
: >stored.tsv
: >meta.txt
export RCLONE_CONFIG=$WORK/rclone.conf
: >"$RCLONE_CONFIG"
START=$(date +%s)
NOTES=()

meta() { printf '%s=%s\n' "$1" "$2" >>"$WORK/meta.txt"; }

# warm FILE...: flush dirty pages left by the preparation (so their writeback does not land in
# the timed step), then read the files so the page cache holds them.
warm() {
  sync
  cat "$@" >/dev/null
}
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
  printf '  %-12s %-8s #%s  wall %6.2f s  cpu %6.2f s  rss %5d MiB\n' "$tool" "$step" "$rep" \
    "$e" "$(awk -v u="$u" -v s="$s" 'BEGIN {print u + s}')" $((m / 1024))
}

stored() { printf '%s\t%s\t%s\n' "$1" "$2" "$(du -sb "$3" | cut -f1)" >>"$WORK/stored.tsv"; }

# check FILE: byte comparison with the image; a mismatch ends the benchmark.
check() {
  "$GEN" cmp "$IMG" "$1" >/dev/null || die "$1 differs from $IMG"
}

# fresh DIR FROM: make DIR (and its sidecar DIR.*) an exact copy of FROM (and FROM.*).
fresh() {
  local dst=$1 src=$2 side
  rm -rf -- "$dst" "$dst".*
  cp -a -- "$src" "$dst"
  for side in "$src".*; do
    [[ -e $side ]] && cp -a -- "$side" "$dst${side#"$src"}"
  done
  return 0
}

# ---- the workload ----
echo "== generating the workload (scale $SCALE) into $WORK"
"$GEN" --scale "$SCALE" base base.raw | tee log/gen-base.txt
"$GEN" map base.raw >base.map
"$GEN" copy base.raw "$IMG"
[[ $("$GEN" map "$IMG" | md5sum) == $(md5sum <base.map) ]] || die "copy changed the allocation map"
# The change is deterministic: apply it to a scratch copy now to learn the list, and to the image
# (same path, in place) after the full backups.
"$GEN" copy base.raw changed.raw
"$GEN" --scale "$SCALE" change changed.raw "$LIST" | tee log/gen-change.txt
rm -f changed.raw

meta command "$CMDLINE"
meta date "$(date -u '+%Y-%m-%d %H:%M UTC')"
meta quick "$QUICK"
meta scale "$SCALE"
meta reps "$REPS"
meta default_bs "$DEFAULT_BS"
meta nproc "$(nproc)"
meta cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
meta mem "$(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
meta kernel "$(uname -r)"
meta fstype "$(findmnt -n -o FSTYPE --target "$WORK")"
meta load_start "$(cut -d' ' -f1-3 /proc/loadavg)"
meta restic_version "$(restic version | cut -d' ' -f1-2)"
meta borg_version "$(borg --version)"
meta rclone_version "$(rclone version | head -n1)"
meta cc_version "$(cc --version | head -n1)"
if has_tool pilotlight; then
  meta pl_version "$("$PL" --version 2>/dev/null | head -n1 || true) ($PL_SRC built $(date -u -r "$PL_SRC" '+%H:%M UTC'), sha256 $(sha256sum "$PL" | cut -c1-12); tree at git $(git -C "$TOP" rev-parse --short HEAD)$(git -C "$TOP" diff --quiet HEAD -- src 2>/dev/null || echo ', src modified'))"
else
  meta pl_version "not run"
fi
meta disk_bytes "$(stat -c %s base.raw)"
meta alloc_bytes "$(awk '{s += $2} END {print s}' base.map)"
meta base_extents "$(wc -l <base.map)"
meta base_mix "$(sed -n 's/^  *\([a-z-]*\) *\([0-9]*\) bytes (\(.*\))$/\1: \2 bytes (\3);/p' log/gen-base.txt | tr '\n' ' ')"
meta change_summary "$(head -n1 log/gen-change.txt | sed 's/^change: //')"
meta changed_bytes "$(awk '{s += $2} END {print s}' "$LIST")"
meta list_extents "$(wc -l <"$LIST")"

# The two-core hash + compress limit of DESIGN section 5: one core's SHA-256 rate (OpenSSL) and
# zstd -3 rate (pilotlight's default level, 1 MiB blocks) on a ~256 MB sample of the allocated
# data (every k-th extent), so limit = allocated / 2 * (1/sha + 1/zstd).
echo "== measuring the hash + compress limit"
k=$(awk '{s += $2} END {k = int(s / 268435456); print k < 1 ? 1 : k}' base.map)
awk -v k="$k" 'NR % k == 0' base.map | while read -r off len; do
  dd if=base.raw bs=1M iflag=skip_bytes,count_bytes skip="$off" count="$len" status=none
done >sample.bin
sha=$(openssl speed -seconds 2 -bytes 1048576 -evp sha256 2>/dev/null | awk '/^sha256/ {sub("k", "", $2); print $2 * 1000}')
zst=$(zstd -b3 -i2 -B1M sample.bin 2>&1 | tr '\r' '\n' | sed -n 's/.*(x[0-9.]*), *\([0-9.]*\) MB\/s.*/\1/p' | tail -n1)
rm -f sample.bin
meta sha256_rate "$sha"
meta zstd3_rate "$(awk -v z="$zst" 'BEGIN {print z * 1000000}')"
echo "   sha256 $(awk -v x="$sha" 'BEGIN {printf "%.0f", x / 1e6}') MB/s, zstd -3 $zst MB/s (one core)"

IFS=, read -r -a BSS <<<"$BLOCK_SIZES"
PL_OK=0
if has_tool pilotlight; then
  PL_OK=1
  if ! "$PL" backup --help 2>&1 | grep -q -- --block-size; then
    NOTES+=("pilotlight backup has no --block-size option yet: only its default block size was measured")
    BSS=(default)
  fi
fi

meta block_sizes "$(IFS=,; echo "${BSS[*]}")"

pl_bs_args() { [[ $1 == default || $1 == clear ]] || echo "--block-size $1"; }

# The naive method: each extent copied to a file named by its offset, the folder synced with
# rclone, and (for increments) each file written into a sparse replica with dd.
cat >"$WORK/naive-extract.sh" <<'EOS'
# naive-extract.sh IMAGE LIST STAGE DEST: split IMAGE's extents into STAGE, then rclone sync.
set -euo pipefail
mkdir -p "$3"
while read -r off len; do
  dd if="$1" of="$3/$off" bs=1M iflag=skip_bytes,count_bytes skip="$off" count="$len" status=none
done <"$2"
rclone sync "$3" "$4"
EOS
cat >"$WORK/naive-apply.sh" <<'EOS'
# naive-apply.sh REPLICA DIR...: write every object (named by offset) into REPLICA with dd.
set -euo pipefail
r=$1
shift
for d in "$@"; do
  for f in "$d"/*; do
    dd if="$f" of="$r" bs=1M seek="${f##*/}" oflag=seek_bytes conv=notrunc status=none
  done
done
EOS

# Every tool encrypts (issue 11): restic always does, borg with repokey-blake2.
export RESTIC_PASSWORD=bench PILOTLIGHT_PASSWORD=bench BORG_PASSPHRASE=bench
borg_env() {
  export BORG_BASE_DIR=$WORK/$1/repo.home
  export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
}
borg_args() {
  if [[ $1 == borg-fixed ]]; then
    echo "--compression zstd,3 --chunker-params fixed,4194304 --sparse"
  else
    echo "--compression zstd,3"
  fi
}

# The tools in run order; pilotlight once per block size.
RUN=()
if [[ $PL_OK == 1 ]]; then
  for bs in "${BSS[@]}"; do RUN+=("pl-$bs"); done
fi
if [[ $PL_OK == 1 ]] && has_tool pilotlight-clear; then RUN+=(pl-clear); fi
for t in restic borg borg-fixed naive; do
  if has_tool "$t"; then RUN+=("$t"); fi
done

# full_step TOOL REP: a full backup of the base image into a new repository $TOOL/repo.
full_step() {
  local t=$1 r=$2
  rm -rf "$t"
  mkdir -p "$t"
  case $t in
  pl-*)
    # shellcheck disable=SC2046
    "$PL" -r "$t/repo" init $([[ $t == pl-clear ]] && echo --no-encryption) >"log/$t-init.log" 2>&1 ||
      die "pilotlight init failed"
    warm "$IMG"
    # shellcheck disable=SC2046
    timed "$t" full "$r" "$PL" -r "$t/repo" backup --disk bench $(pl_bs_args "${t#pl-}") "$IMG"
    ;;
  restic)
    export RESTIC_CACHE_DIR=$WORK/restic/repo.cache
    restic -r restic/repo init >log/restic-init.log 2>&1
    warm "$IMG"
    timed restic full "$r" restic -r restic/repo backup --host bench "$IMG"
    ;;
  borg | borg-fixed)
    borg_env "$t"
    borg init --encryption=repokey-blake2 "$t/repo" >"log/$t-init.log" 2>&1
    warm "$IMG"
    # shellcheck disable=SC2046
    timed "$t" full "$r" borg create $(borg_args "$t") "$t/repo::full" "$IMG"
    ;;
  naive)
    warm "$IMG"
    timed naive full "$r" bash "$WORK/naive-extract.sh" "$IMG" base.map naive/stage naive/repo/full
    rm -rf naive/stage
    ;;
  esac
}

# inc_step TOOL REP: incremental backups of the changed image, each from a fresh copy of the
# state after the full backup ($TOOL/repo-full and its sidecars), into $TOOL/repo.
inc_step() {
  local t=$1 r=$2
  fresh "$t/repo" "$t/repo-full"
  case $t in
  pl-*)
    warm "$IMG" "$LIST"
    timed "$t" inc "$r" "$PL" -r "$t/repo" backup --disk bench --changed-extents "$LIST" "$IMG"
    if [[ $r == "$REPS" ]]; then
      stored "$t" inc "$t/repo"
      rm -rf "$t/repo-inc"
      mv "$t/repo" "$t/repo-inc"
    fi
    fresh "$t/repo" "$t/repo-full"
    warm "$IMG"
    timed "$t" hash "$r" "$PL" -r "$t/repo" backup --disk bench "$IMG"
    if [[ $r == "$REPS" ]]; then
      stored "$t" hash "$t/repo"
      # The hash-compare result must restore to the image too (checked, not timed).
      rm -f out.raw
      "$PL" -r "$t/repo" restore bench@latest out.raw >"log/$t-hash-restore.log" 2>&1 ||
        die "pilotlight restore of the hash-compare backup failed"
      check out.raw
      rm -f out.raw
    fi
    rm -rf "$t/repo"
    ;;
  restic)
    export RESTIC_CACHE_DIR=$WORK/restic/repo.cache
    warm "$IMG"
    timed restic inc "$r" restic -r restic/repo backup --host bench "$IMG"
    grep -q "using parent snapshot" "log/restic-inc-$r.log" || die "restic found no parent snapshot"
    ;;
  borg | borg-fixed)
    borg_env "$t"
    warm "$IMG"
    # shellcheck disable=SC2046
    timed "$t" inc "$r" borg create $(borg_args "$t") "$t/repo::inc" "$IMG"
    ;;
  naive)
    rm -f naive/replica.raw
    "$GEN" copy base.raw naive/replica.raw
    warm "$IMG" "$LIST"
    timed naive inc "$r" bash -c 'bash "$1" "$2" "$3" naive/stage naive/repo/inc &&
      bash "$4" naive/replica.raw naive/stage' _ \
      "$WORK/naive-extract.sh" "$IMG" "$LIST" "$WORK/naive-apply.sh"
    check naive/replica.raw
    rm -rf naive/stage naive/replica.raw
    ;;
  esac
  if [[ $t != pl-* && $r == "$REPS" ]]; then stored "$t" inc "$t/repo"; fi
  return 0
}

# restore_step TOOL REP: restore the incremental into a new file and compare it with the image.
restore_step() {
  local t=$1 r=$2 repo=$1/repo
  [[ $t == pl-* ]] && repo=$t/repo-inc
  rm -rf out out.raw
  warm_dir "$repo"
  case $t in
  pl-*)
    timed "$t" restore "$r" "$PL" -r "$repo" restore bench@latest "$WORK/out.raw"
    check out.raw
    ;;
  restic)
    export RESTIC_CACHE_DIR=$WORK/restic/repo.cache
    timed restic restore "$r" restic -r restic/repo restore latest --target "$WORK/out"
    check "out$IMG"
    rm -rf out
    warm_dir "$repo"
    timed restic-dump restore "$r" bash -c 'restic -r restic/repo dump latest "$1" |
      dd of=out.raw bs=1M iflag=fullblock conv=sparse status=none' _ "$IMG"
    # dd conv=sparse may leave a trailing hole out; the image size is part of the data.
    truncate -s "$(stat -c %s "$IMG")" out.raw
    check out.raw
    ;;
  borg | borg-fixed)
    borg_env "$t"
    mkdir out
    timed "$t" restore "$r" bash -c 'cd out && borg extract --sparse "$1::inc"' _ "$WORK/$t/repo"
    check "out$IMG"
    ;;
  naive)
    timed naive restore "$r" bash -c 'truncate -s "$1" out.raw &&
      bash "$2" out.raw naive/repo/full naive/repo/inc' _ "$(stat -c %s "$IMG")" \
      "$WORK/naive-apply.sh"
    check out.raw
    ;;
  esac
  rm -rf out out.raw
}

# Repetitions are the outer loop, so that a busy moment on a shared machine hits every tool
# rather than one.
echo "== full backups"
for ((r = 1; r <= REPS; r++)); do
  for t in "${RUN[@]}"; do full_step "$t" "$r"; done
done
for t in "${RUN[@]}"; do
  stored "$t" full "$t/repo"
  mv "$t/repo" "$t/repo-full"
  for side in "$t"/repo.*; do
    if [[ -e $side ]]; then mv "$side" "$t/repo-full${side#"$t/repo"}"; fi
  done
done
if has_tool restic; then
  NOTES+=("restic repository format version $(restic -r restic/repo-full cat config --no-cache |
    sed -n 's/.*"version": *\([0-9]*\).*/\1/p') (2 stores compressed data)")
fi

echo "== applying the change to $IMG (in place)"
"$GEN" --scale "$SCALE" change "$IMG" changes.again >/dev/null
cmp -s "$LIST" changes.again || die "the change is not deterministic"
rm -f changes.again

echo "== incremental backups"
for ((r = 1; r <= REPS; r++)); do
  for t in "${RUN[@]}"; do inc_step "$t" "$r"; done
done

echo "== restores"
for ((r = 1; r <= REPS; r++)); do
  for t in "${RUN[@]}"; do restore_step "$t" "$r"; done
done

meta load_end "$(cut -d' ' -f1-3 /proc/loadavg)"
meta elapsed "$(($(date +%s) - START))"
meta notes "$(IFS='|'; echo "${NOTES[*]:-}")"
echo "== report"
python3 "$HERE/report.py" "$WORK" "$OUT"
echo "== wrote $OUT"
