#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for the database tests (the ctest "pg" fixture).
#   pgtest.sh start DIR   initdb in DIR, start on a free 127.0.0.1 port, create role and database
#                         "usersigd", write postgresql://usersigd@127.0.0.1:PORT/usersigd to DIR/url
#   pgtest.sh stop DIR    stop it (immediate) and remove DIR
# Start on a stale DIR wipes it first. PostgreSQL refuses to run as root: as root the cluster runs
# as the "postgres" OS user (runuser). Trust authentication, 127.0.0.1 only, fsync off.
set -euo pipefail

usage() {
    echo "usage: $0 start|stop DIR" >&2
    exit 2
}
[ $# -eq 2 ] || usage
cmd=$1
dir=$2
case $dir in
/*) ;;
*) dir=$PWD/$dir ;;
esac

# The server binaries: Debian keeps them off PATH, so look in the versioned folder first.
bindir=""
for d in /usr/lib/postgresql/15/bin "$(pg_config --bindir 2>/dev/null || true)"; do
    if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
        bindir=$d
        break
    fi
done
if [ -z "$bindir" ]; then
    echo "pgtest: no PostgreSQL server binaries (initdb, pg_ctl); install postgresql-15" >&2
    exit 1
fi

as_root=0
[ "$(id -u)" -eq 0 ] && as_root=1

# Runs a server command as the cluster's owner.
as_owner() {
    if [ $as_root -eq 1 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# The cluster (data/ and sock/) lives in DIR, unless the postgres user cannot reach DIR (a
# checkout under a private home) or the socket path would pass its 107-byte limit: then in a
# folder under /tmp whose name is kept in DIR/datadir.
base_of() {
    if [ -f "$dir/datadir" ]; then
        cat "$dir/datadir"
    else
        echo "$dir"
    fi
}

stop_cluster() {
    local base data
    [ -d "$dir" ] || return 0
    base=$(base_of)
    data=$base/data
    if [ -f "$data/postmaster.pid" ]; then
        as_owner "$bindir/pg_ctl" -D "$data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
        # A postmaster that pg_ctl could not stop (its owner changed, a crashed run): by its pid.
        if [ -f "$data/postmaster.pid" ]; then
            local pid
            pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null || true)
            if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
                grep -q postgres "/proc/$pid/comm" 2>/dev/null; then
                kill -QUIT "$pid" 2>/dev/null || true
                sleep 1
            fi
        fi
    fi
    case $base in
    /tmp/usersigd-pgtest.*) rm -rf "$base" ;;
    esac
    rm -rf "$dir"
}

port_in_use() {
    # Something answers on it, or ss lists it as listening.
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
        return 0
    fi
    if command -v ss >/dev/null 2>&1 && ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; then
        return 0
    fi
    return 1
}

start_cluster() {
    local base data sock port url attempt
    stop_cluster
    mkdir -p "$dir"
    base=$dir
    [ $as_root -eq 1 ] && chown postgres: "$dir"
    if [ ${#dir} -gt 70 ] || { [ $as_root -eq 1 ] && ! runuser -u postgres -- test -w "$dir"; }; then
        base=$(mktemp -d /tmp/usersigd-pgtest.XXXXXX)
        [ $as_root -eq 1 ] && chown postgres: "$base"
        echo "$base" >"$dir/datadir"
    fi
    data=$base/data
    sock=$base/sock
    as_owner mkdir -p "$sock"

    if ! as_owner "$bindir/initdb" -D "$data" -U usersigd -A trust -E UTF8 --no-locale \
        >"$dir/initdb.log" 2>&1; then
        echo "pgtest: initdb failed:" >&2
        cat "$dir/initdb.log" >&2
        exit 1
    fi
    cat >>"$data/postgresql.conf" <<EOF

# pgtest.sh: a throwaway cluster for tests
listen_addresses = '127.0.0.1'
unix_socket_directories = '$sock'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
shared_buffers = 32MB
log_min_messages = warning
log_min_error_statement = panic
EOF

    # Pick a port nobody holds; another cluster may take it between the check and the bind, so a
    # failed start is retried on a new port.
    for attempt in $(seq 1 20); do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        if port_in_use "$port"; then
            continue
        fi
        rm -f "$data/server.log"
        if as_owner "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
            -o "-p $port" start >/dev/null 2>&1; then
            break
        fi
        if grep -qiE 'could not (bind|create listen)|address already in use' \
            "$data/server.log" 2>/dev/null; then
            port=""
            continue
        fi
        echo "pgtest: the server did not start:" >&2
        tail -n 30 "$data/server.log" >&2 || true
        exit 1
    done
    if [ -z "${port:-}" ] || ! [ -f "$data/postmaster.pid" ]; then
        echo "pgtest: no free port found after 20 tries" >&2
        exit 1
    fi

    "$bindir/createdb" -h 127.0.0.1 -p "$port" -U usersigd usersigd
    url="postgresql://usersigd@127.0.0.1:$port/usersigd"
    echo "$url" >"$dir/url.tmp"
    mv "$dir/url.tmp" "$dir/url"
    echo "$url"
}

case $cmd in
start) start_cluster ;;
stop) stop_cluster ;;
*) usage ;;
esac
