#!/bin/bash
# bench/rpo.sh: the recovery point objective benchmark of issue 12. A
# protected-side daemon backs up the benchmark disk on a CYCLE-second
# schedule into a private Ceph RGW while a writer applies the workload's
# change pattern (gen-workload change) once per cycle; a recovery-side
# daemon keeps a replica of it on the same schedule. After MINUTES the
# script reports the achieved RPO: the worst age of the newest restorable
# snapshot (just before each next commit lands) and of the replica's
# snapshot, and the CPU used per cycle. The replica is byte-compared with
# the disk at the end (the writer stops first). Writes bench/RPO-RESULTS.md.
set -euo pipefail
export PILOTLIGHT_PASSWORD=${PILOTLIGHT_PASSWORD:-bench}
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(dirname "$HERE")
CMDLINE="bench/rpo.sh${*:+ $*}"
MINUTES=10 CYCLE=60 SCALE=0.125 WORK=$HERE/work/rpo OUT=$HERE/RPO-RESULTS.md
while [ $# -gt 0 ]; do
  case $1 in
  --minutes) MINUTES=$2; shift 2 ;;
  --cycle) CYCLE=$2; shift 2 ;;
  --scale) SCALE=$2; shift 2 ;;
  --work) WORK=$2; shift 2 ;;
  --out) OUT=$2; shift 2 ;;
  -h | --help)
    echo "usage: bench/rpo.sh [--minutes M (10)] [--cycle SECONDS (60)] [--scale X (0.125)] [--work DIR] [--out FILE]"
    exit 0 ;;
  *) echo "bench/rpo.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
PL=${PL:-$TOP/build/pilotlight}
GEN=${GEN:-$TOP/build/bench/gen-workload}
[ -x "$PL" ] && [ -x "$GEN" ] || { echo "build first: meson setup build && ninja -C build" >&2; exit 1; }

rm -rf "$WORK"
mkdir -p "$WORK"
bash "$TOP/tests/integration/rgw.sh" start "$WORK/rgw" >"$WORK/rgw.env"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  bash "$TOP/tests/integration/rgw.sh" stop "$WORK/rgw" >/dev/null 2>&1 || true
}
trap cleanup EXIT
eval "$(cat "$WORK/rgw.env")"
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION
repo="s3:$PL_TEST_S3_ENDPOINT/$PL_TEST_S3_BUCKET/rpo"
"$GEN" --scale "$SCALE" base "$WORK/disk.img"
"$PL" -r "$repo" init >/dev/null

for side in protected recovery; do
  {
    echo "[repository]"
    echo "location = $repo"
    echo "[daemon]"
    echo "host = $side"
    echo "state-dir = $WORK/state-$side"
    echo "retry-initial = 5s"
    if [ $side = protected ]; then
      printf '[disk bench]\nsource = %s\nschedule = every %ss\nrpo = %ss\n' "$WORK/disk.img" "$CYCLE" $((CYCLE * 3 / 2))
    else
      printf '[replica bench]\ntarget = %s\nschedule = every %ss\nrpo = %ss\n' "$WORK/replica.img" "$CYCLE" $((CYCLE * 2))
    fi
  } >"$WORK/$side.conf"
done

# The initial sync first: the objective is about the steady state.
"$PL" backup --disk bench "$WORK/disk.img" -r "$repo" --json >"$WORK/initial.json"
start=$(date +%s)
"$PL" run --config "$WORK/protected.conf" 2>"$WORK/protected.log" &
prot=$!
pids+=($prot)
"$PL" run --config "$WORK/recovery.conf" 2>"$WORK/recovery.log" &
rec=$!
pids+=($rec)
end=$((start + MINUTES * 60))
n=0
while [ "$(date +%s)" -lt "$end" ]; do
  "$GEN" --scale "$SCALE" --seed $((n + 7)) change "$WORK/disk.img" "$WORK/changes.$n" >/dev/null
  n=$((n + 1))
  sleep "$CYCLE"
done
# The writer has stopped; let one more cycle reach the replica.
sleep $((CYCLE * 2 + 10))
cpu() { awk '{print $14 + $15 + $16 + $17}' "/proc/$1/stat"; }
tck=$(getconf CLK_TCK)
cpu_prot=$(cpu $prot) cpu_rec=$(cpu $rec)
kill -TERM $prot $rec
wait $prot $rec || true
pids=()
cmp "$WORK/replica.img" "$WORK/disk.img" && replica_ok=yes || replica_ok=NO
"$PL" -r "$repo" snapshots --disk bench --json >"$WORK/snapshots.json"

python3 - "$WORK" "$start" "$end" "$CYCLE" "$tck" "$cpu_prot" "$cpu_rec" "$replica_ok" "$n" \
  "$CMDLINE" "$SCALE" "$MINUTES" >"$OUT" <<'EOF'
import datetime, json, re, statistics, sys
work, start, end, cycle, tck, cpu_p, cpu_r, rep_ok, writes, cmd, scale, minutes = sys.argv[1:]
start, end, cycle, tck = int(start), int(end), int(cycle), int(tck)
snaps = {s["id"]: s["time_unix"] if "time_unix" in s else s["time"] for s in json.load(open(work + "/snapshots.json"))}
def ts(line):
    t = line.split()[0]
    return datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()
def ends(path, job):
    out = []
    for line in open(path):
        if f'end job="{job}" result=ok' in line:
            m = re.search(r"snapshot=([0-9a-f]+)", line)
            if m:
                out.append((ts(line), m.group(1)))
    return out
commits = ends(work + "/protected.log", "backup bench")
syncs = ends(work + "/recovery.log", "replica bench")
def snap_time(i):
    t = snaps.get(i)
    if isinstance(t, str):
        t = datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()
    return t
# The newest restorable snapshot's age just before each next commit lands.
ages = [commits[k + 1][0] - snap_time(commits[k][1]) for k in range(len(commits) - 1)
        if snap_time(commits[k][1]) and commits[k + 1][0] <= end]
rages = [syncs[k + 1][0] - snap_time(syncs[k][1]) for k in range(len(syncs) - 1)
         if snap_time(syncs[k][1]) and syncs[k + 1][0] <= end]
# Replica behind the newest snapshot at each sync: in cycles.
behind = []
for t, sid in syncs:
    newest = max((c for c in commits if c[0] <= t), default=None)
    if newest and snap_time(sid) and t <= end:
        behind.append(snap_time(newest[1]) - snap_time(sid))
cycles = max(len(commits), 1)
print("# RPO benchmark (bench/rpo.sh)\n")
print(f"Command: `{cmd}`, run {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC on this machine "
      f"(2 cores, shared). Workload: gen-workload at scale {scale} (a {8*float(scale):.0f} GiB "
      f"disk), its change pattern applied {writes} times, once per {cycle} s cycle, for {minutes} "
      "minutes; repository on a private Ceph RGW on loopback; the protected daemon backs up "
      f"every {cycle} s by hash-compare (a raw file has no CBT), the recovery daemon syncs a "
      f"replica every {cycle} s.\n")
def row(name, xs, target):
    if not xs:
        return f"| {name} | - | - | - | {target} |"
    return f"| {name} | {statistics.median(xs):.1f} s | {max(xs):.1f} s | {len(xs)} | {target} |"
print("| measure | median | worst | samples | target |\n| --- | --- | --- | --- | --- |")
print(row("age of the newest restorable snapshot, just before the next lands", ages, f"< {cycle*3//2} s"))
print(row("age of the replica's snapshot, just before its next sync", rages, "-"))
print(row("replica behind the newest snapshot at each sync", behind, f"<= {cycle} s (one cycle)"))
print()
worst = max(ages) if ages else float("nan")
print(f"Snapshots committed by the daemon: {len(commits)}; replica syncs: {len(syncs)}; "
      f"replica byte-identical to the disk after the writer stopped: {rep_ok}.\n")
print(f"CPU (user + system, the daemon and its jobs): protected {int(cpu_p)/tck:.1f} s in all, "
      f"{int(cpu_p)/tck/cycles:.2f} s per cycle; recovery {int(cpu_r)/tck:.1f} s, "
      f"{int(cpu_r)/tck/max(len(syncs),1):.2f} s per sync.\n")
print(f"Verdict: worst snapshot age {worst:.1f} s against the {cycle*3//2} s target: "
      + ("met." if ages and worst < cycle * 3 / 2 else "MISSED."))
if behind:
    print(f"Replica worst {max(behind):.1f} s behind the newest snapshot: "
          + ("within one cycle." if max(behind) <= cycle else "MORE than one cycle."))
EOF
cat "$OUT"
