#!/usr/bin/env bash
# Instant recovery with a real VM: a tiny bootable disk (syslinux on FAT, a
# Debian cloud kernel, a busybox initramfs that writes known records to its
# disk) is backed up, served and booted by qemu-system-x86_64 from the
# export; its writes land in the overlay. recover --live boots it and moves
# it to a local disk while it runs (the result: the snapshot plus what the VM
# wrote, byte for byte); a failing target leaves the VM on the served disk
# with its writes kept. drill passes and is recorded for status; a drill
# that fails raises the daemon's drill-failure alert and sets the metrics.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/vm-lib.sh"
requires qemu-system-x86_64
requires nbdkit
requires syslinux
requires mcopy
cache=${PL_VM_CACHE:-/var/tmp/pilotlight-vm-cache}

vm_build_disk "$cache" "$TMP/vm.img" 3 || fail "could not build the VM disk"
accel=$(vm_accel "$TMP/vm.img")
repo=$(new_repo)
$PL -r "$repo" init >/dev/null
$PL -r "$repo" backup --disk vm "$TMP/vm.img" >/dev/null
# What the VM's disk holds after a whole run: the snapshot and both records.
cp --sparse=always "$TMP/vm.img" "$TMP/expect.img"
for kind in early late; do
  vm_expected_record "$kind" "$TMP/$kind.rec"
  dd if="$TMP/$kind.rec" of="$TMP/expect.img" bs=1M seek="$(vm_record_offset_mib "$kind")" \
    conv=notrunc status=none
done

# 1. Boot straight from the export, writes to an overlay.
$PL -r "$repo" serve vm --socket "$TMP/vm.sock" --writable "$TMP/vm.ov" 2>"$TMP/serve.log" &
spid=$!
cleanup_add "kill -9 $spid 2>/dev/null"
for ((i = 0; i < 300; i++)); do
  nbdinfo --size "nbd+unix:///?socket=$TMP/vm.sock" >/dev/null 2>&1 && break
  sleep 0.1
done
VM_ACCEL=$accel vm_boot "$TMP/serial1.log" \
  -blockdev "{\"driver\":\"nbd\",\"node-name\":\"d0\",\"server\":{\"type\":\"unix\",\"path\":\"$TMP/vm.sock\"}}" \
  -device virtio-blk-pci,drive=d0,bootindex=1 || fail "the VM did not run to its end: $(tail -5 "$TMP/serial1.log")"
grep -q PILOTLIGHT-BOOT-OK "$TMP/serial1.log" || fail "no boot marker: $(tail -5 "$TMP/serial1.log")"
grep -q PILOTLIGHT-LATE-OK "$TMP/serial1.log" || fail "the VM did not write: $(tail -5 "$TMP/serial1.log")"
nbdcopy "nbd+unix:///?socket=$TMP/vm.sock" "$TMP/served.img"
cmp "$TMP/expect.img" "$TMP/served.img"
stop_pid $spid
# The snapshot itself did not change.
$PL -r "$repo" restore vm "$TMP/r.img" >/dev/null
cmp "$TMP/vm.img" "$TMP/r.img"

# 2. recover --live: the final local disk is the snapshot plus the VM's writes.
$PL -r "$repo" recover --live vm "$TMP/local.img" --accel "$accel" \
  -- -no-reboot >"$TMP/rec.out" 2>"$TMP/rec.err" || fail "recover --live: $(cat "$TMP/rec.err")"
grep -q "copy complete" "$TMP/rec.err" || fail "no switch reported: $(cat "$TMP/rec.err")"
grep -q PILOTLIGHT-LATE-OK "$TMP/local.img.serial.log" || fail "the VM did not finish"
cmp "$TMP/expect.img" "$TMP/local.img"
[ ! -e "$TMP/local.img.pilotlight-overlay" ] || fail "overlay left after the switch"
qemu-img compare -q -f raw -F raw "$TMP/expect.img" "$TMP/local.img"

# 3. A target whose writes fail (test hook: QEMU's blkdebug): the VM runs on
# to its end on the served disk, and its writes are kept in the overlay.
if PL_TEST_MIRROR_EIO=1 $PL -r "$repo" recover --live vm "$TMP/bad.img" \
  --accel "$accel" -- -no-reboot 2>"$TMP/rec2.err"; then
  fail "a failed copy reported success"
fi
grep -q "the VM keeps running on the served disk" "$TMP/rec2.err" || fail "$(cat "$TMP/rec2.err")"
grep -q PILOTLIGHT-LATE-OK "$TMP/bad.img.serial.log" || fail "the VM did not run on after the failure"
$PL -r "$repo" serve vm --socket "$TMP/ov.sock" --writable "$TMP/bad.img.pilotlight-overlay" 2>/dev/null &
spid=$!
cleanup_add "kill -9 $spid 2>/dev/null"
for ((i = 0; i < 300; i++)); do
  nbdinfo --size "nbd+unix:///?socket=$TMP/ov.sock" >/dev/null 2>&1 && break
  sleep 0.1
done
nbdcopy "nbd+unix:///?socket=$TMP/ov.sock" "$TMP/kept.img"
cmp "$TMP/expect.img" "$TMP/kept.img"
stop_pid $spid

# 4. drill: passes, is recorded, and status shows it.
$PL -r "$repo" drill --disk vm --boot --expect PILOTLIGHT-WRITE-OK \
  --accel "$accel" --timeout 120s --json >"$TMP/drill.json" || fail "drill failed: $(cat "$TMP/drill.json")"
[ "$(json_field result <"$TMP/drill.json")" = pass ] || fail "drill: $(cat "$TMP/drill.json")"
[ "$(json_field chunks_failed <"$TMP/drill.json")" = 0 ] || fail "drill: $(cat "$TMP/drill.json")"
[ "$(json_field chunks_read <"$TMP/drill.json")" -gt 0 ] || fail "no chunks counted"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert 0 < d["first_byte_seconds"] < d["rto_seconds"] < 120, d' \
  "$TMP/drill.json" || fail "drill times: $(cat "$TMP/drill.json")"
$PL -r "$repo" status --json >"$TMP/st.json" || fail "status after a passed drill"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["disks"][0]["drill"]; assert d["result"]=="pass" and d["rto_seconds"]>0, d' \
  "$TMP/st.json" || fail "status has no drill: $(cat "$TMP/st.json")"

# 4b. drill --port: a VM that serves HTTP on port 8080 a few seconds after
# its network is up. The drill passes only once the guest accepts; a port
# the guest never opens fails, although QEMU's user network accepts every
# connection to the forwarded host port while the guest boots.
vm_build_disk "$cache" "$TMP/web.img" 0 8080 || fail "could not build the web VM disk"
$PL -r "$repo" backup --disk web "$TMP/web.img" >/dev/null
$PL -r "$repo" drill --disk web --port 8080 --accel "$accel" --timeout 120s --json \
  >"$TMP/drill-port.json" || fail "drill --port failed: $(cat "$TMP/drill-port.json")"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["result"]=="pass" and d["check"]=="port" and d["port"]==8080 and d["chunks_failed"]==0 and d["chunks_read"]>0, d' \
  "$TMP/drill-port.json" || fail "drill --port: $(cat "$TMP/drill-port.json")"
if $PL -r "$repo" drill --disk web --port 8081 --accel "$accel" --timeout 30s --no-report \
  2>"$TMP/drill-port.err"; then
  fail "drill --port passed on a port the guest never opens"
fi
grep -q "port 8081 did not answer within 30 s" "$TMP/drill-port.err" || fail "$(cat "$TMP/drill-port.err")"

# 5. The daemon's drill job: a marker that never comes fails the drill,
# raises drill-failure, and the metrics and status say so.
cat >"$TMP/recovery.conf" <<CONF
[repository]
location = $repo
password-file = $PILOTLIGHT_PASSWORD_FILE

[daemon]
host = recovery-1
state-dir = $TMP/state

[metrics]
textfile = $TMP/metrics.prom

[alerts]
command = cat >> $TMP/alerts.log

[disk vm]
drill = every 1d
drill-expect = NO-SUCH-MARKER
drill-timeout = 15s
drill-device = ide-hd
drill-memory = 256
CONF
$PL run --config "$TMP/recovery.conf" --check >/dev/null || fail "drill config refused"
$PL run --config "$TMP/recovery.conf" --once 2>"$TMP/run.err" && fail "a failed drill passed the daemon's --once"
grep -q '"kind":"drill-failure"' "$TMP/alerts.log" || fail "no drill-failure alert: $(cat "$TMP/alerts.log" "$TMP/run.err")"
grep -q '^pilotlight_drill_passed{host="recovery-1",disk="vm"} 0$' "$TMP/metrics.prom" ||
  fail "metrics: $(grep drill "$TMP/metrics.prom")"
if command -v promtool >/dev/null; then promtool check metrics <"$TMP/metrics.prom" >/dev/null 2>&1 || fail "promtool"; fi
rc=0
$PL -r "$repo" status >"$TMP/st.txt" || rc=$?
[ "$rc" = 3 ] || fail "status after a failed drill: exit $rc"
grep -q "^vm .*fail .*NO-SUCH-MARKER" "$TMP/st.txt" || fail "status: $(cat "$TMP/st.txt")"
# A config that drills without saying what proves the boot is refused.
printf '[repository]\nlocation = %s\n[disk vm]\ndrill = every 1d\n' "$repo" >"$TMP/bad.conf"
$PL run --config "$TMP/bad.conf" --check 2>"$TMP/err" && fail "drill without a check accepted"
grep -q "drill-expect" "$TMP/err" || fail "message: $(cat "$TMP/err")"
echo "instant recovery: boot from the export, recover --live, failed copy, drill and its alert checked"
