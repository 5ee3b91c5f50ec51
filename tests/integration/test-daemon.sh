#!/usr/bin/env bash
# pilotlight run: a protected-side daemon with two disks on second-scale
# schedules, a replica, verify and prune, for a bounded time while a writer
# changes one disk: every snapshot restores byte-identical, the replica
# matches the disk after the writer stops, status --json and the metrics
# textfile (promtool) say so field by field. A failing disk raises exactly
# one alert (hook and webhook) however often it is retried, and one
# resolved alert when it heals. SIGHUP adds a disk and changes a schedule;
# a malformed file is refused at start and at reload; a hanging hook is
# killed; run --once runs each due job once.
source "$(dirname "$0")/lib.sh"
requires python3
requires promtool

repo=$(new_repo)
$PL -r "$repo" init >/dev/null
make_disk "$TMP/a.img" 8
make_disk "$TMP/b.img" 6

# A local webhook receiver: one line per POSTed body.
cat >"$TMP/hook.py" <<'EOF'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers['Content-Length']))
        with open(sys.argv[2], 'ab') as f:
            f.write(body + b'\n')
        self.send_response(200); self.end_headers()
    def log_message(self, *a): pass
s = http.server.HTTPServer(('127.0.0.1', 0), H)
open(sys.argv[1], 'w').write(str(s.server_port))
s.serve_forever()
EOF
python3 "$TMP/hook.py" "$TMP/port" "$TMP/webhook.log" &
hook_pid=$!
cleanup_add "kill $hook_pid"
for _ in $(seq 50); do [ -s "$TMP/port" ] && break; sleep 0.1; done
port=$(cat "$TMP/port")
mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

conf() { # conf EXTRA_SECTIONS: the protected side's config
  cat <<EOF
[repository]
location = $repo
password-file = $PILOTLIGHT_PASSWORD_FILE

[daemon]
host = protected-1
state-dir = $TMP/state
retry-initial = 1s
stop-timeout = 20s

[metrics]
textfile = $TMP/metrics/pilotlight.prom
listen = 127.0.0.1:$mport

[alerts]
command = cat >> $TMP/alerts.log
webhook = http://127.0.0.1:$port/alert
timeout = 5s

[disk a]
source = $TMP/a.img
schedule = every 2s
rpo = 10s
keep-last = 4

[disk b]
source = $TMP/b.img
schedule = every 3s

[disk c]
source = $TMP/c.img
schedule = every 2s

[replica a]
target = $TMP/a.replica
schedule = every 2s

[verify]
schedule = every 4s
read-data = 1/2

[prune]
schedule = every 5s
grace = 0s
$1
EOF
}
mkdir -p "$TMP/metrics"

# A malformed file: one line naming file, line and key; nothing starts.
conf "" | sed 's/^schedule = every 3s$/schedule = 3s/' >"$TMP/bad.conf"
expect_fail $PL run --config "$TMP/bad.conf"
grep -q "bad.conf:[0-9]*: \[disk b\] schedule: '3s' is not a schedule" "$TMP/err" ||
  fail "malformed config: $(cat "$TMP/err")"
[ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "more than one line: $(cat "$TMP/err")"
[ ! -e "$TMP/state" ] || fail "a bad config started something"

conf "" >"$TMP/pl.conf"
$PL run --config "$TMP/pl.conf" 2>"$TMP/daemon.log" &
daemon=$!
cleanup_add "kill $daemon 2>/dev/null"

# The writer changes disk a every second for 8 s; disk c is missing (its
# backups fail and are retried) until it appears at 6 s.
for i in $(seq 8); do
  scribble "$TMP/a.img" $((i * 300000)) 70000 >/dev/null
  [ "$i" -eq 6 ] && make_disk "$TMP/c.img" 2
  sleep 1
done
# The endpoint serves the same exposition while the daemon runs.
curl -sf "http://127.0.0.1:$mport/metrics" >"$TMP/scrape.prom" || fail "no metrics endpoint on $mport"
promtool check metrics <"$TMP/scrape.prom" || fail "promtool rejects the endpoint's metrics"
grep -q '^pilotlight_job_runs_total{host="protected-1",disk="a",job="backup a"} [1-9]' "$TMP/scrape.prom" ||
  fail "endpoint: no runs of backup a: $(grep runs_total "$TMP/scrape.prom")"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$mport/other")" = 404 ] || fail "endpoint: not 404"
# The writer stops; SIGHUP adds disk d and changes b's schedule.
make_disk "$TMP/d.img" 2
conf "[disk d]
source = $TMP/d.img
schedule = every 2s" | sed 's/^schedule = every 3s$/schedule = every 2s/' >"$TMP/pl.conf"
kill -HUP $daemon
sleep 2
# A malformed reload is refused; the running config stays.
cp "$TMP/pl.conf" "$TMP/good.conf"
echo "oops" >>"$TMP/pl.conf"
kill -HUP $daemon
sleep 5
cp "$TMP/good.conf" "$TMP/pl.conf"
kill -TERM $daemon
rc=0
wait $daemon || rc=$?
[ "$rc" -eq 0 ] || fail "daemon exit status $rc: $(tail -5 "$TMP/daemon.log")"

log=$TMP/daemon.log
grep -q 'event=reload result=ok' "$log" || grep -q ' reload result=ok' "$log" || fail "no reload: $(grep reload "$log")"
grep -q 'reload result=failed.*kept the running config' "$log" ||
  fail "bad reload not refused: $(grep reload "$log")"
grep -q 'stopping signal=SIGTERM' "$log" || fail "no clean stop"
grep -q 'end job="backup d" result=ok' "$log" || fail "disk d added by SIGHUP never backed up"
! grep -q 'end job="backup [ab]" result=failed' "$log" || fail "a backup failed: $(grep failed "$log")"

# status --json, from the repository alone.
$PL -r "$repo" status --json >"$TMP/status.json" || fail "status breached right after the run: $(cat "$TMP/status.json")"
python3 - "$TMP/status.json" "$TMP/a.replica" <<'EOF' || fail "status --json"
import json, sys
st = json.load(open(sys.argv[1]))
disks = {d["disk"]: d for d in st["disks"]}
assert set(disks) == {"a", "b", "c", "d"}, disks.keys()
a = disks["a"]
assert a["state"] == "protected", a
assert a["rpo"] == 10 and a["host"] == "protected-1" and a["every"] == 2, a
assert 0 <= a["age"] <= 10 and a["mode"] == "hash-compare" and a["failures"] == 0, a
assert disks["c"]["state"] == "protected" and disks["c"]["error"] == "", disks["c"]
rep = st["replicas"][0]
assert rep["replica"] == "a" and rep["disk"] == "a" and rep["result"] == "ok", rep
# Within a cycle or so of the newest snapshot (the replica syncs on its own
# schedule); its bytes are checked against the disk below.
assert rep["snapshot"] and 0 <= rep["behind_latest"] <= 3 * rep["every"], (rep, a)
assert st["breached"] is False
jobs = {j["job"]: j for j in st["jobs"]}
assert jobs["verify"]["result"] == "ok" and jobs["prune"]["result"] == "ok", jobs
EOF

# Every snapshot of b (never written) restores to b; a's latest (after the
# writer stopped) restores to a, and so does the replica.
nb=$($PL -r "$repo" snapshots --disk b --json | grep -c '"id"')
[ "$nb" -ge 4 ] || fail "only $nb snapshots of b"
for id in $($PL -r "$repo" snapshots --disk b --json | grep -o '"id":"[0-9a-f]*"' | cut -d'"' -f4); do
  $PL -r "$repo" restore "b@$id" "$TMP/r.img" >/dev/null
  cmp "$TMP/r.img" "$TMP/b.img" || fail "snapshot $id of b differs"
  rm -f "$TMP/r.img"
done
$PL -r "$repo" restore a@latest "$TMP/ra.img" >/dev/null
cmp "$TMP/ra.img" "$TMP/a.img" || fail "the latest snapshot of a differs from a"
cmp "$TMP/a.replica" "$TMP/a.img" || fail "the replica of a does not match a"
# prune applied keep-last 4 to a: fewer snapshots stay than were made.
na=$($PL -r "$repo" snapshots --disk a --json | grep -c '"id"')
made=$(grep -c 'end job="backup a" result=ok' "$log")
grep -q 'end job=prune result=ok' "$log" || fail "prune never succeeded: $(grep 'job=prune' "$log")"
[ "$na" -lt "$made" ] && [ "$na" -ge 4 ] || fail "$na snapshots of a kept of $made made, keep-last 4"
$PL -r "$repo" verify --read-data >/dev/null || fail "verify after the daemon"

# Exactly one firing and one resolved alert for disk c, by hook and webhook.
for f in "$TMP/alerts.log" "$TMP/webhook.log"; do
  [ "$(grep -c '"state":"firing","kind":"job-failure","job":"backup c"' "$f")" -eq 1 ] ||
    fail "$f: not one firing alert for backup c: $(cat "$f")"
  [ "$(grep -c '"state":"resolved","kind":"job-failure","job":"backup c"' "$f")" -eq 1 ] ||
    fail "$f: not one resolved alert for backup c: $(cat "$f")"
done
nfail=$(grep -c 'end job="backup c" result=failed' "$log")
[ "$nfail" -ge 2 ] || fail "backup c failed only $nfail times: the alert count proves nothing"

# The metrics textfile: valid exposition, and the values the run had.
promtool check metrics <"$TMP/metrics/pilotlight.prom" || fail "promtool rejects the metrics"
m=$TMP/metrics/pilotlight.prom
grep -q '^pilotlight_rpo_objective_seconds{host="protected-1",disk="a"} 10$' "$m" || fail "rpo objective metric"
grep -Eq '^pilotlight_job_failures_total\{host="protected-1",disk="c",job="backup c"\} '"$nfail"'$' "$m" ||
  fail "failures metric: $(grep failures_total "$m")"
grep -Eq '^pilotlight_replica_lag_seconds\{host="protected-1",disk="a",job="replica a"\} [0-9]+$' "$m" ||
  fail "replica lag metric"
grep -Eq '^pilotlight_bytes_read_total\{host="protected-1",disk="b"\} [1-9][0-9]*$' "$m" || fail "bytes read metric"
! ls "$TMP/metrics" | grep -q tmp || fail "a temporary metrics file was left"

# With the daemon stopped the newest snapshot of a ages past its 10 s
# objective: status says lagging and exits 3.
latest=$(python3 -c 'import json,sys; print([d for d in json.load(open(sys.argv[1]))["disks"] if d["disk"]=="a"][0]["latest_time"])' "$TMP/status.json")
wait_s=$((latest + 11 - $(date +%s)))
[ "$wait_s" -le 0 ] || sleep "$wait_s"
rc=0
$PL -r "$repo" status >"$TMP/status.txt" || rc=$?
[ "$rc" -eq 3 ] || fail "status exit $rc with a breached objective: $(cat "$TMP/status.txt")"
grep -Eq '^a +lagging ' "$TMP/status.txt" || fail "disk a not lagging: $(cat "$TMP/status.txt")"

# run --once: each due job once; a hook that hangs is killed after its
# timeout; the failure makes the exit status 1.
cat >"$TMP/once.conf" <<EOF
[repository]
location = $repo
[daemon]
state-dir = $TMP/state-once
[alerts]
command = sleep 60
timeout = 2s
[disk e]
source = $TMP/missing.img
schedule = every 1h
[disk b]
source = $TMP/b.img
schedule = every 1h
EOF
start=$(date +%s)
rc=0
$PL run --once --config "$TMP/once.conf" 2>"$TMP/once.log" || rc=$?
took=$(($(date +%s) - start))
[ "$rc" -eq 1 ] || fail "run --once with a failing job: exit $rc"
grep -q "alert hook 'sleep 60' ran longer than 2s and was killed" "$TMP/once.log" || fail "hung hook not killed: $(cat "$TMP/once.log")"
[ "$took" -lt 30 ] || fail "run --once took ${took}s"
[ "$(grep -c 'start job="backup b"' "$TMP/once.log")" -eq 1 ] || fail "backup b did not run exactly once"
[ "$(grep -c 'start job="backup e"' "$TMP/once.log")" -eq 1 ] || fail "backup e retried within --once"
# Nothing is due any more: a second --once runs nothing.
$PL run --once --config "$TMP/once.conf" 2>"$TMP/once2.log" || true
! grep -q 'start job=' "$TMP/once2.log" || fail "run --once ran jobs that were not due"

# systemd's notify protocol (Type=notify, WatchdogSec): READY=1, watchdog
# pings at least every half period, STOPPING=1 on SIGTERM, on a datagram
# socket as systemd passes it.
python3 - "$TMP/notify.sock" "$TMP/notify.log" <<'EOF' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "ab", buffering=0) as f:
    while True:
        f.write(s.recv(4096).replace(b"\n", b" ") + b"\n")
EOF
notify_pid=$!
cleanup_add "kill $notify_pid"
for _ in $(seq 50); do [ -S "$TMP/notify.sock" ] && break; sleep 0.1; done
printf '[repository]\nlocation = %s\n[daemon]\nstate-dir = %s\n' "$repo" "$TMP/state-notify" >"$TMP/notify.conf"
NOTIFY_SOCKET=$TMP/notify.sock WATCHDOG_USEC=1000000 $PL run --config "$TMP/notify.conf" 2>"$TMP/notify-daemon.log" &
nd=$!
sleep 3
kill -TERM $nd
wait $nd || fail "notify daemon exit status $?"
sleep 0.5
grep -q '^READY=1' "$TMP/notify.log" || fail "no READY=1: $(cat "$TMP/notify.log")"
[ "$(grep -c '^WATCHDOG=1' "$TMP/notify.log")" -ge 4 ] || fail "too few watchdog pings in 3 s: $(cat "$TMP/notify.log")"
grep -q '^STOPPING=1' "$TMP/notify.log" || fail "no STOPPING=1: $(cat "$TMP/notify.log")"

# The example files in contrib/ are valid.
for f in "$top/contrib/protected.conf" "$top/contrib/recovery.conf"; do
  $PL run --check --config "$f" >/dev/null || fail "$f does not check"
done
echo "daemon: $nb snapshots of b and $na of a restored or kept; alerts once per incident"
