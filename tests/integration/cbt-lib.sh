# Helpers for the NBD and CBT integration tests (sourced after lib.sh):
#   nbd_serve SOCK ARGS...   start qemu-nbd --fork on SOCK, killed at exit
#   nbd_stop SOCK            stop that qemu-nbd and wait until it is gone
#   qsd_start IMG NAME       start qemu-storage-daemon on qcow2 IMG: node disk0,
#                            QMP at $TMP/NAME.qmp, writable NBD export "w" at
#                            $TMP/NAME.nbd; killed at exit
#   qsd_stop NAME [SIG]      stop it (SIGTERM: bitmaps are stored cleanly)
#   qmp SOCK CMD [JSON]      run one QMP command, print its JSON reply
#   snap_field REPO DISK FIELD   a field of the disk's latest snapshot
#   bitmaps IMG              the bitmap names and flags of a closed qcow2 image

# A daemon that forked is reaped by init, maybe late: a zombie counts as gone.
wait_gone() { # PID
  local i
  for ((i = 0; i < 1500; i++)); do
    kill -0 "$1" 2>/dev/null || return 0
    [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" != Z ] || return 0
    sleep 0.02
  done
  return 1
}

nbd_serve() { # SOCK qemu-nbd-args...
  local sock=$1
  shift
  rm -f "$sock"
  qemu-nbd --fork --pid-file="$sock.pid" --socket="$sock" "$@"
  cleanup_add "kill $(cat "$sock.pid") 2>/dev/null"
}

nbd_stop() { # SOCK
  local pid
  pid=$(cat "$1.pid")
  kill "$pid" 2>/dev/null || true
  wait_gone "$pid" || fail "qemu-nbd $pid did not exit"
}

qsd_start() { # IMG NAME [noexport]
  local img=$1 name=$2 export=()
  rm -f "$TMP/$name.qmp" "$TMP/$name.nbd"
  [ "${3:-}" = noexport ] || export=(
    --nbd-server "addr.type=unix,addr.path=$TMP/$name.nbd"
    --export type=nbd,id=w,node-name=disk0,name=w,writable=on)
  qemu-storage-daemon \
    --blockdev "driver=file,node-name=file0,filename=$img" \
    --blockdev driver=qcow2,node-name=disk0,file=file0 "${export[@]}" \
    --chardev "socket,id=qmp0,path=$TMP/$name.qmp,server=on,wait=off" \
    --monitor chardev=qmp0 --pidfile "$TMP/$name.pid" --daemonize
  cleanup_add "kill $(cat "$TMP/$name.pid") 2>/dev/null"
}

qsd_stop() { # NAME [signal]
  local pid
  pid=$(cat "$TMP/$1.pid")
  kill "-${2:-TERM}" "$pid"
  wait_gone "$pid" || fail "qemu-storage-daemon $pid did not exit"
}

qmp() { # SOCK CMD [ARGS-JSON]
  python3 - "$@" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rw")
f.readline()
def cmd(c, a=None):
    m = {"execute": c}
    if a is not None:
        m["arguments"] = a
    f.write(json.dumps(m) + "\n")
    f.flush()
    while True:
        r = json.loads(f.readline())
        if "event" not in r:
            return r
cmd("qmp_capabilities")
r = cmd(sys.argv[2], json.loads(sys.argv[3]) if len(sys.argv) > 3 else None)
print(json.dumps(r))
sys.exit(0 if "return" in r else 1)
PY
}

# The dirty bitmaps of node disk0 as "name:recording:inconsistent" lines.
qsd_bitmaps() { # QMP-SOCK
  qmp "$1" query-named-block-nodes '{"flat": true}' | python3 -c '
import json, sys
for n in json.load(sys.stdin)["return"]:
    if n["node-name"] == "disk0":
        for b in n.get("dirty-bitmaps", []):
            if "name" in b:
                print("%s:%s:%s" % (b["name"], b["recording"], b.get("inconsistent", False)))'
}

snap_field() { # REPO DISK FIELD
  "$PL" -r "$1" snapshots --disk "$2" --json | python3 -c '
import json, sys
print(json.load(sys.stdin)[-1][sys.argv[1]])' "$3"
}

bitmaps() { # IMG
  qemu-img info -U --output=json "$1" | python3 -c '
import json, sys
d = json.load(sys.stdin).get("format-specific", {}).get("data", {})
for b in d.get("bitmaps", []):
    print(b["name"] + ":" + ",".join(b["flags"]))'
}
