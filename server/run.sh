#!/usr/bin/env bash
# The one command to run usersigd on a fresh Debian 12 machine, from any directory:
#
#     bash server/run.sh [usersigd serve options...]
#
# 1. Installs the build tools, libraries and PostgreSQL 15 that are missing (apt-get, as root or
#    through sudo; without either it prints the command to run and stops).
# 2. Builds a Release build in build-release/ of the repository (only what changed is rebuilt).
# 3. Runs `build-release/usersigd serve "$@"` in place of this script, with USERSIGD_DATA_DIR
#    defaulting to .usersigd/ of the repository. usersigd does the rest itself: the master key
#    file on first run, its private PostgreSQL, migrations, an admin token printed on first run,
#    then it serves on 127.0.0.1:8080.
set -euo pipefail

root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
build="$root/build-release"
packages=(build-essential cmake pkg-config libssl-dev zlib1g-dev libevent-dev libjansson-dev
    libpq-dev postgresql-15)

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
cmake --build "$build" --target usersigd -j"$(nproc 2>/dev/null || echo 2)"

export USERSIGD_DATA_DIR="${USERSIGD_DATA_DIR:-$root/.usersigd}"
exec "$build/usersigd" serve "$@"
