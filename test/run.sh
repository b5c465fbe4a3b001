#!/usr/bin/env bash
# The whole test suite, from a fresh clone: real services installed, binaries
# built, every test run. Ends with "N passed, N failed, N skipped".
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:/usr/sbin:/sbin:$PATH"

bash test/services/install-packages.sh
tsc -p .
bun scripts/build.ts

log=$(mktemp)
set +e
# bunfig's [test] timeout is not honoured by every Bun release; the flag always is.
bun test --timeout 120000 "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
count() { grep -E "^ *[0-9]+ $1\$" "$log" | tail -1 | awk '{print $1}'; }
echo "$(count pass || true) passed, $(count fail || true) failed, $(count skip || true) skipped" | sed 's/^ passed/0 passed/; s/,  failed/, 0 failed/; s/,  skipped/, 0 skipped/'
rm -f "$log"
exit "$rc"
