#!/usr/bin/env bash
# A backup killed with SIGKILL at several points leaves the repository valid
# and every committed snapshot restorable; the next run reuses what was stored
# rather than writing (or uploading) it again. Runs on a folder and on S3.
source "$(dirname "$0")/lib.sh"

repo=$(new_repo)
$PL -r "$repo" init >/dev/null
make_disk "$TMP/small" 8
$PL -r "$repo" backup --disk keep "$TMP/small" >/dev/null
head -c $((160 << 20)) /dev/urandom >"$TMP/disk"   # incompressible: ten packs

# npacks: how many whole packs the repository holds (S3 uploads are whole
# objects; a folder's half-written packs are *.tmp.* files).
if is_local "$repo"; then
  npacks() { find "$repo/packs" -type f ! -name '*.tmp.*' | wc -l; }
else
  TOOL=${S3_TOOL:-$(dirname "$PL")/tests/unit/s3-tool}
  [ -x "$TOOL" ] || fail "s3-tool not built: $TOOL"
  npacks() { "$TOOL" "$repo" list packs/ | wc -l; }
fi
# Kill once a given number of new packs exist, and at fixed early times.
for point in packs:1 packs:4 time:0.05 time:0.3 packs:8; do
  base=$(npacks)
  $PL -r "$repo" backup --disk big "$TMP/disk" --threads 1 >/dev/null 2>&1 &
  pid=$!
  case $point in
    packs:*) want=$((base + ${point#packs:}))
             for _ in $(seq 1 400); do [ "$(npacks)" -ge "$want" ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.01; done ;;
    time:*) sleep "${point#time:}" ;;
  esac
  kill -9 $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
  $PL -r "$repo" verify --read-data >/dev/null || fail "repository invalid after kill at $point"
  $PL -r "$repo" restore keep "$TMP/rk" && cmp "$TMP/small" "$TMP/rk" && rm "$TMP/rk"
  # Any snapshot of big that did commit is complete.
  if $PL -r "$repo" snapshots --disk big --json | grep -q '"id"'; then
    $PL -r "$repo" restore big "$TMP/rbig" && cmp "$TMP/disk" "$TMP/rbig" && rm "$TMP/rbig"
  fi
done

# Resume: kill a backup of new data once three packs of it are stored; the
# rerun must reuse them rather than store them again.
head -c $((320 << 20)) /dev/urandom >"$TMP/disk2"
base=$(npacks)
$PL -r "$repo" backup --disk big2 "$TMP/disk2" --threads 1 >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 1000); do [ "$(npacks)" -ge $((base + 3)) ] && break; sleep 0.01; done
kill -9 $pid
wait $pid 2>/dev/null && fail "the backup finished before it could be killed"
$PL -r "$repo" snapshots --disk big2 --json | grep -q '"id"' && fail "killed backup committed"
$PL -r "$repo" verify --read-data >/dev/null
$PL -r "$repo" backup --disk big2 "$TMP/disk2" --json >"$TMP/final.json"
new=$(json_field bytes_new <"$TMP/final.json")
[ "$new" -le $((320 * 1048576 - 3 * 16 * 1048576 + 1048576)) ] ||
  fail "rerun stored $new new bytes: the three stored packs were not reused"
$PL -r "$repo" verify --read-data >/dev/null
$PL -r "$repo" restore big2 "$TMP/rbig"
cmp "$TMP/disk2" "$TMP/rbig"
echo "OK (rerun stored $new of $((320 << 20)) bytes)"
