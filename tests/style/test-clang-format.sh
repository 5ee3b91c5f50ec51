#!/usr/bin/env bash
# Every C file (src, tests, fuzz, bench) is formatted as .clang-format says.
# Fix a failure with: clang-format -i FILE (clang-format 14, as Debian 12 has).
set -uo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$top" || exit 1
cf=$(command -v clang-format-14 || command -v clang-format) || { echo "SKIP: requires clang-format"; exit 77; }
bad=()
while IFS= read -r f; do
  "$cf" --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done < <(find src tests fuzz bench -name '*.[ch]' -type f | sort)
if [ ${#bad[@]} -gt 0 ]; then
  for f in "${bad[@]}"; do
    echo "== $f"
    "$cf" "$f" | diff -u "$f" - | head -n 40
  done
  echo "FAIL: ${#bad[@]} file(s) not formatted ($("$cf" --version)); run: clang-format -i ${bad[*]}" >&2
  exit 1
fi
echo "all C files formatted"
