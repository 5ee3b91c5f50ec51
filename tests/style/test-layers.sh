#!/usr/bin/env bash
# The layering rules of docs/ARCHITECTURE.md, checked on every #include in
# src/: a folder may include only its own files and the folders listed for
# it below, so nothing reaches upward; the CBT workflows (cbt-nbd.c,
# cbt-qcow2.c, cbt-live.c) include none of each other; store/local.c and the
# s3 files never include each other; a folder's *-internal.h stays in it.
set -uo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$top/src" || exit 1
declare -A allowed=(
  [util]=""
  [store]="util"
  [source]="util"
  [core]="util store source"
  [cbt]="util source core"
  [sink]="util core"
  [ops]="util core"
  [env]="util store core"
  [serve]="util core env"
  [cli]="util store source core cbt sink ops env"
)
bad=0
for f in */*.[ch]; do
  dir=${f%%/*}
  [ -n "${allowed[$dir]+x}" ] || { echo "$f: folder $dir has no layering rule in $0"; bad=1; continue; }
  while IFS= read -r inc; do
    case $inc in
      ../*/*) to=${inc#../}; to=${to%%/*} ;;
      */*) to=${inc%%/*} ;;
      *) to=$dir ;;
    esac
    [ "$to" = "$dir" ] && continue
    case " ${allowed[$dir]} " in
      *" $to "*) ;;
      *) echo "$f includes $inc: $dir/ may include only ${allowed[$dir]:-nothing} outside itself"; bad=1 ;;
    esac
  done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f")
done
for wf in cbt/cbt-nbd.c cbt/cbt-qcow2.c cbt/cbt-live.c; do
  if grep -Eq '#include "(cbt-nbd|cbt-qcow2|cbt-live)' "$wf"; then
    echo "$wf includes another CBT workflow"; bad=1
  fi
done
if grep -l '#include "s3' store/local.c >/dev/null 2>&1 || grep -l 'local_store' store/s3*.c >/dev/null 2>&1; then
  echo "store/local.c and store/s3*.c must not use each other"; bad=1
fi
# A folder's *-internal.h is for that folder only.
for h in */*-internal.h; do
  hdir=${h%%/*}
  while IFS= read -r f; do
    [ "${f%%/*}" = "$hdir" ] || { echo "$f includes $h, which is private to $hdir/"; bad=1; }
  done < <(grep -l "#include \".*$(basename "$h")\"" */*.[ch])
done
[ "$bad" -eq 0 ] || { echo "FAIL: layering rules broken (docs/ARCHITECTURE.md)" >&2; exit 1; }
echo "layering rules hold"
