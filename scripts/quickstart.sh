#!/usr/bin/env bash
# The main job end to end on the default store, a local repository folder:
# build pilotlight, make a sample sparse disk image, back it up in full,
# change it and write its changed-extent list, back up the change, restore
# both snapshots and prove each restore byte-identical with cmp.
# Usage (as root on Debian 12): scripts/quickstart.sh [WORKDIR]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$top/quickstart}

if ! command -v meson >/dev/null || ! pkg-config --exists libzstd libcrypto libcurl libnbd json-c libdeflate inih libsystemd libmicrohttpd 2>/dev/null; then
  echo "== installing build dependencies"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends build-essential meson ninja-build pkg-config \
    libssl-dev libzstd-dev libcurl4-openssl-dev libnbd-dev libjson-c-dev libdeflate-dev \
    libinih-dev libsystemd-dev libmicrohttpd-dev >/dev/null
fi
echo "== building"
[ -f "$top/build/build.ninja" ] || meson setup "$top/build" >/dev/null
ninja -C "$top/build" >/dev/null
PL=$top/build/pilotlight

rm -rf "$work"
mkdir -p "$work"
cd "$work"
repo=$work/repo
disk=$work/disk.img
echo "== making a sparse 1 GiB disk image with 120 MiB of data"
truncate -s 1G "$disk"
for i in 0 1 2 3 4 5; do
  # Text (compresses well), random bytes (does not), and a copy (dedups).
  { yes "log line $i: the quick brown fox jumps over the lazy dog" || true; } |
    head -c $((10 << 20)) | dd of="$disk" bs=1M seek=$((i * 160)) conv=notrunc status=none
  head -c $((8 << 20)) /dev/urandom | dd of="$disk" bs=1M seek=$((i * 160 + 20)) conv=notrunc status=none
  dd if="$disk" of="$disk" bs=1M skip=$((i * 160 + 20)) seek=$((i * 160 + 40)) count=2 conv=notrunc status=none
done
echo "   allocated: $(du -h "$disk" | cut -f1) of $(du -h --apparent-size "$disk" | cut -f1)"

echo "== a repository password in $work/password (mode 0600)"
# The repository is encrypted (init's default). A real site keeps this file
# off the protected host too: without it nothing in the repository can be read.
(umask 077 && head -c 24 /dev/urandom | base64 >"$work/password")
export PILOTLIGHT_PASSWORD_FILE=$work/password
echo "== pilotlight init"
"$PL" -r "$repo" init
echo "== full backup"
"$PL" -r "$repo" backup --disk demo "$disk"
cp --sparse=always "$disk" "$work/disk-v1.img"

echo "== changing the disk and writing its changed-extent list"
: >"$work/changed.txt"
for off in 4096 $((300 << 20)) $((700 << 20)) $((1023 << 20)); do
  head -c 65536 /dev/urandom | dd of="$disk" bs=64K seek=$((off / 65536)) conv=notrunc status=none
  printf '%20d %12d\n' "$off" 65536 >>"$work/changed.txt"
done
cat "$work/changed.txt"

echo "== incremental backup with the changed-extent list"
"$PL" -r "$repo" backup --disk demo "$disk" --changed-extents "$work/changed.txt"

echo "== snapshots"
"$PL" -r "$repo" snapshots
first=$("$PL" -r "$repo" snapshots --disk demo --json | grep -o '"id":"[0-9a-f]*"' | head -n1 | cut -d'"' -f4)

echo "== restoring both snapshots and comparing bytes"
"$PL" -r "$repo" restore "demo@${first:0:12}" "$work/restore-v1.img"
cmp "$work/disk-v1.img" "$work/restore-v1.img"
echo "   first snapshot: byte-identical to the original image"
"$PL" -r "$repo" restore demo@latest "$work/restore-v2.img"
cmp "$disk" "$work/restore-v2.img"
echo "   latest snapshot: byte-identical to the changed image"

echo "== verify --read-data"
"$PL" -r "$repo" verify --read-data
echo
echo "The repository stores $(du -sb "$repo" | cut -f1) bytes ($(du -sh "$repo" | cut -f1)) for two"
echo "snapshots of a disk with $(du -B1 "$disk" | cut -f1) allocated bytes. Everything is in $work."
