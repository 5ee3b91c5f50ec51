#!/usr/bin/env bash
# The S3 store against a real Ceph RGW, driven through the store interface by
# s3-tool: every operation, conditional create, ranged reads and their
# truncation errors, pagination, multipart upload, awkward key names, many
# threads at once, and interoperability with the aws CLI in both directions.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/rgw.sh"
TOOL=${S3_TOOL:-$(dirname "$PL")/tests/unit/s3-tool}
[ -x "$TOOL" ] || fail "s3-tool not built: $TOOL"
requires aws
requires python3
rgw_ensure
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_PROFILE AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 || true
prefix=$(basename "$TMP")/store
LOC="s3:$PL_TEST_S3_ENDPOINT/$PL_TEST_S3_BUCKET/$prefix"
awss3() { aws --endpoint-url "$PL_TEST_S3_ENDPOINT" "$@"; }

# expect_rc RC CMD...: run CMD, require exit status RC; stderr in $TMP/err.
expect_rc() {
  local want=$1 rc=0
  shift
  "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
  [ "$rc" -eq "$want" ] || fail "expected exit $want, got $rc from: $* ($(cat "$TMP/err"))"
}

"$TOOL" "$LOC" init || fail "init on an existing bucket"

# Whole objects, including an empty one.
head -c 100000 /dev/urandom >"$TMP/a"
: >"$TMP/empty"
"$TOOL" "$LOC" put obj/a "$TMP/a"
"$TOOL" "$LOC" get obj/a >"$TMP/a.back"
cmp "$TMP/a" "$TMP/a.back"
"$TOOL" "$LOC" put obj/empty "$TMP/empty"
"$TOOL" "$LOC" get obj/empty >"$TMP/empty.back"
cmp "$TMP/empty" "$TMP/empty.back"
[ "$("$TOOL" "$LOC" head obj/a)" = 100000 ] || fail "head size"
[ "$("$TOOL" "$LOC" head obj/empty)" = 0 ] || fail "head size of empty object"

# Overwrite, then conditional create must refuse and keep the content.
head -c 5000 /dev/urandom >"$TMP/b"
"$TOOL" "$LOC" put obj/a "$TMP/b"
"$TOOL" "$LOC" get obj/a | cmp - "$TMP/b"
expect_rc 4 "$TOOL" "$LOC" excl obj/a "$TMP/a"
grep -q "already exists" "$TMP/err" || fail "excl message: $(cat "$TMP/err")"
"$TOOL" "$LOC" get obj/a | cmp - "$TMP/b"
"$TOOL" "$LOC" excl obj/new "$TMP/a"
"$TOOL" "$LOC" get obj/new | cmp - "$TMP/a"

# Ranges: middle, to the very end, past the end (truncated), beyond the end.
"$TOOL" "$LOC" range obj/new 1000 2000 | cmp - <(tail -c +1001 "$TMP/a" | head -c 2000)
"$TOOL" "$LOC" range obj/new 99990 10 | cmp - <(tail -c 10 "$TMP/a")
expect_rc 6 "$TOOL" "$LOC" range obj/new 99990 11
grep -q "truncated" "$TMP/err" || fail "short range message: $(cat "$TMP/err")"
expect_rc 6 "$TOOL" "$LOC" range obj/new 200000 10
grep -q "truncated" "$TMP/err" || fail "range past the end message: $(cat "$TMP/err")"

# Missing objects and size caps.
expect_rc 3 "$TOOL" "$LOC" get obj/missing
expect_rc 3 "$TOOL" "$LOC" head obj/missing
expect_rc 3 "$TOOL" "$LOC" range obj/missing 0 1
expect_rc 7 "$TOOL" "$LOC" get obj/new 99999
"$TOOL" "$LOC" get obj/new 100000 | cmp - "$TMP/a"

# Delete, and deleting again is not an error.
"$TOOL" "$LOC" del obj/new
expect_rc 3 "$TOOL" "$LOC" head obj/new
"$TOOL" "$LOC" del obj/new

# Keys that need percent-encoding in the path and in the list prefix.
for k in "odd/sp ace" "odd/plus+sign" "odd/eq=amp&q?x" "odd/üñí" "odd/tilde~dash-_.x" "odd/pct%41"; do
  printf '%s' "$k" >"$TMP/k"
  "$TOOL" "$LOC" put "$k" "$TMP/k" || fail "put '$k'"
  "$TOOL" "$LOC" get "$k" | cmp - "$TMP/k" || fail "get '$k'"
  "$TOOL" "$LOC" range "$k" 1 2 | cmp - <(tail -c +2 "$TMP/k" | head -c 2) || fail "range '$k'"
done
"$TOOL" "$LOC" list "odd/" | sort >"$TMP/odd.list"
[ "$(wc -l <"$TMP/odd.list")" -eq 6 ] || fail "odd keys listed: $(cat "$TMP/odd.list")"
grep -qx "odd/üñí 10" "$TMP/odd.list" || fail "utf-8 key in list: $(cat "$TMP/odd.list")"
grep -qx "odd/sp ace 10" "$TMP/odd.list" || fail "key with a space in list"
"$TOOL" "$LOC" list "odd/sp" >"$TMP/sp.list"
grep -qx "odd/sp ace 10" "$TMP/sp.list" || fail "list with a prefix holding a space"

# Listing: keys are relative to the repository prefix, sizes are right,
# a sibling prefix is not listed, and pagination returns every key once.
echo sibling | "$TOOL" "s3:$PL_TEST_S3_ENDPOINT/$PL_TEST_S3_BUCKET/${prefix}x" put obj/z -
for i in $(seq 1 23); do
  printf '%*s' "$i" "" | "$TOOL" "$LOC" put "many/k$i" -
done
PILOTLIGHT_S3_LIST_MAX_KEYS=5 "$TOOL" "$LOC" list many/ | sort >"$TMP/many.list"
for i in $(seq 1 23); do echo "many/k$i $i"; done | sort >"$TMP/many.want"
diff "$TMP/many.want" "$TMP/many.list" || fail "paginated list differs"
"$TOOL" "$LOC" list | sort >"$TMP/all.list"
grep -q "^obj/z" "$TMP/all.list" && fail "sibling prefix listed"
grep -qx "obj/a 5000" "$TMP/all.list" || fail "obj/a not in the full list"
[ "$(wc -l <"$TMP/all.list")" -eq $((2 + 6 + 23)) ] || fail "full list: $(cat "$TMP/all.list")"

# Multipart upload above the threshold (three parts, the last one short).
head -c $((11 * 1024 * 1024 + 12345)) /dev/urandom >"$TMP/big"
PILOTLIGHT_S3_MULTIPART_THRESHOLD=6M PILOTLIGHT_S3_PART_SIZE=5M "$TOOL" "$LOC" put big/one "$TMP/big"
"$TOOL" "$LOC" get big/one >"$TMP/big.back"
cmp "$TMP/big" "$TMP/big.back"
etag=$(awss3 s3api head-object --bucket "$PL_TEST_S3_BUCKET" --key "$prefix/big/one" \
  --query ETag --output text)
case $etag in *-3*) ;; *) fail "expected a 3-part multipart ETag, got $etag" ;; esac
"$TOOL" "$LOC" range big/one $((10 * 1024 * 1024 - 7)) 100000 |
  cmp - <(tail -c +$((10 * 1024 * 1024 - 6)) "$TMP/big" | head -c 100000)
expect_rc 4 env PILOTLIGHT_S3_MULTIPART_THRESHOLD=6M PILOTLIGHT_S3_PART_SIZE=5M \
  "$TOOL" "$LOC" excl big/one "$TMP/big"
# A conditional create stays one atomic PUT above the threshold (its ETag
# has no part count), because RGW ignores If-None-Match on completion.
PILOTLIGHT_S3_MULTIPART_THRESHOLD=6M PILOTLIGHT_S3_PART_SIZE=5M "$TOOL" "$LOC" excl big/two "$TMP/big"
"$TOOL" "$LOC" get big/two | cmp - "$TMP/big"
etag=$(awss3 s3api head-object --bucket "$PL_TEST_S3_BUCKET" --key "$prefix/big/two" \
  --query ETag --output text)
case $etag in *-*) fail "conditional create went multipart: $etag" ;; esac
uploads=$(awss3 s3api list-multipart-uploads --bucket "$PL_TEST_S3_BUCKET" --prefix "$prefix/" \
  --query 'Uploads[].Key' --output text)
[ -z "$uploads" ] || [ "$uploads" = None ] || fail "multipart uploads left behind: $uploads"

# Many threads sharing one store (the pool of curl handles).
"$TOOL" "$LOC" parallel par 240 12 300000
[ -z "$("$TOOL" "$LOC" list par/)" ] || fail "parallel objects not deleted"

# Virtual-hosted addressing (AWS's default): rgw.sh sets rgw_dns_name to
# localhost and curl resolves BUCKET.localhost to the loopback address. The
# proxy's log shows the bucket left the path.
port=${PL_TEST_S3_ENDPOINT##*:}
rm -f "$TMP/vproxy.port"
python3 "$(dirname "$0")/faultproxy.py" --upstream "$PL_TEST_S3_ENDPOINT" \
  --port-file "$TMP/vproxy.port" --log "$TMP/vproxy.log" &
vproxy=$!
cleanup_add "kill $vproxy 2>/dev/null; wait $vproxy 2>/dev/null"
for ((i = 0; i < 100; i++)); do [ -s "$TMP/vproxy.port" ] && break; sleep 0.1; done
VLOC="s3:http://localhost:$(cat "$TMP/vproxy.port")/$PL_TEST_S3_BUCKET/$prefix"
PILOTLIGHT_S3_ADDRESSING=virtual "$TOOL" "$VLOC" put virt/a "$TMP/a"
PILOTLIGHT_S3_ADDRESSING=virtual "$TOOL" "$VLOC" get virt/a | cmp - "$TMP/a"
PILOTLIGHT_S3_ADDRESSING=virtual "$TOOL" "$VLOC" list virt/ >"$TMP/virt.list"
grep -qx "virt/a 100000" "$TMP/virt.list" || fail "virtual-hosted list: $(cat "$TMP/virt.list")"
grep -q "^1 PUT /$prefix/virt/a " "$TMP/vproxy.log" || fail "not virtual-hosted: $(cat "$TMP/vproxy.log")"
"$TOOL" "$LOC" get virt/a | cmp - "$TMP/a"
kill $vproxy
wait $vproxy 2>/dev/null || true

# Interoperability: the aws CLI reads what we wrote, and we read what it wrote.
awss3 s3 cp "s3://$PL_TEST_S3_BUCKET/$prefix/big/one" "$TMP/big.aws" --quiet
cmp "$TMP/big" "$TMP/big.aws"
awss3 s3 ls "s3://$PL_TEST_S3_BUCKET/$prefix/obj/" >"$TMP/ls"
grep -q " 5000 a$" "$TMP/ls" || fail "aws s3 ls: $(cat "$TMP/ls")"
awss3 s3 cp "$TMP/a" "s3://$PL_TEST_S3_BUCKET/$prefix/from-aws/a" --quiet
"$TOOL" "$LOC" get from-aws/a | cmp - "$TMP/a"
echo "OK"
