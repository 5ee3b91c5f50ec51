#!/usr/bin/env bash
# Starts and stops a private single-host Ceph cluster (one mon, one memstore
# OSD, radosgw with beast on 127.0.0.1) for the S3 tests, with a user of known
# keys and one bucket. Two ways to use it:
#   eval "$(tests/integration/rgw.sh start DIR)"   # prints export lines
#   tests/integration/rgw.sh stop DIR               # kills only what start started
# or source it and call rgw_start DIR / rgw_stop DIR (rgw_start exports the
# variables into the calling shell). Exported: PL_TEST_S3_ENDPOINT,
# PL_TEST_S3_BUCKET, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, and
# when openssl is there PL_TEST_S3_TLS_ENDPOINT (https, self-signed) with
# PL_TEST_S3_TLS_CA (its certificate). PL_TEST_S3_SCOPED_ACCESS_KEY_ID and
# PL_TEST_S3_SCOPED_SECRET_ACCESS_KEY are a second user that a bucket policy
# allows only under the prefix "scoped/". PL_TEST_S3_READONLY_ACCESS_KEY_ID and
# PL_TEST_S3_READONLY_SECRET_ACCESS_KEY are a third user that may only list the
# bucket and read objects, as a recovery site's credentials may be.
# PL_TEST_S3_LOCKED_BUCKET has Object Lock enabled, with no policy yet; the
# PL_TEST_S3_{PROTECTED,RECOVERY,MAINT}_{ACCESS_KEY_ID,SECRET_ACCESS_KEY} users
# get their rights from contrib/s3/bucket-policy.json, which the test applies.
# Settings follow shared/notes/s3-servers.md (auth none + ms_mon_client_mode crc).

RGW_ACCESS_KEY=${RGW_ACCESS_KEY:-PLTESTACCESSKEY00001}
RGW_SECRET_KEY=${RGW_SECRET_KEY:-pltestsecretkey0000000000000000000000001}
RGW_BUCKET=${RGW_BUCKET:-pltest}
RGW_SCOPED_ACCESS_KEY=PLSCOPEDACCESSKEY001
RGW_SCOPED_SECRET_KEY=plscopedsecret00000000000000000000000001
RGW_READONLY_ACCESS_KEY=PLREADONLYACCESSKEY1
RGW_READONLY_SECRET_KEY=plreadonlysecret000000000000000000000001
RGW_REGION=${RGW_REGION:-us-east-1}
# The Object Lock bucket and the three users of contrib/s3/bucket-policy.json
# (test-object-lock.sh applies that policy with its own prefix).
RGW_LOCKED_BUCKET=pltest-locked
RGW_PROTECTED_ACCESS_KEY=PLPROTECTEDACCESSKEY
RGW_PROTECTED_SECRET_KEY=plprotectedsecret00000000000000000000001
RGW_RECOVERY_ACCESS_KEY=PLRECOVERYACCESSKEY1
RGW_RECOVERY_SECRET_KEY=plrecoverysecret000000000000000000000001
RGW_MAINT_ACCESS_KEY=PLMAINTENANCEACCESS1
RGW_MAINT_SECRET_KEY=plmaintenancesecret000000000000000000001

# A TCP port on 127.0.0.1 that nothing listens on now.
_rgw_free_port() {
  local p i
  for ((i = 0; i < 50; i++)); do
    p=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

_rgw_logs() { # dump every daemon log of DIR to stderr
  local f
  for f in "$1"/log/*; do
    [ -f "$f" ] || continue
    echo "==== $f (last 40 lines)" >&2
    tail -n 40 "$f" >&2
  done
}

# _rgw_spawn DIR NAME CMD...: run a daemon in the foreground as a background
# job, detached from our stdout, and record its PID.
_rgw_spawn() {
  local dir=$1 name=$2
  shift 2
  "$@" </dev/null >"$dir/log/$name.out" 2>&1 &
  echo "$!" >>"$dir/pids"
}

# _rgw_wait SECONDS DESC CMD...: poll CMD until it succeeds.
_rgw_wait() {
  local limit=$1 desc=$2 t=0
  shift 2
  while ! "$@" >/dev/null 2>&1; do
    sleep 0.2
    t=$((t + 1))
    if [ "$t" -ge $((limit * 5)) ]; then
      echo "rgw.sh: timed out after ${limit}s waiting for $desc" >&2
      return 1
    fi
  done
}

rgw_stop() {
  local dir=${1:?usage: rgw_stop DIR} pid i alive
  [ -f "$dir/pids" ] || return 0
  # Stop radosgw first, then the OSD, then the mon: reverse start order.
  for pid in $(tac "$dir/pids"); do
    kill "$pid" 2>/dev/null || true
  done
  for ((i = 0; i < 100; i++)); do
    alive=0
    for pid in $(cat "$dir/pids"); do
      kill -0 "$pid" 2>/dev/null && alive=1
    done
    [ "$alive" -eq 0 ] && break
    sleep 0.1
  done
  for pid in $(cat "$dir/pids"); do
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -f "$dir/pids"
}

_rgw_start() {
  local dir=$1
  mkdir -p "$dir" || return 1
  dir=$(cd "$dir" && pwd)
  rm -rf "$dir/mon" "$dir/osd" "$dir/log" "$dir/run" "$dir/pids"
  mkdir -p "$dir/mon" "$dir/osd/ceph-0" "$dir/log" "$dir/run" "$dir/rgw"
  local fsid monport port uuid conf=$dir/ceph.conf
  fsid=$(cat /proc/sys/kernel/random/uuid)
  uuid=$(cat /proc/sys/kernel/random/uuid)
  monport=$(_rgw_free_port) || return 1
  port=$(_rgw_free_port) || return 1
  while [ "$port" = "$monport" ]; do port=$(_rgw_free_port) || return 1; done
  # A TLS endpoint too, with a self-signed certificate for 127.0.0.1 and
  # localhost, for the tests of certificate checks and AWS_CA_BUNDLE.
  # RGW_BEAST_OPTIONS (e.g. tcp_nodelay=1) is appended to the beast options, for bench/s3.sh.
  local tlsport frontends="beast endpoint=127.0.0.1:$port${RGW_BEAST_OPTIONS:+ $RGW_BEAST_OPTIONS}"
  if command -v openssl >/dev/null 2>&1 &&
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
      -addext "subjectAltName=DNS:localhost,DNS:$RGW_BUCKET.localhost,IP:127.0.0.1" \
      -keyout "$dir/tls.key" -out "$dir/tls.crt" >/dev/null 2>&1; then
    tlsport=$(_rgw_free_port) || return 1
    while [ "$tlsport" = "$port" ] || [ "$tlsport" = "$monport" ]; do
      tlsport=$(_rgw_free_port) || return 1
    done
    frontends="$frontends ssl_endpoint=127.0.0.1:$tlsport"
    frontends="$frontends ssl_certificate=$dir/tls.crt ssl_private_key=$dir/tls.key"
  fi
  cat >"$conf" <<CONF
[global]
fsid = $fsid
mon_host = v2:127.0.0.1:$monport
public_addr = 127.0.0.1
ms_bind_msgr1 = false
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
ms_mon_client_mode = crc
keyring = /dev/null
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
mon_allow_pool_size_one = true
mon_max_pg_per_osd = 1000
mon_warn_on_pool_no_redundancy = false
paxos_propose_interval = 0.1
run_dir = $dir/run
admin_socket = $dir/run/\$name.asok
log_file = $dir/log/\$name.log
pid_file = $dir/run/\$name.pid
mon_data = $dir/mon/\$cluster-\$id
osd_data = $dir/osd/\$cluster-\$id
osd_objectstore = memstore
memstore_device_bytes = 4294967296
osd_max_object_name_len = 460
osd_max_object_namespace_len = 64
[client.rgw]
rgw_frontends = $frontends
rgw_data = $dir/rgw
rgw_enable_usage_log = false
rgw_dns_name = localhost
CONF
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$monport]" --clobber \
    "$dir/monmap" >"$dir/log/setup.out" 2>&1 || { cat "$dir/log/setup.out" >&2; return 1; }
  ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap" --keyring /dev/null \
    >>"$dir/log/setup.out" 2>&1 || { cat "$dir/log/setup.out" >&2; return 1; }
  _rgw_spawn "$dir" mon ceph-mon -c "$conf" -i a -f
  _rgw_wait 30 "ceph-mon" timeout 5 ceph -c "$conf" mon stat || { _rgw_logs "$dir"; return 1; }
  ceph -c "$conf" osd new "$uuid" >>"$dir/log/setup.out" 2>&1 &&
    ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$uuid" >>"$dir/log/setup.out" 2>&1 ||
    { _rgw_logs "$dir"; cat "$dir/log/setup.out" >&2; return 1; }
  _rgw_spawn "$dir" osd ceph-osd -c "$conf" -i 0 -f
  _rgw_wait 60 "ceph-osd up" bash -c "ceph -c '$conf' osd dump 2>/dev/null | grep -q '^osd.0 up'" ||
    { _rgw_logs "$dir"; return 1; }
  _rgw_spawn "$dir" rgw radosgw -c "$conf" -n client.rgw -f
  _rgw_wait 90 "radosgw on 127.0.0.1:$port" curl -sf -o /dev/null "http://127.0.0.1:$port/" ||
    { _rgw_logs "$dir"; return 1; }
  radosgw-admin -c "$conf" user create --uid=pltest --display-name=pltest \
    --access-key="$RGW_ACCESS_KEY" --secret-key="$RGW_SECRET_KEY" >>"$dir/log/setup.out" 2>&1 ||
    { _rgw_logs "$dir"; cat "$dir/log/setup.out" >&2; return 1; }
  AWS_ACCESS_KEY_ID=$RGW_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$RGW_SECRET_KEY \
    AWS_REGION=$RGW_REGION AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
    aws --endpoint-url "http://127.0.0.1:$port" s3api create-bucket --bucket "$RGW_BUCKET" \
    >>"$dir/log/setup.out" 2>&1 || { _rgw_logs "$dir"; cat "$dir/log/setup.out" >&2; return 1; }
  # A second user whose bucket policy allows only the prefix "scoped/", as a
  # least-privilege backup user would have.
  radosgw-admin -c "$conf" user create --uid=plscoped --display-name=plscoped \
    --access-key="$RGW_SCOPED_ACCESS_KEY" --secret-key="$RGW_SCOPED_SECRET_KEY" \
    >>"$dir/log/setup.out" 2>&1 || { _rgw_logs "$dir"; cat "$dir/log/setup.out" >&2; return 1; }
  radosgw-admin -c "$conf" user create --uid=plreader --display-name=plreader \
    --access-key="$RGW_READONLY_ACCESS_KEY" --secret-key="$RGW_READONLY_SECRET_KEY" \
    >>"$dir/log/setup.out" 2>&1 || { _rgw_logs "$dir"; cat "$dir/log/setup.out" >&2; return 1; }
  cat >"$dir/policy.json" <<POLICY
{"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam:::user/plscoped"]},
   "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::$RGW_BUCKET",
   "Condition": {"StringLike": {"s3:prefix": ["scoped/*"]}}},
  {"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam:::user/plscoped"]},
   "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
   "Resource": "arn:aws:s3:::$RGW_BUCKET/scoped/*"},
  {"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam:::user/plreader"]},
   "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::$RGW_BUCKET"},
  {"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam:::user/plreader"]},
   "Action": "s3:GetObject", "Resource": "arn:aws:s3:::$RGW_BUCKET/*"}]}
POLICY
  AWS_ACCESS_KEY_ID=$RGW_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$RGW_SECRET_KEY \
    AWS_REGION=$RGW_REGION AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
    aws --endpoint-url "http://127.0.0.1:$port" s3api put-bucket-policy --bucket "$RGW_BUCKET" \
    --policy "file://$dir/policy.json" >>"$dir/log/setup.out" 2>&1 ||
    { _rgw_logs "$dir"; cat "$dir/log/setup.out" >&2; return 1; }
  local u
  for u in plprotected:$RGW_PROTECTED_ACCESS_KEY:$RGW_PROTECTED_SECRET_KEY \
    plrecovery:$RGW_RECOVERY_ACCESS_KEY:$RGW_RECOVERY_SECRET_KEY \
    plmaint:$RGW_MAINT_ACCESS_KEY:$RGW_MAINT_SECRET_KEY; do
    radosgw-admin -c "$conf" user create --uid="${u%%:*}" --display-name="${u%%:*}" \
      --access-key="$(echo "$u" | cut -d: -f2)" --secret-key="${u##*:}" \
      >>"$dir/log/setup.out" 2>&1 || { _rgw_logs "$dir"; cat "$dir/log/setup.out" >&2; return 1; }
  done
  AWS_ACCESS_KEY_ID=$RGW_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$RGW_SECRET_KEY \
    AWS_REGION=$RGW_REGION AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
    aws --endpoint-url "http://127.0.0.1:$port" s3api create-bucket --bucket "$RGW_LOCKED_BUCKET" \
    --object-lock-enabled-for-bucket >>"$dir/log/setup.out" 2>&1 ||
    { _rgw_logs "$dir"; cat "$dir/log/setup.out" >&2; return 1; }
  cat >"$dir/env" <<ENV
export PL_TEST_S3_ENDPOINT=http://127.0.0.1:$port
export PL_TEST_S3_BUCKET=$RGW_BUCKET
export AWS_ACCESS_KEY_ID=$RGW_ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$RGW_SECRET_KEY
export AWS_REGION=$RGW_REGION
export PL_TEST_S3_SCOPED_ACCESS_KEY_ID=$RGW_SCOPED_ACCESS_KEY
export PL_TEST_S3_SCOPED_SECRET_ACCESS_KEY=$RGW_SCOPED_SECRET_KEY
export PL_TEST_S3_READONLY_ACCESS_KEY_ID=$RGW_READONLY_ACCESS_KEY
export PL_TEST_S3_READONLY_SECRET_ACCESS_KEY=$RGW_READONLY_SECRET_KEY
export PL_TEST_S3_LOCKED_BUCKET=$RGW_LOCKED_BUCKET
export PL_TEST_S3_PROTECTED_ACCESS_KEY_ID=$RGW_PROTECTED_ACCESS_KEY
export PL_TEST_S3_PROTECTED_SECRET_ACCESS_KEY=$RGW_PROTECTED_SECRET_KEY
export PL_TEST_S3_RECOVERY_ACCESS_KEY_ID=$RGW_RECOVERY_ACCESS_KEY
export PL_TEST_S3_RECOVERY_SECRET_ACCESS_KEY=$RGW_RECOVERY_SECRET_KEY
export PL_TEST_S3_MAINT_ACCESS_KEY_ID=$RGW_MAINT_ACCESS_KEY
export PL_TEST_S3_MAINT_SECRET_ACCESS_KEY=$RGW_MAINT_SECRET_KEY
ENV
  if [ -n "${tlsport:-}" ]; then
    echo "export PL_TEST_S3_TLS_ENDPOINT=https://127.0.0.1:$tlsport" >>"$dir/env"
    echo "export PL_TEST_S3_TLS_CA=$dir/tls.crt" >>"$dir/env"
  fi
}

# rgw_start DIR: start everything under DIR and export the variables.
rgw_start() {
  local dir=${1:?usage: rgw_start DIR}
  if ! _rgw_start "$dir"; then
    rgw_stop "$dir"
    return 1
  fi
  # shellcheck disable=SC1091
  . "$dir/env"
}

# rgw_ensure: for tests that sourced lib.sh. Reuse the gateway the runner
# exported in PL_TEST_S3_ENDPOINT, or start a private one under $TMP/rgw and
# stop it at exit. Skips the test (exit 77) when Ceph is not installed.
rgw_ensure() {
  if [ -n "${PL_TEST_S3_ENDPOINT:-}" ]; then
    : "${PL_TEST_S3_BUCKET:?PL_TEST_S3_ENDPOINT is set but PL_TEST_S3_BUCKET is not}"
    # A shared gateway: remove what this test wrote under s3://BUCKET/$(basename $TMP)/.
    if command -v aws >/dev/null 2>&1; then
      cleanup_add "AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null" \
        "aws --endpoint-url '$PL_TEST_S3_ENDPOINT' s3 rm --quiet --recursive" \
        "'s3://$PL_TEST_S3_BUCKET/$(basename "$TMP")/' >/dev/null 2>&1"
    fi
    return 0
  fi
  local t
  for t in ceph ceph-mon ceph-osd radosgw radosgw-admin monmaptool aws curl; do
    requires "$t"
  done
  cleanup_add rgw_stop "$TMP/rgw"
  rgw_start "$TMP/rgw" || fail "could not start Ceph RGW (logs above)"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -uo pipefail
  case ${1:-} in
    start)
      [ -n "${2:-}" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
      for t in ceph ceph-mon ceph-osd radosgw radosgw-admin monmaptool aws curl; do
        command -v "$t" >/dev/null 2>&1 || { echo "rgw.sh: $t is not installed" >&2; exit 77; }
      done
      _rgw_start "$2" || { rgw_stop "$2"; exit 1; }
      cat "$(cd "$2" && pwd)/env"
      ;;
    stop)
      [ -n "${2:-}" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
      rgw_stop "$2"
      ;;
    *)
      echo "usage: $0 start|stop DIR" >&2
      exit 2
      ;;
  esac
fi
