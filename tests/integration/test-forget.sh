#!/usr/bin/env bash
# forget over a synthetic two-year history made by real backups of a tiny
# disk (PILOTLIGHT_TEST_TIME sets each backup's time): the kept set checked
# against a table worked out by hand, --dry-run removes nothing, forget by
# id, the latest only when named, every kept snapshot restores
# byte-identical, verify is clean and reports a snapshot deleted by hand,
# and a replica whose snapshot was forgotten converges by comparing blocks.
source "$(dirname "$0")/lib.sh"

repo=$(new_repo)
$PL -r "$repo" init >/dev/null
if is_local "$repo"; then
  nrecords() { find "$repo/forgotten" -type f ! -name '*.tmp.*' 2>/dev/null | wc -l; }
  delete_object() { rm "$repo/$1"; }
else
  TOOL=${S3_TOOL:-$(dirname "$PL")/tests/unit/s3-tool}
  [ -x "$TOOL" ] || fail "s3-tool not built: $TOOL"
  nrecords() { "$TOOL" "$repo" list forgotten/ | wc -l; }
  delete_object() { "$TOOL" "$repo" del "$1"; }
fi
nsnaps() { $PL -r "$repo" snapshots "$@" --json | grep -c '"id"' || true; }

# The history of disk vm, oldest first: quarterly in 2024, monthly in 2025,
# then weekly, six-hourly and at last every 15 minutes (the seed cycle).
times=(
  2024-01-15T12:00 2024-04-15T12:00 2024-07-15T12:00 2024-10-15T12:00
  2025-01-01T00:00 2025-02-01T00:00 2025-03-01T00:00 2025-04-01T00:00
  2025-05-01T00:00 2025-06-01T00:00 2025-07-01T00:00 2025-08-01T00:00
  2025-09-01T00:00 2025-10-01T00:00 2025-11-01T00:00 2025-12-01T00:00
  2025-12-14T12:00 2025-12-21T12:00 2025-12-22T12:00 2025-12-28T12:00
  2025-12-30T00:00 2025-12-30T06:00 2025-12-30T12:00 2025-12-30T18:00
  2025-12-31T00:00 2025-12-31T00:15 2025-12-31T00:30 2025-12-31T00:45
  2025-12-31T01:00 2025-12-31T06:00 2025-12-31T12:00 2025-12-31T18:00
)
policy=(--keep-last 2 --keep-hourly 5 --keep-daily 3 --keep-weekly 3 --keep-monthly 3
  --keep-yearly 3)
# What that policy does, worked out by hand: 2025-12-31 is a Wednesday in
# ISO week 2026-W01; 12-28 and 12-21 are the Sundays ending 2025-W52 and
# W51; the hour 00 of 12-31 ends at 00:45; 2024 survives as a year.
expected="2024-01-15T12:00:00Z remove -
2024-04-15T12:00:00Z remove -
2024-07-15T12:00:00Z remove -
2024-10-15T12:00:00Z keep yearly
2025-01-01T00:00:00Z remove -
2025-02-01T00:00:00Z remove -
2025-03-01T00:00:00Z remove -
2025-04-01T00:00:00Z remove -
2025-05-01T00:00:00Z remove -
2025-06-01T00:00:00Z remove -
2025-07-01T00:00:00Z remove -
2025-08-01T00:00:00Z remove -
2025-09-01T00:00:00Z remove -
2025-10-01T00:00:00Z keep monthly
2025-11-01T00:00:00Z keep monthly
2025-12-01T00:00:00Z remove -
2025-12-14T12:00:00Z remove -
2025-12-21T12:00:00Z keep weekly
2025-12-22T12:00:00Z remove -
2025-12-28T12:00:00Z keep daily,weekly
2025-12-30T00:00:00Z remove -
2025-12-30T06:00:00Z remove -
2025-12-30T12:00:00Z remove -
2025-12-30T18:00:00Z keep daily
2025-12-31T00:00:00Z remove -
2025-12-31T00:15:00Z remove -
2025-12-31T00:30:00Z remove -
2025-12-31T00:45:00Z keep hourly
2025-12-31T01:00:00Z keep hourly
2025-12-31T06:00:00Z keep hourly
2025-12-31T12:00:00Z keep last,hourly
2025-12-31T18:00:00Z keep latest,last,hourly,daily,weekly,monthly,yearly"

head -c $((1 << 20)) /dev/urandom >"$TMP/vm"
ids=()
backup() { # backup DISK TIME COPY: change 4 KiB of $TMP/DISK, back up at TIME, keep a copy
  scribble "$TMP/$1" $((RANDOM % 250 * 4096)) 4096 >/dev/null
  PILOTLIGHT_TEST_TIME=$(date -u -d "$2" +%s) $PL -r "$repo" backup --disk "$1" "$TMP/$1" \
    --block-size 64K --json >"$TMP/b.json"
  cp "$TMP/$1" "$3"
}
RANDOM=11
for i in "${!times[@]}"; do
  backup vm "${times[$i]}" "$TMP/v.$i"
  ids+=("$(json_field id <"$TMP/b.json")")
done
vm=vm
[ "$(nsnaps --disk $vm)" -eq 32 ] || fail "expected 32 snapshots"
cp "$TMP/vm" "$TMP/db"
for d in 2025-06-01T00:00 2025-06-02T00:00 2025-06-03T00:00; do
  backup db "$d" "$TMP/db.last"
done
last=$((${#times[@]} - 1))

# A warm replica at a snapshot the policy removes (2025-12-31T00:00).
held=24
$PL -r "$repo" replica sync --disk $vm "$TMP/rep" --snapshot "${ids[$held]}" >/dev/null
cmp "$TMP/v.$held" "$TMP/rep"

# No rule: a usage error, and nothing removed.
for args in "" "--disk $vm" "--keep-daily 0" "--keep-within 15x" "--keep-daily 2 $vm@${ids[0]}" \
  "$vm" "--nope"; do
  rc=0
  # shellcheck disable=SC2086 # split on purpose
  $PL -r "$repo" forget $args >/dev/null 2>"$TMP/err" || rc=$?
  [ "$rc" -eq 2 ] || fail "forget $args: exit $rc, not 2"
done
[ "$(nsnaps)" -eq 35 ] || fail "a refused forget removed something"

# --dry-run lists every snapshot of the disk, as the table says, and removes nothing.
$PL -r "$repo" forget --disk $vm "${policy[@]}" --dry-run >"$TMP/dry"
grep -q '^32 snapshots of 1 disk: 11 kept, 21 to remove (dry run: nothing was removed)$' \
  "$TMP/dry" || fail "dry-run summary: $(tail -n1 "$TMP/dry")"
awk -v d=$vm '$2 == d {print $3, $4, $5}' "$TMP/dry" >"$TMP/got"
diff <(echo "$expected") "$TMP/got" || fail "dry run differs from the table"
[ "$(nsnaps)" -eq 35 ] || fail "--dry-run removed snapshots"
[ "$(nrecords)" -eq 0 ] || fail "--dry-run wrote a forget record"

# The real run: the same decisions, one record, the kept set left.
$PL -r "$repo" forget --disk $vm "${policy[@]}" --json >"$TMP/f.json"
[ "$(json_field removed <"$TMP/f.json")" = 21 ] || fail "json: $(cat "$TMP/f.json")"
[ "$(json_field kept <"$TMP/f.json")" = 11 ] || fail "json kept: $(cat "$TMP/f.json")"
grep -q '"record":"forgotten/[0-9a-f]\{64\}"' "$TMP/f.json" || fail "no record named in the json"
grep -o '"time":"[^"]*","time_unix":[0-9]*,"action":"keep"' "$TMP/f.json" | cut -d'"' -f4 \
  >"$TMP/kept.json"
diff <(echo "$expected" | awk '$2 == "keep" {print $1}') "$TMP/kept.json" ||
  fail "json keeps differ from the table"
[ "$(nrecords)" -eq 1 ] || fail "expected one forget record"
$PL -r "$repo" snapshots --disk $vm --json | grep -o '"time":"[^"]*"' | cut -d'"' -f4 >"$TMP/left"
diff <(echo "$expected" | awk '$2 == "keep" {print $1}') "$TMP/left" ||
  fail "the snapshots left differ from the table"
[ "$(nsnaps --disk db)" -eq 3 ] || fail "--disk $vm touched disk db"
$PL -r "$repo" verify >"$TMP/verify" || fail "verify after forget: $(cat "$TMP/verify")"

# Every kept snapshot restores byte-identical.
kept_idx=()
for i in "${!times[@]}"; do
  if echo "$expected" | sed -n "$((i + 1))p" | grep -q ' keep '; then kept_idx+=("$i"); fi
done
[ "${#kept_idx[@]}" -eq 11 ] || fail "table parse"
for i in "${kept_idx[@]}"; do
  $PL -r "$repo" restore "$vm@${ids[$i]:0:12}" "$TMP/r"
  cmp "$TMP/v.$i" "$TMP/r" || fail "snapshot $i (${times[$i]}) differs after forget"
  rm "$TMP/r"
done

# The replica's snapshot is gone: the next sync compares every block and
# writes only what differs.
$PL -r "$repo" replica sync --disk $vm "$TMP/rep" --json >"$TMP/s.json"
cmp "$TMP/v.$last" "$TMP/rep" || fail "replica differs after its snapshot was forgotten"
grep -q '"compared":true' "$TMP/s.json" || fail "sync did not compare: $(cat "$TMP/s.json")"
grep -q '"full":false' "$TMP/s.json" || fail "sync was full: $(cat "$TMP/s.json")"
grep -qF "the snapshot this replica held (${ids[$held]:0:12}) is no longer in the repository: compared every block of $TMP/rep with ${ids[$last]:0:12}" \
  "$TMP/s.json" || fail "sync did not say so: $(cat "$TMP/s.json")"
[ "$(json_field bytes_written <"$TMP/s.json")" -le $((7 * 8192)) ] ||
  fail "sync wrote more than the 7 changes: $(cat "$TMP/s.json")"
$PL -r "$repo" replica sync --disk $vm "$TMP/rep" --json | grep -q '"up_to_date":true' ||
  fail "replica not up to date after converging"

# Forget by id (a unique prefix), and the record says so.
$PL -r "$repo" forget "$vm@${ids[3]:0:10}" >"$TMP/out"
grep -q "^${ids[3]:0:12}  $vm .* remove  named$" "$TMP/out" || fail "by id: $(cat "$TMP/out")"
[ "$(nsnaps --disk $vm)" -eq 10 ] || fail "forget by id removed $((11 - $(nsnaps --disk $vm)))"
[ "$(nrecords)" -eq 2 ] || fail "forget by id wrote no record"
expect_fail $PL -r "$repo" forget "$vm@${ids[3]:0:10}"
grep -q "has no snapshot" "$TMP/err" || fail "forgotten id: $(cat "$TMP/err")"
expect_fail $PL -r "$repo" forget "$vm@latest"
grep -q "only by its id" "$TMP/err" || fail "latest by name: $(cat "$TMP/err")"

# A policy never removes the latest; naming it does, and says so.
$PL -r "$repo" forget --disk $vm --keep-within 1s --dry-run >"$TMP/out"
grep -q "^${ids[$last]:0:12}  $vm .* keep    latest,within$" "$TMP/out" ||
  fail "latest under a policy: $(cat "$TMP/out")"
$PL -r "$repo" forget "$vm@${ids[$last]}" >"$TMP/out"
grep -q "^note: ${ids[$last]:0:12} was the latest snapshot of disk $vm; it is removed" "$TMP/out" ||
  fail "removing the latest by name: $(cat "$TMP/out")"
[ "$(nsnaps --disk $vm)" -eq 9 ] || fail "the named latest was not removed"
$PL -r "$repo" verify >"$TMP/verify" || fail "verify: $(cat "$TMP/verify")"

# Without --disk the policy applies to each disk on its own.
$PL -r "$repo" forget --keep-last 1 >"$TMP/out"
grep -q '^12 snapshots of 2 disks: 2 kept, 10 removed' "$TMP/out" || fail "all disks: $(cat "$TMP/out")"
[ "$(nsnaps --disk $vm)" -eq 1 ] && [ "$(nsnaps --disk db)" -eq 1 ] || fail "keep-last 1 per disk"
$PL -r "$repo" restore "$vm@${ids[$((last - 1))]:0:12}" "$TMP/r"
cmp "$TMP/v.$((last - 1))" "$TMP/r"
rm "$TMP/r"
$PL -r "$repo" verify >"$TMP/verify" || fail "verify: $(cat "$TMP/verify")"

# A snapshot deleted by hand, without a record: verify names the child
# that points at it.
parent=$($PL -r "$repo" snapshots --disk db --json | json_field id)
backup db 2025-06-04T00:00 "$TMP/db.last"
child=$(json_field id <"$TMP/b.json")
delete_object "snapshots/$parent"
expect_fail $PL -r "$repo" verify
grep -q "snapshot ${child:0:12} of disk db names parent ${parent:0:12}, which is gone without a forget record" \
  "$TMP/out" || fail "verify did not report the vanished parent: $(cat "$TMP/out")"
$PL -r "$repo" restore db "$TMP/r"
cmp "$TMP/db.last" "$TMP/r"
echo "ok"
