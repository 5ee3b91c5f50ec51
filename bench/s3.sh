#!/bin/bash
# bench/s3.sh: the S3 benchmark of issue #3. Runs pilotlight against a private Ceph RGW on
# loopback (tests/integration/rgw.sh) and against a local folder, side by side on the same
# generated workload: full backup, incremental with the changed-extent list, restore (checked
# byte for byte). Counts S3 requests per step through tests/integration/faultproxy.py (pass-through,
# in a separate untimed run), samples the CPU time of radosgw/ceph-osd/ceph-mon per step, sweeps
# PILOTLIGHT_IO_THREADS, and writes bench/S3-RESULTS.md. Not part of the test run.
set -euo pipefail
# pilotlight repositories are encrypted (init's default); this is the benchmark's password.
export PILOTLIGHT_PASSWORD=${PILOTLIGHT_PASSWORD:-bench}

HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(dirname "$HERE")
CMDLINE="bench/s3.sh${*:+ $*}"

usage() {
  cat <<EOF
usage: bench/s3.sh [--quick] [--reps N] [--io-threads LIST] [--sweep-reps N]
                   [--block-size BYTES] [--no-count] [--no-nodelay] [--work DIR] [--out FILE]
                   [--report-only]
  --quick           1/8-scale workload (1 GiB disk, ~215 MB allocated) and --reps 1
  --reps N          timed runs of each step, local and S3; the tables show the median (default 3)
  --io-threads LIST PILOTLIGHT_IO_THREADS values for the S3 sweep (default 2,4,8); the value 4
                    (pilotlight's default for remote stores) reuses the main runs
  --sweep-reps N    timed runs per other sweep value (default 1)
  --block-size B    pilotlight block size for the first backup (default: pilotlight's, 1 MiB)
  --no-count        skip the request-counting run through faultproxy.py
  --no-nodelay      measure only the RGW as rgw.sh sets it up, not also a second one with the
                    beast option tcp_nodelay=1
  --work DIR        scratch folder (default bench/work/s3, gitignored; ~8 GB free for a full run)
  --out FILE        report (default bench/S3-RESULTS.md)
  --report-only     write the report again from the figures of the last run in the work folder
Environment: PL (pilotlight binary), GEN (gen-workload binary). Without them the script uses
build-s3bench/ (meson setup + ninja -j2 if missing).
EOF
}

QUICK=0
REPS=
SWEEP=2,4,8
SWEEP_REPS=1
BS=
COUNT=1
NODELAY=1
REPORT_ONLY=0
WORK=$HERE/work/s3
OUT=$HERE/S3-RESULTS.md
while [[ $# -gt 0 ]]; do
  case $1 in
  --quick) QUICK=1 ;;
  --reps) REPS=$2; shift ;;
  --io-threads) SWEEP=$2; shift ;;
  --sweep-reps) SWEEP_REPS=$2; shift ;;
  --block-size) BS=$2; shift ;;
  --no-count) COUNT=0 ;;
  --no-nodelay) NODELAY=0 ;;
  --report-only) REPORT_ONLY=1 ;;
  --work) WORK=$2; shift ;;
  --out) OUT=$2; shift ;;
  -h | --help) usage; exit 0 ;;
  *) usage >&2; exit 2 ;;
  esac
  shift
done
if [[ -z $REPS ]]; then
  REPS=3
  [[ $QUICK == 1 ]] && REPS=1
fi
[[ $REPS =~ ^[1-9][0-9]*$ ]] || { echo "s3.sh: bad --reps" >&2; exit 2; }
[[ $SWEEP_REPS =~ ^[1-9][0-9]*$ ]] || { echo "s3.sh: bad --sweep-reps" >&2; exit 2; }
[[ $SWEEP =~ ^([0-9]+)(,[0-9]+)*$|^$ ]] || { echo "s3.sh: bad --io-threads" >&2; exit 2; }
SCALE=1
[[ $QUICK == 1 ]] && SCALE=0.125
[[ $OUT == /* ]] || OUT=$PWD/$OUT

die() { echo "s3.sh: $*" >&2; exit 1; }

# write_report: bench/S3-RESULTS.md (or --out) from the figures in $WORK.
write_report() {
python3 - "$WORK" "$OUT" <<'EOS'
import collections, os, statistics, sys

work, out = sys.argv[1], sys.argv[2]
meta = {}
for line in open(os.path.join(work, "meta.txt")):
    k, _, v = line.rstrip("\n").partition("=")
    meta[k] = v
quick = meta["quick"] == "1"
alloc = int(meta["alloc_bytes"])
GiB, MiB = 1 << 30, 1 << 20

runs = collections.defaultdict(list)  # (mode, step, iot) -> [(wall, cpu, rss_kib, mon, osd, rgw)]
for line in open(os.path.join(work, "results.tsv")):
    f = line.rstrip("\n").split("\t")
    mode, step, iot = f[0], f[1], f[2]
    e, u, s, m = float(f[4]), float(f[5]), float(f[6]), int(f[7])
    runs[(mode, step, iot)].append((e, u + s, m, float(f[8]), float(f[9]), float(f[10]),
                                    float(f[11]) if len(f) > 11 else float("nan")))
upl = {}
for line in open(os.path.join(work, "uploads.tsv")):
    f = line.rstrip("\n").split("\t")
    upl[(f[0], f[1], f[2], f[3])] = (int(f[4]), int(f[5]), int(f[6]), int(f[7]))

def med(xs):
    return statistics.median(xs)

def wall(key):
    return med([r[0] for r in runs[key]])

def fmt_s(x):
    return "%.2f s" % x

def wall_cell(key):
    xs = [r[0] for r in runs[key]]
    if len(xs) == 1:
        return fmt_s(xs[0])
    return "%s (%.2f–%.2f)" % (fmt_s(med(xs)), min(xs), max(xs))

def mb(x):
    return "{:,.1f} MB".format(x / 1e6)

L = []
w = L.append
w("# S3 benchmark results (issue #3)" + (" — QUICK RUN (1/8 scale, not the real figures)" if quick else ""))
w("")
w("## How to run it")
w("")
w("```sh")
w("apt-get install -y ceph-mon ceph-osd radosgw ceph-common awscli time python3   # Debian 12")
w("bench/s3.sh                       # full run: 8 GiB workload, 3 repetitions, IO-threads sweep 2,4,8")
w("bench/s3.sh --quick --out /tmp/s3q.md   # smoke test: 1/8 scale, 1 repetition (~1.5 min)")
w("```")
w("")
w("- The script builds `build-s3bench/` (pilotlight and gen-workload) unless `PL` and `GEN` name")
w("  binaries, and runs private copies of them. It starts two private RGWs with")
w("  `tests/integration/rgw.sh start bench/work/s3/rgw` (as the tests have it) and")
w("  `RGW_BEAST_OPTIONS=tcp_nodelay=1 tests/integration/rgw.sh start bench/work/s3/rgw-nd`, and")
w("  stops both at exit (`rgw.sh stop`).")
w("- Options: `--reps N` (default 3, 1 with `--quick`), `--io-threads 2,4,8` (the S3 sweep of")
w("  `PILOTLIGHT_IO_THREADS`), `--sweep-reps N` (default 1), `--block-size B`, `--no-count`, `--no-nodelay`,")
w("  `--work DIR` (default `bench/work/s3`), `--out FILE` (default `bench/S3-RESULTS.md`), `--report-only`")
w("  (rewrite the report from the figures of the last run in the work folder).")
w("- Each repetition is one chain per store: `init`, full backup of the base image, incremental")
w("  of the changed image with `--changed-extents`, restore of the incremental to a new sparse")
w("  file, compared with the changed image by `gen-workload cmp` (byte for byte over the union of")
w("  allocated extents; a mismatch stops the benchmark). Then the repository is deleted (on RGW")
w("  followed by `radosgw-admin gc process --include-all`, so the memstore OSD frees it).")
w("  Repetitions are the outer loop and local / S3 alternate, so noise hits both.")
w("- Every timed step runs under `/usr/bin/time` after `sync; cat IMAGE >/dev/null` (for local")
w("  restores: `cat` of every repository file). RGW's memstore holds the S3 objects in RAM.")
w("  `PILOTLIGHT_CACHE_DIR` is a fresh folder per chain, so the S3 incremental and restore use")
w("  the index cache written by the chain's own full backup, as on a real backup host.")
w("- The timed runs go straight to RGW. Requests are counted in a separate, untimed chain through")
w("  `tests/integration/faultproxy.py` with no rules (pass-through; it logs every request). Its")
w("  times are shown below too: they are the proxy's cost.")
w("- RGW CPU is the utime + stime of `radosgw`, `ceph-osd` and `ceph-mon` from `/proc/PID/stat`")
w("  before and after each step.")
w("")
w("## Run")
w("")
w("- Command: `%s`" % meta["command"])
w("- Date: %s; elapsed %s s" % (meta["date"], meta["elapsed"]))
w("- Machine: %s CPUs, %s, %s RAM, kernel %s, work folder on %s" % (
    meta["nproc"], meta["cpu"], meta["mem"], meta["kernel"], meta["fstype"]))
w("- Load average (1/5/15 min): %s at the start, %s at the end" % (meta["load_start"], meta["load_end"]))
w("- pilotlight: %s; block size %s; `--threads` default (nproc)" % (meta["pl_version"], meta["block_size"]))
w("- S3 server: %s, RGW from `tests/integration/rgw.sh`: %s; on 127.0.0.1 (same cores as pilotlight)%s" % (
    meta["ceph_version"], meta["objectstore"],
    "; a second, identical cluster with beast `tcp_nodelay=1`" if meta.get("nodelay") == "1" else ""))
w("- Other versions: %s; %s" % (meta["curl_version"], meta["python_version"]))
w("- Cache state: warm (page cache loaded right before each timed step; RGW memstore in RAM)")
w("- Repetitions: %s per step for local and S3 (medians, range in brackets); IO-threads sweep %s with %s repetition(s) per other value" % (
    meta["reps"], meta["sweep"], meta["sweep_reps"]))
w("- Workload: `gen-workload --scale %s`: %s-byte sparse disk, %s allocated; change list of %s extents, %s" % (
    meta["scale"], "{:,}".format(int(meta["disk_bytes"])), mb(alloc), meta["list_extents"],
    mb(int(meta["changed_bytes"]))))
w("")

steps = ["full", "inc", "restore"]
names = {"full": "full backup", "inc": "incremental (list)", "restore": "restore", "init": "init"}
VAR = [("s3", "RGW as tests/integration/rgw.sh sets it up (beast defaults)"),
       ("s3nd", "RGW with the beast option tcp_nodelay=1")]
VAR = [v for v in VAR if runs[(v[0], "full", "4")]]
ncpu = int(meta["nproc"])

def ratio(mode, st, iot="4"):
    return wall((mode, st, iot)) / wall(("local", st, "4"))

w("## Local folder vs S3 (RGW on loopback), PILOTLIGHT_IO_THREADS=4 (default)")
w("")
w("\"S3\" is the RGW exactly as the tests configure it. \"S3 nodelay\" is a second RGW from the same")
w("script with `RGW_BEAST_OPTIONS=tcp_nodelay=1`: without that option RGW sends a small reply's")
w("headers and body as two TCP segments, and on a kept-alive connection the body waits for the")
w("client's delayed ACK (about 40 ms on Linux). The probe below (curl, 8 requests in a row on one")
w("connection, before the benchmark) shows it for a plain client. pilotlight sets TCP_QUICKACK")
w("when a reply's headers are in (docs/S3.md), so it does not pay that delay on either server:")
w("")
w("| server | GET of a 23-byte object, each request | ListObjectsV2, each request |")
w("| --- | --- | --- |")
for mode, label in [("s3", "S3"), ("s3nd", "S3 nodelay")]:
    if "probe_get_" + mode in meta:
        w("| %s | %s | %s |" % (label, ", ".join("%.1f ms" % (1000 * float(x)) for x in meta["probe_get_" + mode].split()),
                                ", ".join("%.1f ms" % (1000 * float(x)) for x in meta["probe_list_" + mode].split())))
w("")
w("| step | store | wall (median, range) | S3 / local | pilotlight CPU | Ceph CPU (radosgw + osd + mon) | peak RSS | uploaded | load avg at start |")
w("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for st in steps:
    for mode, label in [("local", "local folder")] + [(v[0], "S3" if v[0] == "s3" else "S3 nodelay") for v in VAR]:
        k = (mode, st, "4")
        if not runs[k]:
            continue
        cc = [r[3] + r[4] + r[5] for r in runs[k]]
        up = [v[0] for kk, v in upl.items() if kk[0] == mode and kk[1] == st and kk[2] == "4"]
        w("| %s | %s | %s | %s | %.2f s | %s | %d MiB | %s | %s |" % (
            names[st], label, wall_cell(k),
            "—" if mode == "local" else "**%.2f×**" % ratio(mode, st),
            med([r[1] for r in runs[k]]),
            "—" if mode == "local" else "%.2f s (%.2f + %.2f + %.2f)" % (
                med(cc), med([r[5] for r in runs[k]]), med([r[4] for r in runs[k]]), med([r[3] for r in runs[k]])),
            max(r[2] for r in runs[k]) // 1024, mb(med(up)) if up and st != "restore" else "—",
            " / ".join("%.1f" % r[6] for r in runs[k])))
w("")
stored = ["local %s" % mb(med([v[2] for k, v in upl.items() if k[0] == "local" and k[1] == "inc"]))]
for mode, _ in VAR:
    stored.append("%s %s" % (mode, mb(med([v[2] for k, v in upl.items() if k[0] == mode and k[1] == "inc" and k[2] == "4"]))))
w("Stored after the incremental: %s." % ", ".join(stored))
w("")

# request counts
cats = ["PUT", "PUT part", "POST initiate", "POST complete", "GET", "GET range", "HEAD", "LIST", "DELETE", "DELETE abort"]
counts = {}
errs = {}
for st in ["init"] + steps:
    p = os.path.join(work, "log", "count-%s.req" % st)
    if not os.path.exists(p):
        continue
    c = collections.Counter()
    bad = collections.Counter()
    for line in open(p):
        f = line.split()
        if len(f) < 3:
            continue
        m, target = f[1], f[2]
        status = f[-1]
        if m == "PUT":
            cat = "PUT part" if "partNumber=" in target else "PUT"
        elif m == "POST":
            cat = "POST initiate" if "uploads" in target and "uploadId=" not in target else "POST complete"
        elif m == "GET":
            cat = "LIST" if "list-type=" in target else "GET range" if status == "206" else "GET"
        elif m == "DELETE":
            cat = "DELETE abort" if "uploadId=" in target else "DELETE"
        else:
            cat = m
        c[cat] += 1
        if not (status.isdigit() and 200 <= int(status) < 300):
            bad["%s %s" % (m, status)] += 1
    counts[st] = c
    errs[st] = bad

if counts:
    w("## S3 requests per step (untimed run through faultproxy.py)")
    w("")
    w("| step | " + " | ".join(cats) + " | total | non-2xx answers | bytes uploaded (new objects) | PUTs per 8 MiB uploaded | requests per GiB uploaded |")
    w("| --- | " + " | ".join("---" for _ in cats) + " | --- | --- | --- | --- | --- |")
    tot_put = tot_req = tot_bytes = 0
    for st in ["init"] + steps:
        if st not in counts:
            continue
        c = counts[st]
        n = sum(c.values())
        puts = c["PUT"] + c["PUT part"]
        b, objs = upl.get(("count", st, "4", "1"), (0, 0, 0, 0))[:2]
        if st in ("full", "inc"):
            tot_put += puts
            tot_req += n
            tot_bytes += b
        per8 = "%.3f" % (puts / (b / (8 * MiB))) if b and st != "init" else "—"
        pergib = "%.1f" % (n / (b / GiB)) if b and st != "init" else "—"
        bad = ", ".join("%s ×%d" % kv for kv in sorted(errs[st].items())) or "none"
        w("| %s | %s | %d | %s | %s (%d objects) | %s | %s |" % (
            names[st], " | ".join(str(c[k]) for k in cats), n, bad, mb(b), objs, per8, pergib))
    if tot_bytes:
        w("| **full + incremental** | " + " | ".join(
            str(counts["full"][k] + counts["inc"][k]) for k in cats) + " | %d | | %s | %.3f | %.1f |" % (
            tot_req, mb(tot_bytes), tot_put / (tot_bytes / (8 * MiB)), tot_req / (tot_bytes / GiB)))
    rc = counts.get("restore")
    if rc:
        w("")
        w("The restore uploads nothing: its %d requests read %s of allocated disk data, %.1f requests per GiB restored." % (
            sum(rc.values()), mb(alloc), sum(rc.values()) / (alloc / GiB)))
    w("")
    w("Bytes uploaded are the sizes of the objects that are new (or changed) under the prefix after")
    w("the step, from a listing; a multipart object counts once with its whole size. \"GET range\" is a")
    w("GET answered 206 (a ranged read). Proxy's cost: times of the counting run (one run, through the Python proxy):")
    cells = []
    pr = []
    for st in steps:
        k = ("count", st, "4")
        if runs[k] and runs[("s3", st, "4")]:
            pr.append(wall(k) / wall(("s3", st, "4")))
            cells.append("%s %s (%.2f× the direct median)" % (names[st], fmt_s(wall(k)), pr[-1]))
    w("; ".join(cells) + ".")
    if pr:
        w("The proxy (Python, one upstream connection per request, whole bodies buffered) %s in this" % (
            "added a measurable cost (up to %.2f×)" % max(pr) if max(pr) > 1.1 else
            "added no cost beyond the noise (at most %.2f×)" % max(pr)))
        w("run; either way the timed figures above come from the direct runs. The request counts do")
        w("not depend on the proxy, but the number of ranged GETs in a restore can vary a little from")
        w("run to run (between our quick runs it differed by a few), so read it as approximate.")
    w("")

# targets
w("## Targets")
w("")
w("| target | server | result | figures | margin |")
w("| --- | --- | --- | --- | --- |")
missed = {}
for mode, label in VAR:
    for st in steps:
        r = ratio(mode, st)
        lt, stt = wall(("local", st, "4")), wall((mode, st, "4"))
        if r <= 1.5:
            res = "**met**"
            margin = "%.2f× (limit 1.5×): %.2f s to spare" % (r, 1.5 * lt - stt)
        else:
            res = "**MISSED**"
            missed.setdefault(mode, []).append(st)
            margin = "%.2f× (limit 1.5×): S3 would need %.2f s less (%.0f%% faster)" % (
                r, stt - 1.5 * lt, 100 * (stt - 1.5 * lt) / stt)
        w("| %s on S3 within 1.5× of local | %s | %s | S3 %s, local %s | %s |" % (
            names[st], "S3" if mode == "s3" else "S3 nodelay", res, fmt_s(stt), fmt_s(lt), margin))
if counts:
    for st in ("full", "inc"):
        c = counts[st]
        b = upl.get(("count", st, "4", "1"), (0,))[0]
        if not b:
            continue
        puts = c["PUT"] + c["PUT part"]
        per8 = puts / (b / (8 * MiB))
        res = "**met**" if per8 <= 1 else "**MISSED**"
        margin = "%.3f per 8 MiB (limit 1)" % per8
        if per8 > 1:
            margin += "; at most %d PUTs allowed for %s" % (int(b / (8 * MiB)), mb(b))
        w("| %s: at most one PUT per 8 MiB uploaded | both | %s | %d PUTs (%d whole, %d parts), %s uploaded | %s |" % (
            names[st], res, puts, c["PUT"], c["PUT part"], mb(b), margin))
w("")

# why: the CPU the Ceph daemons burn on the same cores during each S3 step
w("## Why: where the S3 time goes")
w("")
w("RGW, the OSD and the mon run on the same %d cores as pilotlight (and as other users of this" % ncpu)
w("shared machine: see the load average). \"CPU floor\" is the CPU time of pilotlight plus that of")
w("the Ceph daemons, divided by %d cores: no schedule could finish the step faster on this" % ncpu)
w("machine. The local floor is pilotlight's CPU alone divided by %d. \"Ceph share of the gap\" is" % ncpu)
w("Ceph's CPU time spread over the %d cores, as a share of the S3 − local difference: at 100%% or" % ncpu)
w("more, the Ceph daemons' CPU alone accounts for the whole difference; well below 100%, most of")
w("the difference is waiting, not computing.")
w("")
w("| step | server | local wall | local CPU floor | S3 wall | pilotlight CPU | Ceph CPU | S3 CPU floor | S3 − local | Ceph share of the gap |")
w("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for st in steps:
    for mode, _ in VAR:
        lk, sk = ("local", st, "4"), (mode, st, "4")
        lc = med([r[1] for r in runs[lk]])
        sc = med([r[1] for r in runs[sk]])
        cc = med([r[3] + r[4] + r[5] for r in runs[sk]])
        gap = wall(sk) - wall(lk)
        w("| %s | %s | %s | %.2f s | %s | %.2f s | %.2f s | %.2f s | %+.2f s | %s |" % (
            names[st], "S3" if mode == "s3" else "S3 nodelay", fmt_s(wall(lk)), lc / ncpu,
            fmt_s(wall(sk)), sc, cc, (sc + cc) / ncpu, gap,
            "%.0f%%" % (100 * cc / ncpu / gap) if gap > 0 else "—"))
w("")

# sweep
sw = sorted({k[2] for k in runs if k[0] in ("s3", "s3nd")}, key=int)
if len(sw) > 1:
    w("## PILOTLIGHT_IO_THREADS sweep (S3 only)")
    w("")
    w("| server | IO threads | runs | full | incremental (list) | restore | S3 / local (full, inc, restore) | Ceph CPU full / inc / restore |")
    w("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for mode, _ in VAR:
        for iot in sw:
            ks = [(mode, st, iot) for st in steps]
            if not all(runs[k] for k in ks):
                continue
            rat = ", ".join("%.2f×" % ratio(mode, k[1], iot) for k in ks)
            rg = " / ".join("%.2f s" % med([r[3] + r[4] + r[5] for r in runs[k]]) for k in ks)
            w("| %s | %s%s | %d | %s | %s | %s | %s | %s |" % (
                "S3" if mode == "s3" else "S3 nodelay", iot, " (default)" if iot == "4" else "",
                len(runs[ks[0]]), wall_cell(ks[0]), wall_cell(ks[1]), wall_cell(ks[2]), rat, rg))
    w("")
    w("The default rows use the main runs; the others use `--sweep-reps` runs each, so compare")
    w("them with the noise of the main runs' ranges in mind.")
    w("")

with open(out, "w") as f:
    f.write("\n".join(L) + "\n")
EOS
}

if [[ $REPORT_ONLY == 1 ]]; then
  [[ -s $WORK/meta.txt && -s $WORK/results.tsv ]] || die "no finished run in $WORK"
  grep -q '^elapsed=' "$WORK/meta.txt" || die "the run in $WORK did not finish"
  WORK=$(cd "$WORK" && pwd)
  write_report
  echo "== wrote $OUT"
  exit 0
fi
for t in /usr/bin/time python3 aws ceph radosgw radosgw-admin; do
  command -v "$t" >/dev/null || die "$t is missing"
done

# ---- binaries: private copies, so a rebuild during the run cannot mix two versions ----
BUILD=$TOP/build-s3bench
if [[ -z ${PL:-} || -z ${GEN:-} ]]; then
  if [[ ! -f $BUILD/build.ninja ]]; then
    meson setup "$BUILD" "$TOP" >/dev/null || die "meson setup $BUILD failed"
  fi
  # Others edit the tree at the same time: a failed build is retried once, then the last good
  # binaries are used (their build time is in the report).
  if ! ninja -j2 -C "$BUILD" pilotlight bench/gen-workload >"$BUILD/s3bench-ninja.log" 2>&1; then
    echo "s3.sh: ninja -C $BUILD failed (see $BUILD/s3bench-ninja.log); retrying in 30 s" >&2
    sleep 30
    ninja -j2 -C "$BUILD" pilotlight bench/gen-workload >"$BUILD/s3bench-ninja.log" 2>&1 ||
      echo "s3.sh: the build failed again: using the binaries already in $BUILD" >&2
  fi
fi
PL_SRC=${PL:-$BUILD/pilotlight}
GEN_SRC=${GEN:-$BUILD/bench/gen-workload}
[[ -x $PL_SRC && -x $GEN_SRC ]] || die "no pilotlight or gen-workload binary"
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
mkdir -p "$WORK/bin"
cp -f "$PL_SRC" "$WORK/bin/pilotlight.run"
cp -f "$GEN_SRC" "$WORK/bin/gen-workload.run"
PL=$WORK/bin/pilotlight.run
GEN=$WORK/bin/gen-workload.run

cd "$WORK"
rm -rf -- log repo-* cache out.raw results.tsv uploads.tsv meta.txt proxy.* rgw rgw-nd
rm -f -- base.raw changed.raw changes.txt
mkdir -p log
RES=$WORK/results.tsv
UPL=$WORK/uploads.tsv
: >"$RES"
: >"$UPL"
: >meta.txt
START=$(date +%s)
meta() { printf '%s=%s\n' "$1" "$2" >>"$WORK/meta.txt"; }

# ---- the private RGWs and the proxy, stopped at exit ----
# Two clusters from tests/integration/rgw.sh: "s3" exactly as the tests set it up, and "s3nd"
# with the beast frontend option tcp_nodelay=1 (RGW_BEAST_OPTIONS). Without it RGW writes a
# small reply's headers and body as two segments, and on a kept-alive connection the body waits
# for the client's delayed ACK (~40 ms on Linux): every LIST, small GET and error costs 40 ms.
RGWDIRS=("$WORK/rgw")
if [[ $NODELAY == 1 ]]; then RGWDIRS+=("$WORK/rgw-nd"); fi
PROXY_PID=
cleanup() {
  if [[ -n $PROXY_PID ]]; then
    kill "$PROXY_PID" 2>/dev/null || true
    wait "$PROXY_PID" 2>/dev/null || true
  fi
  local d
  for d in "${RGWDIRS[@]}"; do "$TOP/tests/integration/rgw.sh" stop "$d" || true; done
}
trap cleanup EXIT
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_PROFILE AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 PILOTLIGHT_IO_THREADS RGW_BEAST_OPTIONS || true
export PILOTLIGHT_CACHE_DIR=$WORK/cache
declare -A EPS DIRS
echo "== starting RGW in $WORK/rgw"
RGW_ENV=$("$TOP/tests/integration/rgw.sh" start "$WORK/rgw") || die "rgw.sh start failed"
eval "$RGW_ENV"
EPS[s3]=$PL_TEST_S3_ENDPOINT
DIRS[s3]=$WORK/rgw
if [[ $NODELAY == 1 ]]; then
  echo "== starting RGW (beast tcp_nodelay=1) in $WORK/rgw-nd"
  RGW_ENV=$(RGW_BEAST_OPTIONS=tcp_nodelay=1 "$TOP/tests/integration/rgw.sh" start "$WORK/rgw-nd") ||
    die "rgw.sh start failed"
  grep -q '^rgw_frontends = .*tcp_nodelay=1' "$WORK/rgw-nd/ceph.conf" ||
    die "rgw.sh does not know RGW_BEAST_OPTIONS"
  EPS[s3nd]=$(eval "$RGW_ENV"; echo "$PL_TEST_S3_ENDPOINT")
  DIRS[s3nd]=$WORK/rgw-nd
fi
BUCKET=$PL_TEST_S3_BUCKET
CEPHCONF=$WORK/rgw/ceph.conf
RUNID=$(date +%s)
echo "   ${EPS[*]} bucket $BUCKET"
CUR=s3

# daemon_ticks: "mon osd rgw" CPU ticks (utime + stime) of the daemons rgw.sh started for the
# cluster $CUR (the default cluster during local steps).
CLK=$(getconf CLK_TCK)
daemon_ticks() {
  local pid comm t mon=0 osd=0 rgw=0
  for pid in $(cat "${DIRS[$CUR]}/pids"); do
    [[ -r /proc/$pid/stat ]] || continue
    comm=$(cat "/proc/$pid/comm")
    t=$(sed 's/^.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')
    case $comm in
    ceph-mon) mon=$((mon + t)) ;;
    ceph-osd) osd=$((osd + t)) ;;
    radosgw) rgw=$((rgw + t)) ;;
    esac
  done
  echo "$mon $osd $rgw"
}

s3() { aws --endpoint-url "${EPS[$CUR]}" "$@"; }

# s3_list PREFIX FILE: every object under PREFIX/ as "key size etag" lines.
s3_list() {
  s3 s3api list-objects-v2 --bucket "$BUCKET" --prefix "$1/" --output text \
    --query 'Contents[].[Key, Size, ETag]' | grep -v '^None$' >"$2" || true
}

# s3_drop PREFIX: delete the repository and have RGW free the tail objects now (memstore keeps
# everything in RAM; RGW's garbage collector would otherwise wait two hours).
s3_drop() {
  s3 s3 rm --quiet --recursive "s3://$BUCKET/$1/" >/dev/null
  radosgw-admin -c "${DIRS[$CUR]}/ceph.conf" gc process --include-all >/dev/null 2>&1 || true
}

# probe MODE: per-request latency of a small GET and of a ListObjectsV2 on one kept-alive
# connection (curl, 8 requests each; the first is in TCP's quick-ACK phase), into meta.txt.
probe() {
  CUR=$1
  local key=probe-$RUNID/small e3=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
  local ep=${EPS[$1]} i urls=() lurls=() auth
  printf 'pilotlight bench probe\n' >"$WORK/probe.txt"
  s3 s3 cp --quiet "$WORK/probe.txt" "s3://$BUCKET/$key" >/dev/null
  for ((i = 0; i < 8; i++)); do
    urls+=(-o /dev/null "$ep/$BUCKET/$key")
    lurls+=(-o /dev/null "$ep/$BUCKET?list-type=2&prefix=probe-$RUNID%2F")
  done
  auth=(--aws-sigv4 "aws:amz:$AWS_REGION:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY"
    -H "x-amz-content-sha256: $e3")
  meta "probe_get_$1" "$(curl -sf "${auth[@]}" -w '%{time_total} ' "${urls[@]}")"
  meta "probe_list_$1" "$(curl -sf "${auth[@]}" -w '%{time_total} ' "${lurls[@]}")"
  s3 s3 rm --quiet "s3://$BUCKET/$key" >/dev/null
  CUR=s3
}
for m in "${!EPS[@]}"; do probe "$m" || echo "s3.sh: latency probe of $m failed (not fatal)" >&2; done

# ---- the workload ----
echo "== generating the workload (scale $SCALE) into $WORK"
"$GEN" --scale "$SCALE" base base.raw | tee log/gen-base.txt
"$GEN" map base.raw >base.map
"$GEN" copy base.raw changed.raw
"$GEN" --scale "$SCALE" change changed.raw changes.txt | tee log/gen-change.txt
LIST=$WORK/changes.txt

meta command "$CMDLINE"
meta date "$(date -u '+%Y-%m-%d %H:%M UTC')"
meta quick "$QUICK"
meta scale "$SCALE"
meta reps "$REPS"
meta sweep "$SWEEP"
meta sweep_reps "$SWEEP_REPS"
meta block_size "${BS:-default}"
meta nproc "$(nproc)"
meta cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
meta mem "$(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
meta kernel "$(uname -r)"
meta fstype "$(findmnt -n -o FSTYPE --target "$WORK")"
meta load_start "$(cut -d' ' -f1-3 /proc/loadavg)"
meta ceph_version "$(ceph --version | sed 's/ (.*//')"
meta objectstore "$(sed -n 's/^osd_objectstore = //p' "$CEPHCONF") ($(sed -n 's/^memstore_device_bytes = //p' "$CEPHCONF") bytes), $(sed -n 's/^rgw_frontends = \(beast\) .*/\1/p' "$CEPHCONF") frontend, one OSD, size 1"
meta nodelay "$NODELAY"
meta curl_version "$(curl --version | head -n1 | cut -d' ' -f1-2)"
meta python_version "$(python3 --version)"
meta pl_version "$("$PL" --version 2>/dev/null | head -n1 || true) ($PL_SRC built $(date -u -r "$PL_SRC" '+%H:%M UTC'), sha256 $(sha256sum "$PL" | cut -c1-12); tree at git $(git -C "$TOP" rev-parse --short HEAD)$(git -C "$TOP" diff --quiet HEAD -- src 2>/dev/null || echo ', src modified'))"
meta disk_bytes "$(stat -c %s base.raw)"
meta alloc_bytes "$(awk '{s += $2} END {print s}' base.map)"
meta changed_bytes "$(awk '{s += $2} END {print s}' "$LIST")"
meta list_extents "$(wc -l <"$LIST")"

BS_ARGS=()
[[ -n $BS ]] && BS_ARGS=(--block-size "$BS")

# warm FILE...: flush dirty pages, then read the files so the page cache holds them.
warm() {
  sync
  cat "$@" >/dev/null
}

# timed MODE STEP IOT REP CMD...: one timed run (wall, CPU, peak RSS by /usr/bin/time) with the
# CPU ticks of the Ceph daemons before and after; figures go to results.tsv.
timed() {
  local mode=$1 step=$2 iot=$3 rep=$4
  shift 4
  local log=$WORK/log/$mode-$step-$iot-$rep.log b a e u s m load
  load=$(cut -d' ' -f1 /proc/loadavg)
  b=$(daemon_ticks)
  if ! /usr/bin/time -f '%e %U %S %M' -o "$WORK/time.out" "$@" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "$mode $step (io threads $iot, rep $rep) failed: $*"
  fi
  a=$(daemon_ticks)
  read -r e u s m < <(tail -n 1 "$WORK/time.out")
  local dt
  dt=$(awk -v b="$b" -v a="$a" -v c="$CLK" 'BEGIN {
    split(b, x, " "); split(a, y, " ");
    printf "%.2f\t%.2f\t%.2f", (y[1] - x[1]) / c, (y[2] - x[2]) / c, (y[3] - x[3]) / c }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$step" "$iot" "$rep" "$e" "$u" "$s" \
    "$m" "$dt" "$load" >>"$RES"
  printf '  %-6s %-8s io%-2s #%s  wall %6.2f s  cpu %6.2f s  rss %4d MiB  ceph cpu (mon osd rgw) %s\n' \
    "$mode" "$step" "$iot" "$rep" "$e" "$(awk -v u="$u" -v s="$s" 'BEGIN {print u + s}')" \
    $((m / 1024)) "$(echo "$dt" | tr '\t' ' ')"
}

# uploaded MODE STEP IOT REP BEFORE AFTER: bytes and objects new or changed between two listings.
uploaded() {
  python3 - "$@" >>"$UPL" <<'EOS'
import sys
mode, step, iot, rep, before, after = sys.argv[1:7]
def load(p):
    d = {}
    for line in open(p):
        f = line.split()
        if len(f) >= 3:
            d[f[0]] = (int(f[1]), f[2])
    return d
b, a = load(before), load(after)
new = [k for k in a if b.get(k) != a[k]]
print("\t".join([mode, step, iot, rep, str(sum(a[k][0] for k in new)), str(len(new)),
                 str(sum(v[0] for v in a.values())), str(len(a))]))
EOS
}

# chain MODE REP IOT: init, full backup of base.raw, incremental of changed.raw with the list,
# restore checked against changed.raw, then the repository is dropped. MODE is local, s3 (direct
# to RGW), s3nd (direct to the tcp_nodelay RGW) or count (through faultproxy.py to the s3 RGW,
# request log per step in log/count-STEP.req).
chain() {
  local mode=$1 rep=$2 iot=$3 loc prefix= step n0 n1
  local env_iot=()
  [[ $iot != 4 ]] && env_iot=(env "PILOTLIGHT_IO_THREADS=$iot")
  CUR=s3
  case $mode in
  local)
    loc=$WORK/repo-local-$rep
    rm -rf "$loc"
    ;;
  s3 | s3nd)
    CUR=$mode
    prefix=bench-$RUNID-io$iot-$rep
    loc=s3:${EPS[$mode]}/$BUCKET/$prefix
    ;;
  count)
    prefix=bench-$RUNID-count
    loc=s3:http://127.0.0.1:$PROXY_PORT/$BUCKET/$prefix
    ;;
  esac
  rm -rf "$PILOTLIGHT_CACHE_DIR"
  : >"$WORK/list.prev"
  for step in init full inc restore; do
    [[ $mode == count ]] && n0=$(wc -l <"$WORK/proxy.log")
    case $step in
    init)
      "${env_iot[@]}" "$PL" -r "$loc" init >"log/$mode-init-$iot-$rep.log" 2>&1 ||
        die "init of $loc failed: $(cat "log/$mode-init-$iot-$rep.log")"
      ;;
    full)
      warm base.raw
      timed "$mode" full "$iot" "$rep" "${env_iot[@]}" "$PL" -r "$loc" backup --json --disk bench \
        "${BS_ARGS[@]}" "$WORK/base.raw"
      ;;
    inc)
      warm changed.raw "$LIST"
      timed "$mode" inc "$iot" "$rep" "${env_iot[@]}" "$PL" -r "$loc" backup --json --disk bench \
        --changed-extents "$LIST" "$WORK/changed.raw"
      grep -q '"mode":"changed-extents"' "log/$mode-inc-$iot-$rep.log" ||
        die "the incremental did not use the list: $(cat "log/$mode-inc-$iot-$rep.log")"
      ;;
    restore)
      rm -f out.raw
      if [[ $mode == local ]]; then
        sync
        find "$loc" -type f -exec cat {} + >/dev/null
      fi
      timed "$mode" restore "$iot" "$rep" "${env_iot[@]}" "$PL" -r "$loc" restore bench@latest \
        "$WORK/out.raw"
      "$GEN" cmp changed.raw out.raw >/dev/null ||
        die "$mode restore (io threads $iot, rep $rep) differs from the image"
      rm -f out.raw
      ;;
    esac
    if [[ $mode == count ]]; then
      n1=$(wc -l <"$WORK/proxy.log")
      sed -n "$((n0 + 1)),${n1}p" "$WORK/proxy.log" >"log/count-$step.req"
    fi
    if [[ $mode == local ]]; then
      (cd "$loc" && find . -type f -printf '%P %s %T@\n') >"$WORK/list.now"
    else
      s3_list "$prefix" "$WORK/list.now"
    fi
    uploaded "$mode" "$step" "$iot" "$rep" "$WORK/list.prev" "$WORK/list.now"
    mv "$WORK/list.now" "$WORK/list.prev"
  done
  if [[ $mode == local ]]; then rm -rf "$loc"; else s3_drop "$prefix"; fi
  rm -rf "$PILOTLIGHT_CACHE_DIR"
}

# ---- the request-counting run (untimed figures; its times show the proxy's cost) ----
if [[ $COUNT == 1 ]]; then
  echo "== counting requests through faultproxy.py (pass-through)"
  : >"$WORK/proxy.log"
  python3 "$TOP/tests/integration/faultproxy.py" --upstream "${EPS[s3]}" --port-file "$WORK/proxy.port" \
    --log "$WORK/proxy.log" 2>"$WORK/proxy.err" &
  PROXY_PID=$!
  for ((i = 0; i < 100; i++)); do
    [[ -s $WORK/proxy.port ]] && break
    kill -0 "$PROXY_PID" 2>/dev/null || die "faultproxy died: $(cat "$WORK/proxy.err")"
    sleep 0.1
  done
  [[ -s $WORK/proxy.port ]] || die "faultproxy did not start"
  PROXY_PORT=$(cat "$WORK/proxy.port")
  chain count 1 4
  kill "$PROXY_PID"
  wait "$PROXY_PID" 2>/dev/null || true
  PROXY_PID=
fi

# ---- the timed runs: repetitions outermost, local and S3 alternating, so a busy moment on a
# shared machine hits both ----
echo "== timed runs: local folder vs S3 (io threads 4), $REPS repetition(s)"
for ((r = 1; r <= REPS; r++)); do
  chain local "$r" 4
  chain s3 "$r" 4
  if [[ $NODELAY == 1 ]]; then chain s3nd "$r" 4; fi
done

IFS=, read -r -a SW <<<"$SWEEP"
for iot in "${SW[@]}"; do
  [[ $iot == 4 ]] && continue
  echo "== S3 with PILOTLIGHT_IO_THREADS=$iot, $SWEEP_REPS repetition(s)"
  for ((r = 1; r <= SWEEP_REPS; r++)); do
    chain s3 "$r" "$iot"
    if [[ $NODELAY == 1 ]]; then chain s3nd "$r" "$iot"; fi
  done
done

meta load_end "$(cut -d' ' -f1-3 /proc/loadavg)"
meta elapsed "$(($(date +%s) - START))"
echo "== report"
write_report
echo "== wrote $OUT"
