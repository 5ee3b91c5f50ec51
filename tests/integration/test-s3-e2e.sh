#!/usr/bin/env bash
# pilotlight end to end on a real Ceph RGW: init, full and incremental
# backups, restore, verify and snapshots on an S3 repository; the aws CLI
# lists and downloads what pilotlight wrote; aws s3 sync moves repositories
# between a folder and a bucket both ways; backups and restores succeed
# through injected faults; wrong credentials, a missing bucket and an
# unreachable endpoint each give one clear line and exit 1.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/rgw.sh"
[ -x "$PL" ] || fail "pilotlight not built: $PL"
requires aws
requires python3
rgw_ensure
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_PROFILE AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 || true
export PILOTLIGHT_S3_BACKOFF_MS=20
top=$(basename "$TMP")
EP=$PL_TEST_S3_ENDPOINT B=$PL_TEST_S3_BUCKET
REPO="s3:$EP/$B/$top/repo"
awss3() { aws --endpoint-url "$EP" "$@"; }

# init, and init again refuses.
$PL -r "$REPO" init >/dev/null
expect_fail $PL -r "$REPO" init
[ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "second init: $(cat "$TMP/err")"

# Full backup, forcing multipart uploads of packs larger than 6 MiB.
make_disk "$TMP/disk" 48
PILOTLIGHT_S3_MULTIPART_THRESHOLD=6M PILOTLIGHT_S3_PART_SIZE=5M \
  $PL -r "$REPO" backup --disk vm1 "$TMP/disk" >/dev/null
cp --sparse=always "$TMP/disk" "$TMP/disk.v1"
$PL -r "$REPO" restore vm1 "$TMP/r1"
cmp "$TMP/disk" "$TMP/r1"

# Incremental with a changed-extent list, restore of both snapshots.
{ scribble "$TMP/disk" 1048576 4096; scribble "$TMP/disk" $((30 << 20)) 300000; } >"$TMP/ch1"
$PL -r "$REPO" backup --disk vm1 "$TMP/disk" --changed-extents "$TMP/ch1" >/dev/null
$PL -r "$REPO" restore vm1 "$TMP/r2"
cmp "$TMP/disk" "$TMP/r2"
$PL -r "$REPO" snapshots --disk vm1 --json >"$TMP/snaps.json"
[ "$(grep -o '"id"' "$TMP/snaps.json" | wc -l)" -eq 2 ] || fail "snapshots: $(cat "$TMP/snaps.json")"
first=$(json_field id <"$TMP/snaps.json")
$PL -r "$REPO" restore "vm1@$first" "$TMP/r1b"
cmp "$TMP/disk.v1" "$TMP/r1b"
$PL -r "$REPO" verify --read-data >/dev/null

# The aws CLI lists and downloads what pilotlight wrote; the download is a
# valid folder repository.
awss3 s3 ls --recursive "s3://$B/$top/repo/" >"$TMP/ls"
[ "$(wc -l <"$TMP/ls")" -ge 4 ] || fail "aws s3 ls: $(cat "$TMP/ls")"
awss3 s3 sync --quiet "s3://$B/$top/repo" "$TMP/local-copy"
$PL -r "$TMP/local-copy" restore vm1 "$TMP/r3"
cmp "$TMP/disk" "$TMP/r3"
$PL -r "$TMP/local-copy" verify --read-data >/dev/null

# A folder repository synced to the bucket restores from the bucket.
$PL -r "$TMP/local" init >/dev/null
make_disk "$TMP/disk2" 24
$PL -r "$TMP/local" backup --disk vm2 "$TMP/disk2" >/dev/null
awss3 s3 sync --quiet "$TMP/local" "s3://$B/$top/synced"
$PL -r "s3:$EP/$B/$top/synced" restore vm2 "$TMP/r4"
cmp "$TMP/disk2" "$TMP/r4"
# ... and takes further backups there, which sync back down and restore.
scribble "$TMP/disk2" 4096 8192 >"$TMP/ch2"
$PL -r "s3:$EP/$B/$top/synced" backup --disk vm2 "$TMP/disk2" --changed-extents "$TMP/ch2" >/dev/null
awss3 s3 sync --quiet "s3://$B/$top/synced" "$TMP/local"
$PL -r "$TMP/local" restore vm2 "$TMP/r5"
cmp "$TMP/disk2" "$TMP/r5"

# The plain s3://BUCKET/PREFIX form with AWS_ENDPOINT_URL.
AWS_ENDPOINT_URL=$EP $PL -r "s3://$B/$top/repo" restore vm1 "$TMP/r6"
cmp "$TMP/disk" "$TMP/r6"

# Backup and restore through a proxy that fails requests.
rm -f "$TMP/proxy.port"
python3 "$(dirname "$0")/faultproxy.py" --upstream "$EP" --port-file "$TMP/proxy.port" \
  --log "$TMP/proxy.log" 'GET*2=truncate' 'GET*1=503' 'PUT*2=drop' \
  'rand:0.08=503' 'rand:0.05=drop' 2>"$TMP/proxy.err" &
proxy_pid=$!
cleanup_add "kill $proxy_pid 2>/dev/null; wait $proxy_pid 2>/dev/null"
for ((i = 0; i < 100; i++)); do [ -s "$TMP/proxy.port" ] && break; sleep 0.1; done
[ -s "$TMP/proxy.port" ] || fail "faultproxy did not start: $(cat "$TMP/proxy.err")"
FREPO="s3:http://127.0.0.1:$(cat "$TMP/proxy.port")/$B/$top/faulty"
$PL -r "$FREPO" init >/dev/null
$PL -r "$FREPO" backup --disk vm1 "$TMP/disk" >/dev/null
scribble "$TMP/disk" $((10 << 20)) 65536 >"$TMP/ch3"
$PL -r "$FREPO" backup --disk vm1 "$TMP/disk" --changed-extents "$TMP/ch3" >/dev/null
$PL -r "$FREPO" restore vm1 "$TMP/r7"
cmp "$TMP/disk" "$TMP/r7"
$PL -r "$FREPO" verify --read-data >/dev/null
grep -q -- '-> 503' "$TMP/proxy.log" || fail "no 503 injected"
grep -q -- '-> drop' "$TMP/proxy.log" || fail "no drop injected"
grep -q -- '-> truncate' "$TMP/proxy.log" || fail "no truncation injected"

# Failures: one clear line, exit 1, no secret in it.
one_line() {
  [ "$(cat "$TMP/rc")" -eq 1 ] || fail "exit status $(cat "$TMP/rc"), expected 1"
  [ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "expected one line: $(cat "$TMP/err")"
  grep -qF "$AWS_SECRET_ACCESS_KEY" "$TMP/err" && fail "secret in message"
  grep -q "$1" "$TMP/err" || fail "expected '$1' in: $(cat "$TMP/err")"
}
expect_fail env AWS_SECRET_ACCESS_KEY=wrong-secret $PL -r "$REPO" snapshots
one_line "access to bucket $B denied"
grep -q wrong-secret "$TMP/err" && fail "secret in message"
expect_fail env AWS_SECRET_ACCESS_KEY=wrong-secret $PL -r "$REPO" restore vm1 "$TMP/r8"
one_line "credentials"
expect_fail $PL -r "s3:$EP/no-such-bucket-$$/x" init
one_line "bucket no-such-bucket-$$ does not exist: create it first"
expect_fail $PL -r "s3:$EP/no-such-bucket-$$/x" snapshots
one_line "does not exist: create it first"
port=$(_rgw_free_port)
expect_fail env PILOTLIGHT_S3_RETRIES=1 $PL -r "s3:http://127.0.0.1:$port/$B/x" init
one_line "cannot reach the S3 endpoint http://127.0.0.1:$port"
expect_fail env PILOTLIGHT_S3_RETRIES=1 $PL -r "s3:http://127.0.0.1:$port/$B/x" backup --disk vm1 "$TMP/disk"
one_line "cannot reach the S3 endpoint http://127.0.0.1:$port"
echo OK
