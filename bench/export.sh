#!/usr/bin/env bash
# bench/export.sh: the recovery-side benchmark (issue #5), apart from bench/run.sh.
#   1. export of the workload's base snapshot as a stream-optimized VMDK, against
#      `qemu-img convert -O vmdk -o subformat=streamOptimized` of the same raw image
#      (time and size; both results checked with qemu-img compare when CHECK=1);
#   2. replica sync of the benchmark increment (time and bytes written) against the
#      naive apply (each changed extent, staged as a file named by its offset, written
#      into the replica with dd);
#   3. restore time against restic's (when restic is installed and RESTIC=1).
# Usage: bench/export.sh [WORKDIR]   (default /tmp/pl-bench-export; needs ~12 GiB free)
# Environment: PL (default build/pilotlight), GEN (default build/bench/gen-workload),
# SCALE (workload scale, default 1), CHECK (1: verify outputs, default 1), RESTIC (default 1).
# Appends a section to bench/EXPORT-RESULTS.md. Never part of the test run.
set -euo pipefail
# pilotlight repositories are encrypted (init's default); this is the benchmark's password.
export PILOTLIGHT_PASSWORD=${PILOTLIGHT_PASSWORD:-bench}
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
PL=${PL:-$TOP/build/pilotlight}
GEN=${GEN:-$TOP/build/bench/gen-workload}
SCALE=${SCALE:-1}
CHECK=${CHECK:-1}
RESTIC=${RESTIC:-1}
WORK=${1:-/tmp/pl-bench-export}
OUT=$HERE/EXPORT-RESULTS.md
[ -x "$PL" ] || { echo "no pilotlight at $PL" >&2; exit 1; }
[ -x "$GEN" ] || { echo "no gen-workload at $GEN" >&2; exit 1; }
command -v qemu-img >/dev/null || { echo "qemu-img is required" >&2; exit 1; }
mkdir -p "$WORK"
cd "$WORK"
rm -rf repo rep.raw rep.raw.pilotlight-state naive-rep.raw stage restic-repo restic-out ./*.vmdk

now() { date +%s.%N; }
secs() { echo "$1 $2" | awk '{printf "%.2f", $2 - $1}'; }
ratio() { echo "$1 $2" | awk '{ if ($2 > 0) printf "%.2f", $1 / $2; else print "-" }'; }
ratio4() { echo "$1 $2" | awk '{ if ($2 > 0) printf "%.4f", $1 / $2; else print "-" }'; }
warm() { cat "$@" >/dev/null; }  # DESIGN section 5: warm page cache
jfield() { grep -o "\"$1\":[0-9.]*" | head -n1 | cut -d: -f2; }

echo "== workload (scale $SCALE)"
"$GEN" --scale "$SCALE" base base.raw
$PL -r repo init >/dev/null
$PL -r repo backup --disk bench base.raw >/dev/null
warm base.raw

echo "== export vmdk: pilotlight vs qemu-img convert"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
# /usr/bin/time gives CPU seconds as well: on a shared machine the wall-clock ratio
# depends on how much of the second core we get, the CPU ratio does not.
/usr/bin/time -f "%e %U %S" -o pl.time $PL -r repo export bench ours.vmdk >/dev/null
/usr/bin/time -f "%e %U %S" -o qemu.time \
  qemu-img convert -f raw -O vmdk -o subformat=streamOptimized base.raw qemu.vmdk
pl_export=$(awk '{print $1}' pl.time)
qemu_export=$(awk '{print $1}' qemu.time)
pl_cpu=$(awk '{printf "%.2f", $2 + $3}' pl.time)
qemu_cpu=$(awk '{printf "%.2f", $2 + $3}' qemu.time)
pl_size=$(stat -c %s ours.vmdk)
qemu_size=$(stat -c %s qemu.vmdk)
checked="not checked"
if [ "$CHECK" = 1 ]; then
  qemu-img check -f vmdk ours.vmdk >/dev/null
  qemu-img compare -f raw -F vmdk base.raw ours.vmdk >/dev/null
  checked="qemu-img check and compare: identical"
fi
echo "pilotlight $pl_export s, $pl_size bytes; qemu-img $qemu_export s, $qemu_size bytes"

echo "== replica sync of the increment vs the naive dd apply"
t0=$(now); $PL -r repo replica sync --disk bench rep.raw >/dev/null; t1=$(now)
full_sync=$(secs "$t0" "$t1")
cp --sparse=always rep.raw naive-rep.raw
"$GEN" --scale "$SCALE" change base.raw changes.txt >/dev/null
$PL -r repo backup --disk bench --changed-extents changes.txt base.raw >/dev/null
# Stage the naive method's objects (not timed: that is its backup side).
rm -rf stage; mkdir stage
while read -r off len; do
  dd if=base.raw of="stage/$off" bs=1M iflag=skip_bytes,count_bytes skip="$off" count="$len" status=none
done <changes.txt
naive_bytes=$(awk '{s += $2} END {print s}' changes.txt)
warm stage/* rep.raw naive-rep.raw >/dev/null 2>&1 || true
t0=$(now)
for f in stage/*; do
  dd if="$f" of=naive-rep.raw bs=1M seek="${f##*/}" oflag=seek_bytes conv=notrunc status=none
done
sync naive-rep.raw
t1=$(now)
naive_apply=$(secs "$t0" "$t1")
t0=$(now); $PL -r repo replica sync --disk bench rep.raw --json >inc.json; t1=$(now)
inc_sync=$(secs "$t0" "$t1")
inc_written=$(jfield bytes_written <inc.json)
inc_zeroed=$(jfield bytes_zeroed <inc.json)
if [ "$CHECK" = 1 ]; then
  cmp base.raw rep.raw
  cmp base.raw naive-rep.raw
fi
echo "replica sync $inc_sync s ($inc_written bytes written); naive $naive_apply s ($naive_bytes bytes)"

echo "== restore: pilotlight vs restic"
rm -f restored.raw
t0=$(now); $PL -r repo restore bench restored.raw >/dev/null; t1=$(now)
pl_restore=$(secs "$t0" "$t1")
restic_restore="-"
if [ "$RESTIC" = 1 ] && command -v restic >/dev/null; then
  export RESTIC_PASSWORD=bench RESTIC_REPOSITORY=$WORK/restic-repo
  restic init -q >/dev/null
  restic backup -q base.raw >/dev/null
  rm -rf restic-out
  t0=$(now); restic restore -q latest --target restic-out >/dev/null; t1=$(now)
  restic_restore=$(secs "$t0" "$t1")
  [ "$CHECK" = 1 ] && cmp base.raw restic-out/base.raw
fi
[ "$CHECK" = 1 ] && cmp base.raw restored.raw
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

{
  echo
  echo "## $(date -u '+%Y-%m-%d %H:%M UTC') — scale $SCALE, $(nproc) CPUs, load average $load_before before, $load_after after"
  echo
  echo "| what | pilotlight | peer | ratio (peer / pilotlight) | target |"
  echo "| --- | --- | --- | --- | --- |"
  echo "| export stream-optimized VMDK, time | $pl_export s | qemu-img convert $qemu_export s | $(ratio "$qemu_export" "$pl_export")× | ≥ 2× |"
  echo "| export stream-optimized VMDK, CPU (user + sys) | $pl_cpu s | qemu-img convert $qemu_cpu s | $(ratio "$qemu_cpu" "$pl_cpu")× | |"
  echo "| export stream-optimized VMDK, size | $pl_size B | qemu-img $qemu_size B | $(ratio4 "$qemu_size" "$pl_size")× | no larger (≥ 1×) |"
  echo "| replica sync of the increment, time | $inc_sync s | naive dd apply $naive_apply s | $(ratio "$naive_apply" "$inc_sync")× | no slower (≥ 1×) |"
  echo "| replica sync of the increment, bytes written | $inc_written B (+ $inc_zeroed B zeroed) | naive $naive_bytes B | | |"
  echo "| full replica sync (first run) | $full_sync s | | | |"
  echo "| restore | $pl_restore s | restic $restic_restore s | $(ratio "$restic_restore" "$pl_restore")× | ≥ 3× |"
  echo
  echo "Exports: $checked. Replica and naive results compared with cmp against the changed image."
} | tee -a "$OUT"
