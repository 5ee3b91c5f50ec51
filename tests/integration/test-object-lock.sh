#!/usr/bin/env bash
# Object Lock and the three hosts of contrib/s3/bucket-policy.json, on a real
# Ceph RGW bucket created with Object Lock: init --object-lock writes every
# object retained; the protected host backs up with append-only credentials
# and cannot delete; the recovery host restores, verifies and lists with
# read-only ones; objects hidden by delete markers and shadowed by garbage
# versions (the config too) are reported by verify and brought back by
# repair --undelete; a locked version cannot be deleted; forget and prune
# hide at once, renew the retention of what stays, and delete hidden
# versions only once their retention has ended.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/rgw.sh"
[ -x "$PL" ] || fail "pilotlight not built: $PL"
requires aws
rgw_ensure
[ -n "${PL_TEST_S3_LOCKED_BUCKET:-}" ] || fail "the gateway has no Object Lock bucket (rgw.sh)"
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_PROFILE AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 || true
export PILOTLIGHT_S3_BACKOFF_MS=20
# Debian's aws CLI where there is one: a newer one from elsewhere on PATH
# may not parse RGW's error replies.
AWS=$(command -v /usr/bin/aws || command -v aws)
EP=$PL_TEST_S3_ENDPOINT LB=$PL_TEST_S3_LOCKED_BUCKET
pre=$(basename "$TMP")
REPO="s3:$EP/$LB/$pre/repo"
admin_key=$AWS_ACCESS_KEY_ID admin_secret=$AWS_SECRET_ACCESS_KEY
# as USER CMD...: run CMD with USER's credentials. admin owns the bucket and
# sets its policy; the objects the others write are theirs, and only the
# policy lets the others read them.
as() {
  local u=$1
  shift
  case $u in
  admin) AWS_ACCESS_KEY_ID=$admin_key AWS_SECRET_ACCESS_KEY=$admin_secret "$@" ;;
  protected) AWS_ACCESS_KEY_ID=$PL_TEST_S3_PROTECTED_ACCESS_KEY_ID \
    AWS_SECRET_ACCESS_KEY=$PL_TEST_S3_PROTECTED_SECRET_ACCESS_KEY "$@" ;;
  recovery) AWS_ACCESS_KEY_ID=$PL_TEST_S3_RECOVERY_ACCESS_KEY_ID \
    AWS_SECRET_ACCESS_KEY=$PL_TEST_S3_RECOVERY_SECRET_ACCESS_KEY "$@" ;;
  maint) AWS_ACCESS_KEY_ID=$PL_TEST_S3_MAINT_ACCESS_KEY_ID \
    AWS_SECRET_ACCESS_KEY=$PL_TEST_S3_MAINT_SECRET_ACCESS_KEY "$@" ;;
  esac
}
s3api() { "$AWS" --endpoint-url "$EP" s3api "$@"; }
keys_under() { as maint s3api list-objects-v2 --bucket "$LB" --prefix "$pre/repo/$1" --query 'Contents[].Key' --output text | tr '\t' '\n' | grep -v '^None$' || true; }
retain_until() { as maint s3api head-object --bucket "$LB" --key "$1" --query ObjectLockRetainUntilDate --output text; }
one_line() { [ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "$1: not one line: $(cat "$TMP/err")"; }

# The documented policy, for this test's prefix.
sed -e "s|@BUCKET@|$LB|g" -e "s|@PREFIX@|$pre/repo/|g" \
  -e 's|@PROTECTED@|arn:aws:iam:::user/plprotected|' -e 's|@RECOVERY@|arn:aws:iam:::user/plrecovery|' \
  -e 's|@MAINTENANCE@|arn:aws:iam:::user/plmaint|' "$top/contrib/s3/bucket-policy.json" >"$TMP/policy.json"
as admin s3api put-bucket-policy --bucket "$LB" --policy "file://$TMP/policy.json"

# init --object-lock: bad arguments, a bucket without Object Lock.
expect_fail $PL -r "$REPO" init --object-lock 0
expect_fail $PL -r "$REPO" init --object-lock-mode compliance
expect_fail $PL -r "$REPO" init --object-lock 3 --object-lock-mode sometimes
expect_fail as admin $PL -r "s3:$EP/$PL_TEST_S3_BUCKET/$pre/nolock" init --object-lock 3
one_line "init --object-lock on a bucket without it"
grep -q "does not have Object Lock enabled" "$TMP/err" || fail "no-lock bucket: $(cat "$TMP/err")"
expect_fail $PL -r "$TMP/folder" init --object-lock 3
grep -q "a folder has no Object Lock" "$TMP/err" || fail "folder: $(cat "$TMP/err")"
[ ! -e "$TMP/folder" ] || fail "a refused init --object-lock created the folder"

# The maintenance host creates it; every object is retained for 2 days.
as maint $PL -r "$REPO" init --object-lock 2 >"$TMP/out"
grep -q "retention of 2 days (governance mode)" "$TMP/out" || fail "init: $(cat "$TMP/out")"

# The protected host backs up with append-only credentials.
make_disk "$TMP/disk" 24
as protected $PL -r "$REPO" backup --disk vm1 "$TMP/disk" >/dev/null 2>"$TMP/err" ||
  fail "append-only backup: $(cat "$TMP/err")"
cp "$TMP/disk" "$TMP/disk.v1"
scribble "$TMP/disk" $((5 << 20)) 300000 >"$TMP/ext"
as protected $PL -r "$REPO" backup --disk vm1 "$TMP/disk" --changed-extents "$TMP/ext" \
  >/dev/null 2>"$TMP/err" || fail "append-only incremental: $(cat "$TMP/err")"
cp "$TMP/disk" "$TMP/disk.v2"
[ -z "$(keys_under locks/)" ] || fail "the backups left lock objects"
want=$(date -u -d '+2 days' +%s)
for key in $pre/repo/config $(keys_under packs/ | head -n1) $(keys_under snapshots/ | head -n1) \
  $(keys_under index/ | head -n1) $(keys_under keys/); do
  mode=$(as maint s3api head-object --bucket "$LB" --key "$key" --query ObjectLockMode --output text)
  [ "$mode" = GOVERNANCE ] || fail "$key: lock mode $mode"
  got=$(date -u -d "$(retain_until "$key")" +%s)
  [ $((want - got)) -lt 600 ] && [ $((got - want)) -lt 600 ] || fail "$key retained until $got, not about $want"
done
# ... and cannot delete what it wrote.
snap1=$(keys_under snapshots/ | head -n1)
if as protected s3api delete-object --bucket "$LB" --key "$snap1" 2>"$TMP/err"; then
  fail "the protected host could delete $snap1"
fi
keys_under snapshots/ | grep -qx "$snap1" || fail "the protected host's refused delete hid $snap1"

# The recovery host reads with read-only credentials, and says nothing alarming.
as recovery $PL -r "$REPO" snapshots >"$TMP/out" 2>"$TMP/err" || fail "recovery snapshots: $(cat "$TMP/err")"
[ "$(grep -c ' vm1 ' "$TMP/out")" -eq 2 ] || fail "recovery snapshots: $(cat "$TMP/out")"
as recovery $PL -r "$REPO" restore vm1 "$TMP/r" >/dev/null 2>"$TMP/err" || fail "recovery restore: $(cat "$TMP/err")"
[ -s "$TMP/err" ] && fail "recovery restore said: $(cat "$TMP/err")"
cmp "$TMP/disk.v2" "$TMP/r" || fail "recovery restore differs"
rm -f "$TMP/r"
as recovery $PL -r "$REPO" verify --read-data >"$TMP/out" 2>"$TMP/err" || fail "recovery verify: $(cat "$TMP/err")"
grep -q "no problems found" "$TMP/out" || fail "recovery verify: $(cat "$TMP/out")"

# An attacker hides a snapshot and a pack behind delete markers (with
# credentials that may delete: the maintenance host's), and shadows the other snapshot with garbage
# (with the protected host's, which may put).
snap2=$(keys_under snapshots/ | tail -n1)
pack=$(keys_under packs/ | head -n1)
as maint s3api delete-object --bucket "$LB" --key "$snap1" >/dev/null
as maint s3api delete-object --bucket "$LB" --key "$pack" >/dev/null
echo garbage >"$TMP/garbage"
as protected s3api put-object --bucket "$LB" --key "$snap2" --body "$TMP/garbage" >/dev/null
expect_fail as recovery $PL -r "$REPO" verify
grep -q "^damaged: ${snap1#"$pre/repo/"} is hidden by a delete marker" "$TMP/out" ||
  fail "verify did not report the hidden snapshot: $(cat "$TMP/out")"
grep -q "^damaged: ${snap2#"$pre/repo/"} is shadowed" "$TMP/out" || fail "verify did not report the shadowed snapshot"
grep -q "repair --undelete" "$TMP/err" || fail "verify's advice: $(cat "$TMP/err")"
[ -z "$(keys_under damage/)" ] || fail "verify recorded hidden objects as damage"
# The config too: every command then refuses.
as protected s3api put-object --bucket "$LB" --key "$pre/repo/config" --body "$TMP/garbage" >/dev/null
expect_fail as recovery $PL -r "$REPO" snapshots
one_line "snapshots with a shadowed config"

# Only versions can bring them back, and a locked version cannot be deleted,
# not even by the maintenance host.
vid=$(as maint s3api list-object-versions --bucket "$LB" --prefix "$pack" \
  --query 'Versions[0].VersionId' --output text)
if as maint s3api delete-object --bucket "$LB" --key "$pack" --version-id "$vid" 2>"$TMP/err"; then
  fail "deleted a locked version"
fi
as maint $PL -r "$REPO" repair --undelete --dry-run >"$TMP/out" || fail "undelete --dry-run"
grep -q "^would restore config" "$TMP/out" || fail "undelete --dry-run: $(cat "$TMP/out")"
expect_fail as recovery $PL -r "$REPO" snapshots
as maint $PL -r "$REPO" repair --undelete >"$TMP/out" 2>"$TMP/err" || fail "undelete: $(cat "$TMP/out" "$TMP/err")"
for k in config "${snap1#"$pre/repo/"}" "${snap2#"$pre/repo/"}" "${pack#"$pre/repo/"}"; do
  grep -q "^restored $k " "$TMP/out" || fail "undelete did not restore $k: $(cat "$TMP/out")"
done
grep -q "2 hidden and 2 shadowed object(s) found, 4 restored, 0 cannot be" "$TMP/out" ||
  fail "undelete summary: $(cat "$TMP/out")"
as recovery $PL -r "$REPO" verify --read-data >"$TMP/out" 2>&1 || fail "verify after undelete: $(cat "$TMP/out")"
as recovery $PL -r "$REPO" restore "vm1@${snap1##*/}" "$TMP/r1" >/dev/null
as recovery $PL -r "$REPO" restore "vm1@${snap2##*/}" "$TMP/r2" >/dev/null
if cmp -s "$TMP/r1" "$TMP/disk.v1"; then old=$snap1 r_old=$TMP/r1 r_new=$TMP/r2; else old=$snap2 r_old=$TMP/r2 r_new=$TMP/r1; fi
cmp "$r_old" "$TMP/disk.v1" || fail "the older snapshot does not restore byte-identical after undelete"
cmp "$r_new" "$TMP/disk.v2" || fail "the newer snapshot does not restore byte-identical after undelete"
rm -f "$TMP/r1" "$TMP/r2"
as maint $PL -r "$REPO" repair --undelete >"$TMP/out" || fail "second undelete"
grep -q "0 hidden and 0 shadowed" "$TMP/out" || fail "second undelete found more: $(cat "$TMP/out")"

# forget and prune (maintenance): forget hides the snapshot at once; prune
# renews the retention of what stays and leaves the retained versions.
before=$(date -u -d "$(retain_until "$pre/repo/config")" +%s)
sleep 2
as maint $PL -r "$REPO" forget "vm1@${old##*/}" >/dev/null
[ "$(as recovery $PL -r "$REPO" snapshots | grep -c ' vm1 ')" -eq 1 ] || fail "forget did not hide the snapshot"
as maint $PL -r "$REPO" prune --grace 0 --max-unused 0 --json >"$TMP/prune.json" || fail "prune"
[ "$(json_field lock_renewed <"$TMP/prune.json")" -gt 0 ] || fail "prune renewed nothing: $(cat "$TMP/prune.json")"
[ "$(json_field lock_waiting <"$TMP/prune.json")" -gt 0 ] || fail "prune retained nothing: $(cat "$TMP/prune.json")"
after=$(date -u -d "$(retain_until "$pre/repo/config")" +%s)
[ "$after" -gt "$before" ] || fail "prune did not extend the retention of the config ($before -> $after)"
as maint s3api list-object-versions --bucket "$LB" --prefix "$old" --query 'Versions[].VersionId' \
  --output text | grep -q . || fail "prune deleted the retained version of $old"
# undelete leaves a forgotten snapshot hidden.
as maint $PL -r "$REPO" repair --undelete >"$TMP/out" || fail "undelete after forget"
[ "$(as recovery $PL -r "$REPO" snapshots | grep -c ' vm1 ')" -eq 1 ] || fail "undelete brought back a forgotten snapshot"
as recovery $PL -r "$REPO" restore vm1 "$TMP/r" >/dev/null
cmp "$TMP/r" "$TMP/disk.v2" || fail "restore after prune differs"
rm -f "$TMP/r"

# Once the retention ends, prune deletes the hidden versions (a test hook
# shortens the retention to seconds). Compliance mode this time.
export PILOTLIGHT_TEST_LOCK_SECONDS=4
R2="s3:$EP/$LB/$pre/repo2"
sed -i "s|$pre/repo/|$pre/repo2/|g" "$TMP/policy.json"
as admin s3api put-bucket-policy --bucket "$LB" --policy "file://$TMP/policy.json"
as maint $PL -r "$R2" init --object-lock 1 --object-lock-mode compliance >/dev/null
as protected $PL -r "$R2" backup --disk vm2 "$TMP/disk.v1" >/dev/null
as protected $PL -r "$R2" backup --disk vm2 "$TMP/disk.v2" >/dev/null
mode=$(as maint s3api head-object --bucket "$LB" --key "$pre/repo2/config" --query ObjectLockMode --output text)
[ "$mode" = COMPLIANCE ] || fail "compliance: $mode"
first=$(as recovery $PL -r "$R2" snapshots --json | grep -o '"id":"[0-9a-f]*"' | head -n1 | cut -d'"' -f4)
as maint $PL -r "$R2" forget "vm2@${first:0:12}" >/dev/null
sleep 5
as maint $PL -r "$R2" prune --grace 0 --max-unused 0 --json >"$TMP/prune.json" || fail "prune after the retention"
[ "$(json_field lock_purged <"$TMP/prune.json")" -gt 0 ] || fail "prune purged nothing: $(cat "$TMP/prune.json")"
[ "$(json_field lock_waiting <"$TMP/prune.json")" -eq 0 ] || fail "prune left retained versions: $(cat "$TMP/prune.json")"
left=$(as maint s3api list-object-versions --bucket "$LB" --prefix "$pre/repo2/snapshots/$first" \
  --query 'length(Versions || `[]`)' --output text)
[ "$left" = 0 ] || fail "the forgotten snapshot's versions stay: $left"
as recovery $PL -r "$R2" restore vm2 "$TMP/r" >/dev/null
cmp "$TMP/r" "$TMP/disk.v2" || fail "restore after the purge differs"
unset PILOTLIGHT_TEST_LOCK_SECONDS
echo "ok"
