#!/usr/bin/env bash
# Stress for prune's crash safety, outside the test suite: runs
# tests/integration/test-prune-kill9.sh ROUNDS times (default 5), each with
# the kill before every store mutation and RANDOM (default 40) more kills at
# random times, each from a new history. Folder by default; with
# PL_TEST_REPO_KIND=s3 and the rgw.sh variables, on S3. Usage:
#   tests/stress/prune-kill9.sh [ROUNDS [RANDOM]]    (PL=build/pilotlight by default)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
rounds=${1:-5}
export PRUNE_KILL_RANDOM=${2:-40}
export PL=${PL:-$top/build/pilotlight}
for r in $(seq 1 "$rounds"); do
  echo "round $r of $rounds ($PRUNE_KILL_RANDOM random kills)"
  bash "$top/tests/integration/test-prune-kill9.sh"
done
echo "OK: $rounds rounds"
