#!/usr/bin/env bash
# The image writers (raw, stream-optimized VMDK, dynamic and fixed VHD) on
# their own: random sparse raw images, including sizes that are not a
# multiple of a grain or a VHD block, an empty disk and a fully allocated
# one, are converted with build/tests/unit/export-tool and each result must
# pass `qemu-img check` (where the format has one) and `qemu-img compare`
# against its source.
source "$(dirname "$0")/lib.sh"
requires qemu-img
requires python3
TOOL=$(dirname "$PL")/tests/unit/export-tool
[ -x "$TOOL" ] || fail "export-tool not built at $TOOL"

# gen FILE SIZE NEXTENTS SEED: a sparse image with NEXTENTS random extents of
# text, random bytes, zeros written over data, and repeated blocks.
gen() {
  python3 - "$@" <<'PY'
import os, random, sys
path, size, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
r = random.Random(seed)
with open(path, 'wb') as f:
    f.truncate(size)
    if n < 0:  # fully allocated: alternate text and random bytes, 1 MiB at a time
        off = 0
        while off < size:
            k = min(1 << 20, size - off)
            data = (b'line %d of a log file\n' % off) * (k // 20 + 1) if (off >> 20) % 2 else r.randbytes(k)
            f.seek(off); f.write(data[:k]); off += k
        sys.exit(0)
    for i in range(n):
        k = r.randrange(1, min(size, 3 << 20))
        off = r.randrange(0, size - k + 1)
        kind = i % 4
        if kind == 0: data = r.randbytes(k)
        elif kind == 1: data = (b'the quick brown fox %d ' % i) * (k // 20 + 1)
        elif kind == 2: data = bytes(k)          # zeros written into the file
        else: data = (r.randbytes(4096)) * (k // 4096 + 1)
        f.seek(off); f.write(data[:k])
    if size > 0:  # touch the very last byte so a short tail grain/block is exercised
        f.seek(size - 1); f.write(b'\x01')
PY
}

qfmt() { case $1 in raw) echo raw ;; vmdk) echo vmdk ;; vhd | vhd-fixed) echo vpc ;; esac; }

check_one() { # RAW FORMAT CHUNK THREADS
  local raw=$1 fmt=$2 out=$TMP/out.$2
  rm -f "$out"
  "$TOOL" "$fmt" "$raw" "$out" "$3" "$4" || fail "export-tool $fmt $raw chunk $3 threads $4"
  [ ! -e "$out.pilotlight-part."* ] || fail "$out.part left behind"
  if [ "$fmt" = vmdk ]; then
    qemu-img check -f vmdk "$out" >"$TMP/check" 2>&1 || { cat "$TMP/check"; fail "qemu-img check $fmt ($raw)"; }
    grep -aq 'createType="streamOptimized"' "$out" || fail "no streamOptimized descriptor"
    # The file must end with the footer marker, the footer and the end-of-stream marker.
    python3 - "$out" <<'PY' || fail "VMDK tail layout ($raw)"
import struct, sys
d = open(sys.argv[1], 'rb').read()
assert len(d) % 512 == 0
fm, ft, eos = d[-1536:-1024], d[-1024:-512], d[-512:]
assert eos == bytes(512), "no end-of-stream marker"
assert struct.unpack('<I', fm[12:16])[0] == 3, "no footer marker"
assert ft[:4] == b'KDMV' and struct.unpack('<Q', ft[56:64])[0] != 2**64 - 1, "bad footer"
PY
  fi
  local rc=0
  qemu-img compare -f raw -F "$(qfmt "$fmt")" "$raw" "$out" >"$TMP/cmp" 2>&1 || rc=$?
  [ "$rc" -eq 0 ] || { cat "$TMP/cmp"; fail "qemu-img compare $fmt ($raw, chunk $3, threads $4)"; }
  # Raw output must also be byte-identical and as sparse as its source allows.
  if [ "$fmt" = raw ]; then cmp "$raw" "$out" || fail "raw output differs"; fi
}

M=$((1 << 20))
gen "$TMP/a.raw" $((64 * M + 12345 * 512 + 77)) 40 1   # not a multiple of a sector, grain or block
gen "$TMP/b.raw" $((37 * M)) 25 2
gen "$TMP/full.raw" $((9 * M + 4096)) -1 3           # every byte allocated
gen "$TMP/empty.raw" $((5 * M)) 0 4                   # a single byte at the end
truncate -s 0 "$TMP/empty.raw"; truncate -s $((5 * M)) "$TMP/empty.raw"  # all holes

for fmt in raw vmdk vhd vhd-fixed; do
  check_one "$TMP/a.raw" $fmt $M 2
  check_one "$TMP/a.raw" $fmt 12345 1   # pieces that split grains and sectors
  check_one "$TMP/b.raw" $fmt 65536 2
  check_one "$TMP/full.raw" $fmt $((4 * M)) 2
  check_one "$TMP/empty.raw" $fmt $M 2
done

# A large sparse disk (130 GiB, not a multiple of a sector): a VMDK grain
# directory of many sectors, a VHD allocation table of 65k entries, and
# data at the start, the middle and the very end.
truncate -s $((130 * 1024 * M + 77)) "$TMP/big.raw"
for off in 0 $((70 * 1024 * M + 4096)) $((130 * 1024 * M + 77 - 300000)); do
  head -c 300000 /dev/urandom | dd of="$TMP/big.raw" oflag=seek_bytes seek="$off" conv=notrunc status=none
done
for fmt in vmdk vhd vhd-fixed; do
  check_one "$TMP/big.raw" $fmt $M 2
done
rm -f "$TMP/big.raw" "$TMP"/out.*

# The VMDK of an all-hole disk holds no grains: header, descriptor and metadata only.
"$TOOL" vmdk "$TMP/empty.raw" "$TMP/e.vmdk"
[ "$(stat -c %s "$TMP/e.vmdk")" -le $((128 * 1024)) ] || fail "empty VMDK too large"

# Bad inputs fail cleanly.
if "$TOOL" qcow9 "$TMP/a.raw" "$TMP/x" 2>"$TMP/err"; then fail "unknown format accepted"; fi
grep -q "unknown image format" "$TMP/err" || fail "unclear message: $(cat "$TMP/err")"
if "$TOOL" vmdk "$TMP/a.raw" /nonexistent-dir/x.vmdk 2>"$TMP/err"; then fail "bad path accepted"; fi
grep -q "nonexistent-dir" "$TMP/err" || fail "unclear message: $(cat "$TMP/err")"
echo OK
