#!/usr/bin/env bash
# The daemon through a repository outage and a stop. On S3 the repository
# is reached through faultproxy.py in front of Ceph RGW: first it refuses
# pack and index writes (backups fail, the status objects still land, and
# status read directly from RGW says failing), then it is down altogether,
# then back. On a folder the outage is the folder moved away. Jobs fail and
# recover by themselves; one alert reaches the hook and the webhook for the
# whole incident, and one resolved alert. Then SIGTERM during a throttled
# backup: the daemon stops within its stop-timeout, no snapshot is broken,
# and the next start finishes the backup, which restores byte-identical.
source "$(dirname "$0")/lib.sh"
requires python3
requires curl

export PILOTLIGHT_S3_RETRIES=1 PILOTLIGHT_S3_BACKOFF_MS=50 PILOTLIGHT_S3_TIMEOUT=5
direct=$(new_repo)
proxy_pid=
start_proxy() { # RULE...: (re)start the proxy on its port with these rules
  local port_arg=()
  [ -s "$TMP/proxy.port" ] && port_arg=(--port "$(cat "$TMP/proxy.port")")
  rm -f "$TMP/proxy.port.new"
  python3 "$top/tests/integration/faultproxy.py" --upstream "$PL_TEST_S3_ENDPOINT" \
    --port-file "$TMP/proxy.port.new" "${port_arg[@]}" "$@" 2>>"$TMP/proxy.err" &
  proxy_pid=$!
  for _ in $(seq 100); do [ -s "$TMP/proxy.port.new" ] && break; sleep 0.1; done
  [ -s "$TMP/proxy.port.new" ] || fail "faultproxy did not start: $(cat "$TMP/proxy.err")"
  mv "$TMP/proxy.port.new" "$TMP/proxy.port"
}
stop_proxy() { [ -z "$proxy_pid" ] || { kill "$proxy_pid"; wait "$proxy_pid" 2>/dev/null || true; }; proxy_pid=; }
cleanup_add 'stop_proxy'
if is_local "$direct"; then
  repo=$direct
  outage_start() { mv "$repo" "$repo.away"; }
  outage_end() { mv "$repo.away" "$repo"; }
else
  start_proxy
  repo="s3:http://127.0.0.1:$(cat "$TMP/proxy.port")/${direct#s3:"$PL_TEST_S3_ENDPOINT"/}"
  outage_start() { stop_proxy; }
  outage_end() { start_proxy; }
fi
$PL -r "$repo" init >/dev/null
make_disk "$TMP/a.img" 4

python3 - "$TMP/port" "$TMP/webhook.log" <<'EOF' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers['Content-Length']))
        open(sys.argv[2], 'ab').write(body + b'\n')
        self.send_response(204); self.end_headers()
    def log_message(self, *a): pass
s = http.server.HTTPServer(('127.0.0.1', 0), H)
open(sys.argv[1], 'w').write(str(s.server_port))
s.serve_forever()
EOF
hook_pid=$!
cleanup_add "kill $hook_pid"
for _ in $(seq 50); do [ -s "$TMP/port" ] && break; sleep 0.1; done

cat >"$TMP/pl.conf" <<EOF
[repository]
location = $repo
[daemon]
host = site-a
state-dir = $TMP/state
retry-initial = 1s
stop-timeout = 10s
[metrics]
textfile = $TMP/pl.prom
[alerts]
command = cat >> $TMP/alerts.log
webhook = http://127.0.0.1:$(cat "$TMP/port")/
[disk a]
source = $TMP/a.img
schedule = every 1s
rpo = 10min
EOF
$PL run --config "$TMP/pl.conf" 2>"$TMP/daemon.log" &
daemon=$!
cleanup_add "kill $daemon 2>/dev/null"
log=$TMP/daemon.log
wait_for() { # N PATTERN: until PATTERN appears N times in the log (60 s at most)
  for _ in $(seq 600); do
    [ "$(grep -c "$2" "$log")" -ge "$1" ] && return 0
    sleep 0.1
  done
  fail "waited for $1 x '$2': $(tail -5 "$log")"
}
wait_for 2 'end job="backup a" result=ok'

if ! is_local "$direct"; then
  # Writes of packs and index objects refused: backups fail, the status
  # object still lands, and the recovery side sees the disk failing.
  stop_proxy
  start_proxy 'PUT~/packs/=503' 'PUT~/index/=503' 'POST~/packs/=503'
  before=$(grep -c 'end job="backup a" result=failed' "$log" || true)
  scribble "$TMP/a.img" 100000 50000 >/dev/null
  wait_for $((before + 2)) 'end job="backup a" result=failed'
  sleep 1
  rc=0
  $PL -r "$direct" status --json >"$TMP/status.json" || rc=$?
  [ "$rc" -eq 3 ] || fail "status exit $rc while backups fail"
  python3 - "$TMP/status.json" <<'EOF' || fail "status while failing: $(cat "$TMP/status.json")"
import json, sys
d = [d for d in json.load(open(sys.argv[1]))["disks"] if d["disk"] == "a"][0]
assert d["state"] == "failing" and d["failures"] >= 2 and d["error"], d
assert d["host"] == "site-a", d
EOF
  stop_proxy
  start_proxy
fi

# The repository gone altogether, then back.
scribble "$TMP/a.img" 200000 50000 >/dev/null
outage_start
before=$(grep -c 'end job="backup a" result=failed' "$log" || true)
wait_for $((before + 3)) 'end job="backup a" result=failed'
outage_end
ok=$(grep -c 'end job="backup a" result=ok' "$log")
wait_for $((ok + 1)) 'end job="backup a" result=ok'
sleep 1
nfail=$(grep -c 'end job="backup a" result=failed' "$log")

for f in "$TMP/alerts.log" "$TMP/webhook.log"; do
  [ "$(grep -c '"state":"firing","kind":"job-failure","job":"backup a"' "$f")" -eq 1 ] ||
    fail "$f: not one firing alert over $nfail failures: $(cat "$f")"
  [ "$(grep -c '"state":"resolved","kind":"job-failure","job":"backup a"' "$f")" -eq 1 ] ||
    fail "$f: not one resolved alert: $(cat "$f")"
  [ "$(wc -l <"$f")" -eq 2 ] || fail "$f: other alerts: $(cat "$f")"
done
$PL -r "$direct" status --json >"$TMP/status.json" || fail "status still breached after recovery"
grep -q '"state":"protected"' "$TMP/status.json" || fail "not protected after recovery"
grep -q "^pilotlight_job_failures_total{host=\"site-a\",disk=\"a\",job=\"backup a\"} $nfail\$" "$TMP/pl.prom" ||
  fail "failures metric: $(grep failures_total "$TMP/pl.prom")"
$PL -r "$direct" restore a@latest "$TMP/r.img" >/dev/null
cmp "$TMP/r.img" "$TMP/a.img" || fail "restore after the outage differs"

# SIGTERM during a backup held to 1 MiB/s: a clean stop within the
# stop-timeout, no snapshot of the disk, a clean verify.
kill -TERM $daemon
wait $daemon || fail "daemon exit status $?"
head -c 24M /dev/urandom >"$TMP/big.img"
sed -i "s|^\[disk a\]|[disk big]\nsource = $TMP/big.img\nschedule = every 1h\n\n[disk a]|; s|^location = .*|&\nlimit-upload = 1M|; s|^schedule = every 1s|schedule = every 1h|" "$TMP/pl.conf"
$PL run --config "$TMP/pl.conf" 2>"$TMP/daemon2.log" &
daemon=$!
log=$TMP/daemon2.log
wait_for 1 'start job="backup big"'
sleep 3
t0=$(date +%s)
kill -TERM $daemon
wait $daemon || fail "daemon exit status $? after SIGTERM during a backup"
took=$(($(date +%s) - t0))
[ "$took" -le 12 ] || fail "stop took ${took}s, past the 10 s stop-timeout"
grep -q 'end job="backup big" result=interrupted' "$log" || fail "backup not interrupted: $(tail -3 "$log")"
[ "$($PL -r "$direct" snapshots --disk big --json | grep -c '"id"' || true)" -eq 0 ] ||
  fail "an interrupted backup committed a snapshot"
$PL -r "$direct" verify >/dev/null || fail "verify after the interrupted backup"
# The next start runs the interrupted job at once, unthrottled.
sed -i '/^limit-upload/d' "$TMP/pl.conf"
$PL run --once --config "$TMP/pl.conf" 2>"$TMP/once.log" || fail "run --once: $(tail -3 "$TMP/once.log")"
grep -q 'end job="backup big" result=ok' "$TMP/once.log" || fail "backup big not resumed"
$PL -r "$direct" restore big@latest "$TMP/rbig.img" >/dev/null
cmp "$TMP/rbig.img" "$TMP/big.img" || fail "restore of big differs"
echo "outage: $nfail failed runs, one alert and one resolved; SIGTERM stop in ${took}s"
