#!/usr/bin/env bash
# End-to-end tests: the real usersigd on the throwaway PostgreSQL cluster of the ctest "pg"
# fixture, driven over HTTP by the node:test files beside this script.
#   run.sh USERSIGD USERSIG WORKDIR
# Needs USERSIGD_TEST_PG_URL_FILE (the cluster's superuser URL). Creates a database for the run,
# a master key, starts `usersigd serve` on 127.0.0.1:0, reads the admin token it prints on its
# first run and the port it logs, waits for /healthz, runs `node --test`, and always stops the
# servers and drops the database. Every wait is bounded. E2E_KEEP=1 keeps the database;
# E2E_ONLY="a.test.js b.test.js" runs only those files (paths from this directory).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
say() { printf 'e2e: %s\n' "$*" >&2; }

if [ $# -ne 3 ]; then
    echo "usage: $0 USERSIGD USERSIG WORKDIR" >&2
    exit 2
fi
usersigd=$1
usersig=$2
work=$3
for b in "$usersigd" "$usersig"; do
    if [ ! -x "$b" ]; then
        say "not an executable: $b"
        exit 1
    fi
done
for c in psql node openssl curl timeout setsid; do
    if ! command -v "$c" >/dev/null; then
        say "missing the command $c"
        exit 1
    fi
done
usersigd=$(cd "$(dirname "$usersigd")" && pwd)/$(basename "$usersigd")
usersig=$(cd "$(dirname "$usersig")" && pwd)/$(basename "$usersig")
url_file=${USERSIGD_TEST_PG_URL_FILE:-}
if [ -z "$url_file" ] || [ ! -s "$url_file" ]; then
    say "USERSIGD_TEST_PG_URL_FILE does not name the cluster's URL file (run through ctest)"
    exit 1
fi
admin_url=$(cat "$url_file")

db=e2e_$$
db_url=${admin_url%/*}/$db
mkdir -p "$work"
work=$(cd "$work" && pwd)
run=$work/run-$$
rm -rf "$run"
mkdir -p "$run/data"
chmod 700 "$run"
out=$run/server.out
err=$run/server.err
# Made now, not by the background server's redirections: wait_port reads them at once.
: >"$out"
: >"$err"

server_pid=""
node_pid=""
db_created=0
status=1

server_log_tail() {
    say "---- usersigd stdout (tail) ----"
    tail -n 40 "$out" 2>/dev/null | sed 's/usg_[A-Za-z0-9_-]*/usg_<redacted>/g' >&2 || true
    say "---- usersigd stderr (tail) ----"
    tail -n 80 "$err" >&2 2>/dev/null || true
}

# Stops a process by pid: TERM, up to 10 s, then KILL.
stop_pid() {
    local pid=$1 _
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    say "process $pid ignored SIGTERM for 10 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    [ $status -eq 0 ] || [ $rc -ne 0 ] || rc=1
    # node runs in its own process group, with the extra servers the tests start.
    if [ -n "$node_pid" ] && kill -0 "$node_pid" 2>/dev/null; then
        kill -TERM -- "-$node_pid" 2>/dev/null || true
        sleep 1
        kill -KILL -- "-$node_pid" 2>/dev/null || true
    fi
    stop_pid "$server_pid"
    if [ $db_created -eq 1 ] && [ "${E2E_KEEP:-0}" != 1 ]; then
        timeout 60 psql "$admin_url" -X -q -v ON_ERROR_STOP=1 \
            -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 ||
            say "could not drop database $db"
    fi
    if [ $rc -ne 0 ]; then
        server_log_tail
        say "files of this run: $run"
    fi
    # End with node's verdict: the failed tests, then its summary.
    if [ -s "$run/node.out" ]; then
        if [ $rc -ne 0 ] && [ -s "$run/verdicts" ]; then
            say "---- failed tests ----"
            grep '^FAIL ' "$run/verdicts" >&2 || true
        fi
        grep -E '^ℹ (tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) ' \
            "$run/node.out" >&2 || true
    fi
    if [ $rc -eq 0 ] && [ "${E2E_KEEP:-0}" != 1 ]; then
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
chmod 600 "$master"

# Starts `usersigd serve` on listen address $1 in the background; sets server_pid.
start_server() {
    USERSIGD_DATABASE_URL=$db_url USERSIGD_MASTER_KEY_FILE=$master \
        USERSIGD_LISTEN=$1 USERSIGD_DATA_DIR=$run/data \
        "$usersigd" serve >>"$out" 2>>"$err" </dev/null &
    server_pid=$!
}

# Waits (at most $1 s) for the server to log its port; sets port. Fails at once if it exits.
wait_port() {
    local deadline=$((SECONDS + $1))
    port=""
    while [ $SECONDS -lt $deadline ]; do
        port=$(cat "$err" "$out" 2>/dev/null |
            sed -n 's/.*listening on \(http:\/\/\)\{0,1\}\(127\.0\.0\.1\|localhost\|\[::1\]\):\([0-9][0-9]*\).*/\3/p' |
            tail -n 1 || true)
        if [ -n "$port" ]; then
            return 0
        fi
        if ! kill -0 "$server_pid" 2>/dev/null; then
            say "usersigd serve exited during startup"
            return 1
        fi
        sleep 0.1
    done
    say "usersigd serve did not log 'listening on 127.0.0.1:PORT' within $1 s"
    return 1
}

# Waits (at most $2 s) for $1/healthz to answer 200.
wait_healthy() {
    local deadline=$((SECONDS + $2))
    while [ $SECONDS -lt $deadline ]; do
        if ! kill -0 "$server_pid" 2>/dev/null; then
            say "usersigd serve exited"
            return 1
        fi
        if [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$1/healthz" || true)" = 200 ]; then
            return 0
        fi
        sleep 0.1
    done
    say "$1/healthz did not answer 200 within $2 s"
    return 1
}

start_server 127.0.0.1:0
wait_port 60
base=http://127.0.0.1:$port
wait_healthy "$base" 30

# The first run prints the admin token on stdout ("admin token: usg_..."); it may come just
# after the listening line.
admin_token=""
deadline=$((SECONDS + 10))
while [ $SECONDS -lt $deadline ]; do
    admin_token=$(grep -ih 'admin token' "$out" "$err" 2>/dev/null |
        grep -o 'usg_[0-9][0-9]*_[A-Za-z0-9_-]*' | head -n 1 || true)
    [ -n "$admin_token" ] && break
    sleep 0.1
done
if [ -z "$admin_token" ]; then
    say "usersigd printed no 'admin token: usg_...' line on its first run"
    exit 1
fi
say "usersigd (pid $server_pid) serves $base on database $db"

# The node tests, in their own process group (setsid) so that cleanup reaches the servers they
# start; files one at a time (the tamper test briefly breaks the audit chain).
set +e
(
    cd "$here" &&
        E2E_URL=$base E2E_ADMIN_TOKEN=$admin_token E2E_USERSIG=$usersig E2E_USERSIGD=$usersigd \
            E2E_DB_URL=$db_url E2E_MASTER_KEY_FILE=$master E2E_WORK=$run \
            exec setsid -w timeout -k 10 "${E2E_TIMEOUT:-1500}" node --single-threaded --test \
            --test-reporter=spec --test-reporter-destination=stdout \
            --test-reporter="$here/reporter.mjs" --test-reporter-destination="$run/verdicts" \
            --test-concurrency=1 --test-timeout=300000 ${E2E_ONLY:-"$here/"} >"$run/node.out" 2>&1
) &
node_pid=$!
wait "$node_pid"
node_rc=$?
set -e
cat "$run/node.out"
node_pid_done=$node_pid
node_pid=""
# Reap anything the tests left in their group.
kill -KILL -- "-$node_pid_done" 2>/dev/null || true

# The server must have lived through the tests and must stop cleanly on SIGTERM (exit 0; under
# AddressSanitizer this is also where leaks and memory errors show).
if ! kill -0 "$server_pid" 2>/dev/null; then
    say "usersigd serve died during the tests"
    node_rc=1
else
    kill -TERM "$server_pid" 2>/dev/null || true
    server_rc=""
    for _ in $(seq 1 150); do
        if ! kill -0 "$server_pid" 2>/dev/null; then
            set +e
            wait "$server_pid"
            server_rc=$?
            set -e
            break
        fi
        sleep 0.1
    done
    if [ -z "$server_rc" ]; then
        say "usersigd serve did not stop within 15 s of SIGTERM"
        node_rc=1
    elif [ "$server_rc" -ne 0 ]; then
        say "usersigd serve exited with status $server_rc on SIGTERM (want 0)"
        node_rc=1
    else
        server_pid=""
    fi
fi
if [ $node_rc -eq 124 ]; then
    say "node --test timed out"
fi
if [ $node_rc -ne 0 ]; then
    say "FAILED (node exit $node_rc)"
    exit 1
fi
status=0
