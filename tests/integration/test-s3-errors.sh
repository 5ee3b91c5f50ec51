#!/usr/bin/env bash
# S3 settings and failures against a real Ceph RGW: the credential chain
# (environment, AWS_PROFILE with the shared files), endpoint and region
# sources, and a clear one-line error, with no secret in it, for wrong
# credentials, a missing bucket, an unreachable endpoint and bad settings.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/rgw.sh"
TOOL=${S3_TOOL:-$(dirname "$PL")/tests/unit/s3-tool}
[ -x "$TOOL" ] || fail "s3-tool not built: $TOOL"
rgw_ensure
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_SESSION_TOKEN || true
KEY=$AWS_ACCESS_KEY_ID SECRET=$AWS_SECRET_ACCESS_KEY
prefix=$(basename "$TMP")/errors
LOC="s3:$PL_TEST_S3_ENDPOINT/$PL_TEST_S3_BUCKET/$prefix"
echo payload >"$TMP/p"

expect_rc() {
  local want=$1 rc=0
  shift
  "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
  [ "$rc" -eq "$want" ] || fail "expected exit $want, got $rc from: $* ($(cat "$TMP/err"))"
  [ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "expected a one-line message, got: $(cat "$TMP/err")"
  ! grep -qF "$SECRET" "$TMP/err" || fail "the secret key leaked into: $(cat "$TMP/err")"
}

"$TOOL" "$LOC" put p "$TMP/p"

# Wrong secret: 403 SignatureDoesNotMatch, named bucket, what to check.
expect_rc 5 env AWS_SECRET_ACCESS_KEY=not-the-right-secret "$TOOL" "$LOC" get p
grep -q "access to bucket $PL_TEST_S3_BUCKET denied" "$TMP/err" || fail "403 message: $(cat "$TMP/err")"
grep -q "credentials" "$TMP/err" || fail "403 message names no credentials: $(cat "$TMP/err")"
grep -q "request id" "$TMP/err" || fail "403 message has no request id: $(cat "$TMP/err")"
grep -q "not-the-right-secret" "$TMP/err" && fail "secret in message"
expect_rc 5 env AWS_SECRET_ACCESS_KEY=not-the-right-secret "$TOOL" "$LOC" init
expect_rc 5 env AWS_ACCESS_KEY_ID=NOSUCHACCESSKEY "$TOOL" "$LOC" put q "$TMP/p"
expect_rc 3 "$TOOL" "$LOC" get q # the refused PUT wrote nothing

# No credentials at all.
(unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY; expect_rc 5 "$TOOL" "$LOC" get p)
grep -q "no S3 credentials" "$TMP/err" || fail "no-credentials message: $(cat "$TMP/err")"

# Missing bucket: init says to create it; other operations say so too.
expect_rc 1 "$TOOL" "s3:$PL_TEST_S3_ENDPOINT/no-such-bucket-$$/x" init
grep -q "bucket no-such-bucket-$$ does not exist: create it first" "$TMP/err" ||
  fail "missing bucket message: $(cat "$TMP/err")"
expect_rc 1 "$TOOL" "s3:$PL_TEST_S3_ENDPOINT/no-such-bucket-$$/x" get config
grep -q "does not exist: create it first" "$TMP/err" || fail "missing bucket on GET: $(cat "$TMP/err")"
expect_rc 1 "$TOOL" "s3:$PL_TEST_S3_ENDPOINT/no-such-bucket-$$/x" list
grep -q "does not exist: create it first" "$TMP/err" || fail "missing bucket on LIST: $(cat "$TMP/err")"

# Unreachable endpoint: a port nothing listens on; the message names it.
port=$(_rgw_free_port)
expect_rc 1 env PILOTLIGHT_S3_RETRIES=2 PILOTLIGHT_S3_BACKOFF_MS=10 \
  "$TOOL" "s3:http://127.0.0.1:$port/$PL_TEST_S3_BUCKET/x" init
grep -q "cannot reach the S3 endpoint http://127.0.0.1:$port" "$TMP/err" ||
  fail "unreachable message: $(cat "$TMP/err")"
grep -q "3 attempts" "$TMP/err" || fail "retries not counted: $(cat "$TMP/err")"

# TLS: verified by default; AWS_CA_BUNDLE names the CA; a certificate
# failure is not retried and says what to set. Virtual-hosted over TLS too.
if [ -n "${PL_TEST_S3_TLS_ENDPOINT:-}" ]; then
  TLOC="s3:$PL_TEST_S3_TLS_ENDPOINT/$PL_TEST_S3_BUCKET/$prefix"
  AWS_CA_BUNDLE=$PL_TEST_S3_TLS_CA "$TOOL" "$TLOC" init
  AWS_CA_BUNDLE=$PL_TEST_S3_TLS_CA "$TOOL" "$TLOC" get p | cmp - "$TMP/p"
  expect_rc 6 "$TOOL" "$TLOC" get p
  grep -q "cannot verify the TLS certificate of the S3 endpoint $PL_TEST_S3_TLS_ENDPOINT" \
    "$TMP/err" || fail "TLS message: $(cat "$TMP/err")"
  grep -q "AWS_CA_BUNDLE" "$TMP/err" || fail "TLS message names no AWS_CA_BUNDLE"
  expect_rc 6 env AWS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt "$TOOL" "$TLOC" get p
  tport=${PL_TEST_S3_TLS_ENDPOINT##*:}
  AWS_CA_BUNDLE=$PL_TEST_S3_TLS_CA PILOTLIGHT_S3_ADDRESSING=virtual \
    "$TOOL" "s3:https://localhost:$tport/$PL_TEST_S3_BUCKET/$prefix" get p | cmp - "$TMP/p"
else
  echo "no TLS endpoint from rgw.sh (openssl missing?): TLS checks skipped"
fi

# A least-privilege user, allowed by a bucket policy only under "scoped/"
# (where HEAD /BUCKET is refused): init, backup-style writes and lists work
# there, and anywhere else the error names the bucket.
if [ -n "${PL_TEST_S3_SCOPED_ACCESS_KEY_ID:-}" ]; then
  SLOC="s3:$PL_TEST_S3_ENDPOINT/$PL_TEST_S3_BUCKET/scoped/$(basename "$TMP")"
  scoped() {
    AWS_ACCESS_KEY_ID=$PL_TEST_S3_SCOPED_ACCESS_KEY_ID \
      AWS_SECRET_ACCESS_KEY=$PL_TEST_S3_SCOPED_SECRET_ACCESS_KEY "$@"
  }
  scoped "$TOOL" "$SLOC" init
  scoped "$TOOL" "$SLOC" excl config "$TMP/p"
  scoped "$TOOL" "$SLOC" get config | cmp - "$TMP/p"
  [ "$(scoped "$TOOL" "$SLOC" list)" = "config 8" ] || fail "scoped list"
  scoped "$TOOL" "$SLOC" del config
  rc=0
  scoped "$TOOL" "$LOC" init 2>"$TMP/err" || rc=$?
  [ "$rc" -eq 5 ] || fail "scoped user outside its prefix: exit $rc ($(cat "$TMP/err"))"
  grep -q "access to bucket $PL_TEST_S3_BUCKET denied" "$TMP/err" || fail "scoped: $(cat "$TMP/err")"
fi

# Bad locations and settings.
expect_rc 1 "$TOOL" "s3://" head x
expect_rc 1 "$TOOL" "s3:ftp://h/b/p" head x
expect_rc 1 env PILOTLIGHT_S3_ADDRESSING=sideways "$TOOL" "$LOC" head p
grep -q "PILOTLIGHT_S3_ADDRESSING" "$TMP/err" || fail "addressing message"
expect_rc 1 env PILOTLIGHT_S3_RETRIES=lots "$TOOL" "$LOC" head p
expect_rc 1 env PILOTLIGHT_S3_PART_SIZE=1M "$TOOL" "$LOC" head p

# Endpoint from AWS_ENDPOINT_URL with the plain s3://BUCKET/PREFIX form.
AWS_ENDPOINT_URL=$PL_TEST_S3_ENDPOINT "$TOOL" "s3://$PL_TEST_S3_BUCKET/$prefix" get p | cmp - "$TMP/p"

# Profile from the shared files: credentials file, then config file; the
# environment pair wins when both are there; endpoint_url from config.
cat >"$TMP/credentials" <<EOC
[default]
aws_access_key_id = WRONGDEFAULTKEY
aws_secret_access_key = wrong

[pltest]
aws_access_key_id = $KEY
aws_secret_access_key = $SECRET
EOC
cat >"$TMP/config" <<EOC
[default]
region = us-east-1

[profile viaconfig]
aws_access_key_id = $KEY
aws_secret_access_key = $SECRET
endpoint_url = $PL_TEST_S3_ENDPOINT
EOC
(
  unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION
  export AWS_SHARED_CREDENTIALS_FILE=$TMP/credentials AWS_CONFIG_FILE=$TMP/config
  AWS_PROFILE=pltest "$TOOL" "$LOC" get p | cmp - "$TMP/p"
  expect_rc 5 "$TOOL" "$LOC" get p # the default profile's wrong keys
  AWS_PROFILE=viaconfig "$TOOL" "s3://$PL_TEST_S3_BUCKET/$prefix" get p | cmp - "$TMP/p"
  expect_rc 5 env AWS_PROFILE=nosuchprofile "$TOOL" "$LOC" get p
  grep -q "no S3 credentials" "$TMP/err" || fail "missing profile message: $(cat "$TMP/err")"
)
(
  export AWS_SHARED_CREDENTIALS_FILE=$TMP/credentials AWS_CONFIG_FILE=$TMP/config
  "$TOOL" "$LOC" get p | cmp - "$TMP/p" # environment keys beat [default]
)

# A session token goes out as a signed x-amz-security-token header; RGW
# without STS ignores it, so the signature must still verify.
AWS_SESSION_TOKEN=some-session-token "$TOOL" "$LOC" get p | cmp - "$TMP/p"
echo OK
