#!/usr/bin/env bash
# prune: after a history of backups with some snapshots deleted, prune frees
# the unreferenced packs and rewrites the sparse ones, merges the index,
# removes leftovers older than the grace and keeps younger ones; every
# remaining snapshot restores byte-identical, verify --read-data is clean,
# and a later backup dedups against what stayed. A snapshot that cannot be
# read makes prune refuse. Runs on a folder and on S3.
source "$(dirname "$0")/lib.sh"

repo=$(new_repo)
TOOL=${S3_TOOL:-$(dirname "$PL")/tests/unit/s3-tool}
[ -x "$TOOL" ] || fail "s3-tool not built: $TOOL"
# The store's view, the same for a folder and a bucket.
keys() { "$TOOL" "$repo" list "$1" | cut -d' ' -f1; }
stored() { "$TOOL" "$repo" list packs/ | awk '{s += $2} END {print s + 0}'; }

$PL -r "$repo" init >/dev/null
make_disk "$TMP/d" 24
# Six snapshots; each overwrites the same 3 MB (dead once overwritten) and
# adds 600 kB elsewhere (kept by every later snapshot).
ids=()
for i in 0 1 2 3 4 5; do
  if [ "$i" -gt 0 ]; then
    scribble "$TMP/d" $((3 << 20)) 3000000 >/dev/null
    scribble "$TMP/d" $(((12 + i) << 20)) 600000 >/dev/null
  fi
  cp "$TMP/d" "$TMP/d$i"
  ids+=("$($PL -r "$repo" backup --disk a "$TMP/d" --json | json_field id)")
done
$PL -r "$repo" backup --disk b "$TMP/d0" >/dev/null # shares every chunk with a@0

# Snapshots 1, 2 and 4 go.
$PL -r "$repo" forget "a@${ids[1]}" "a@${ids[2]}" "a@${ids[4]}" >/dev/null
keep=(0 3 5)

# Leftovers: an unindexed pack (a real one, from another repository) and,
# on a folder, temporary files; old ones and young ones.
other=$(new_repo)
$PL -r "$other" init >/dev/null
head -c 3000000 /dev/urandom >"$TMP/o1"
head -c 3000000 /dev/urandom >"$TMP/o2"
$PL -r "$other" backup --disk o "$TMP/o1" >/dev/null
p_old=$("$TOOL" "$other" list packs/ | cut -d' ' -f1)
$PL -r "$other" backup --disk o2 "$TMP/o2" >/dev/null
p_young=$("$TOOL" "$other" list packs/ | cut -d' ' -f1 | grep -v "$p_old")
for p in "$p_old" "$p_young"; do
  "$TOOL" "$other" get "$p" 100000000 >"$TMP/pack"
  "$TOOL" "$repo" put "$p" "$TMP/pack"
done
if is_local "$repo"; then
  touch -d '3 days ago' "$repo/$p_old"
  echo junk >"$repo/packs/00.tmp.1.1"
  echo junk >"$repo/index/ab.tmp.2.2"
  touch -d '2 days ago' "$repo/packs/00.tmp.1.1"
else
  # S3 sets its own times: "old" is everything with --grace 0, below.
  # An incomplete multipart upload, started by hand.
  requires curl
  bucket_url="${repo#s3:}"
  curl -sf --aws-sigv4 "aws:amz:${AWS_REGION:-us-east-1}:s3" \
    --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -X POST \
    -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
    "$bucket_url/packs/ff/ff00?uploads=" >/dev/null || fail "could not start a multipart upload"
  "$TOOL" "$repo" temp | grep -q '^packs/ff/ff00?uploadId=' || fail "incomplete upload not listed"
fi

# verify notes the leftovers with their byte counts, as notes, not damage.
$PL -r "$repo" verify >"$TMP/v0" || fail "verify with leftovers failed: $(cat "$TMP/v0")"
grep -q '^note: 2 pack(s) of [0-9]* bytes are listed by no index object' "$TMP/v0" ||
  fail "unindexed packs not noted: $(cat "$TMP/v0")"
if is_local "$repo"; then ntemp=2; else ntemp=1; fi
grep -q "^note: $ntemp temporary leftover(s) of [0-9]* bytes" "$TMP/v0" ||
  fail "temporary leftovers not noted: $(cat "$TMP/v0")"
$PL -r "$repo" verify --json >"$TMP/v0.json" || fail "verify --json failed"
[ "$(json_field temp_leftovers <"$TMP/v0.json")" -eq "$ntemp" ] || fail "temp_leftovers: $(cat "$TMP/v0.json")"
if is_local "$repo"; then
  [ "$(json_field temp_bytes <"$TMP/v0.json")" -eq 10 ] || fail "temp_bytes: $(cat "$TMP/v0.json")"
fi

before=$(stored)
npacks_before=$(keys packs/ | wc -l)
nindex_before=$(keys index/ | wc -l)

# A dry run changes nothing.
$PL -r "$repo" prune --dry-run >"$TMP/dry" || fail "dry run failed"
grep -q 'would delete\|would rewrite' "$TMP/dry" || fail "dry run lists nothing: $(cat "$TMP/dry")"
[ "$(stored)" -eq "$before" ] || fail "dry run changed the packs"
[ "$(keys index/ | wc -l)" -eq "$nindex_before" ] || fail "dry run changed the index"

# On a folder, --grace 24h removes the leftovers made old with touch and
# keeps the young ones. On S3 (which sets the times) --grace 7d keeps them
# all, and --grace 0 afterwards removes them all.
if is_local "$repo"; then grace=24h; else grace=7d; fi
$PL -r "$repo" prune --grace "$grace" --json >"$TMP/p1.json" || fail "prune failed"
after=$(stored)
[ "$after" -lt "$before" ] || fail "stored bytes did not go down: $before -> $after"
deleted=$(json_field packs_deleted <"$TMP/p1.json")
rewritten=$(json_field packs_rewritten <"$TMP/p1.json")
[ $((deleted + rewritten)) -ge 2 ] || fail "nothing deleted or rewritten: $(cat "$TMP/p1.json")"
[ "$(keys index/ | wc -l)" -eq 1 ] || fail "index not merged into one object: $(keys index/)"
# Every object written or deleted has its line: the new packs, and the
# index objects merged into the one.
written=$(json_field packs_written <"$TMP/p1.json")
[ "$(grep -o '"wrote packs/[^"]*' "$TMP/p1.json" | wc -l)" -eq "$written" ] ||
  fail "want $written 'wrote packs/' lines: $(cat "$TMP/p1.json")"
merged=$(json_field index_before <"$TMP/p1.json")
[ "$merged" -gt 1 ] && [ "$(grep -o '"deleted index/[^"]*' "$TMP/p1.json" | wc -l)" -eq "$merged" ] ||
  fail "want $merged 'deleted index/' lines: $(cat "$TMP/p1.json")"
keys packs/ | grep -qx "$p_young" || fail "young unindexed pack removed"
if is_local "$repo"; then
  keys packs/ | grep -qx "$p_old" && fail "old unindexed pack kept"
  [ -e "$repo/packs/00.tmp.1.1" ] && fail "old temporary file kept"
  [ -e "$repo/index/ab.tmp.2.2" ] || fail "young temporary file removed"
  [ "$(json_field leftover_temp <"$TMP/p1.json")" -eq 1 ] || fail "leftover_temp: $(cat "$TMP/p1.json")"
  [ "$(json_field leftover_packs <"$TMP/p1.json")" -eq 1 ] || fail "leftover_packs: $(cat "$TMP/p1.json")"
  [ "$(json_field leftovers_kept <"$TMP/p1.json")" -eq 2 ] || fail "leftovers_kept: $(cat "$TMP/p1.json")"
else
  [ "$(json_field leftovers_kept <"$TMP/p1.json")" -eq 3 ] || fail "young leftovers not kept: $(cat "$TMP/p1.json")"
  "$TOOL" "$repo" temp | grep -q '^packs/ff/ff00' || fail "young incomplete upload removed"
  $PL -r "$repo" prune --grace 0 --json >"$TMP/p1b.json"
  [ "$(json_field leftover_temp <"$TMP/p1b.json")" -eq 1 ] || fail "leftover_temp: $(cat "$TMP/p1b.json")"
  [ "$(json_field leftover_packs <"$TMP/p1b.json")" -eq 2 ] || fail "leftover_packs: $(cat "$TMP/p1b.json")"
  keys packs/ | grep -qx "$p_young" && fail "unindexed pack kept with --grace 0"
  "$TOOL" "$repo" temp | grep -q . && fail "incomplete upload kept with --grace 0"
fi

# Unreferenced packs are gone: with --max-unused 0 a second prune leaves no
# unused chunk, and a third has nothing left to do.
$PL -r "$repo" prune --max-unused 0 --json >"$TMP/p2.json"
[ "$(json_field unused_after <"$TMP/p2.json")" -eq 0 ] || fail "unused bytes left: $(cat "$TMP/p2.json")"
$PL -r "$repo" prune --json >"$TMP/p3.json"
[ "$(json_field chunks <"$TMP/p3.json")" -eq "$(json_field chunks_live <"$TMP/p3.json")" ] ||
  fail "unreferenced chunks left: $(cat "$TMP/p3.json")"
[ "$(json_field packs_deleted <"$TMP/p3.json")" -eq 0 ] || fail "third prune deleted packs"
[ "$(json_field index_written <"$TMP/p3.json")" -eq 0 ] || fail "third prune rewrote the index"

for i in "${keep[@]}"; do
  $PL -r "$repo" restore "a@${ids[$i]}" "$TMP/r" >/dev/null
  cmp "$TMP/d$i" "$TMP/r" || fail "snapshot $i differs after prune"
  rm "$TMP/r"
done
$PL -r "$repo" restore b "$TMP/r" >/dev/null && cmp "$TMP/d0" "$TMP/r" && rm "$TMP/r"
$PL -r "$repo" verify --read-data >/dev/null || fail "verify after prune"

# A backup after prune dedups against what stayed, and restores.
new=$($PL -r "$repo" backup --disk c "$TMP/d5" --json | json_field bytes_new)
[ "$new" -eq 0 ] || fail "backup of kept data stored $new new bytes"
scribble "$TMP/d5" $((5 << 20)) 100000 >/dev/null
$PL -r "$repo" backup --disk c "$TMP/d5" >/dev/null
$PL -r "$repo" restore c "$TMP/r" >/dev/null && cmp "$TMP/d5" "$TMP/r" && rm "$TMP/r"
$PL -r "$repo" verify --read-data >/dev/null || fail "verify after the last backup"

# On a terminal, prune shows the progress of the chunks it copies out of
# rewritten packs: half of a disk overwritten, the old snapshot forgotten.
prepo=$(new_repo)
$PL -r "$prepo" init >/dev/null
head -c $((24 << 20)) /dev/urandom >"$TMP/p.img"
$PL -r "$prepo" backup --disk p "$TMP/p.img" >/dev/null
head -c $((12 << 20)) /dev/urandom | dd of="$TMP/p.img" conv=notrunc status=none
$PL -r "$prepo" backup --disk p "$TMP/p.img" >/dev/null
$PL -r "$prepo" forget --keep-last 1 >/dev/null
script -qec "$PL -r '$prepo' prune --max-unused 0 --grace 0" /dev/null >"$TMP/ptty" 2>&1 </dev/null ||
  fail "prune on a terminal: $(tr '\r' '\n' <"$TMP/ptty" | tail -3)"
tr '\r' '\n' <"$TMP/ptty" | grep -q 'prune: copying live chunks: 100.0%' ||
  fail "no prune progress: $(tr '\r' '\n' <"$TMP/ptty" | tail -5)"
$PL -r "$prepo" restore p "$TMP/p.out" >/dev/null
cmp "$TMP/p.out" "$TMP/p.img" || fail "restore after the rewrite differs"

# A snapshot that cannot be read: prune refuses, naming it, and deletes nothing.
if is_local "$repo"; then
  s=$(keys snapshots/ | head -n1)
  chmod u+w "$repo/$s"
  printf 'x' >>"$repo/$s"
  n=$(keys packs/ | wc -l)
  expect_fail $PL -r "$repo" prune --grace 0
  grep -q "${s#snapshots/}" "$TMP/err" || fail "refusal does not name the snapshot: $(cat "$TMP/err")"
  grep -q 'verify' "$TMP/err" || fail "refusal does not name verify: $(cat "$TMP/err")"
  [ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "refusal is not one line: $(cat "$TMP/err")"
  [ "$(keys packs/ | wc -l)" -eq "$n" ] || fail "prune deleted packs while refusing"
fi
echo "OK (packs $npacks_before -> $(keys packs/ | wc -l), bytes $before -> $after)"
