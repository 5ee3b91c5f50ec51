#!/bin/bash
# bench/nbd.sh: the NBD and QEMU-bitmap CBT path of the benchmark (DESIGN section 5). The
# workload disk becomes a qcow2 image; pilotlight backs it up with --qcow2 (which adds its
# bitmap); the workload's change is written into the image through NBD (qemu-nbd, read-write);
# then a CBT incremental backup is timed against restic's and borg's incrementals of the same
# change, restored and compared with qemu-img compare. It also measures the NBD source's
# full-read throughput (warm cache) from qemu-nbd (qcow2) and nbdkit (raw).
# Not part of the test run. Usage: bench/nbd.sh [--quick] [--reps N] [--work DIR] [--out FILE]
set -euo pipefail
# pilotlight repositories are encrypted (init's default); this is the benchmark's password.
export PILOTLIGHT_PASSWORD=${PILOTLIGHT_PASSWORD:-bench}

HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(dirname "$HERE")
QUICK=0
REPS=3
WORK=$HERE/work/nbd
OUT=
PEERS=restic,borg
BS=
while [[ $# -gt 0 ]]; do
  case $1 in
  --quick) QUICK=1 ;;
  --reps) REPS=$2; shift ;;
  --work) WORK=$2; shift ;;
  --out) OUT=$2; shift ;;
  --peers) PEERS=$2; shift ;;
  --block-size) BS=$2; shift ;;
  -h | --help)
    echo "usage: bench/nbd.sh [--quick] [--reps N] [--work DIR] [--out FILE] [--peers restic,borg]"
    echo "                    [--block-size BYTES]"
    echo "  --quick  1/8-scale workload; --peers '' skips restic and borg"
    echo "Environment: BUILD (build folder, default build), PL, GEN."
    exit 0 ;;
  *) echo "nbd.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[[ $REPS =~ ^[1-9][0-9]*$ ]] || { echo "nbd.sh: bad --reps" >&2; exit 2; }
SCALE=1
[[ $QUICK == 1 ]] && SCALE=0.125
BUILD=${BUILD:-$TOP/build}
PL=${PL:-$BUILD/pilotlight}
GEN=${GEN:-$BUILD/bench/gen-workload}
die() { echo "nbd.sh: $*" >&2; exit 1; }
for t in qemu-img qemu-nbd nbdkit python3 cc pkg-config /usr/bin/time; do
  command -v "$t" >/dev/null || die "$t is missing"
done
[[ -x $PL ]] || die "no pilotlight at $PL (build it or set PL)"
[[ -f $BUILD/libpilotlight.a ]] || die "no $BUILD/libpilotlight.a (build it or set BUILD)"
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
OUT=${OUT:-$WORK/nbd-results.md}
cd "$WORK"
# Stop the servers this script started, whatever happens (the PID files are in $WORK).
stop_servers() {
  local f
  for f in "$WORK"/w.pid "$WORK"/r.pid "$WORK"/k.pid; do
    [[ -s $f ]] && { kill "$(cat "$f")" 2>/dev/null || true; }
    rm -f "$f"
  done
  return 0
}
trap stop_servers EXIT
rm -rf -- pl* restic borg log ./*.sock ./*.pid
mkdir -p log
if [[ ! -x $GEN ]]; then
  GEN=$WORK/gen-workload
  cc -std=c17 -O2 -o "$GEN" "$HERE/gen-workload.c"
fi

# Two small helpers built against the library: nbd-apply writes a changed-extent list's bytes
# from a file into an NBD export; nbd-read reads an NBD source with the backup's access pattern
# (1 MiB blocks, 2 threads) through pilotlight's own NBD source and prints MB/s.
cat >nbd-apply.c <<'EOF'
#include <libnbd.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv)
{
  if (argc != 4) return 2;
  FILE *list = fopen(argv[2], "r"), *src = fopen(argv[3], "rb");
  struct nbd_handle *h = nbd_create();
  if (!list || !src || !h || nbd_connect_uri(h, argv[1]) == -1) {
    fprintf(stderr, "nbd-apply: %s\n", nbd_get_error());
    return 1;
  }
  unsigned long long off, len, n = 0;
  char *buf = NULL;
  while (fscanf(list, "%llu %llu", &off, &len) == 2) {
    buf = realloc(buf, len);
    if (!buf || fseeko(src, (off_t)off, SEEK_SET) || fread(buf, 1, len, src) != len) return 1;
    for (unsigned long long d = 0; d < len; d += 16u << 20) { /* under the 32 MiB request limit */
      size_t m = len - d < (16u << 20) ? len - d : (16u << 20);
      if (nbd_pwrite(h, buf + d, m, off + d, 0) == -1) {
        fprintf(stderr, "nbd-apply: extent %llu+%llu: %s\n", off, len, nbd_get_error());
        return 1;
      }
    }
    n++;
  }
  if (nbd_flush(h, 0) == -1 || nbd_shutdown(h, 0) == -1) return 1;
  nbd_close(h);
  printf("%llu extents written\n", n);
  return 0;
}
EOF
cat >nbd-read.c <<'EOF'
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "source/source.h"
#include "util/error.h"
static struct source *s;
static int nth = 2;
static const size_t bs = 1 << 20;
static void *run(void *a)
{
  char *b = malloc(bs);
  for (uint64_t o = (uint64_t)(long)a * bs; o < s->size; o += (uint64_t)nth * bs) {
    size_t n = s->size - o < bs ? s->size - o : bs;
    if (source_pread(s, b, n, o)) { fprintf(stderr, "%s\n", get_error()); exit(1); }
  }
  free(b);
  return NULL;
}
int main(int argc, char **argv)
{
  struct timespec t0, t1;
  pthread_t t[2];
  s = source_open(argv[1]);
  if (!s) { fprintf(stderr, "%s\n", get_error()); return 1; }
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long i = 0; i < nth; i++) pthread_create(&t[i], NULL, run, (void *)i);
  for (int i = 0; i < nth; i++) pthread_join(t[i], NULL);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double d = t1.tv_sec - t0.tv_sec + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("%.0f %.3f\n", s->size / d / 1e6, d);
  source_close(s);
  return 0;
}
EOF
LIBS=$(pkg-config --libs libnbd json-c libcrypto libzstd libcurl zlib)
cc -O2 -o nbd-apply nbd-apply.c -lnbd
cc -O2 -I"$TOP/src" -o nbd-read nbd-read.c "$BUILD/libpilotlight.a" $LIBS -lpthread

# rss CMD...: run CMD under /usr/bin/time and append its peak RSS (KiB) to $RSS_FILE.
rss() {
  local rc=0
  /usr/bin/time -f '%M' -o "$WORK/rss.out" "$@" || rc=$?
  tail -n1 "$WORK/rss.out" >>"$RSS_FILE"
  return $rc
}
# max_mib FILE: the largest KiB figure in FILE, in MiB.
max_mib() { sort -n "$1" | tail -n1 | awk '{printf "%.0f", $1 / 1024}'; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
now() { date +%s.%N; }
secs() { python3 -c "import sys; print('%.2f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$2"; }

echo "== workload (scale $SCALE)"
"$GEN" --scale "$SCALE" base base.raw | tee log/gen-base.txt
"$GEN" copy base.raw changed.raw
"$GEN" --scale "$SCALE" change changed.raw changes.txt | tee log/gen-change.txt
qemu-img convert -q -f raw -O qcow2 base.raw disk.qcow2
SIZE=$(stat -c %s base.raw)
CHANGED=$(awk '{s += $2} END {print s}' changes.txt)

echo "== pilotlight full backup through --qcow2 (adds the bitmap)"
mkdir -p pl
"$PL" -r pl/repo init >/dev/null
t0=$(now)
RSS_FILE=log/pl-full.rss rss "$PL" -r pl/repo backup --disk bench --qcow2 disk.qcow2 ${BS:+--block-size "$BS"} \
  >log/pl-full.txt
FULL_S=$(secs "$t0" "$(now)")
cat log/pl-full.txt

echo "== the change, written into the image through NBD"
qemu-nbd --fork --persistent --pid-file="$WORK/w.pid" --socket="$WORK/w.sock" --format=qcow2 \
  disk.qcow2
./nbd-apply "nbd+unix:///?socket=$WORK/w.sock" changes.txt changed.raw
pid=$(cat w.pid)
kill "$pid"
while kill -0 "$pid" 2>/dev/null && [[ $(sed 's/.*) //' /proc/$pid/stat 2>/dev/null | cut -c1) != Z ]]; do
  sleep 0.05
done
qemu-img compare -q -f qcow2 -F raw disk.qcow2 changed.raw || die "the NBD writes did not apply"
cp --sparse=always disk.qcow2 disk.qcow2.before
cp -a pl/repo pl/repo.before

echo "== pilotlight CBT incremental (--qcow2), $REPS runs"
: >log/pl-inc.tsv
: >log/pl-inc.rss
for r in $(seq "$REPS"); do
  if [[ $r -gt 1 ]]; then
    rm -rf pl/repo disk.qcow2
    cp -a pl/repo.before pl/repo
    cp --sparse=always disk.qcow2.before disk.qcow2
  fi
  sync
  t0=$(now)
  RSS_FILE=log/pl-inc.rss rss "$PL" -r pl/repo backup --disk bench --qcow2 disk.qcow2 --json \
    >log/pl-inc-$r.json
  t=$(secs "$t0" "$(now)")
  echo "$t" >>log/pl-inc.tsv
  echo "run $r: $t s $(cat log/pl-inc-$r.json)"
  grep -q '"mode":"cbt"' log/pl-inc-$r.json || die "the incremental did not use CBT"
done
INC_S=$(median <log/pl-inc.tsv)
READ=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bytes_read"])' log/pl-inc-1.json)
rm -f restored.raw
"$PL" -r pl/repo restore bench restored.raw >/dev/null
qemu-img compare -q -f raw -F qcow2 restored.raw disk.qcow2 || die "restore differs from the image"
echo "restore identical to the image"

echo "== NBD full-read throughput (warm cache), pilotlight's NBD source"
qemu-nbd --fork --persistent --pid-file="$WORK/r.pid" --socket="$WORK/r.sock" --read-only --shared=8 \
  --format=qcow2 disk.qcow2
cat changed.raw >/dev/null
./nbd-read "nbd+unix:///?socket=$WORK/r.sock" >/dev/null # warm up
read -r QNBD_MBS QNBD_S < <(./nbd-read "nbd+unix:///?socket=$WORK/r.sock")
kill "$(cat r.pid)" 2>/dev/null || true
nbdkit --unix "$WORK/k.sock" --pidfile "$WORK/k.pid" file changed.raw
for _ in $(seq 100); do [[ -s k.pid && -S k.sock ]] && break; sleep 0.05; done
./nbd-read "nbd+unix:///?socket=$WORK/k.sock" >/dev/null
read -r KIT_MBS KIT_S < <(./nbd-read "nbd+unix:///?socket=$WORK/k.sock")
kill "$(cat k.pid)"
echo "qemu-nbd qcow2: $QNBD_MBS MB/s; nbdkit raw: $KIT_MBS MB/s"

RESTIC_S=- BORG_S=- RESTIC_RSS=- BORG_RSS=-
export RESTIC_PASSWORD=bench
if [[ ,$PEERS, == *,restic,* ]] && command -v restic >/dev/null; then
  echo "== restic: full, then the incremental of the same change"
  "$GEN" copy base.raw peer.raw
  restic -q -r restic init >/dev/null
  restic -q -r restic backup --host bench peer.raw >/dev/null
  "$GEN" copy changed.raw peer.raw
  : >log/restic-inc.tsv
  : >log/restic-inc.rss
  for r in $(seq "$REPS"); do
    touch peer.raw
    t0=$(now)
    RSS_FILE=log/restic-inc.rss rss restic -q -r restic backup --host bench peer.raw >/dev/null
    secs "$t0" "$(now)" >>log/restic-inc.tsv
  done
  RESTIC_S=$(median <log/restic-inc.tsv)
  RESTIC_RSS=$(max_mib log/restic-inc.rss)
fi
if [[ ,$PEERS, == *,borg,* ]] && command -v borg >/dev/null; then
  echo "== borg (zstd,3): full, then the incremental of the same change"
  export BORG_BASE_DIR=$WORK/borg.home BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
  "$GEN" copy base.raw peer.raw
  borg init -e none borg
  borg create --compression zstd,3 borg::full peer.raw
  "$GEN" copy changed.raw peer.raw
  : >log/borg-inc.tsv
  : >log/borg-inc.rss
  for r in $(seq "$REPS"); do
    touch peer.raw
    t0=$(now)
    RSS_FILE=log/borg-inc.rss rss borg create --compression zstd,3 "borg::inc$r" peer.raw
    secs "$t0" "$(now)" >>log/borg-inc.tsv
  done
  BORG_S=$(median <log/borg-inc.tsv)
  BORG_RSS=$(max_mib log/borg-inc.rss)
fi
rm -f peer.raw

ratio() { python3 -c "import sys; print('-' if sys.argv[2] == '-' else '%.1f' % (float(sys.argv[2]) / float(sys.argv[1])))" "$1" "$2"; }
{
  echo "# NBD and QEMU-bitmap CBT benchmark"
  echo
  echo "\`bench/nbd.sh$([[ $QUICK == 1 ]] && echo ' --quick') --reps $REPS${BS:+ --block-size $BS}\`, $(date -u +%Y-%m-%d), $(nproc) CPUs."
  echo "Block size: $("$PL" -r pl/repo snapshots --disk bench --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["block_size"])') bytes."
  echo "Disk: $SIZE bytes (qcow2), change: $CHANGED bytes in $(wc -l <changes.txt) extents, written through NBD."
  echo
  echo "| step | time (s) | vs pilotlight CBT | peak RSS (MiB) |"
  echo "| --- | --- | --- | --- |"
  echo "| pilotlight full backup, --qcow2 | $FULL_S | | $(max_mib log/pl-full.rss) |"
  echo "| **pilotlight CBT incremental, --qcow2** (median of $REPS, range $(sort -n log/pl-inc.tsv | head -n1)–$(sort -n log/pl-inc.tsv | tail -n1); read $READ bytes) | **$INC_S** | 1 | $(max_mib log/pl-inc.rss) |"
  echo "| restic incremental (median of $REPS) | $RESTIC_S | $(ratio "$INC_S" "$RESTIC_S")× | $RESTIC_RSS |"
  echo "| borg incremental, zstd,3 (median of $REPS) | $BORG_S | $(ratio "$INC_S" "$BORG_S")× | $BORG_RSS |"
  echo
  echo "The CBT time includes everything --qcow2 does: qemu-img info and bitmap rotation, starting"
  echo "and stopping qemu-nbd, reading the dirty bitmap, the backup and the commit. Peak RSS is the"
  echo "largest over the runs, from /usr/bin/time (for pilotlight, its qemu-img children count too)."
  echo
  echo "NBD full read of the whole $SIZE-byte disk through pilotlight's NBD source, 1 MiB"
  echo "blocks on 2 threads, warm page cache:"
  echo
  echo "| server | MB/s | s |"
  echo "| --- | --- | --- |"
  echo "| qemu-nbd, qcow2 | $QNBD_MBS | $QNBD_S |"
  echo "| nbdkit file, raw | $KIT_MBS | $KIT_S |"
} >"$OUT"
echo
cat "$OUT"
