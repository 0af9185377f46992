#!/usr/bin/env bash
# Benchmark: online signing, one request at a time, under concurrent connections. Starts
# `usersigd serve` (Release) on a private PostgreSQL in a temp dir, creates an app with a key, and
# drives it with wrk (Lua scripts in bench/online/) at 16, 64 and 256 connections:
#   GET  /healthz                          the HTTP stack's own ceiling, same run
#   POST /v1/apps/{sdkappid}/usersigs      a distinct identifier per request (u<thread>_<n>)
#   POST /v1/usersigs/verify               a pool of real tokens signed beforehand
# While each sign run lasts, GET /healthz is sampled every ~20 ms on a new connection (its p99 is
# the event loop's responsiveness under the sign load), and the "usersig.sign" audit rows the run
# wrote are counted with psql against the 2xx sign replies wrk counted. usersigd's VmRSS is read
# before the first run and after the last. Prints the machine, the date, the commit and a
# Markdown table.
#
# Usage: bench/online.sh
#   ONLINE_DURATION=S        seconds per wrk run (default 20; 5 for a quick run)
#   ONLINE_CONNECTIONS="N.." connection counts (default "16 64 256"; "none" skips the wrk runs)
#   ONLINE_PROCESSES=yes|no  also sign with two usersigd processes on the one database (default
#                            yes): the total against one process's, same connections, same run
#   ONLINE_PROCESS_CONNECTIONS="N.."  connections per wrk process in that comparison (default 32:
#                            2 x 32 = 64 in all); a smaller count shows the chain's lock where
#                            the machine's cores are not all busy
#   ONLINE_APPS=N            also create N more apps with a key each (over the API) and time
#                            GET /v1/apps?limit=1000 (20 calls) and a failing verify whose 70009
#                            diagnosis looks through the other apps' keys (200 calls), with 1 and
#                            with N other apps (default 0: skipped)
# Needs wrk (Debian: apt-get install wrk), curl, jq and psql. Builds a Release build in
# build-bench/ (incrementally). Everything listens on loopback only; every process started here
# is stopped and the temp dir removed on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LUA=$ROOT/bench/online
SDKAPPID=1400000000
KEY=5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e # the official vectors' secret
POOL=1000                                                             # verify: tokens in the pool
THREADS=2
DURATION=${ONLINE_DURATION:-20}
CONNECTIONS=${ONLINE_CONNECTIONS:-16 64 256}
APPS=${ONLINE_APPS:-0}
PROCESSES=${ONLINE_PROCESSES:-yes}
PROC_CONNECTIONS=${ONLINE_PROCESS_CONNECTIONS:-32}

die() {
    echo "online.sh: $*" >&2
    exit 1
}
note() { echo "online.sh: $*" >&2; }

[[ $DURATION =~ ^[1-9][0-9]{0,3}$ ]] || die "ONLINE_DURATION must be 1..9999 seconds, not '$DURATION'"
[[ $APPS =~ ^[0-9]{1,5}$ ]] && [ "$APPS" -le 20000 ] || die "ONLINE_APPS must be 0..20000, not '$APPS'"
if [ "$CONNECTIONS" == none ]; then
    CONNECTIONS=
fi
for c in $PROC_CONNECTIONS; do
    [[ $c =~ ^[1-9][0-9]{0,3}$ ]] || die "ONLINE_PROCESS_CONNECTIONS: '$c' is not a number of connections"
done
for c in $CONNECTIONS; do
    [[ $c =~ ^[1-9][0-9]{0,3}$ ]] && [ "$c" -ge "$THREADS" ] ||
        die "ONLINE_CONNECTIONS: '$c' is not a number of connections from $THREADS to 9999"
done

command -v wrk >/dev/null 2>&1 || die "wrk is not installed (Debian: apt-get install wrk)"
for tool in curl jq psql; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (Debian: apt-get install $tool)"
done
for f in common healthz sign verify; do
    [ -f "$LUA/$f.lua" ] || die "missing $LUA/$f.lua"
done

# ---- build ------------------------------------------------------------------------------------
BUILD_DIR=$ROOT/build-bench
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
    note "configuring a Release build in $BUILD_DIR"
    cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DUSERSIGD_TESTS=OFF >/dev/null
fi
cmake --build "$BUILD_DIR" --target usersig usersigd -j "$(nproc 2>/dev/null || echo 2)" >/dev/null ||
    die "the build failed (cmake --build $BUILD_DIR)"
USERSIG=$BUILD_DIR/usersig
USERSIGD=$BUILD_DIR/usersigd
[ -x "$USERSIG" ] && [ -x "$USERSIGD" ] || die "the build did not produce $USERSIG and $USERSIGD"
BUILD_TYPE=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt")
[ "$BUILD_TYPE" == Release ] || note "warning: $BUILD_DIR is a '$BUILD_TYPE' build, not Release"
if grep -q '^USERSIGD_SANITIZE:BOOL=ON' "$BUILD_DIR/CMakeCache.txt"; then
    note "warning: $BUILD_DIR is a sanitizer build; its figures are not representative"
fi

# ---- the server -------------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/usersig-online-bench.XXXXXX")
chmod 711 "$WORK" # as root, the embedded PostgreSQL runs as its own user below it
SERVER_PID=
SERVER2_PID=
SAMPLER_PID=
WRK_PID=
cleanup() {
    if [ -n "$WRK_PID" ]; then kill "$WRK_PID" 2>/dev/null || true; fi
    if [ -n "$SAMPLER_PID" ]; then kill "$SAMPLER_PID" 2>/dev/null || true; fi
    if [ -n "$SERVER2_PID" ]; then kill -TERM "$SERVER2_PID" 2>/dev/null || true; wait "$SERVER2_PID" 2>/dev/null || true; fi
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 300); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "online.sh: usersigd did not stop within 30 s; killing it" >&2
            kill -KILL "$SERVER_PID" 2>/dev/null || true
            local pm=$WORK/data/pg/data/postmaster.pid
            if [ -f "$pm" ]; then kill -TERM "$(head -1 "$pm")" 2>/dev/null || true; sleep 2; fi
        fi
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
umask 077
mkdir -m 755 "$WORK/data"

# Only the settings given here: a private PostgreSQL in the temp dir, a free loopback port.
while IFS= read -r v; do unset "$v"; done < <(compgen -e | grep '^USERSIGD_' || true)
USERSIGD_DATA_DIR=$WORK/data USERSIGD_LISTEN=127.0.0.1:0 \
    "$USERSIGD" serve >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER_PID=$!
PORT=
for _ in $(seq 1200); do
    PORT=$(sed -n 's/.* INFO listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$WORK/server.err" | head -1)
    [ -n "$PORT" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.err" >&2; die "usersigd serve exited"; }
    sleep 0.1
done
[ -n "$PORT" ] || { tail -20 "$WORK/server.err" >&2; die "usersigd did not say where it listens within 120 s"; }
BASE=http://127.0.0.1:$PORT
TOKEN=$(sed -n 's/^admin token: \(usg_[^ ]*\)$/\1/p' "$WORK/server.out" | head -1)
[ -n "$TOKEN" ] || die "usersigd printed no admin token"
printf '%s\n' "$TOKEN" >"$WORK/token"                                 # for the Lua scripts
printf 'Authorization: Bearer %s\n' "$TOKEN" >"$WORK/auth" # curl -H @file: not in argv

api() { # METHOD PATH JSON: prints the status code; the body goes to $WORK/api.out
    curl -s -o "$WORK/api.out" -w '%{http_code}' -X "$1" -H @"$WORK/auth" \
        -H 'Content-Type: application/json' --data-binary "$3" "$BASE$2"
}
code=$(api POST /v1/apps "{\"sdkappid\":$SDKAPPID,\"name\":\"online bench\"}")
[ "$code" == 201 ] || die "POST /v1/apps: HTTP $code $(cat "$WORK/api.out")"
code=$(api POST /v1/apps/$SDKAPPID/keys "{\"secret\":\"$KEY\"}")
[ "$code" == 201 ] || die "POST /v1/apps/$SDKAPPID/keys: HTTP $code $(cat "$WORK/api.out")"

# The verify pool: $POOL tokens from the batch endpoint (its audit action is "usersig.batch", so
# it does not enter the sign counts), as "identifier<TAB>usersig"; one checked here.
awk -v n="$POOL" 'BEGIN { for (i = 1; i <= n; i++) printf "pool_%06d\n", i }' >"$WORK/pool.ids"
code=$(curl -s -o "$WORK/pool.ndjson" -w '%{http_code}' -H @"$WORK/auth" -H 'Content-Type: text/plain' \
    --data-binary @"$WORK/pool.ids" "$BASE/v1/apps/$SDKAPPID/usersigs/batch")
[ "$code" == 200 ] || die "the batch endpoint answers HTTP $code: $(head -c 300 "$WORK/pool.ndjson")"
jq -r 'select(.usersig != null) | [.identifier, .usersig] | @tsv' "$WORK/pool.ndjson" >"$WORK/pool.tsv"
[ "$(wc -l <"$WORK/pool.tsv")" -eq "$POOL" ] || die "the batch gave $(wc -l <"$WORK/pool.tsv") tokens, not $POOL"
IFS=$'\t' read -r id tok <"$WORK/pool.tsv"
code=$(api POST /v1/usersigs/verify "{\"usersig\":\"$tok\",\"identifier\":\"$id\"}")
[ "$code" == 200 ] && grep -q '"valid":true' "$WORK/api.out" ||
    die "a pool token does not verify: HTTP $code $(cat "$WORK/api.out")"
code=$(api POST /v1/apps/$SDKAPPID/usersigs '{"identifier":"probe"}')
[ "$code" == 200 ] && grep -q '"usersig":"' "$WORK/api.out" || die "signing fails: HTTP $code $(cat "$WORK/api.out")"

# psql on the private PostgreSQL: its socket directory and port from postmaster.pid, as the user
# the cluster runs as (postgres when usersigd runs as root; the socket directory is 0700).
PGDATA_DIR=$WORK/data/pg/data
[ -f "$PGDATA_DIR/postmaster.pid" ] || die "no $PGDATA_DIR/postmaster.pid"
PG_PORT=$(sed -n 4p "$PGDATA_DIR/postmaster.pid")
PG_SOCK=$(sed -n 5p "$PGDATA_DIR/postmaster.pid")
PG_OWNER=$(stat -c %U "$PGDATA_DIR")
sql() { # QUERY: prints the result, unaligned
    if [ "$PG_OWNER" != "$(id -un)" ]; then
        (cd / && runuser -u "$PG_OWNER" -- psql -X -q -At -h "$PG_SOCK" -p "$PG_PORT" -U usersigd -d usersigd -c "$1")
    else
        psql -X -q -At -h "$PG_SOCK" -p "$PG_PORT" -U usersigd -d usersigd -c "$1"
    fi
}
SIGN_ROWS_SQL="SELECT count(*) FROM audit_log WHERE action = 'usersig.sign' AND outcome = 'ok'"
[ "$(sql "$SIGN_ROWS_SQL")" == 1 ] || die "psql: expected the probe's one usersig.sign row, got '$(sql "$SIGN_ROWS_SQL")'"
sign_rows_settled() { # the count once it stops moving (the server finishing what wrk left in flight)
    local prev now
    prev=$(sql "$SIGN_ROWS_SQL")
    for _ in $(seq 50); do
        sleep 0.2
        now=$(sql "$SIGN_ROWS_SQL")
        [ "$now" == "$prev" ] && break
        prev=$now
    done
    echo "$prev"
}

# ---- measuring --------------------------------------------------------------------------------
# GET /healthz every ~20 ms, a new connection each time, until stopped: one curl process (a config
# file of URLs, --rate 50/s). Each line: HTTP status and seconds.
awk -v u="$BASE/healthz" -v n=$((DURATION * 50 + 500)) \
    'BEGIN { for (i = 0; i < n; i++) printf "url = \"%s\"\noutput = \"/dev/null\"\n", u }' >"$WORK/healthz.cfg"
sampler_start() {
    curl -s --rate 50/s --max-time 5 -H 'Connection: close' -w '%{stderr}%{http_code} %{time_total}\n' \
        -K "$WORK/healthz.cfg" 2>"$WORK/healthz.$1" &
    SAMPLER_PID=$!
}
# percentiles FILE: from lines "status seconds", prints "N BAD P50 P99 MAX" (ms) over the 200s
percentiles() {
    local bad
    bad=$(awk '$1 != 200 { b++ } END { print b + 0 }' "$1")
    awk '$1 == 200 { print $2 * 1000 }' "$1" | sort -n | awk -v bad="$bad" '{ v[NR] = $1 }
        END { if (NR == 0) { print 0, bad, "-", "-", "-"; exit }
              i50 = int(NR * 0.50 + 0.999); i99 = int(NR * 0.99 + 0.999)
              printf "%d %d %.1f %.1f %.1f\n", NR, bad, v[i50], v[i99], v[NR] }'
}
sampler_stop() { # NAME: sets HZ_N HZ_BAD HZ_P50 HZ_P99 HZ_MAX
    kill "$SAMPLER_PID" 2>/dev/null || true
    wait "$SAMPLER_PID" 2>/dev/null || true
    SAMPLER_PID=
    read -r HZ_N HZ_BAD HZ_P50 HZ_P99 HZ_MAX < <(percentiles "$WORK/healthz.$1")
}
rss() { awk -v k="$1:" '$1 == k { printf "%.1f", $2 / 1024 }' "/proc/$SERVER_PID/status"; }

# run_wrk NAME CONNECTIONS SCRIPT [ARGS...]: sets the W_* values from the ONLINE summary line
run_wrk() {
    local name=$1 c=$2 script=$3 line kv args=()
    shift 3
    if [ $# -gt 0 ]; then args=(-- "$@"); fi
    wrk -t"$THREADS" -c"$c" -d"${DURATION}s" --timeout 10s --latency -s "$LUA/$script.lua" "$BASE" \
        "${args[@]+"${args[@]}"}" >"$WORK/wrk.$name.$c" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || die "wrk $name -c$c failed: $(tail -5 "$WORK/wrk.$name.$c")"
    WRK_PID=
    kill -0 "$SERVER_PID" 2>/dev/null || die "usersigd died during $name -c$c"
    line=$(grep '^ONLINE ' "$WORK/wrk.$name.$c" | tail -1)
    [ -n "$line" ] || die "wrk $name -c$c printed no summary: $(tail -5 "$WORK/wrk.$name.$c")"
    W_sent='' W_requests='' W_duration_us='' W_ok='' W_non2xx='' W_unexpected='' W_connect=''
    W_read='' W_write='' W_timeout='' W_status='' W_p50_us='' W_p99_us='' W_max_us=''
    for kv in ${line#ONLINE }; do
        [[ $kv =~ ^[a-z0-9_]+=[0-9]+$ ]] || die "wrk $name -c$c: a summary field is not a count: '$kv'"
        printf -v "W_${kv%%=*}" '%s' "${kv#*=}"
    done
    [ -n "$W_sent" ] && [ -n "$W_max_us" ] || die "wrk $name -c$c: an incomplete summary: $line"
    W_rate=$(awk -v n="$W_requests" -v us="$W_duration_us" 'BEGIN { printf "%.0f", (us > 0 ? n / (us / 1e6) : 0) }')
    W_sock=$((W_connect + W_read + W_write + W_timeout))
    [ "$W_unexpected" -eq 0 ] || note "$name -c$c: $W_unexpected 2xx replies without the expected field"
}
ms() { awk -v us="$1" 'BEGIN { printf "%.1f", us / 1000 }'; }

ROWS=()
RSS_RUNS=()
NOTES=()
FAILED=0
CPU=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //')
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if ! git -C "$ROOT" diff --quiet HEAD -- server admin-api migrations CMakeLists.txt 2>/dev/null ||
    [ -n "$(git -C "$ROOT" ls-files --others --exclude-standard -- server admin-api migrations 2>/dev/null)" ]; then
    COMMIT="$COMMIT (with uncommitted changes in the source tree)"
fi
# The signing groups so far (the server's /metrics): committed in one round trip, in two, and
# the one-round-trip attempts that met a change under the lock.
groups() {
    curl -s -H @"$WORK/auth" "$BASE/metrics" | awk '
        /^usersigd_sign_groups_total\{round_trips="1"\}/ { one = $2 }
        /^usersigd_sign_groups_total\{round_trips="2"\}/ { two = $2 }
        /^usersigd_sign_group_head_moved_total / { moved = $2 }
        END { printf "%d %d %d\n", one, two, moved }'
}
RSS_BEFORE=$(rss VmRSS)
note "usersigd ($BUILD_TYPE) at $BASE; $(nproc) CPUs, $CPU; wrk -t$THREADS, ${DURATION}s a run"

for c in $CONNECTIONS; do
    note "healthz -c$c"
    run_wrk healthz "$c" healthz
    hz_rate=$W_rate
    ROWS+=("| GET /healthz | $c | $W_rate | 1 | $(ms "$W_p50_us") | $(ms "$W_p99_us") | $W_non2xx + $W_sock | — | — |")

    note "sign -c$c"
    rows0=$(sign_rows_settled)
    read -r g1_0 g2_0 gm_0 < <(groups)
    sampler_start "sign.$c"
    run_wrk sign "$c" sign "$WORK/token" "$SDKAPPID" "c$c"
    sampler_stop "sign.$c"
    rows1=$(sign_rows_settled)
    read -r g1_1 g2_1 gm_1 < <(groups)
    audit=$((rows1 - rows0))
    ratio=$(awk -v a="$W_rate" -v b="$hz_rate" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
    # Every request wrk sent was signed: the 2xx it counted plus those in flight when it stopped
    # (sent, never answered to it); fewer rows than 2xx would be tokens issued without a record.
    inflight=$((W_sent - W_ok - W_non2xx))
    check="$audit / $W_ok + $inflight"
    if [ "$audit" -lt "$W_ok" ] || [ "$audit" -gt $((W_ok + inflight)) ]; then
        check="$check MISMATCH"
        FAILED=1
    elif [ "$audit" -ne $((W_ok + inflight)) ]; then
        check="$check (short by $((W_ok + inflight - audit)))"
    fi
    ROWS+=("| POST …/usersigs (sign) | $c | $W_rate | $ratio | $(ms "$W_p50_us") | $(ms "$W_p99_us") | $W_non2xx + $W_sock | $HZ_P99 (n=$HZ_N) | $check |")
    NOTES+=("sign -c$c: $W_sent requests sent, $W_requests replies ($W_ok 2xx, $W_non2xx other, $W_status of them >= 400; errors: connect $W_connect, read $W_read, write $W_write, timeout $W_timeout), max $(ms "$W_max_us") ms; $audit usersig.sign audit rows; healthz during it: p50 $HZ_P50 ms, p99 $HZ_P99 ms, max $HZ_MAX ms over $HZ_N samples ($HZ_BAD failed); groups: $((g1_1 - g1_0)) in one round trip, $((g2_1 - g2_0)) in two ($((gm_1 - gm_0)) sent in one that met a change), $(awk -v a="$audit" -v g="$((g1_1 - g1_0 + g2_1 - g2_0))" 'BEGIN { printf "%.1f", (g > 0 ? a / g : 0) }') signs a group")

    note "verify -c$c"
    run_wrk verify "$c" verify "$WORK/token" "$WORK/pool.tsv"
    ratio=$(awk -v a="$W_rate" -v b="$hz_rate" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
    ROWS+=("| POST /v1/usersigs/verify | $c | $W_rate | $ratio | $(ms "$W_p50_us") | $(ms "$W_p99_us") | $W_non2xx + $W_sock | — | — |")
    RSS_RUNS+=("$(rss VmRSS)")
    if [ "$W_unexpected" -ne 0 ]; then
        NOTES+=("verify -c$c: $W_unexpected 2xx replies were not \"valid\":true")
        FAILED=1
    fi
done
RSS_AFTER=$(rss VmRSS)
HWM_AFTER=$(rss VmHWM)

# ---- two processes on one database ------------------------------------------------------------
# The same sign load (two wrk processes, -t1 -cN each, at once; N from ONLINE_PROCESS_CONNECTIONS) against one usersigd, then split
# between two usersigd processes on the one database: the chain's lock is shared, so the total
# must not fall.
PROC_ROWS=()
# two_wrk NAME BASE_A BASE_B CONNECTIONS: sets T_rate (the two together), T_ok, T_sent, T_non2xx, T_sock
two_wrk() {
    local name=$1 a=$2 b=$3 pc=$4 line kv pids=() i=0 base
    for base in "$a" "$b"; do
        wrk -t1 -c"$pc" -d"${DURATION}s" --timeout 10s --latency -s "$LUA/sign.lua" "$base" -- \
            "$WORK/token" "$SDKAPPID" "$name$i" >"$WORK/wrk.$name.$i" 2>&1 &
        pids+=($!)
        i=$((i + 1))
    done
    for i in 0 1; do wait "${pids[$i]}" || die "wrk $name $i failed: $(tail -5 "$WORK/wrk.$name.$i")"; done
    T_rate=0 T_ok=0 T_sent=0 T_non2xx=0 T_sock=0
    for i in 0 1; do
        line=$(grep '^ONLINE ' "$WORK/wrk.$name.$i" | tail -1)
        [ -n "$line" ] || die "wrk $name $i printed no summary"
        local W_sent=0 W_requests=0 W_duration_us=1 W_ok=0 W_non2xx=0 W_connect=0 W_read=0 W_write=0 W_timeout=0
        for kv in ${line#ONLINE }; do
            case ${kv%%=*} in sent | requests | duration_us | ok | non2xx | connect | read | write | timeout)
                printf -v "W_${kv%%=*}" '%s' "${kv#*=}" ;;
            esac
        done
        T_rate=$(awk -v t="$T_rate" -v n="$W_requests" -v us="$W_duration_us" 'BEGIN { printf "%.0f", t + n / (us / 1e6) }')
        T_ok=$((T_ok + W_ok)) T_sent=$((T_sent + W_sent)) T_non2xx=$((T_non2xx + W_non2xx))
        T_sock=$((T_sock + W_connect + W_read + W_write + W_timeout))
    done
}
if [ "$PROCESSES" == yes ] && [ -n "$CONNECTIONS" ]; then
    note "a second usersigd on the same database"
    DB_URL="host=$PG_SOCK port=$PG_PORT dbname=usersigd user=usersigd"
    USERSIGD_DATABASE_URL=$DB_URL USERSIGD_MASTER_KEY_FILE=$WORK/data/master.key \
        USERSIGD_LISTEN=127.0.0.1:0 "$USERSIGD" serve >"$WORK/server2.out" 2>"$WORK/server2.err" &
    SERVER2_PID=$!
    PORT2=
    for _ in $(seq 300); do
        PORT2=$(sed -n 's/.* INFO listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$WORK/server2.err" | head -1)
        [ -n "$PORT2" ] && break
        kill -0 "$SERVER2_PID" 2>/dev/null || { cat "$WORK/server2.err" >&2; die "the second usersigd exited"; }
        sleep 0.1
    done
    [ -n "$PORT2" ] || die "the second usersigd did not say where it listens"
    BASE2=http://127.0.0.1:$PORT2
    for pc in $PROC_CONNECTIONS; do
        for mode in one two; do
            note "sign, $mode process(es), 2 x $pc connections"
            rows0=$(sign_rows_settled)
            if [ $mode == one ]; then two_wrk p1c$pc "$BASE" "$BASE" "$pc"; else two_wrk p2c$pc "$BASE" "$BASE2" "$pc"; fi
            rows1=$(sign_rows_settled)
            audit=$((rows1 - rows0))
            inflight=$((T_sent - T_ok - T_non2xx))
            check="$audit / $T_ok + $inflight"
            if [ "$audit" -lt "$T_ok" ] || [ "$audit" -gt $((T_ok + inflight)) ]; then
                check="$check MISMATCH"
                FAILED=1
            fi
            [ $mode == one ] && one_rate=$T_rate
            ratio=$(awk -v a="$T_rate" -v b="$one_rate" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
            PROC_ROWS+=("| $mode | $((2 * pc)) (2 x $pc) | $T_rate | $ratio | $T_non2xx + $T_sock | $check |")
        done
    done
    if chain=$(USERSIGD_DATABASE_URL=$DB_URL USERSIGD_MASTER_KEY_FILE=$WORK/data/master.key \
        "$USERSIGD" audit verify 2>&1 | tail -1); then
        CHAIN="the chain verifies after both runs (usersigd audit verify: $chain)"
    else
        CHAIN="usersigd audit verify FAILED: $chain"
        FAILED=1
    fi
fi

# ---- costs that grow with apps ----------------------------------------------------------------
# curl_seq NAME METHOD PATH BODY COUNT: COUNT requests in one curl process (one kept-alive
# connection), each line "status seconds" in $WORK/seq.NAME
curl_seq() {
    local name=$1 method=$2 path=$3 body=$4 count=$5 rate=${6:-}
    {
        for ((i = 0; i < count; i++)); do
            printf 'url = "%s%s"\nrequest = "%s"\nheader = "@%s"\noutput = "/dev/null"\n' \
                "$BASE" "$path" "$method" "$WORK/auth"
            printf 'write-out = "%%{http_code} %%{time_total}\\n"\n'
            if [ -n "$body" ]; then
                printf 'header = "Content-Type: application/json"\ndata-binary = "@%s"\n' "$body"
            fi
            [ "$i" -eq $((count - 1)) ] || printf 'next\n'
        done
    } >"$WORK/seq.$name.cfg"
    curl -s --max-time 600 ${rate:+--rate "$rate"} -K "$WORK/seq.$name.cfg" >"$WORK/seq.$name" || true
    [ "$(wc -l <"$WORK/seq.$name")" -eq "$count" ] || die "$name: $(wc -l <"$WORK/seq.$name") replies, not $count"
}
# create_apps FROM TO KEYFILE: apps FROM..TO (offsets from $SDKAPPID) with a random key each, in
# one curl process; the secrets, one a line, appended to KEYFILE
create_apps() {
    local from=$1 to=$2 keys=$3 i n=$(($2 - $1 + 1)) secret
    : >"$WORK/create.cfg"
    { head -c $((n * 32)) /dev/urandom | od -An -v -tx1 | tr -d ' \n' | fold -w 64 && echo; } >"$WORK/secrets.new"
    [ "$(wc -l <"$WORK/secrets.new")" -eq "$n" ] || die "could not make $n secrets"
    i=$from
    while IFS= read -r secret; do
        printf '{"sdkappid":%d,"name":"online bench %d"}' $((SDKAPPID + i)) "$i" >"$WORK/app.$i.json"
        printf '{"secret":"%s"}' "$secret" >"$WORK/key.$i.json"
        printf 'url = "%s/v1/apps"\nheader = "@%s"\nheader = "Content-Type: application/json"\n' "$BASE" "$WORK/auth"
        printf 'data-binary = "@%s"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\nnext\n' "$WORK/app.$i.json"
        printf 'url = "%s/v1/apps/%d/keys"\nheader = "@%s"\nheader = "Content-Type: application/json"\n' \
            "$BASE" $((SDKAPPID + i)) "$WORK/auth"
        printf 'data-binary = "@%s"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' "$WORK/key.$i.json"
        [ "$i" -eq "$to" ] || printf 'next\n'
        i=$((i + 1))
    done <"$WORK/secrets.new" >"$WORK/create.cfg"
    curl -s --max-time 3600 -K "$WORK/create.cfg" >"$WORK/create.out" || true
    local made
    made=$(grep -c '^201$' "$WORK/create.out" || true)
    [ "$made" -eq $((2 * n)) ] || die "creating apps $from..$to: $made of $((2 * n)) replies were 201 ($(sort "$WORK/create.out" | uniq -c | tr '\n' ' '))"
    cat "$WORK/secrets.new" >>"$keys"
    rm -f "$WORK"/app.*.json "$WORK"/key.*.json "$WORK/secrets.new"
}
# apps_measure LABEL: the app list (20 calls) and a failing verify (200 calls): a token for app
# $SDKAPPID made with the key of the newest app, so the 70009 diagnosis has to find that app
APP_ROWS=()
apps_measure() {
    local label=$1 last=$2 n bad p50 p99 max
    tail -1 "$WORK/secrets" >"$WORK/last.key"
    tok=$("$USERSIG" sign --sdkappid "$SDKAPPID" --key-file "$WORK/last.key" --identifier wrongkey)
    printf '{"usersig":"%s","identifier":"wrongkey"}' "$tok" >"$WORK/wrong.json"
    code=$(curl -s -o "$WORK/api.out" -w '%{http_code}' -H @"$WORK/auth" -H 'Content-Type: application/json' \
        --data-binary @"$WORK/wrong.json" "$BASE/v1/usersigs/verify")
    local diag
    diag=$(jq -r '"\(.verdict) \(.tencent_code) signed_by=\(.signed_by.sdkappid // "none")"' "$WORK/api.out" 2>/dev/null || true)
    [ "$code" == 200 ] && [ "$diag" == "signature_mismatch 70009 signed_by=$((SDKAPPID + last))" ] ||
        die "the failing verify: HTTP $code, '$diag', not 70009 signed by $((SDKAPPID + last)): $(head -c 300 "$WORK/api.out")"
    curl_seq "list.$label" GET "/v1/apps?limit=1000" "" 20
    read -r n bad p50 p99 max < <(percentiles "$WORK/seq.list.$label")
    APP_ROWS+=("| GET /v1/apps?limit=1000 | $label | $n ($bad not 200) | $p50 | $p99 | $max |")
    # Paced under the search's bound of 50 a second per API token (core/verify.h): past it the
    # verdict no longer names the signer, and costs nothing.
    curl_seq "wrong.$label" POST /v1/usersigs/verify "$WORK/wrong.json" 200 40/s
    read -r n bad p50 p99 max < <(percentiles "$WORK/seq.wrong.$label")
    APP_ROWS+=("| verify, 70009 signed by another app | $label | $n ($bad not 200) | $p50 | $p99 | $max |")
}
if [ "$APPS" -gt 0 ]; then
    : >"$WORK/secrets"
    note "apps: 1 other app"
    create_apps 1 1 "$WORK/secrets"
    apps_measure "2" 1
    if [ "$APPS" -gt 1 ]; then
        note "apps: creating $((APPS - 1)) more over the API"
        t0=$(date +%s.%N)
        create_apps 2 "$APPS" "$WORK/secrets"
        t1=$(date +%s.%N)
        NOTES+=("created $((APPS - 1)) apps with a key each in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s (one curl process, $((2 * (APPS - 1))) requests)")
        apps_measure "$((APPS + 1))" "$APPS"
    fi
fi

# ---- the report -------------------------------------------------------------------------------
echo
echo "Online signing benchmark: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $COMMIT"
echo "Machine: $(nproc) CPUs, $CPU; $(uname -sr)."
echo "usersigd: $BUILD_TYPE build ($BUILD_DIR), embedded PostgreSQL $(sql 'SHOW server_version' | cut -d' ' -f1);"
if [ -n "$CONNECTIONS" ]; then
    echo "client: $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), -t$THREADS, ${DURATION} s a run, --timeout 10s, on the same machine."
fi
if [ -n "$CONNECTIONS" ]; then
    echo
    echo "| request | connections | req/s | vs /healthz | p50 ms | p99 ms | non-2xx + socket errors | /healthz p99 ms during | audit rows / 2xx |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${ROWS[@]}"
    echo
    echo "usersigd VmRSS: $RSS_BEFORE MiB before the first run, $RSS_AFTER MiB after the last (VmHWM $HWM_AFTER MiB);"
    echo "after each connection count's runs: ${RSS_RUNS[*]} MiB;"
    echo "the embedded PostgreSQL runs as separate processes and is not counted."
    echo "p50/p99: wrk's latency distribution (from its Lua done hook). /healthz p99 during: GET /healthz"
    echo "every ~20 ms on a new connection while the sign run lasted, one at a time (n: the samples taken;"
    echo "fewer than 50 a second when the replies take longer than 20 ms). Audit rows: \"usersig.sign\" rows with"
    echo "outcome ok written during the run (psql), against the 2xx sign replies wrk counted + the requests"
    echo "wrk had sent but not seen answered when it stopped (signed by the server all the same)."
fi
for n in "${NOTES[@]+"${NOTES[@]}"}"; do echo "- $n"; done
if [ ${#PROC_ROWS[@]} -gt 0 ]; then
    echo
    echo "Two usersigd processes on one database, the same sign load (wrk -t1, twice at once):"
    echo
    echo "| processes | connections | signs/s (total) | vs one process | non-2xx + socket errors | audit rows / 2xx |"
    echo "|---|---:|---:|---:|---:|---:|"
    printf '%s\n' "${PROC_ROWS[@]}"
    echo
    echo "$CHAIN."
fi
if [ "${#APP_ROWS[@]}" -gt 0 ]; then
    echo
    echo "| request (curl, one connection) | apps | calls | p50 ms | p99 ms | max ms |"
    echo "|---|---:|---:|---:|---:|---:|"
    printf '%s\n' "${APP_ROWS[@]}"
    echo
    echo "apps: the apps registered (the bench app and the others, each with a key). The list returns"
    echo "min(apps, 1000) of them. The failing verify: a token for app $SDKAPPID signed with the newest app's"
    echo "key (one reply checked beforehand: 70009 naming that app). curl's time_total per call."
fi
[ "$FAILED" -eq 0 ] || die "a check failed (see MISMATCH or the notes above)"
