#!/usr/bin/env bash
# pilotlight serve: a snapshot as an NBD export through nbdkit and the
# plugin. The export equals the snapshot (qemu-img compare, nbdcopy + cmp),
# zeros are holes, several connections read at once, older snapshots serve
# too, a damaged chunk is a read error (never wrong bytes), the writable
# overlay keeps flushed writes across kill -9, and listening beyond loopback
# needs TLS. Runs on a folder and on S3.
source "$(dirname "$0")/lib.sh"
requires nbdkit
requires nbdcopy
requires qemu-io

repo=$(new_repo)
$PL -r "$repo" init >/dev/null
make_disk "$TMP/a" 48
$PL -r "$repo" backup --disk a "$TMP/a" >/dev/null
first=$($PL -r "$repo" snapshots --disk a --json | json_field id)
cp --sparse=always "$TMP/a" "$TMP/a.first"
scribble "$TMP/a" $((3 << 20)) 300000 >/dev/null
$PL -r "$repo" backup --disk a "$TMP/a" >/dev/null

# serve_start NAME SPEC [ARGS...]: serve on $TMP/NAME.sock in the background,
# wait until it answers; its PID in $TMP/NAME.pid, its stderr in $TMP/NAME.log.
serve_start() {
  local name=$1 spec=$2 i
  shift 2
  rm -f "$TMP/$name.pid"
  $PL -r "$repo" serve "$spec" --socket "$TMP/$name.sock" --pid-file "$TMP/$name.pid" "$@" \
    2>"$TMP/$name.log" &
  echo $! >"$TMP/$name.spid"
  cleanup_add "kill -9 $! 2>/dev/null"
  for ((i = 0; i < 300; i++)); do
    nbdinfo --size "nbd+unix:///?socket=$TMP/$name.sock" >/dev/null 2>&1 && return 0
    kill -0 "$(cat "$TMP/$name.spid")" 2>/dev/null || fail "serve $spec exited: $(cat "$TMP/$name.log")"
    sleep 0.1
  done
  fail "serve $spec did not answer in 30 s: $(cat "$TMP/$name.log")"
}
serve_stop() {
  local pid
  pid=$(cat "$TMP/$1.spid")
  if [ "${2:-}" = -9 ]; then
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  else
    stop_pid "$pid"
  fi
}
uri() { echo "nbd+unix:///?socket=$TMP/$1.sock"; }

# The latest snapshot: byte for byte, against a restore and the source.
serve_start s a --stats "$TMP/s.stats"
grep -q "ready (50331648 bytes, read-only)" "$TMP/s.log" || fail "no ready line: $(cat "$TMP/s.log")"
$PL -r "$repo" restore a "$TMP/r" >/dev/null
qemu-img compare -q -f raw -F raw "$(uri s)" "$TMP/r" || fail "export differs from the restore"
nbdcopy "$(uri s)" "$TMP/c1" & p1=$!
nbdcopy --connections=1 "$(uri s)" "$TMP/c2" & p2=$!
wait $p1 || fail "nbdcopy (multi-conn) failed"
wait $p2 || fail "nbdcopy (one connection) failed"
cmp "$TMP/a" "$TMP/c1"
cmp "$TMP/a" "$TMP/c2"
# Zero blocks are holes in the export's map, and nbdcopy kept them sparse.
nbdinfo --map "$(uri s)" >"$TMP/map"
grep -q "hole,zero" "$TMP/map" || fail "no holes in the map: $(cat "$TMP/map")"
[ "$(du -k "$TMP/c1" | cut -f1)" -lt 40000 ] || fail "the copy is not sparse: $(du -k "$TMP/c1")"
# Read-only: a write is refused.
qemu-io -f raw -c "write -P 0x11 0 4096" "$(uri s)" >"$TMP/qio" 2>&1 || true
grep -Eqi "read-only|denied|not permitted" "$TMP/qio" || fail "read-only export took a write: $(cat "$TMP/qio")"
serve_stop s
[ -s "$TMP/s.stats" ] || fail "no stats file after SIGTERM"
[ "$(json_field failed <"$TMP/s.stats")" = 0 ] || fail "failed chunks: $(cat "$TMP/s.stats")"
[ "$(json_field chunks <"$TMP/s.stats")" -gt 0 ] || fail "no chunks counted: $(cat "$TMP/s.stats")"

# An older snapshot.
serve_start old "a@${first:0:12}"
nbdcopy "$(uri old)" "$TMP/c3"
cmp "$TMP/a.first" "$TMP/c3"
serve_stop old

# Writable: unaligned writes across granules and blocks, flushed, survive
# kill -9 of serve; the same overlay serves them again.
serve_start w a --writable "$TMP/ov"
qemu-io -f raw -c "write -P 0xab 1000 5000" -c "write -P 0xcd $(((512 << 10) - 100)) 300" \
  -c "write -P 0xef $((40 << 20)) 65536" -c flush "$(uri w)" >/dev/null ||
  fail "writes to the writable export failed"
cp --sparse=always "$TMP/a" "$TMP/expect"
qemu-io -f raw -c "write -P 0xab 1000 5000" -c "write -P 0xcd $(((512 << 10) - 100)) 300" \
  -c "write -P 0xef $((40 << 20)) 65536" "$TMP/expect" >/dev/null
nbdcopy "$(uri w)" "$TMP/c4"
cmp "$TMP/expect" "$TMP/c4"
serve_stop w -9
serve_start w2 a --writable "$TMP/ov"
nbdcopy "$(uri w2)" "$TMP/c5"
cmp "$TMP/expect" "$TMP/c5"
serve_stop w2
# The overlay belongs to the latest snapshot; another one is refused.
rm -f "$TMP/bad.sock"
$PL -r "$repo" serve "a@${first:0:12}" --socket "$TMP/bad.sock" --writable "$TMP/ov" \
  2>"$TMP/err" && fail "an overlay of another snapshot was accepted"
grep -q "holds the writes to a@" "$TMP/err" || fail "overlay mismatch message: $(cat "$TMP/err")"
# The snapshot itself is untouched.
$PL -r "$repo" restore a "$TMP/r2" >/dev/null
cmp "$TMP/a" "$TMP/r2"

# Listening beyond loopback needs TLS; with a PSK it serves.
expect_fail $PL -r "$repo" serve a --listen 0.0.0.0:10809
grep -q "beyond loopback" "$TMP/err" || fail "no TLS message: $(cat "$TMP/err")"
[ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "not one line: $(cat "$TMP/err")"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo "alice:$(openssl rand -hex 32)" >"$TMP/psk"
chmod 600 "$TMP/psk"
$PL -r "$repo" serve a --listen "0.0.0.0:$port" --tls-psk "$TMP/psk" 2>"$TMP/tls.log" &
tls=$!
cleanup_add "kill -9 $tls 2>/dev/null"
for ((i = 0; i < 300; i++)); do
  nbdinfo --size "nbds://alice@127.0.0.1:$port/?tls-psk-file=$TMP/psk" >"$TMP/size" 2>/dev/null && break
  sleep 0.1
done
[ "$(cat "$TMP/size")" = 50331648 ] || fail "TLS export: $(cat "$TMP/tls.log")"
nbdinfo --size "nbd://127.0.0.1:$port/" >/dev/null 2>&1 && fail "TLS export answered in clear"
stop_pid $tls

# A damaged chunk: reading it fails with EIO; nothing wrong is returned.
pack=$(store_tool "$repo" list packs/ | sort -k2 -n | tail -1 | cut -d' ' -f1)
store_tool "$repo" get "$pack" >"$TMP/pack"
flip_byte "$TMP/pack" $((3 << 20))
store_tool "$repo" put "$pack" "$TMP/pack" >/dev/null
serve_start d a
nbdcopy "$(uri d)" "$TMP/c6" 2>"$TMP/derr" && fail "a damaged chunk was served"
grep -q "Input/output error" "$TMP/derr" || fail "not EIO: $(cat "$TMP/derr")"
grep -q "pilotlight verify\|damaged\|authentication\|hash" "$TMP/d.log" ||
  fail "serve did not say what is damaged: $(cat "$TMP/d.log")"
serve_stop d
echo "serve: export, old snapshot, overlay across kill -9, TLS, damaged chunk all checked"
