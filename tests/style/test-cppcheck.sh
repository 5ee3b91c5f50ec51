#!/usr/bin/env bash
# cppcheck over src/ finds nothing but what cppcheck-suppressions.xml lists,
# each with its reason. A new finding: fix it, or add a suppression (by file
# and symbol, not line) with the reason it is not a defect.
set -uo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$top" || exit 1
command -v cppcheck >/dev/null 2>&1 || { echo "SKIP: requires cppcheck"; exit 77; }
# The defines are the ones meson.build gives every file; PL_TEST_HOOKS checks
# the hook sites too (the build without them only has less code).
cppcheck --enable=warning,style,performance,portability --std=c11 \
  --inline-suppr --suppress-xml=tests/style/cppcheck-suppressions.xml \
  -I src -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -DPL_TEST_HOOKS=1 \
  --error-exitcode=1 --quiet \
  --template='{file}:{line}: {severity}: {id}: {message}' src
