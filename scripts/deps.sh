#!/usr/bin/env bash
# Installs every Debian 12 package pilotlight needs to build and to run its
# whole test suite (as root; skipped for packages already present).
set -euo pipefail
pkgs=(
  build-essential meson ninja-build pkg-config clang clang-format cppcheck
  libssl-dev libzstd-dev libcurl4-openssl-dev libnbd-dev libjson-c-dev libdeflate-dev
  libinih-dev libsystemd-dev libmicrohttpd-dev prometheus
  qemu-utils qemu-system-common nbdkit nbdkit-plugin-dev libnbd-bin
  qemu-system-x86 busybox-static syslinux syslinux-common mtools dosfstools cpio
  ceph radosgw awscli python3 curl openssl
  coreutils util-linux e2fsprogs
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || { echo "deps.sh: run as root to install: ${missing[*]}" >&2; exit 1; }
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
