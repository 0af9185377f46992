#!/usr/bin/env bash
# The README's walk-through as a test: runs its marked shell blocks (readme_check.js says which
# and how they are checked) against the real usersigd on a fresh database of the throwaway
# PostgreSQL cluster of the ctest "pg" fixture, with the built usersig and usersigd first on PATH.
#   test_readme.sh README.md USERSIGD USERSIG WORKDIR
# Needs USERSIGD_TEST_PG_URL_FILE (the cluster's superuser URL). Every wait is bounded; the server
# is stopped and the database dropped on every exit. README_KEEP=1 keeps both the files and the
# database of the run.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
say() { printf 'readme: %s\n' "$*" >&2; }

if [ $# -ne 4 ]; then
    echo "usage: $0 README.md USERSIGD USERSIG WORKDIR" >&2
    exit 2
fi
readme=$1
usersigd=$2
usersig=$3
work=$4
if [ ! -f "$readme" ]; then
    say "no README at $readme"
    exit 1
fi
for b in "$usersigd" "$usersig"; do
    if [ ! -x "$b" ]; then
        say "not an executable: $b"
        exit 1
    fi
done
# What the README's blocks use, and what this script uses.
for c in bash curl jq openssl node psql timeout cut head; do
    if ! command -v "$c" >/dev/null; then
        say "missing the command $c"
        exit 1
    fi
done
abs() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
readme=$(abs "$readme")
usersigd=$(abs "$usersigd")
usersig=$(abs "$usersig")
url_file=${USERSIGD_TEST_PG_URL_FILE:-}
if [ -z "$url_file" ] || [ ! -s "$url_file" ]; then
    say "USERSIGD_TEST_PG_URL_FILE does not name the cluster's URL file (run through ctest)"
    exit 1
fi
admin_url=$(cat "$url_file")

db=readme_$$
db_url=${admin_url%/*}/$db
mkdir -p "$work"
run=$(cd "$work" && pwd)/run-$$
rm -rf "$run"
mkdir -p "$run/data" "$run/build-release"
chmod 700 "$run"
: >"$run/server.out"
: >"$run/server.err"
server_pid=""
db_created=0

cleanup() {
    local rc=$? _
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    if [ $db_created -eq 1 ] && [ "${README_KEEP:-0}" != 1 ]; then
        timeout 60 psql "$admin_url" -X -q -v ON_ERROR_STOP=1 \
            -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 ||
            say "could not drop database $db"
    fi
    if [ $rc -ne 0 ]; then
        say "---- usersigd stderr (tail) ----"
        tail -n 40 "$run/server.err" >&2 2>/dev/null || true
        say "---- the blocks' stderr (tail) ----"
        grep -av $'^\036readme-step' "$run/readme-blocks.err" 2>/dev/null | grep -v '^$' | tail -n 40 |
            sed 's/usg_[A-Za-z0-9_-]*/usg_<redacted>/g' >&2 || true
        say "files of this run: $run"
    elif [ "${README_KEEP:-0}" != 1 ]; then
        rm -rf "$run"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

timeout 60 psql "$admin_url" -X -q -v ON_ERROR_STOP=1 \
    -c "CREATE DATABASE $db TEMPLATE template0" >/dev/null
db_created=1
master=$run/master.key
(
    umask 077
    openssl rand -hex 32 >"$master"
)

# The README runs from the repository root with build-release/ on PATH: here the run's folder,
# whose build-release/ holds the programs under test.
ln -s "$usersigd" "$run/build-release/usersigd"
ln -s "$usersig" "$run/build-release/usersig"
export USERSIGD_DATABASE_URL=$db_url USERSIGD_MASTER_KEY_FILE=$master
export USERSIGD_DATA_DIR=$run/data

# A first run, as a new user's: it prints the bootstrap admin token, which the walk-through
# does not need (it makes its own).
USERSIGD_LISTEN=127.0.0.1:0 "$usersigd" serve >>"$run/server.out" 2>>"$run/server.err" \
    </dev/null &
server_pid=$!
port=""
deadline=$((SECONDS + 60))
while [ -z "$port" ]; do
    if [ $SECONDS -ge $deadline ]; then
        say "usersigd serve did not log 'listening on 127.0.0.1:PORT' within 60 s"
        exit 1
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
        say "usersigd serve exited during startup"
        exit 1
    fi
    sleep 0.1
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$run/server.err" |
        tail -n 1)
done
base=http://127.0.0.1:$port
deadline=$((SECONDS + 30))
until [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$base/healthz" || true)" = 200 ]; do
    if [ $SECONDS -ge $deadline ] || ! kill -0 "$server_pid" 2>/dev/null; then
        say "$base/healthz did not answer 200 within 30 s"
        exit 1
    fi
    sleep 0.1
done
if ! grep -q '^admin token: usg_' "$run/server.out"; then
    say "the first run printed no 'admin token: usg_...' line"
    exit 1
fi

timeout -k 10 300 node "$here/readme_check.js" "$readme" "$run" "$base"

if ! kill -0 "$server_pid" 2>/dev/null; then
    say "usersigd serve died during the walk-through"
    exit 1
fi
