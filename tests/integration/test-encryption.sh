#!/usr/bin/env bash
# Encryption and tamper evidence (docs/FORMAT.md, Encryption): init encrypts
# by default and a round trip is byte-identical; no object holds a disk name,
# host name or source path in clear; every way of giving the password works,
# and a wrong or missing one fails in one line with nothing written; key
# list/add/remove/passwd, refusing to remove the last key or the current one;
# a flipped bit, a truncation, a swapped object, an altered config and a
# replayed snapshot are detected; --no-encryption makes a readable and
# writable version-1 repository. Folder and S3.
source "$(dirname "$0")/lib.sh"

export PILOTLIGHT_CACHE_DIR=$TMP/cache
obj_list() { store_tool "$repo" list "$1" | cut -d' ' -f1; }
obj_get() { store_tool "$repo" get "$1" >"$2"; }
obj_put() { store_tool "$repo" put "$1" "$2" >/dev/null; }
obj_del() { store_tool "$repo" del "$1" >/dev/null; }
# Everything the store holds, as "name size" lines, sorted.
inventory() { store_tool "$repo" list "" | sort; }
one_line() { [ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "$1: not one line: $(cat "$TMP/err")"; }

repo=$(new_repo)
$PL -r "$repo" init >"$TMP/out"
grep -q "^created encrypted repository [0-9a-f]\{32\} at .* (key [0-9a-f]\{16\})$" "$TMP/out" ||
  fail "init output: $(cat "$TMP/out")"
obj_get config "$TMP/config"
grep -qx "pilotlight-repository=2" "$TMP/config" && grep -qx "encryption=aes-256-gcm" "$TMP/config" &&
  grep -qx "chunk-hash=hmac-sha256" "$TMP/config" && grep -q "^config-mac=[0-9a-f]\{64\}$" "$TMP/config" ||
  fail "config: $(cat "$TMP/config")"
[ "$(obj_list keys/ | wc -l)" -eq 1 ] || fail "not one key object"

# A round trip, and nothing in clear. The disk name, the host name, the
# source path and the data's text must appear in no object.
disk=disk-name-in-clear-$$
mkdir "$TMP/source-path-in-clear"
src=$TMP/source-path-in-clear/img
make_disk "$src" 8
$PL -r "$repo" backup --disk "$disk" "$src" >/dev/null
scribble "$src" $((2 << 20)) 70000 >"$TMP/ext"
$PL -r "$repo" backup --disk "$disk" "$src" --changed-extents "$TMP/ext" >/dev/null
$PL -r "$repo" restore "$disk" "$TMP/r" >/dev/null
cmp "$src" "$TMP/r" || fail "encrypted round trip differs"
rm -f "$TMP/r"
mkdir "$TMP/all"
while read -r key _; do obj_get "$key" "$TMP/all/$(echo "$key" | tr / _)"; done < <(inventory)
secrets=("$disk" source-path-in-clear "pilotlight test line")
# The host name too, when it is long enough not to turn up by chance in
# megabytes of ciphertext.
[ "$(hostname | wc -c)" -le 8 ] || secrets+=("$(hostname)")
for secret in "${secrets[@]}"; do
  grep -rlaF -- "$secret" "$TMP/all" && fail "'$secret' stored in clear"
done
# The cache holds what is stored (sealed), and its summaries are sealed too.
grep -rlaF -- "$disk" "$PILOTLIGHT_CACHE_DIR" && fail "disk name in clear in the cache"
# Dedup still works: the same bytes under another disk store nothing new.
new=$($PL -r "$repo" backup --disk other "$src" --json | json_field bytes_new)
[ "$new" -eq 0 ] || fail "dedup across disks stored $new new bytes"

# Every way of giving the password.
pw=$(cat "$PILOTLIGHT_PASSWORD_FILE")
(
  unset PILOTLIGHT_PASSWORD_FILE
  PILOTLIGHT_PASSWORD=$pw $PL -r "$repo" snapshots >/dev/null || fail "PILOTLIGHT_PASSWORD"
  PILOTLIGHT_PASSWORD_COMMAND="cat $TMP/password" $PL -r "$repo" snapshots >/dev/null ||
    fail "PILOTLIGHT_PASSWORD_COMMAND"
  $PL --password-file "$TMP/password" -r "$repo" snapshots >/dev/null || fail "--password-file first"
  $PL -r "$repo" snapshots --password-file="$TMP/password" >/dev/null || fail "--password-file after"
  $PL -r "$repo" snapshots --password-command "cat $TMP/password" >/dev/null ||
    fail "--password-command"
  # The file's first line only (restic's rule), with \r\n too.
  printf '%s\r\nsecond line\n' "$pw" >"$TMP/pw2"
  $PL -r "$repo" snapshots --password-file "$TMP/pw2" >/dev/null || fail "first line of the file"
  # None at all, and no terminal: one line naming the ways.
  expect_fail setsid -w $PL -r "$repo" snapshots </dev/null
  one_line "no password"
  grep -q "PILOTLIGHT_PASSWORD_FILE" "$TMP/err" || fail "no password: $(cat "$TMP/err")"
  # A password file that cannot be read: one line naming it.
  expect_fail $PL -r "$repo" snapshots --password-file "$TMP/no-such-file"
  one_line "unreadable password file"
  grep -q -- "--password-file $TMP/no-such-file: cannot read the password file" "$TMP/err" ||
    fail "unreadable password file: $(cat "$TMP/err")"
  # A failing password command.
  expect_fail $PL -r "$repo" snapshots --password-command "exit 3"
  one_line "failing command"
  grep -q "exit status 3" "$TMP/err" || fail "failing command: $(cat "$TMP/err")"
  # The command line overrides the environment.
  echo wrong >"$TMP/wrong"
  PILOTLIGHT_PASSWORD=$pw expect_fail $PL -r "$repo" snapshots --password-file "$TMP/wrong"
)
# A wrong password: one line, exit 1, nothing written.
inventory >"$TMP/before"
echo "not-the-password-$$" >"$TMP/wrong"
for cmd in "snapshots" "backup --disk $disk $src" "restore $disk $TMP/r" "verify" "prune" \
  "forget --keep-last 1" "key add --new-password-file $TMP/wrong"; do
  # shellcheck disable=SC2086
  expect_fail $PL -r "$repo" --password-file "$TMP/wrong" $cmd
  [ "$(cat "$TMP/rc")" -eq 1 ] || fail "$cmd with a wrong password: exit $(cat "$TMP/rc")"
  one_line "$cmd with a wrong password"
  grep -q "wrong password" "$TMP/err" || fail "$cmd: $(cat "$TMP/err")"
  grep -qF "not-the-password" "$TMP/err" "$TMP/out" && fail "the password was printed"
done
[ ! -e "$TMP/r" ] || fail "restore with a wrong password wrote its target"
inventory | diff "$TMP/before" - || fail "a wrong password wrote to the repository"

# Keys: add, list, open with either, passwd, remove; the last key and the
# current key are refused.
printf 'second password\n' >"$TMP/pw-b"
$PL -r "$repo" key add --new-password-file "$TMP/pw-b" >"$TMP/out"
kb=$(awk '/^added key/ {print $3}' "$TMP/out")
[ -n "$kb" ] || fail "key add: $(cat "$TMP/out")"
$PL -r "$repo" key list --json >"$TMP/keys"
[ "$(grep -c '"id"' "$TMP/keys")" -eq 2 ] || fail "key list: $(cat "$TMP/keys")"
grep -q '"current":true' "$TMP/keys" || fail "key list marks no current key"
ka=$(grep '"current":true' "$TMP/keys" | json_field id)
$PL -r "$repo" --password-file "$TMP/pw-b" snapshots >/dev/null || fail "the added key opens nothing"
expect_fail $PL -r "$repo" key remove "$ka"
grep -q "opened the repository" "$TMP/err" || fail "removing the current key: $(cat "$TMP/err")"
$PL -r "$repo" --password-file "$TMP/pw-b" key remove "${ka:0:10}" >/dev/null
expect_fail $PL -r "$repo" snapshots
grep -q "wrong password" "$TMP/err" || fail "a removed key still opens: $(cat "$TMP/err")"
expect_fail $PL -r "$repo" --password-file "$TMP/pw-b" key remove "$kb"
grep -q "only key" "$TMP/err" || fail "removing the last key: $(cat "$TMP/err")"
# passwd: the new password opens, the old one no longer does.
$PL -r "$repo" --password-file "$TMP/pw-b" key passwd --new-password-file "$PILOTLIGHT_PASSWORD_FILE" >/dev/null
$PL -r "$repo" key list >"$TMP/out"
[ "$(grep -c '^ \* ' "$TMP/out")" -eq 1 ] && [ "$(grep -c '^ ' "$TMP/out")" -eq 2 ] ||
  fail "key list after passwd: $(cat "$TMP/out")"
expect_fail $PL -r "$repo" --password-file "$TMP/pw-b" snapshots
$PL -r "$repo" restore "$disk" "$TMP/r" >/dev/null && cmp "$src" "$TMP/r" || fail "restore after passwd"
rm -f "$TMP/r"
expect_fail $PL -r "$repo" key frob
[ "$(cat "$TMP/rc")" -eq 2 ] || fail "key frob: not a usage error"

# Tampering. Each case damages the stored copy, is detected, and is undone.
export PILOTLIGHT_CACHE_DIR=$TMP/nocache # every read from the store
pack=$(obj_list packs/ | head -n1)
obj_get "$pack" "$TMP/pack.orig"
# A changed byte inside a chunk's ciphertext: restore fails, verify names it.
cp "$TMP/pack.orig" "$TMP/p"
flip_byte "$TMP/p" 100
obj_put "$pack" "$TMP/p"
expect_fail $PL -r "$repo" restore "$disk" "$TMP/r"
grep -q "failed authentication" "$TMP/err" || fail "restore of a flipped bit: $(cat "$TMP/err")"
one_line "restore of a flipped bit"
expect_fail $PL -r "$repo" verify --read-data
grep -q "failed authentication" "$TMP/out" || fail "flipped bit: $(cat "$TMP/out")"
# A truncation.
head -c $(($(stat -c %s "$TMP/pack.orig") - 7)) "$TMP/pack.orig" >"$TMP/p"
obj_put "$pack" "$TMP/p"
expect_fail $PL -r "$repo" verify
obj_put "$pack" "$TMP/pack.orig"
$PL -r "$repo" verify --read-data >/dev/null || fail "verify after undoing the pack damage"
# A swapped object: a valid index object stored under a snapshot's name, and
# a valid snapshot object under another snapshot's name.
snaps=($(obj_list snapshots/))
idx=$(obj_list index/ | head -n1)
obj_get "${snaps[0]}" "$TMP/s0"
obj_get "$idx" "$TMP/i0"
obj_put "${snaps[0]}" "$TMP/i0"
expect_fail $PL -r "$repo" verify
grep -q "${snaps[0]#snapshots/}" "$TMP/out" || fail "swapped-in index object not named: $(cat "$TMP/out")"
obj_get "${snaps[1]}" "$TMP/s1"
obj_put "${snaps[0]}" "$TMP/s1"
expect_fail $PL -r "$repo" verify
grep -q "${snaps[0]#snapshots/}" "$TMP/out" || fail "swapped snapshot not named: $(cat "$TMP/out")"
obj_put "${snaps[0]}" "$TMP/s0"
# An index object moved under packs/ is not a pack, nor is a pack an index.
name=${idx#index/}
# A name next to the real one's (never the real one: it may end in 0).
other=${name:0:63}$([ "${name:63}" = 0 ] && echo 1 || echo 0)
obj_put "index/$other" "$TMP/pack.orig"
expect_fail $PL -r "$repo" verify
obj_del "index/$other"
$PL -r "$repo" verify >/dev/null || fail "verify after undoing the swaps"

# The config: an altered, incomplete or re-signed-by-nobody config is
# refused in one line, and nothing runs.
for edit in 's/^compression=zstd$/compression=none/' '/^compression=/d' '/^encryption=/d' \
  '/^chunk-hash=/d' 's/^id=\(.\)/id=0\1/' '/^config-mac=/d' 's/^page-entries=1024$/page-entries=512/'; do
  sed "$edit" "$TMP/config" >"$TMP/c"
  cmp -s "$TMP/c" "$TMP/config" && fail "edit '$edit' changed nothing"
  obj_put config "$TMP/c"
  expect_fail $PL -r "$repo" snapshots
  one_line "config edit '$edit'"
  grep -qi "config" "$TMP/err" || fail "config edit '$edit': $(cat "$TMP/err")"
done
obj_put config "$TMP/config"

# A replayed snapshot: forget removes one, an attacker puts it back.
old=$($PL -r "$repo" snapshots --disk "$disk" --json | grep -o '"id":"[0-9a-f]\{64\}"' | head -n1 |
  grep -o '[0-9a-f]\{64\}')
obj_get "snapshots/$old" "$TMP/old"
$PL -r "$repo" forget "$disk@$old" >/dev/null
$PL -r "$repo" verify >/dev/null || fail "verify after forget"
obj_put "snapshots/$old" "$TMP/old"
expect_fail $PL -r "$repo" verify
grep -q "${old:0:12} .*listed by a forget record but present.*replayed" "$TMP/out" ||
  fail "replayed snapshot not reported: $(cat "$TMP/out")"
grep -q "pilotlight forget $disk@${old:0:12}" "$TMP/out" || fail "no advice: $(cat "$TMP/out")"
$PL -r "$repo" forget "$disk@${old:0:12}" >/dev/null
$PL -r "$repo" verify >/dev/null || fail "verify after following the advice"

# --no-encryption: a version-1 repository, read and written as before.
repo=$(new_repo)
$PL -r "$repo" init --no-encryption >"$TMP/out"
grep -q "NOT encrypted" "$TMP/out" || fail "init --no-encryption: $(cat "$TMP/out")"
obj_get config "$TMP/c"
grep -qx "pilotlight-repository=1" "$TMP/c" || fail "clear config: $(cat "$TMP/c")"
[ -z "$(obj_list keys/)" ] || fail "a clear repository has key objects"
(
  unset PILOTLIGHT_PASSWORD_FILE # no password needed
  $PL -r "$repo" backup --disk "$disk" "$src" >/dev/null
  $PL -r "$repo" restore "$disk" "$TMP/r" >/dev/null && cmp "$src" "$TMP/r" || fail "clear round trip"
  expect_fail $PL -r "$repo" key list
  grep -q "not encrypted" "$TMP/err" || fail "key list on a clear repository: $(cat "$TMP/err")"
)
echo OK
