#!/usr/bin/env bash
# The one test command: builds (warnings are errors), runs every ctest test, then builds again
# with AddressSanitizer and UndefinedBehaviorSanitizer and runs every test again (the end-to-end
# tests then drive a sanitized usersigd).
# Usage: bash tests/run.sh            (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)

# What the build and the tests need (tests/packages, the list .ci/run installs), when missing.
# shellcheck disable=SC2046 # one package name a word
bash server/deps.sh $(sed 's/#.*//' tests/packages)
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    bash server/deps.sh nodejs npm
fi

# The official Node library for the cross-checks and the end-to-end tests, the linters of
# tests/lint and puppeteer-core for the dashboard's browser test (Debian's chromium; all pinned
# in tests/node): installed again when one is missing or the lock changed.
if [ ! -d tests/node/node_modules/tls-sig-api-v2 ] || [ ! -x tests/node/node_modules/.bin/redocly ] ||
    [ ! -x tests/node/node_modules/.bin/dclint ] || [ ! -d tests/node/node_modules/puppeteer-core ] ||
    [ tests/node/package-lock.json -nt tests/node/node_modules/.package-lock.json ]; then
    npm ci --prefix tests/node --include=dev --no-audit --no-fund
fi

cmake -S . -B build -DUSERSIGD_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs")

if [ "${USERSIGD_SKIP_SANITIZE:-0}" != 1 ]; then
    cmake -S . -B build-asan -DUSERSIGD_WERROR=ON -DUSERSIGD_SANITIZE=ON \
        -DCMAKE_BUILD_TYPE=Debug >/dev/null
    cmake --build build-asan -j"$jobs"
    # The linters check files, not the programs: once is enough.
    (cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j"$jobs" -LE lint)
fi
