#!/usr/bin/env bash
# Installs the Debian packages named on the command line that are not installed yet (apt-get, as
# root or through sudo; without either it prints the command to run and exits 1). Used by
# server/run.sh and tests/run.sh:    bash server/deps.sh PACKAGE...
set -euo pipefail

say() { printf 'deps: %s\n' "$*" >&2; }

if ! command -v dpkg >/dev/null; then
    say "this is for Debian 12 (no dpkg here); install the equivalents of:"
    say "  $*"
    exit 1
fi

missing=()
for p in "$@"; do
    # dpkg -s succeeds for a removed package whose configuration files remain: read its status.
    if ! dpkg -s "$p" 2>/dev/null | grep -qx 'Status: install ok installed'; then
        missing+=("$p")
    fi
done
((${#missing[@]} > 0)) || exit 0

say "missing packages: ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null; then
    as_root=(sudo)
else
    say "not root and no sudo: as root, run"
    say "  apt-get update && apt-get install -y ${missing[*]}"
    say "then run this again."
    exit 1
fi
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
