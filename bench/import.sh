#!/usr/bin/env bash
# Benchmark: bulk account import (POST /v1/apps/{sdkappid}/accounts/import) against the Tencent
# stand-in (tests/tencent/standin.js, HTTPS with a test CA from make_ca.sh), client, server and
# stand-in on this machine. Two runs of N distinct UserIDs, one text/plain request each (curl):
#   1. the stand-in limited to LIMIT multiaccount_import calls a second (Tencent's published 100)
#      and usersigd's tencent_rate at its default (95, under it): the floor the stand-in sets is
#      N / 100 / LIMIT seconds; the run should be within 10% of it;
#   2. the stand-in's limit off and tencent_rate 10000: accounts/s.
# For each: seconds to the last byte, accounts/s, calls the summary counts, the stand-in's 60007
# answers, usersigd's peak RSS (VmHWM, reset before the run) and the CPU seconds of usersigd and
# the stand-in (where the time goes). Checks the summary (imported = N, the SHA-256 recomputed)
# and the stand-in's account count. Prints a Markdown table.
#
# Usage: bench/import.sh [N]          (default 1000000)
#        IMPORT_LIMIT=100             the stand-in's calls/s in run 1
#        IMPORT_BUILD_DIR=DIR         the build to use (default build-bench/, a Release build made
#                                     incrementally when it is the default)
# Starts `usersigd serve` on a private PostgreSQL in a temp dir (removed on exit).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-1000000}
LIMIT=${IMPORT_LIMIT:-100}
[[ $N =~ ^[1-9][0-9]{0,8}$ ]] || { echo "usage: $0 [N]" >&2; exit 2; }
SDKAPPID=1400000000
KEY=5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e
die() { echo "import.sh: $*" >&2; exit 1; }
note() { echo "import.sh: $*" >&2; }
for c in node curl openssl; do command -v $c >/dev/null || die "$c is not installed"; done

BUILD_DIR=${IMPORT_BUILD_DIR:-$ROOT/build-bench}
if [ -z "${IMPORT_BUILD_DIR:-}" ]; then
    cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DUSERSIGD_TESTS=OFF >/dev/null
    cmake --build "$BUILD_DIR" -j"$(nproc)" --target usersigd >/dev/null
fi
USERSIGD=$BUILD_DIR/usersigd
[ -x "$USERSIGD" ] || die "no $USERSIGD"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/usersig-import-bench.XXXXXX")
chmod 711 "$WORK" # as root, the embedded PostgreSQL runs as its own user below it
SERVER_PID=
STANDIN_PID=
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}
cleanup() {
    stop_server
    [ -z "$STANDIN_PID" ] || kill "$STANDIN_PID" 2>/dev/null || true
    [ -n "${IMPORT_KEEP:-}" ] && { note "kept $WORK"; return; }
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
umask 077
mkdir -m 755 "$WORK/data"
bash "$ROOT/tests/tencent/make_ca.sh" "$WORK/tls"

# ---- the stand-in -------------------------------------------------------------------------------
node --max-old-space-size=4096 "$ROOT/tests/tencent/standin.js" --config-json \
    "{\"apps\":{\"$SDKAPPID\":{\"key\":\"$KEY\",\"admins\":[\"administrator\"]}}}" \
    --tls-dir "$WORK/tls" --port 0 >"$WORK/standin.out" &
STANDIN_PID=$!
for _ in $(seq 100); do [ -s "$WORK/standin.out" ] && break; sleep 0.1; done
SPORT=$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$WORK/standin.out")
[ -n "$SPORT" ] || die "the stand-in did not start"
standin() { # METHOD PATH [JSON]
    curl -sS --cacert "$WORK/tls/ca.pem" -X "$1" -H 'content-type: application/json' \
        ${3:+--data-binary "$3"} "https://127.0.0.1:$SPORT$2"
}

# ---- the server ---------------------------------------------------------------------------------
start_server() { # RATE
    while IFS= read -r v; do unset "$v"; done < <(compgen -e | grep '^USERSIGD_' || true)
    : >"$WORK/server.err"
    USERSIGD_DATA_DIR=$WORK/data USERSIGD_LISTEN=127.0.0.1:0 \
        USERSIGD_TENCENT_CA_FILE=$WORK/tls/ca.pem USERSIGD_TENCENT_ALLOW_INSECURE_BASE_URL=true \
        USERSIGD_TENCENT_RATE=$1 "$USERSIGD" serve >>"$WORK/server.out" 2>"$WORK/server.err" &
    SERVER_PID=$!
    PORT=
    for _ in $(seq 1200); do
        PORT=$(sed -n 's/.* INFO listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$WORK/server.err" | head -1)
        [ -n "$PORT" ] && break
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.err" >&2; die "usersigd exited"; }
        sleep 0.1
    done
    [ -n "$PORT" ] || die "usersigd did not start"
    BASE=http://127.0.0.1:$PORT
}
start_server "${IMPORT_RATE:-95}"
TOKEN=$(sed -n 's/^admin token: \(usg_[^ ]*\)$/\1/p' "$WORK/server.out" | head -1)
[ -n "$TOKEN" ] || die "no admin token"
printf 'Authorization: Bearer %s\n' "$TOKEN" >"$WORK/auth"
api() { curl -sS -f -H @"$WORK/auth" -H 'content-type: application/json' -X "$1" \
    ${3:+--data-binary "$3"} "$BASE$2" >/dev/null; }
api POST /v1/apps "{\"sdkappid\":$SDKAPPID,\"name\":\"bench\"}"
api POST /v1/apps/$SDKAPPID/keys "{\"secret\":\"$KEY\"}"
api PATCH /v1/apps/$SDKAPPID "{\"admin_identifiers\":[\"administrator\"],\"gateway_identifier\":\"administrator\",\"tencent_base_url\":\"https://127.0.0.1:$SPORT\"}"
seq -f 'bench_user_%.0f' 1 "$N" >"$WORK/ids"

cpu_s() { # PID: user+system seconds so far
    awk '{printf "%.1f", ($14 + $15) / 100}' "/proc/$1/stat"
}

ROWS=()
run() { # NAME STANDIN_LIMIT(0: off)
    local name=$1 lim=$2
    standin POST /__standin/reset '{}' >/dev/null
    standin POST /__standin/config \
        "{\"limits\":{\"im_open_login_svc/multiaccount_import\":$([ "$lim" = 0 ] && echo null || echo "$lim")}}" \
        >/dev/null
    echo 5 >"/proc/$SERVER_PID/clear_refs" 2>/dev/null || true
    local c0 s0 t0 t1
    c0=$(cpu_s "$SERVER_PID")
    s0=$(cpu_s "$STANDIN_PID")
    t0=$(date +%s.%N)
    curl -sS -f -H @"$WORK/auth" -H 'content-type: text/plain' -T "$WORK/ids" -X POST \
        "$BASE/v1/apps/$SDKAPPID/accounts/import" -o "$WORK/out"
    t1=$(date +%s.%N)
    local secs rss cpu scpu sum imported calls sha want have limited
    secs=$(echo "$t1 - $t0" | bc -l)
    rss=$(awk '/VmHWM/ {print $2}' "/proc/$SERVER_PID/status")
    cpu=$(echo "$(cpu_s "$SERVER_PID") - $c0" | bc -l)
    scpu=$(echo "$(cpu_s "$STANDIN_PID") - $s0" | bc -l)
    sum=$(tail -n 1 "$WORK/out")
    imported=$(node -e 'console.log(JSON.parse(process.argv[1]).summary.imported)' "$sum")
    calls=$(node -e 'console.log(JSON.parse(process.argv[1]).summary.calls)' "$sum")
    sha=$(node -e 'console.log(JSON.parse(process.argv[1]).summary.sha256)' "$sum")
    want=$(head -n -1 "$WORK/out" | sha256sum | cut -d' ' -f1)
    [ "$imported" = "$N" ] || die "$name: imported $imported of $N: $sum"
    [ "$sha" = "$want" ] || die "$name: the summary's sha256 is not the lines'"
    have=$(standin GET "/__standin/counters?sdkappid=$SDKAPPID" |
        node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const c=JSON.parse(s)["'$SDKAPPID'"]["im_open_login_svc/multiaccount_import"];console.log(c.ok+" "+c.limited)})')
    limited=${have#* }
    [ "$(standin GET "/__standin/accounts?sdkappid=$SDKAPPID" |
        node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).accounts.length))')" = "$N" ] ||
        die "$name: the stand-in does not hold $N accounts"
    ROWS+=("| $name | $N | $(printf %.1f "$secs") | $(printf %.0f "$(echo "$N / $secs" | bc -l)") | $calls | $limited | $((rss / 1024)) | $(printf %.1f "$cpu") | $(printf %.1f "$scpu") |")
    note "$name: ${secs}s, calls $calls, 60007 $limited, RSS ${rss} kB"
}

run "stand-in at $LIMIT calls/s, tencent_rate ${IMPORT_RATE:-95} (floor $((N / 100 / LIMIT)) s)" "$LIMIT"
stop_server
start_server 10000
run "stand-in limit off, tencent_rate 10000" 0

echo
echo "| run | accounts | seconds | accounts/s | calls | 60007 answers | usersigd peak RSS (MiB) | usersigd CPU s | stand-in CPU s |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
