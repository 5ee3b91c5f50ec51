#!/usr/bin/env bash
# Changed-extent lists: every accepted form, and every malformed one gets a
# one-line error naming the file and line, exit 1, and no snapshot.
source "$(dirname "$0")/lib.sh"

repo=$(new_repo)
$PL -r "$repo" init >/dev/null
make_disk "$TMP/disk" 32
$PL -r "$repo" backup --disk d "$TMP/disk" >/dev/null
nsnap() { $PL -r "$repo" snapshots --disk d --json | grep -c '"id"'; }

# Good lists: padded columns (the VMware sample's format), CRLF, blank lines,
# unsorted, overlapping and adjacent extents, an empty list, standard input.
a=$(scribble "$TMP/disk" 65536 4096)
b=$(scribble "$TMP/disk" 3000000 70000)
c=$(scribble "$TMP/disk" 3050000 100)
d=$(scribble "$TMP/disk" $((32 * 1048576 - 512)) 512)
printf '\n        %s\r\n\r\n  %s   \n%s\n\t%s\r\n\n' "$d" "$b" "$c" "$a" | sed 's/ \([0-9]\)/     \1/' >"$TMP/good1"
printf '%s\n' "3050000 200" "3050100 100" "3049000 1000" >>"$TMP/good1"
$PL -r "$repo" backup --disk d "$TMP/disk" --changed-extents "$TMP/good1" >/dev/null
$PL -r "$repo" restore d "$TMP/r1"
cmp "$TMP/disk" "$TMP/r1"

e=$(scribble "$TMP/disk" $((10 << 20)) 123)
echo "$e" | $PL -r "$repo" backup --disk d "$TMP/disk" --changed-extents - >/dev/null
$PL -r "$repo" restore d "$TMP/r2"
cmp "$TMP/disk" "$TMP/r2"

: >"$TMP/empty"
$PL -r "$repo" backup --disk d "$TMP/disk" --changed-extents "$TMP/empty" --json >"$TMP/e.json"
[ "$(json_field bytes_read <"$TMP/e.json")" -eq 0 ] || fail "empty list read data: $(cat "$TMP/e.json")"
$PL -r "$repo" restore d "$TMP/r3"
cmp "$TMP/disk" "$TMP/r3"

# The VMware sample (a copy of shared/notes/vmware-cbt-list.txt) parses; its
# extents reach 4 GiB, so use a 5 GiB sparse disk.
sample=$(dirname "$0")/data/vmware-cbt-list.txt
[ -f "$sample" ] || fail "missing test data: $sample"
truncate -s 5G "$TMP/big"
$PL -r "$repo" backup --disk big "$TMP/big" >/dev/null
dd if=/dev/urandom of="$TMP/big" bs=64K count=1 seek=$((4294901760 / 65536)) conv=notrunc status=none
$PL -r "$repo" backup --disk big "$TMP/big" --changed-extents "$sample" >/dev/null
$PL -r "$repo" restore big "$TMP/rbig"
cmp "$TMP/big" "$TMP/rbig"
rm -f "$TMP/big" "$TMP/rbig"

# Bad lists: each names the file and line, exits 1, commits nothing.
before=$(nsnap)
size=$((32 << 20))
bad() { # expected-line content...
  local line=$1
  shift
  printf "$@" >"$TMP/bad"
  expect_fail $PL -r "$repo" backup --disk d "$TMP/disk" --changed-extents "$TMP/bad"
  [ "$(cat "$TMP/rc")" -eq 1 ] || fail "exit status $(cat "$TMP/rc") for: $(cat "$TMP/bad")"
  [ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "not one line: $(cat "$TMP/err")"
  grep -q "$TMP/bad:$line:" "$TMP/err" || fail "no file:line in: $(cat "$TMP/err")"
}
bad 2 '0 4096\n%d 1\n' "$size"                  # past the end
bad 1 '%d 4096\n' $((size - 100))                 # straddles the end
bad 3 '0 1\n\n-5 10\n'                            # negative
bad 1 'abc 10\n'                                  # non-numeric
bad 1 '10 0x20\n'                                 # hex
bad 1 '18446744073709551616 1\n'                  # overflows 64 bits
bad 1 '18446744073709551615 1\n'                  # sum overflows
bad 2 '0 1\n42\n'                                 # one field
bad 1 '1 2 3\n'                                   # three fields
bad 1 '1,2\n'                                     # wrong separator
[ "$(nsnap)" -eq "$before" ] || fail "a bad list committed a snapshot"
grep -q "past the end" <(printf '%d 1\n' "$size" >"$TMP/bad"; $PL -r "$repo" backup --disk d "$TMP/disk" --changed-extents "$TMP/bad" 2>&1) ||
  fail "past-the-end message"
expect_fail $PL -r "$repo" backup --disk d "$TMP/disk" --changed-extents "$TMP/missing"
grep -q "missing" "$TMP/err" || fail "missing list not named"
echo OK
