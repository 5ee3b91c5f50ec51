#!/usr/bin/env bash
# Runs one registered test (Meson's test() calls it for every test):
#   tests/run-one.sh NAME COMMAND [ARGS...]
# and passes COMMAND's exit status through, except a skip (77) when CI=true:
# that fails the test unless NAME is listed, with its reason, in
# tests/skip-allowed.txt. Outside CI a skip stays a skip.
set -uo pipefail
name=$1
shift
"$@"
rc=$?
if [ "$rc" -eq 77 ] && [ "${CI:-}" = true ]; then
  allowed=$(dirname "${BASH_SOURCE[0]}")/skip-allowed.txt
  if awk -v n="$name" '$1 == n && NF >= 2 { found = 1 } END { exit !found }' \
    <(grep -v '^[[:space:]]*#' "$allowed" 2>/dev/null); then
    exit 77
  fi
  echo "run-one.sh: $name skipped with CI=true and is not in tests/skip-allowed.txt: make it run in CI, or list it there with the reason" >&2
  exit 1
fi
exit "$rc"
