#!/usr/bin/env bash
# S3 store operations through faultproxy.py in front of a real Ceph RGW:
# dropped and reset connections, 500, 503 SlowDown, stalls and truncated
# bodies are retried until the operation succeeds (checked with cmp, and in
# the proxy's log that the fault really happened); permanent errors are not
# retried; exhausted retries and failed multipart uploads end in a clear
# error, leaving no multipart upload behind.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/rgw.sh"
TOOL=${S3_TOOL:-$(dirname "$PL")/tests/unit/s3-tool}
[ -x "$TOOL" ] || fail "s3-tool not built: $TOOL"
requires python3
requires aws
rgw_ensure
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_PROFILE AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 || true
export PILOTLIGHT_S3_BACKOFF_MS=20
prefix=$(basename "$TMP")/faults
DIRECT="s3:$PL_TEST_S3_ENDPOINT/$PL_TEST_S3_BUCKET/$prefix"
proxy_pid=

# proxy RULE...: (re)start the fault proxy with these rules; sets $LOC and
# $LOG (the proxy's request log).
proxy() {
  proxy_stop
  LOG=$TMP/proxy.log
  rm -f "$TMP/proxy.port" "$LOG"
  python3 "$(dirname "$0")/faultproxy.py" --upstream "$PL_TEST_S3_ENDPOINT" \
    --port-file "$TMP/proxy.port" --log "$LOG" "$@" 2>"$TMP/proxy.err" &
  proxy_pid=$!
  local i
  for ((i = 0; i < 100; i++)); do
    [ -s "$TMP/proxy.port" ] && break
    kill -0 "$proxy_pid" 2>/dev/null || fail "faultproxy died: $(cat "$TMP/proxy.err")"
    sleep 0.1
  done
  [ -s "$TMP/proxy.port" ] || fail "faultproxy did not start"
  LOC="s3:http://127.0.0.1:$(cat "$TMP/proxy.port")/$PL_TEST_S3_BUCKET/$prefix"
  touch "$LOG"
}
proxy_stop() {
  if [ -n "$proxy_pid" ]; then
    kill "$proxy_pid" 2>/dev/null || true
    wait "$proxy_pid" 2>/dev/null || true
    proxy_pid=
  fi
}
cleanup_add proxy_stop

# seen PATTERN [COUNT]: the proxy log has COUNT (default: at least 1) lines
# matching PATTERN.
seen() {
  local n
  n=$(grep -cE -- "$1" "$LOG" || true)
  if [ -n "${2:-}" ]; then
    [ "$n" -eq "$2" ] || fail "expected $2 requests matching '$1', saw $n: $(cat "$LOG")"
  else
    [ "$n" -ge 1 ] || fail "no request matching '$1': $(cat "$LOG")"
  fi
}

expect_rc() {
  local want=$1 rc=0
  shift
  "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
  [ "$rc" -eq "$want" ] || fail "expected exit $want, got $rc from: $* ($(cat "$TMP/err"))"
}

head -c 300000 /dev/urandom >"$TMP/a"

# PUT: dropped, reset, 503 SlowDown, 500, then through.
proxy 'PUT*1=drop' 'PUT*1=reset' 'PUT*1=503' 'PUT*1=500'
"$TOOL" "$LOC" put a "$TMP/a"
seen 'PUT .* -> drop' 1
seen 'PUT .* -> reset' 1
seen 'PUT .* -> 503' 1
seen 'PUT .* -> 500' 1
seen 'PUT .* -> pass 200' 1
"$TOOL" "$DIRECT" get a | cmp - "$TMP/a"

# GET: a truncated body and a 503 are retried; the result is whole.
proxy 'GET*1=truncate' 'GET*1=503'
"$TOOL" "$LOC" get a >"$TMP/a.back"
cmp "$TMP/a" "$TMP/a.back"
seen 'GET .* -> truncate 200 \(150000 of 300000 bytes\)' 1
seen 'GET .* -> pass 200' 1

# Ranged GET: truncated and dropped, then whole.
proxy 'GET*1=truncate' 'GET*1=drop'
"$TOOL" "$LOC" range a 1000 200000 | cmp - <(tail -c +1001 "$TMP/a" | head -c 200000)
seen 'GET .* -> truncate 206' 1
seen 'GET .* -> pass 206' 1

# A stalled answer hits the timeout and is retried.
proxy 'GET*1=delay:4'
PILOTLIGHT_S3_TIMEOUT=1 "$TOOL" "$LOC" get a | cmp - "$TMP/a"
seen '^2 GET .* -> pass 200' 1 # the first one is still sleeping in the proxy

# HEAD, DELETE and LIST are retried too.
proxy 'HEAD*1=reset' 'DELETE*1=500' '~list-type*2=503'
[ "$("$TOOL" "$LOC" head a)" = 300000 ] || fail "head through faults"
"$TOOL" "$LOC" list | grep -qx "a 300000" || fail "list through faults"
echo tmp | "$TOOL" "$DIRECT" put gone -
"$TOOL" "$LOC" del gone
expect_rc 3 "$TOOL" "$DIRECT" head gone
seen 'HEAD .* -> reset' 1
seen 'DELETE .* -> 500' 1
seen 'list-type.* -> 503' 2

# Permanent answers are not retried: 404 once, 403 once, 412 once.
proxy
expect_rc 3 "$TOOL" "$LOC" get missing
seen 'GET .*missing' 1
expect_rc 5 env AWS_SECRET_ACCESS_KEY=wrong "$TOOL" "$LOC" get a
seen 'GET .*/a ' 1
expect_rc 4 "$TOOL" "$LOC" excl a "$TMP/a"
seen 'PUT .*/a ' 1

# Answers that need the operator: the wrong region (the bucket's region is
# named) and a skewed clock; neither is retried.
proxy 'all=status:301:PermanentRedirect:x-amz-bucket-region:eu-west-3'
expect_rc 1 "$TOOL" "$LOC" get a
grep -q "bucket $PL_TEST_S3_BUCKET is in region eu-west-3, not $AWS_REGION: set AWS_REGION=eu-west-3" \
  "$TMP/err" || fail "region message: $(cat "$TMP/err")"
seen 'GET' 1
proxy 'all=status:403:RequestTimeTooSkewed'
expect_rc 5 "$TOOL" "$LOC" get a
grep -q "the clock of this host is off" "$TMP/err" || fail "skew message: $(cat "$TMP/err")"
seen 'GET' 1
proxy 'all=status:404:NoSuchBucket'
expect_rc 1 "$TOOL" "$LOC" get a
grep -q "bucket $PL_TEST_S3_BUCKET does not exist: create it first" "$TMP/err" ||
  fail "NoSuchBucket message: $(cat "$TMP/err")"

# Retries run out: a clear error with the status, the code and the count.
proxy 'PUT=503'
expect_rc 1 env PILOTLIGHT_S3_RETRIES=2 "$TOOL" "$LOC" put b "$TMP/a"
seen 'PUT .* -> 503' 3
grep -q "HTTP 503 SlowDown" "$TMP/err" || fail "503 message: $(cat "$TMP/err")"
grep -q "after 3 attempts" "$TMP/err" || fail "attempt count: $(cat "$TMP/err")"
grep -q "request id faultproxy-" "$TMP/err" || fail "request id: $(cat "$TMP/err")"
proxy 'all=drop'
expect_rc 6 env PILOTLIGHT_S3_RETRIES=1 "$TOOL" "$LOC" get a
grep -q "cannot reach the S3 endpoint" "$TMP/err" || fail "drop message: $(cat "$TMP/err")"
# A gateway that takes the request and never answers (as Ceph does when its
# storage is full): the timeout names the endpoint, the limit and what to check.
proxy 'all=delay:4'
expect_rc 1 env PILOTLIGHT_S3_TIMEOUT=1 PILOTLIGHT_S3_RETRIES=1 "$TOOL" "$LOC" get a
grep -q "no answer from the S3 endpoint http://127.0.0.1:[0-9]* within 1 s (2 attempts): check that it is up, not overloaded and not out of space" \
  "$TMP/err" || fail "timeout message: $(cat "$TMP/err")"

# Conditional create whose first answer was lost: the retry sees 412, finds
# its own bytes there, and succeeds; a second writer still gets EEXIST.
proxy 'PUT*1=lose'
"$TOOL" "$LOC" excl c "$TMP/a"
seen 'PUT .* -> lose 200' 1
seen 'PUT .* -> pass 412' 1
"$TOOL" "$DIRECT" get c | cmp - "$TMP/a"
head -c 1000 /dev/urandom >"$TMP/other"
expect_rc 4 "$TOOL" "$DIRECT" excl c "$TMP/other"

# Multipart: a part that fails twice is retried; the object is whole.
export PILOTLIGHT_S3_MULTIPART_THRESHOLD=6M PILOTLIGHT_S3_PART_SIZE=5M
head -c $((13 * 1024 * 1024)) /dev/urandom >"$TMP/big"
proxy '~partNumber=2&*1=drop' '~partNumber=2&*1=500' 'POST~uploadId*1=503'
"$TOOL" "$LOC" put big "$TMP/big"
seen 'partNumber=2&.* -> drop' 1
seen 'partNumber=2&.* -> 500' 1
seen 'POST .*uploadId.* -> 503' 1
"$TOOL" "$DIRECT" get big | cmp - "$TMP/big"

# Multipart whose completion landed but whose answer was lost. RGW answers a
# repeated completion with 200; a server that has forgotten the upload says
# NoSuchUpload, and then the store recognises its parts in the object's ETag.
proxy 'POST~uploadId*1=lose'
"$TOOL" "$LOC" put big3 "$TMP/big"
seen 'POST .*uploadId.* -> lose 200' 1
"$TOOL" "$DIRECT" get big3 | cmp - "$TMP/big"
proxy 'POST~uploadId*1=lose' 'POST~uploadId*1=status:404:NoSuchUpload'
"$TOOL" "$LOC" put big4 "$TMP/big"
seen 'POST .*uploadId.* -> lose 200' 1
seen 'POST .*uploadId.* -> status:404:NoSuchUpload' 1
seen '^[0-9]+ HEAD .*big4' 1
"$TOOL" "$DIRECT" get big4 | cmp - "$TMP/big"
# ... but not when the object there is someone else's.
head -c $((13 * 1024 * 1024)) /dev/urandom >"$TMP/big.other"
proxy 'POST~uploadId*1=status:404:NoSuchUpload'
expect_rc 3 "$TOOL" "$LOC" put big4 "$TMP/big.other"
"$TOOL" "$DIRECT" get big4 | cmp - "$TMP/big"

# Multipart that cannot complete: the error is clear and the upload aborted.
proxy 'POST~uploadId=500'
expect_rc 6 env PILOTLIGHT_S3_RETRIES=1 "$TOOL" "$LOC" put big2 "$TMP/big"
grep -q "CompleteMultipartUpload" "$TMP/err" || fail "complete message: $(cat "$TMP/err")"
seen 'DELETE .*uploadId' 1
expect_rc 3 "$TOOL" "$DIRECT" head big2
uploads=$(aws --endpoint-url "$PL_TEST_S3_ENDPOINT" s3api list-multipart-uploads \
  --bucket "$PL_TEST_S3_BUCKET" --prefix "$prefix/" --query 'Uploads[].Key' --output text)
[ -z "$uploads" ] || [ "$uploads" = None ] || fail "multipart upload left behind: $uploads"
unset PILOTLIGHT_S3_MULTIPART_THRESHOLD PILOTLIGHT_S3_PART_SIZE

# Many threads through a proxy that fails about one request in five. With
# the default 6 retries a request gives up with probability 0.19^7 = 1.3e-5,
# and this step sends about 500 requests (twice per suite run, with ASan):
# that failed one CI run in a hundred. 12 retries make it 0.19^13 = 4e-10, so
# a failure here means a real bug in the retry path, not bad luck.
proxy 'rand:0.12=503' 'rand:0.08=drop'
PILOTLIGHT_S3_RETRIES=12 "$TOOL" "$LOC" parallel par 120 8 50000
seen '-> 503'
seen '-> drop'
proxy_stop
echo OK
