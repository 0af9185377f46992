#!/usr/bin/env bash
# The one command to run usersigd on a fresh Debian 12 machine, from any directory:
#
#     bash server/run.sh [usersigd serve options...]
#
# 1. Installs the build tools, libraries and PostgreSQL 15 that are missing, and curl, jq and
#    openssl for the README's walk-through (apt-get, as root or through sudo; without either it
#    prints the command to run and stops).
# 2. Builds a Release build of both programs, usersigd (the server) and usersig (the CLI), in
#    build-release/ of the repository (only what changed is rebuilt), and says where they are.
# 3. Runs `build-release/usersigd serve "$@"` in place of this script, with USERSIGD_DATA_DIR
#    defaulting to .usersigd/ of the repository. usersigd does the rest itself: the master key
#    file on first run, its private PostgreSQL (when no database URL is set), migrations, an
#    admin token printed on first run, then it serves on 127.0.0.1:8080.
set -euo pipefail

root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
build="$root/build-release"
packages=(build-essential cmake pkg-config libssl-dev zlib1g-dev libevent-dev libjansson-dev
    libpq-dev libcurl4-openssl-dev postgresql-15 curl jq openssl)

say() { printf 'run.sh: %s\n' "$*" >&2; }

bash "$root/server/deps.sh" "${packages[@]}"

if [ ! -f "$root/server/daemon/main.c" ]; then
    say "$root/server/daemon/main.c is missing: this tree has no usersigd daemon to build"
    exit 1
fi

# Configure once; afterwards `cmake --build` re-runs the configuration itself when a
# CMakeLists.txt (or the set of source files) changes.
if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release
fi
cmake --build "$build" --target usersigd usersig -j"$(nproc 2>/dev/null || echo 2)"
for b in usersigd usersig; do
    if [ ! -x "$build/$b" ]; then
        say "the build made no $build/$b"
        exit 1
    fi
done

say "built $build/usersigd and $build/usersig; to use them from another shell:"
say "  export PATH=\"$build:\$PATH\""

export USERSIGD_DATA_DIR="${USERSIGD_DATA_DIR:-$root/.usersigd}"
exec "$build/usersigd" serve "$@"
