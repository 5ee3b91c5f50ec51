#!/usr/bin/env bash
# pilotlight export from a repository: every format, of the latest and of an
# older snapshot, passes `qemu-img check` (where the format has one) and
# `qemu-img compare` against a plain restore of the same snapshot. The VMDK
# is no larger than qemu-img's own stream-optimized conversion.
source "$(dirname "$0")/lib.sh"
requires qemu-img

repo=$(new_repo)
$PL -r "$repo" init >/dev/null
make_disk "$TMP/disk" 40
truncate -s $((40 * 1048576 + 3 * 512)) "$TMP/disk"   # not a multiple of a grain or a VHD block
$PL -r "$repo" backup --disk vm "$TMP/disk" --json >"$TMP/b1.json"
first=$(json_field id <"$TMP/b1.json")
scribble "$TMP/disk" 5000000 300000 >/dev/null
$PL -r "$repo" backup --disk vm "$TMP/disk" >/dev/null

check_exports() { # SPEC: export SPEC in every format, compare with its restore
  local spec=$1
  rm -f "$TMP/plain"
  $PL -r "$repo" restore "$spec" "$TMP/plain" >/dev/null
  for fmt in raw vmdk vhd vhd-fixed; do
    local out=$TMP/out.$fmt qf=$fmt
    case $fmt in vhd | vhd-fixed) qf=vpc ;; esac
    rm -f "$out"
    $PL -r "$repo" export "$spec" "$out" --format "$fmt" --json >"$TMP/e.json" ||
      fail "export $spec $fmt"
    [ "$(json_field file_size <"$TMP/e.json")" -eq "$(stat -c %s "$out")" ] || fail "file_size"
    if [ "$fmt" = vmdk ]; then
      qemu-img check -f vmdk "$out" >/dev/null || fail "qemu-img check $fmt ($spec)"
    fi
    qemu-img compare -f raw -F "$qf" "$TMP/plain" "$out" >/dev/null ||
      fail "qemu-img compare $fmt ($spec)"
  done
}
check_exports vm
check_exports "vm@${first:0:8}"

# The older export really is the older data.
qemu-img compare -f raw -F vmdk "$TMP/disk" "$TMP/out.vmdk" >/dev/null 2>&1 &&
  fail "export of the first snapshot matches the changed disk"

# The format follows the extension when --format is absent.
$PL -r "$repo" export vm "$TMP/auto.vhd" >/dev/null
head -c 8 "$TMP/auto.vhd" | grep -q conectix || fail "auto.vhd is not a dynamic VHD"

# No larger than qemu-img's stream-optimized VMDK of the same data.
$PL -r "$repo" restore vm "$TMP/latest" >/dev/null
$PL -r "$repo" export vm "$TMP/ours.vmdk" >/dev/null
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$TMP/latest" "$TMP/qemu.vmdk"
ours=$(stat -c %s "$TMP/ours.vmdk") theirs=$(stat -c %s "$TMP/qemu.vmdk")
[ "$ours" -le "$theirs" ] || fail "our VMDK is $ours bytes, qemu-img's $theirs"
echo OK
