# shellcheck shell=bash
# Helpers for integration tests that boot a tiny Linux VM which writes known
# bytes to its own disk (sourced; defines functions only, no side effects):
#
#   vm_kernel_dir CACHE          print a folder holding an extracted Debian cloud
#                                kernel package (boot/vmlinuz-*, lib/modules/*),
#                                fetched once with apt-get download, then cached
#   vm_build_disk CACHE OUT.img [WAIT] [PORT]
#                                build an 80 MiB bootable raw disk: FAT in the
#                                first 64 MiB (syslinux, kernel, initramfs); the
#                                VM writes the "early" record at 70 MiB, and with
#                                WAIT > 0 seconds, WAIT s later, "late" at 72 MiB;
#                                with PORT, it then brings up a virtio-net NIC
#                                for QEMU's user network and, 3 s later, serves
#                                HTTP on TCP PORT until it is killed
#   vm_expected_record KIND FILE write to FILE the exact 1 MiB the VM writes for
#                                KIND (early|late)
#   vm_record_offset_mib KIND    print where KIND is written (70 or 72, MiB)
#   vm_check_record DISK KIND    cmp the record at its offset in DISK (a file)
#   vm_accel DISK                print kvm if a probe boot of DISK (snapshot=on,
#                                nothing is written) with KVM reaches the boot
#                                marker within VM_KVM_PROBE_TIMEOUT (5) seconds,
#                                else tcg; the answer is kept in $VM_ACCEL (set
#                                VM_ACCEL=tcg beforehand to skip the probe)
#   vm_boot LOG DISK_ARGS...     run the VM in the foreground until it powers off
#                                (killed after VM_TIMEOUT, 120 s: status 124)
#   vm_start LOG PIDFILE DISK_ARGS...   the same, in the background (daemonized)
#   vm_wait_marker LOG MARKER [TIMEOUT] wait until the serial log has MARKER
#   vm_wait_exit PIDFILE [TIMEOUT]      wait until a vm_start VM has exited;
#                                       kill it and fail after TIMEOUT
#
# Serial console markers, in order, one a line (the log may have \r\n ends):
#   PILOTLIGHT-BOOT-OK           /init runs
#   PILOTLIGHT-DISK /dev/sdX     the disk it found (sda: IDE, vda: virtio-blk)
#   PILOTLIGHT-WRITE-OK          early record written and synced
#   PILOTLIGHT-LATE-OK           late record written and synced (WAIT > 0 only)
#   PILOTLIGHT-NET-OK            eth0 is 10.0.2.15/24, gateway 10.0.2.2 (PORT only;
#                                the port is still closed: a connection is refused)
#   PILOTLIGHT-LISTEN-OK PORT    busybox httpd listens on PORT (PORT only; it
#                                sends nothing until asked, like most services)
#   PILOTLIGHT-FAIL: REASON      something failed; the VM powers off
#
# The QEMU command line (what vm_boot runs; the FAT image is a "superfloppy"
# with no partition table, which SeaBIOS boots from IDE and from virtio-blk):
#   qemu-system-x86_64 -machine pc -accel tcg -m 256 -smp 1 -nodefaults \
#     -display none -no-reboot -nic none -serial file:LOG DISK_ARGS
# with DISK_ARGS one of
#   -drive file=disk.img,format=raw,if=ide                       (/dev/sda)
#   -drive file=disk.img,format=raw,if=none,id=d0 -device ide-hd,drive=d0
#   -drive file=disk.img,format=raw,if=none,id=d0 -device virtio-blk-pci,drive=d0
#   -blockdev driver=nbd,server.type=unix,server.path=SOCK,node-name=d0 \
#     -device ide-hd,drive=d0          (or virtio-blk-pci; the disk served by
#                                       `nbdkit -U SOCK -P PIDFILE file disk.img`)
# -machine pc (the default, i440FX) matters: on q35 ide-hd sits on AHCI, which
# the Debian cloud kernel does not have. KVM: see vm_accel.
#
# Needs the Debian packages qemu-system-x86 busybox-static syslinux
# syslinux-common mtools dosfstools cpio (and apt, dpkg, util-linux, gzip),
# plus nbdkit for NBD; the kernel comes from the Debian mirror via apt.

# _vm_err MSG...: one line on stderr.
_vm_err() { echo "vm-lib: $*" >&2; }

# _vm_busybox: the static busybox that goes into the initramfs; the host
# generates the expected records with it too, so both use one awk.
_vm_busybox() {
  local bb=${VM_BUSYBOX:-/bin/busybox}
  [ -x "$bb" ] || { _vm_err "no $bb (install busybox-static)"; return 1; }
  if ldd "$bb" >/dev/null 2>&1; then
    _vm_err "$bb is dynamically linked (install busybox-static)"
    return 1
  fi
  echo "$bb"
}

# ---------------------------------------------------------------------------
# Kernel

# vm_kernel_dir CACHE: print CACHE/kernel/PKG, the package
# linux-image-6.1.0-NN-cloud-amd64 (the one `apt-cache depends
# linux-image-cloud-amd64` names) extracted with dpkg-deb -x. Once a package is
# extracted, later calls print it without asking apt (delete CACHE/kernel to
# move to a newer one). Concurrent callers serialize on CACHE/kernel/.lock.
vm_kernel_dir() (
  cache=${1:?usage: vm_kernel_dir CACHE}
  base=$cache/kernel
  # Fast path: an extraction that finished (.done is written last).
  cached() {
    local d
    d=$(find "$base" -mindepth 2 -maxdepth 2 -name .done -printf '%h\n' 2>/dev/null | sort -V | tail -n 1)
    [ -n "$d" ] && echo "$d"
  }
  cached && exit 0
  mkdir -p "$base" || { _vm_err "vm_kernel_dir: cannot create $base"; exit 1; }
  if ! exec {lock}>"$base/.lock" || ! flock "$lock"; then
    _vm_err "vm_kernel_dir: cannot lock $base/.lock"
    exit 1
  fi
  cached && exit 0 # another caller extracted it while we waited

  pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-cloud-amd64\)$/\1/p' | head -n 1)
  [ -n "$pkg" ] || {
    _vm_err "vm_kernel_dir: apt-cache depends linux-image-cloud-amd64 names no linux-image-*-cloud-amd64 (apt-get update?)"
    exit 1
  }
  tmp=$(mktemp -d "$base/.tmp.XXXXXX") || exit 1
  trap 'rm -rf "$tmp"' EXIT
  if ! (cd "$tmp" && apt-get download "$pkg") >"$tmp/apt.log" 2>&1; then
    why=$(grep -E '^(E|Err):' "$tmp/apt.log" | tail -n 1)
    _vm_err "vm_kernel_dir: apt-get download $pkg failed: ${why:-$(tail -n 1 "$tmp/apt.log")}"
    exit 1
  fi
  deb=$(find "$tmp" -maxdepth 1 -name "${pkg}_*.deb" | head -n 1)
  [ -n "$deb" ] || { _vm_err "vm_kernel_dir: apt-get download $pkg left no .deb"; exit 1; }
  dpkg-deb -x "$deb" "$tmp/x" || { _vm_err "vm_kernel_dir: dpkg-deb -x $deb failed"; exit 1; }
  compgen -G "$tmp/x/boot/vmlinuz-*" >/dev/null || { _vm_err "vm_kernel_dir: no boot/vmlinuz-* in $deb"; exit 1; }
  rm -rf "${base:?}/$pkg"
  mv "$tmp/x" "$base/$pkg" && touch "$base/$pkg/.done" || exit 1
  echo "$base/$pkg"
)

# _vm_modules [PORT]: the drivers the VM needs to see its disk: PIIX IDE
# (ata_piix, the "pc" machine's IDE) + SCSI disk, and virtio-pci + virtio-blk;
# with a PORT, virtio-net too (the cloud kernel has no e1000, QEMU's default
# NIC on "pc"). Dependencies are added by _vm_mod_closure.
_vm_modules() { echo ata_piix sd_mod virtio_pci virtio_blk ${1:+virtio_net}; }

# _vm_mod_closure KDIR MODULE...: print "NAME PATH" for the modules to insmod,
# dependencies first. modules.dep is not in the .deb (depmod makes it when the
# package is installed), so the dependencies come from each module's .modinfo
# "depends=" field. Built-in drivers (modules.builtin) are left out.
_vm_mod_closure() {
  local kdir=$1 moddir f n
  shift
  moddir=$(find "$kdir/lib/modules" -mindepth 1 -maxdepth 1 -type d | head -n 1)
  [ -n "$moddir" ] || { _vm_err "no lib/modules/* in $kdir"; return 1; }
  local -A path=() seen=()
  while IFS= read -r f; do
    n=${f##*/}
    n=${n%%.ko*}
    path[${n//-/_}]=$f
  done < <(find "$moddir" -name '*.ko*')
  local builtin=" "
  [ -f "$moddir/modules.builtin" ] &&
    builtin+=$(sed 's|.*/||; s|\.ko$||; s|-|_|g' "$moddir/modules.builtin" | tr '\n' ' ')
  _vm_visit() {
    local m=${1//-/_} d
    [ -z "${seen[$m]:-}" ] || return 0
    seen[$m]=1
    if [ -z "${path[$m]:-}" ]; then
      [[ $builtin == *" $m "* ]] && return 0
      _vm_err "module $m is neither in $moddir nor built in"
      return 1
    fi
    for d in $(_vm_mod_cat "${path[$m]}" | tr '\0' '\n' | sed -n 's/^depends=//p' | tr ',' ' '); do
      _vm_visit "$d" || return 1
    done
    echo "$m ${path[$m]}"
  }
  for n in "$@"; do _vm_visit "$n" || return 1; done
}

# _vm_mod_cat FILE: a module, uncompressed, on stdout (Debian 12 ships plain
# .ko; later kernels may use .ko.xz or .ko.zst).
_vm_mod_cat() {
  case $1 in
  *.ko) cat "$1" ;;
  *.ko.xz) xz -dc "$1" 2>/dev/null || "$(_vm_busybox)" xz -dc "$1" ;;
  *.ko.gz) gzip -dc "$1" ;;
  *.ko.zst) zstd -qdc "$1" ;;
  *) _vm_err "unknown module format: $1"; return 1 ;;
  esac
}

# ---------------------------------------------------------------------------
# Records

# vm_record_offset_mib KIND: where the VM writes record KIND, in MiB.
vm_record_offset_mib() {
  case ${1:-} in
  early) echo 70 ;;
  late) echo 72 ;;
  *) _vm_err "record kind must be early or late, not '${1:-}'"; return 1 ;;
  esac
}

# _vm_record_header KIND: the record's first line.
_vm_record_header() {
  case $1 in
  early) echo PILOTLIGHT-VM-WROTE ;;
  late) echo PILOTLIGHT-VM-LATE ;;
  *) _vm_err "record kind must be early or late, not '$1'"; return 1 ;;
  esac
}

# _vm_record_awk: the awk program (run with -v kind=K -v header=H) that makes
# a record: "HEADER\n", then numbered lines, cut to exactly 1 MiB. Every 4 KiB
# block differs. The VM runs it with the initramfs' busybox awk, the host
# with the same busybox binary (ASCII and %d only, so any awk agrees).
_vm_record_awk() {
  cat <<'EOF'
BEGIN {
  size = 1048576
  s = header "\n"
  n = length(s)
  printf "%s", s
  for (i = 0; n < size; i++) {
    s = sprintf("pilotlight %s record line %06d at byte %07d\n", kind, i, n)
    if (n + length(s) > size) s = substr(s, 1, size - n)
    printf "%s", s
    n += length(s)
  }
}
EOF
}

# vm_expected_record KIND FILE: write the 1 MiB the VM writes for KIND
# (early|late) to FILE.
vm_expected_record() {
  local kind=${1:-} file=${2:?usage: vm_expected_record KIND FILE} header bb size
  header=$(_vm_record_header "$kind") || return 1
  bb=$(_vm_busybox) || return 1
  LC_ALL=C "$bb" awk -v kind="$kind" -v header="$header" "$(_vm_record_awk)" </dev/null >"$file" || return 1
  size=$(stat -c %s "$file")
  [ "$size" -eq 1048576 ] || { _vm_err "vm_expected_record: made $size bytes, not 1 MiB"; return 1; }
}

# vm_check_record DISK KIND: succeed if DISK (a raw image file) holds record
# KIND at its offset; else say where it differs.
vm_check_record() (
  disk=${1:?usage: vm_check_record DISK KIND} kind=${2:-}
  off=$(vm_record_offset_mib "$kind") || exit 1
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/pl-vm.XXXXXX") || exit 1
  trap 'rm -rf "$tmp"' EXIT
  vm_expected_record "$kind" "$tmp/want" || exit 1
  dd if="$disk" of="$tmp/got" bs=1M skip="$off" count=1 status=none || exit 1
  cmp "$tmp/want" "$tmp/got" >&2 || { _vm_err "$disk: no $kind record at $off MiB"; exit 1; }
)

# ---------------------------------------------------------------------------
# Disk

# _vm_init: the initramfs' /init. The wait comes from the kernel command line
# (pl_wait=N, set in syslinux.cfg by vm_build_disk).
_vm_init() {
  cat <<'EOF'
#!/bin/busybox sh
# /init of the pilotlight test VM (made by tests/integration/vm-lib.sh).
/bin/busybox --install -s /bin
export PATH=/bin
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo PILOTLIGHT-BOOT-OK

fail() {
  echo "PILOTLIGHT-FAIL: $*"
  sync
  poweroff -f
  exit 1
}

# Disk drivers, dependencies first (the kernel has them as modules).
while read -r m; do
  insmod "/lib/modules/$m.ko" || fail "insmod $m"
done </lib/modules/order

# The disk: /dev/sda on IDE, /dev/vda on virtio-blk. Probing is asynchronous.
disk=
i=0
while :; do
  for d in /dev/sda /dev/vda; do
    if [ -b "$d" ]; then disk=$d; break 2; fi
  done
  i=$((i + 1))
  [ "$i" -le 300 ] || fail "no /dev/sda or /dev/vda after 30 s"
  usleep 100000
done
echo "PILOTLIGHT-DISK $disk"
size=$(blockdev --getsize64 "$disk") || fail "blockdev $disk"
[ "$size" -ge $((73 * 1048576)) ] || fail "$disk has $size bytes, less than 73 MiB"

# record KIND HEADER OFFSET_MIB: write 1 MiB made by /record.awk, and sync.
record() {
  awk -v kind="$1" -v header="$2" -f /record.awk </dev/null >/tmp/record || fail "awk $1"
  dd if=/tmp/record of="$disk" bs=1048576 seek="$3" count=1 conv=fsync 2>/dev/null || fail "dd $1"
  sync
}

record early PILOTLIGHT-VM-WROTE 70
echo PILOTLIGHT-WRITE-OK

wait=0
for a in $(cat /proc/cmdline); do
  case $a in pl_wait=*) wait=${a#pl_wait=} ;; esac
done
if [ "$wait" -gt 0 ] 2>/dev/null; then
  sleep "$wait"
  record late PILOTLIGHT-VM-LATE 72
  echo PILOTLIGHT-LATE-OK
fi
sync

port=
for a in $(cat /proc/cmdline); do
  case $a in pl_port=*) port=${a#pl_port=} ;; esac
done
[ -n "$port" ] || poweroff -f
# QEMU's user network: the guest is 10.0.2.15, the gateway 10.0.2.2.
i=0
until ip link set eth0 up 2>/dev/null; do
  i=$((i + 1))
  [ "$i" -le 100 ] || fail "no eth0 after 10 s"
  usleep 100000
done
ip addr add 10.0.2.15/24 dev eth0 || fail "ip addr"
ip route add default via 10.0.2.2 || fail "ip route"
echo PILOTLIGHT-NET-OK
sleep 3
mkdir -p /www
echo PILOTLIGHT-HTTP-OK >/www/index.html
httpd -p "$port" -h /www || fail "httpd -p $port"
echo "PILOTLIGHT-LISTEN-OK $port"
while :; do sleep 3600; done
EOF
}

# vm_build_disk CACHE OUT.img [WAIT] [PORT]: build the VM's disk (see the
# top). WAIT (seconds, default 0) > 0 makes the VM write the late record WAIT s
# after the early one; a PORT makes it serve that port instead of powering
# off. OUT.img is replaced only once complete.
vm_build_disk() (
  cache=${1:?usage: vm_build_disk CACHE OUT.img [WAIT] [PORT]}
  out=${2:?usage: vm_build_disk CACHE OUT.img [WAIT] [PORT]}
  wait=${3:-0} port=${4:-}
  [[ $wait =~ ^[0-9]+$ ]] || { _vm_err "vm_build_disk: WAIT must be a number of seconds, not '$wait'"; exit 1; }
  [[ -z $port || $port =~ ^[1-9][0-9]{0,4}$ ]] || { _vm_err "vm_build_disk: PORT must be a TCP port, not '$port'"; exit 1; }
  kdir=$(vm_kernel_dir "$cache") || exit 1
  bb=$(_vm_busybox) || exit 1
  vmlinuz=$(compgen -G "$kdir/boot/vmlinuz-*" | head -n 1)
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/pl-vm.XXXXXX") || exit 1
  trap 'rm -rf "$tmp"' EXIT

  # Initramfs: busybox, /init, /record.awk, the disk drivers.
  root=$tmp/root
  mkdir -p "$root/bin" "$root/dev" "$root/proc" "$root/sys" "$root/tmp" "$root/lib/modules"
  cp "$bb" "$root/bin/busybox"
  _vm_init >"$root/init"
  chmod 755 "$root/init"
  _vm_record_awk >"$root/record.awk"
  read -ra mods <<<"$(_vm_modules "$port")"
  _vm_mod_closure "$kdir" "${mods[@]}" >"$tmp/modules" || exit 1
  while read -r name file; do
    _vm_mod_cat "$file" >"$root/lib/modules/$name.ko" || exit 1
    echo "$name" >>"$root/lib/modules/order"
  done <"$tmp/modules"
  touch "$root/lib/modules/order"
  (cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -9n >"$tmp/initrd.gz" ||
    { _vm_err "vm_build_disk: cannot pack the initramfs"; exit 1; }

  cat >"$tmp/syslinux.cfg" <<EOF
SERIAL 0 115200
DEFAULT pl
PROMPT 0
TIMEOUT 0
LABEL pl
  KERNEL vmlinuz
  INITRD initrd.gz
  APPEND console=ttyS0,115200 quiet panic=-1 pl_wait=$wait${port:+ pl_port=$port}
EOF

  # FAT in the first 64 MiB, syslinux in its boot sector, then grow the file
  # to 80 MiB: the records land past the file system.
  img=$tmp/disk.img
  truncate -s 64M "$img"
  mkfs.vfat --invariant -n PLVM "$img" >/dev/null || { _vm_err "vm_build_disk: mkfs.vfat failed"; exit 1; }
  export MTOOLS_SKIP_CHECK=1
  for f in "$vmlinuz:vmlinuz" "$tmp/initrd.gz:initrd.gz" "$tmp/syslinux.cfg:syslinux.cfg"; do
    mcopy -i "$img" "${f%:*}" "::${f##*:}" || { _vm_err "vm_build_disk: mcopy ${f##*:} failed"; exit 1; }
  done
  syslinux --install "$img" || { _vm_err "vm_build_disk: syslinux --install failed"; exit 1; }
  truncate -s 80M "$img"
  mv "$img" "$out" || exit 1
)

# ---------------------------------------------------------------------------
# Booting

# _vm_qemu LOG [ACCEL]: set the array _vm_cmd to the QEMU command line minus
# the disk; ACCEL defaults to $VM_ACCEL, else tcg.
_vm_qemu() {
  _vm_cmd=(qemu-system-x86_64 -machine pc -accel "${2:-${VM_ACCEL:-tcg}}" -m 256 -smp 1 -nodefaults
    -display none -no-reboot -nic none -serial "file:$1")
}

# vm_boot LOG DISK_ARGS...: boot, wait until the VM powers off (at most
# VM_TIMEOUT seconds, default 120), return QEMU's status (124: timed out).
# Uses $VM_ACCEL (default tcg): call vm_accel first to use KVM when it works.
vm_boot() {
  local log=${1:?usage: vm_boot LOG DISK_ARGS...}
  shift
  local _vm_cmd
  _vm_qemu "$log"
  : >"$log"
  timeout -k 5 "${VM_TIMEOUT:-120}" "${_vm_cmd[@]}" "$@" </dev/null
}

# vm_start LOG PIDFILE DISK_ARGS...: boot in the background (qemu -daemonize);
# QEMU's pid is in PIDFILE once this returns. The caller stops it (vm_wait_exit,
# or kill "$(cat PIDFILE)" at exit).
vm_start() {
  local log=${1:?usage: vm_start LOG PIDFILE DISK_ARGS...} pidfile=${2:?usage: vm_start LOG PIDFILE DISK_ARGS...}
  shift 2
  local _vm_cmd
  _vm_qemu "$log"
  : >"$log"
  rm -f "$pidfile"
  "${_vm_cmd[@]}" -daemonize -pidfile "$pidfile" "$@" </dev/null
}

# vm_wait_marker LOG MARKER [TIMEOUT]: wait (default 60 s) until the serial log
# has MARKER; fail at once when it has PILOTLIGHT-FAIL.
vm_wait_marker() {
  local log=${1:?usage: vm_wait_marker LOG MARKER [TIMEOUT]} marker=${2:?usage: vm_wait_marker LOG MARKER [TIMEOUT]}
  local deadline=$((SECONDS + ${3:-60}))
  while :; do
    grep -aq -- "$marker" "$log" 2>/dev/null && return 0
    if grep -aq PILOTLIGHT-FAIL "$log" 2>/dev/null; then
      _vm_err "VM failed: $(grep -a PILOTLIGHT-FAIL "$log" | tr -d '\r' | head -n 1)"
      return 1
    fi
    [ "$SECONDS" -lt "$deadline" ] || { _vm_err "no $marker in $log after ${3:-60} s"; return 1; }
    sleep 0.1
  done
}

# _vm_alive PID: the process exists and is not a zombie.
_vm_alive() {
  kill -0 "$1" 2>/dev/null && [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" != Z ]
}

# vm_wait_exit PIDFILE [TIMEOUT]: wait (default 60 s) until the vm_start VM has
# exited; after TIMEOUT kill it (SIGTERM, then SIGKILL) and fail.
vm_wait_exit() {
  local pidfile=${1:?usage: vm_wait_exit PIDFILE [TIMEOUT]} pid i
  local deadline=$((SECONDS + ${2:-60}))
  pid=$(cat "$pidfile" 2>/dev/null) || return 0
  while _vm_alive "$pid"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      _vm_err "VM $pid still running after ${2:-60} s: killing it"
      kill "$pid" 2>/dev/null
      for ((i = 0; i < 50; i++)); do _vm_alive "$pid" || return 1; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null
      return 1
    fi
    sleep 0.1
  done
}

# vm_accel DISK: print kvm if KVM can boot DISK (a disk from vm_build_disk:
# booted with snapshot=on, so it is not written) to PILOTLIGHT-BOOT-OK within
# VM_KVM_PROBE_TIMEOUT seconds (default 5), else tcg. The answer is kept in
# VM_ACCEL, which vm_boot and vm_start use; a preset VM_ACCEL is printed as is.
# $(vm_accel DISK) runs in a subshell and cannot keep VM_ACCEL: use
#   vm_accel "$disk" >/dev/null   (then "$VM_ACCEL")
# On some hosts /dev/kvm exists but KVM fails in real mode ("KVM internal
# error. Suberror: 1"): QEMU then hangs rather than exits, hence the probe.
vm_accel() {
  if [ -z "${VM_ACCEL:-}" ]; then
    VM_ACCEL=tcg
    if [ -r /dev/kvm ] && [ -w /dev/kvm ] && _vm_probe kvm "${1:?usage: vm_accel DISK}" "${VM_KVM_PROBE_TIMEOUT:-5}"; then
      VM_ACCEL=kvm
    fi
  fi
  echo "$VM_ACCEL"
}

# _vm_probe ACCEL DISK TIMEOUT: succeed if DISK boots to PILOTLIGHT-BOOT-OK
# with ACCEL within TIMEOUT seconds. Writes go to a throwaway overlay.
_vm_probe() (
  accel=$1 disk=$2 t=$3
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/pl-vm.XXXXXX") || exit 1
  _vm_qemu "$tmp/log" "$accel"
  timeout -k 2 "$((t + 5))" "${_vm_cmd[@]}" -drive "file=$disk,format=raw,if=ide,snapshot=on" \
    </dev/null >"$tmp/out" 2>&1 &
  pid=$!
  trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
  deadline=$((SECONDS + t))
  while [ "$SECONDS" -lt "$deadline" ]; do
    grep -aq PILOTLIGHT-BOOT-OK "$tmp/log" 2>/dev/null && exit 0
    kill -0 "$pid" 2>/dev/null || exit 1 # QEMU gave up
    sleep 0.1
  done
  exit 1
)
