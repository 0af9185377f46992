#!/usr/bin/env bash
# Benchmark: the batch endpoint (POST /v1/apps/{sdkappid}/usersigs/batch) against the official Node
# library tls-sig-api-v2 in a loop (bench/node_sign.js), one run each, client and server on this
# machine together. Starts `usersigd serve` on a private PostgreSQL in a temp dir, creates an app,
# imports a key, and signs the same N distinct identifiers through the endpoint at the default zlib
# level and at level 0, each with curl (one request) and with `usersig batch` (requests of at most
# 32 MiB), timing each to the last byte received. Meanwhile GET /healthz is sampled every ~20 ms
# (a new connection each time) and usersigd's peak RSS is read from /proc after each run. Checks
# the line counts, the summary (count, failures, and its sha256 recomputed here for curl) and a
# sample of tokens with `usersig verify`; prints a Markdown table.
#
# Usage: bench/batch.sh [N]           (N identifiers, default 1000000)
#        BATCH_BIG=1 bench/batch.sh   also 5,000,000 identifiers through `usersig batch` (for the
#                                     server's RSS; only when N >= 1000000)
#        BATCH_STREAM=1 bench/batch.sh     also the streamed body under concurrency, in the same
#                                     run: 1, 4 and 8 batches at once of 4,194,304 identifiers
#                                     each (curl, one chunked request each, all started together),
#                                     then one of 10,000,000 through `usersig batch` (one streamed
#                                     request); for each, the tokens/s of all together, usersigd's
#                                     peak RSS, and the p99 of single signs (POST .../usersigs,
#                                     wrk -t1 -c1, one every 20 ms) during it against the same
#                                     measured idle first. BATCH_STREAM=only: just those.
#                                     BATCH_STREAM_N, BATCH_STREAM_BIG: other sizes (a quick try).
#        BATCH_CLIENT_NICE=N          the streamed runs' batch clients at nice N (default 10): they
#                                     stand for machines elsewhere, so that on one small machine
#                                     their CPU (curl, usersig batch's checks) yields to the
#                                     server's and the single signs' (0: no nice)
#        BATCH_BUILD_DIR=DIR          the Release build to use (default build-bench/)
# Builds a Release build in build-bench/ (incrementally). Installs tests/node/node_modules (npm ci)
# when missing. Temp files go under $TMPDIR (or /tmp): about 250 bytes a token per run, removed
# once checked. The server is stopped (SIGTERM) and the temp dir removed on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-1000000}
if ! [[ $N =~ ^[1-9][0-9]{0,8}$ ]]; then
    echo "usage: $0 [N]   (N: number of identifiers, 1..999999999)" >&2
    exit 2
fi
BIG=5000000
SDKAPPID=1400000000
EXPIRE=15552000 # the official libraries' default, 180 days
SAMPLE=20
KEY=5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e # the official vectors' secret

die() {
    echo "batch.sh: $*" >&2
    exit 1
}
note() { echo "batch.sh: $*" >&2; }

command -v node >/dev/null 2>&1 || die "node is not installed"
command -v curl >/dev/null 2>&1 || die "curl is not installed"

# ---- build ------------------------------------------------------------------------------------
BUILD_DIR=${BATCH_BUILD_DIR:-$ROOT/build-bench}
STREAM=${BATCH_STREAM:-}
STREAM_N=${BATCH_STREAM_N:-4194304}
STREAM_BIG=${BATCH_STREAM_BIG:-10000000}
CLIENT_NICE=${BATCH_CLIENT_NICE:-10}
[[ $CLIENT_NICE =~ ^[0-9]{1,2}$ ]] && [ "$CLIENT_NICE" -le 19 ] || die "BATCH_CLIENT_NICE must be 0..19"
if [ -n "$STREAM" ]; then
    [[ $STREAM_N =~ ^[1-9][0-9]{0,8}$ ]] && [[ $STREAM_BIG =~ ^[1-9][0-9]{0,8}$ ]] ||
        die "BATCH_STREAM_N and BATCH_STREAM_BIG must be numbers of identifiers"
    command -v wrk >/dev/null 2>&1 || die "BATCH_STREAM needs wrk (Debian: apt-get install wrk)"
fi
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
    note "configuring a Release build in $BUILD_DIR"
    cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$BUILD_DIR" --target usersig usersigd -j "$(nproc 2>/dev/null || echo 2)" >/dev/null ||
    die "the build failed (cmake --build $BUILD_DIR)"
USERSIG=$BUILD_DIR/usersig
USERSIGD=$BUILD_DIR/usersigd
[ -x "$USERSIG" ] && [ -x "$USERSIGD" ] || die "the build did not produce $USERSIG and $USERSIGD"
BUILD_TYPE=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt")
if grep -q '^USERSIGD_SANITIZE:BOOL=ON' "$BUILD_DIR/CMakeCache.txt"; then
    note "warning: $BUILD_DIR is a sanitizer build; its figures are not representative"
fi
if [ ! -d "$ROOT/tests/node/node_modules/tls-sig-api-v2" ]; then
    note "installing the official Node library (npm ci --prefix tests/node)"
    npm ci --prefix "$ROOT/tests/node" --no-audit --no-fund >/dev/null
fi
NODE_VERSION=$(node --version)
LIB_VERSION=$(node -p "require('$ROOT/tests/node/node_modules/tls-sig-api-v2/package.json').version")

# ---- the server -------------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/usersig-batch-bench.XXXXXX")
chmod 711 "$WORK" # as root, the embedded PostgreSQL runs as its own user below it
SERVER_PID=
SAMPLER_PID=
cleanup() {
    if [ -n "$SAMPLER_PID" ]; then kill "$SAMPLER_PID" 2>/dev/null || true; fi
    if [ -n "${PACED_PID:-}" ]; then kill "$PACED_PID" 2>/dev/null || true; fi
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 300); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "batch.sh: usersigd did not stop within 30 s; killing it" >&2
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

# Only the settings given here: a private PostgreSQL in the temp dir, a free port.
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
printf '%s\n' "$TOKEN" >"$WORK/token"
printf 'Authorization: Bearer %s\n' "$TOKEN" >"$WORK/auth" # curl -H @file: not in argv
printf '%s\n' "$KEY" >"$WORK/key"

api() { # METHOD PATH JSON: prints the status code; the body goes to $WORK/api.out
    curl -s -o "$WORK/api.out" -w '%{http_code}' -X "$1" -H @"$WORK/auth" \
        -H 'Content-Type: application/json' --data-binary "$3" "$BASE$2"
}
code=$(api POST /v1/apps "{\"sdkappid\":$SDKAPPID,\"name\":\"batch bench\"}")
[ "$code" == 201 ] || [ "$code" == 200 ] || die "POST /v1/apps: HTTP $code $(cat "$WORK/api.out")"
code=$(api POST /v1/apps/$SDKAPPID/keys "{\"secret\":\"$KEY\"}")
[ "$code" == 201 ] || [ "$code" == 200 ] || die "POST /v1/apps/$SDKAPPID/keys: HTTP $code $(cat "$WORK/api.out")"
code=$(printf 'probe\n' | curl -s -o "$WORK/api.out" -w '%{http_code}' -H @"$WORK/auth" \
    -H 'Content-Type: text/plain' --data-binary @- "$BASE/v1/apps/$SDKAPPID/usersigs/batch")
[ "$code" == 200 ] || die "the batch endpoint answers HTTP $code: $(head -c 300 "$WORK/api.out")"

# ---- measuring --------------------------------------------------------------------------------
awk -v n="$N" 'BEGIN { for (i = 1; i <= n; i++) printf "user_%08d\n", i }' >"$WORK/ids"
sync "$WORK/ids" # on disk before the runs (see the streamed runs' files below)
[ "$(wc -l <"$WORK/ids")" -eq "$N" ] || die "could not write $N identifiers"

# GET /healthz every ~20 ms, a new connection each time, until stopped: one curl process (a
# config file of URLs, --rate) rather than a process per sample, so the sampler itself costs
# little CPU. Each line: HTTP status and seconds.
awk -v u="$BASE/healthz" 'BEGIN { for (i = 0; i < 30000; i++) printf "url = \"%s\"\noutput = \"/dev/null\"\n", u }' \
    >"$WORK/healthz.cfg"
sampler_start() {
    curl -s --rate 50/s --max-time 5 -H 'Connection: close' -w '%{stderr}%{http_code} %{time_total}\n' \
        -K "$WORK/healthz.cfg" 2>"$WORK/healthz.$1" &
    SAMPLER_PID=$!
}
sampler_stop() { # NAME: sets HZ_P50 HZ_P99 HZ_MAX (ms) HZ_N HZ_BAD
    kill "$SAMPLER_PID" 2>/dev/null || true
    wait "$SAMPLER_PID" 2>/dev/null || true
    SAMPLER_PID=
    HZ_BAD=$(awk '$1 != 200 { bad++ } END { print bad + 0 }' "$WORK/healthz.$1")
    read -r HZ_N HZ_P50 HZ_P99 HZ_MAX < <(awk '$1 == 200 { print $2 * 1000 }' "$WORK/healthz.$1" |
        sort -n | awk '{ v[NR] = $1 }
        END { if (NR == 0) { print 0, "-", "-", "-"; exit }
              i50 = int(NR * 0.50 + 0.999); i99 = int(NR * 0.99 + 0.999)
              printf "%d %.1f %.1f %.1f\n", NR, v[i50], v[i99], v[NR] }')
}
# The server's peak RSS over one run: VmHWM reset before it (clear_refs 5), read after it.
rss_reset() { echo 5 >"/proc/$SERVER_PID/clear_refs" 2>/dev/null || note "cannot reset VmHWM"; }
rss_peak() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$SERVER_PID/status"; }

# verify_sample NAME FILE N FORMAT(ndjson|tsv): SAMPLE tokens spread over the file verify.
verify_sample() {
    local name=$1 file=$2 n=$3 fmt=$4 id token verdict checked=0
    awk -v n="$n" -v k="$SAMPLE" 'BEGIN { step = int(n / k); if (step < 1) step = 1 }
        (NR - 1) % step == 0 && taken < k && NR <= n { print; taken++ }' "$file" >"$WORK/sample"
    if [ "$fmt" == ndjson ]; then
        node -e 'for (const l of require("fs").readFileSync(process.argv[1], "utf8").split("\n")) {
            if (!l) continue; const o = JSON.parse(l);
            if (!o.usersig) { console.error("not a token line: " + l); process.exit(1); }
            console.log(o.identifier + "\t" + o.usersig); }' "$WORK/sample" >"$WORK/sample.tsv" ||
            die "$name: the sample has lines without a token"
    else
        cp "$WORK/sample" "$WORK/sample.tsv"
    fi
    while IFS=$'\t' read -r id token; do
        verdict=$("$USERSIG" verify --sdkappid "$SDKAPPID" --key-file "$WORK/key" --identifier "$id" \
            "$token" 2>&1) || die "$name: the token for '$id' does not verify: $verdict"
        checked=$((checked + 1))
    done <"$WORK/sample.tsv"
    [ "$checked" -ge 1 ] || die "$name: no token was checked"
    # zlib header of the first token: FLEVEL (0: level 0-1, 1: 2-5, 2: 6, 3: 7-9)
    FLEVEL=$(head -1 "$WORK/sample.tsv" | cut -f2 | node -e 'let s = require("fs").readFileSync(0, "utf8").trim();
        const b = Buffer.from(s.replace(/\*/g, "+").replace(/-/g, "/").replace(/_/g, "="), "base64");
        console.log(["0-1", "2-5", "6", "7-9"][b[1] >> 6]);')
    TOKEN_BYTES=$(awk -F '\t' '{ s += length($2) } END { printf "%.0f", s / NR }' "$WORK/sample.tsv")
}

ROWS=()
NOTES=()
NODE_RATE=
add_row() { # CLIENT LEVEL TOKENS RSS P99
    local rate ratio
    rate=$(awk -v n="$3" -v s="$SECS" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
    ratio=$(awk -v a="$rate" -v b="$NODE_RATE" 'BEGIN { printf "%.2fx", (b > 0 ? a / b : 0) }')
    ROWS+=("| $1 | $2 | $3 | $SECS | $rate | $ratio | $4 | $5 |")
    CHECKS+=("$1|$2|$3|${ratio%x}|$4|$5")
}
CHECKS=()
# The issue's targets, row by row: default level >= 4x Node, level 0 >= 8x, server peak RSS
# under 128 MiB, healthz p99 under 50 ms.
targets() {
    local row client level tokens ratio rss p99 want verdict
    for row in "${CHECKS[@]}"; do
        IFS='|' read -r client level tokens ratio rss p99 <<<"$row"
        case $client in node*) continue ;; esac
        want=4
        if [ "$level" == 0 ]; then want=8; fi
        verdict=$(awk -v r="$ratio" -v w="$want" -v m="$rss" -v p="$p99" 'BEGIN {
            printf "%sx Node (target >= %dx: %s); server peak RSS %s MiB (target < 128: %s); ",
                r, w, (r >= w ? "met" : "MISSED"), m, (m < 128 ? "met" : "MISSED")
            printf "healthz p99 %s ms (target < 50: %s)", p,
                (p == "-" ? "no sample" : p < 50 ? "met" : "MISSED") }')
        echo "- $client, level $level, $tokens tokens: $verdict"
    done
}
timed() { # OUT ERR CMD...: runs it with stdin from $IN; sets SECS and RC
    local out=$1 err=$2 t0 t1
    shift 2
    RC=0
    t0=$(date +%s.%N)
    "$@" <"$IN" >"$out" 2>"$err" || RC=$?
    t1=$(date +%s.%N)
    SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
}

# run_batch CLIENT(curl|usersig) LEVEL(default|0-9) IDS_FILE COUNT
run_batch() {
    local client=$1 level=$2 count=$4 name="$1 level $2 ($4 identifiers)" query="?expire=$EXPIRE" label p99
    local lopt=()
    IN=$3
    if [ "$level" != default ]; then
        query="$query&level=$level"
        lopt=(--level "$level")
    fi
    rss_reset
    sampler_start "$client.$level.$count"
    if [ "$client" == curl ]; then
        timed "$WORK/out" "$WORK/err" curl -sS -w '%{stderr}%{http_code}\n' -H @"$WORK/auth" \
            -H 'Content-Type: text/plain' --data-binary @"$IN" "$BASE/v1/apps/$SDKAPPID/usersigs/batch$query"
    else
        timed "$WORK/out" "$WORK/err" "$USERSIG" batch --server "$BASE" --token-file "$WORK/token" \
            --sdkappid "$SDKAPPID" --expire "$EXPIRE" "${lopt[@]+"${lopt[@]}"}"
    fi
    sampler_stop "$client.$level.$count"
    RSS=$(rss_peak)
    kill -0 "$SERVER_PID" 2>/dev/null || die "$name: usersigd died"
    [ "$RC" -eq 0 ] || die "$name: exit status $RC: $(tail -c 600 "$WORK/err")"
    local lines
    lines=$(wc -l <"$WORK/out")
    if [ "$client" == curl ]; then
        [ "$(cat "$WORK/err")" == 200 ] || die "$name: HTTP $(cat "$WORK/err")"
        [ "$lines" -eq $((count + 1)) ] || die "$name: $lines lines, not $count + the summary"
        # The summary: counts, and its sha256 over every preceding line recomputed here.
        local want
        want=$(head -n "$count" "$WORK/out" | sha256sum | cut -d' ' -f1)
        tail -n 1 "$WORK/out" | node -e 'const s = JSON.parse(require("fs").readFileSync(0, "utf8")).summary;
            const [n, sha] = process.argv.slice(1);
            if (!s || s.count !== +n || s.signed !== +n || s.failed !== 0 || s.sha256 !== sha) {
                console.error(JSON.stringify(s)); process.exit(1); }' "$count" "$want" ||
            die "$name: the summary line does not match the $count lines (sha256 $want)"
    else
        [ "$lines" -eq "$count" ] || die "$name: $lines lines, not $count"
        local summed
        summed=$(awk '$1 == "batch" && $4 == "signed" && $7 == 0 { s += $5 } END { print s + 0 }' "$WORK/err")
        [ "$summed" -eq "$count" ] || die "$name: the summaries on stderr add up to $summed signed: $(cat "$WORK/err")"
        name="usersig batch level $level ($count identifiers, $(grep -c '^batch ' "$WORK/err") requests)"
    fi
    verify_sample "$name" "$WORK/out" "$count" ndjson
    rm -f "$WORK/out"
    label=$level
    if [ "$level" == default ]; then label="default ($FLEVEL)"; fi
    p99=$HZ_P99
    add_row "$([ "$client" == curl ] && echo "curl (1 request)" || echo "usersig batch")" "$label" "$count" "$RSS" "$p99"
    NOTES+=("$name: healthz p50 $HZ_P50 ms, p99 $HZ_P99 ms, max $HZ_MAX ms over $HZ_N samples ($HZ_BAD failed); server peak RSS $RSS MiB; mean token $TOKEN_BYTES bytes")
}

CPU=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //')
note "$N identifiers; usersigd and usersig ($BUILD_TYPE) from $BUILD_DIR; node $NODE_VERSION," \
    "tls-sig-api-v2 $LIB_VERSION; $(nproc) CPUs, $CPU; server at $BASE"
IDLE_RSS=$(awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$SERVER_PID/status")
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

if [ "$STREAM" != only ]; then
# The baseline: the official library in a loop, one process.
IN=/dev/null
timed "$WORK/out" "$WORK/node.err" node "$ROOT/bench/node_sign.js" "$WORK/ids" "$SDKAPPID" "$WORK/key" "$EXPIRE"
[ "$RC" -eq 0 ] || die "node_sign.js: exit status $RC: $(cat "$WORK/node.err")"
[ "$(wc -l <"$WORK/out")" -eq "$N" ] || die "node wrote $(wc -l <"$WORK/out") lines, not $N"
verify_sample node "$WORK/out" "$N" tsv
rm -f "$WORK/out"
NODE_RATE=$(awk -v n="$N" -v s="$SECS" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
add_row "node tls-sig-api-v2 $LIB_VERSION (loop)" 6 "$N" "—" "—"

for level in default 0; do
    run_batch curl "$level" "$WORK/ids" "$N"
    run_batch usersig "$level" "$WORK/ids" "$N"
done

if [ "${BATCH_BIG:-}" == 1 ] && [ "$N" -ge 1000000 ]; then
    awk -v n="$BIG" 'BEGIN { for (i = 1; i <= n; i++) printf "user_%08d\n", i }' >"$WORK/ids.big"
    sync "$WORK/ids.big"
    run_batch usersig default "$WORK/ids.big" "$BIG"
    rm -f "$WORK/ids.big"
fi
fi # not BATCH_STREAM=only

# ---- streamed bodies under concurrency (BATCH_STREAM) -----------------------------------------
# paced_start NAME: single signs, one every 20 ms on one connection, until paced_stop NAME, which
# sets PS_P99 PS_P50 (ms), PS_OK, PS_BAD (non-2xx, socket errors, 2xx without a token).
paced_start() {
    wrk -t1 -c1 -d3600s --timeout 10s -s "$ROOT/bench/online/sign_paced.lua" "$BASE" -- \
        "$WORK/token" "$SDKAPPID" "p$1" 20 >"$WORK/wrk.$1" 2>&1 &
    PACED_PID=$!
    sleep 0.5 # wrk's start (and its first requests) before the load
}
paced_stop() {
    kill -INT "$PACED_PID" 2>/dev/null || true
    wait "$PACED_PID" 2>/dev/null || true
    PACED_PID=
    local line kv
    line=$(grep '^ONLINE ' "$WORK/wrk.$1" | tail -1)
    [ -n "$line" ] || die "paced signs ($1): wrk printed no summary: $(tail -5 "$WORK/wrk.$1")"
    local W_ok='' W_non2xx='' W_unexpected='' W_read='' W_write='' W_timeout='' W_connect='' W_p50_us='' W_p99_us=''
    for kv in ${line#ONLINE }; do
        [[ $kv =~ ^[a-z0-9_]+=[0-9]+$ ]] || die "paced signs ($1): a summary field is not a count: '$kv'"
        printf -v "W_${kv%%=*}" '%s' "${kv#*=}"
    done
    PS_OK=$W_ok
    PS_BAD=$((W_non2xx + W_unexpected + W_connect + W_read + W_write + W_timeout))
    PS_P50=$(awk -v u="$W_p50_us" 'BEGIN { printf "%.1f", u / 1000 }')
    PS_P99=$(awk -v u="$W_p99_us" 'BEGIN { printf "%.1f", u / 1000 }')
    [ "$PS_OK" -ge 1 ] || die "paced signs ($1): no sign answered"
}
PACED_PID=
S_ROWS=()
S_CHECKS=()
# stream_run NAME BATCHES COUNT: BATCHES batches of COUNT identifiers at once, curl (one chunked
# request each, read from $WORK/ids.s as it goes) or, for "big", usersig batch from $WORK/ids.b.
stream_run() {
    local name=$1 k=$2 count=$3 i t0 t1 rc=0 pids=()
    rss_reset
    paced_start "$name"
    t0=$(date +%s.%N)
    for i in $(seq "$k"); do
        if [ "$name" == big ]; then
            nice -n "$CLIENT_NICE" "$USERSIG" batch --server "$BASE" --token-file "$WORK/token" --sdkappid "$SDKAPPID" \
                --expire "$EXPIRE" <"$WORK/ids.b" >/dev/null 2>"$WORK/s.$name.$i.err" &
        else
            { nice -n "$CLIENT_NICE" curl -sS -T - -X POST -H @"$WORK/auth" -H 'Content-Type: text/plain' \
                -H 'Transfer-Encoding: chunked' -w '%{stderr}%{http_code}\n' \
                "$BASE/v1/apps/$SDKAPPID/usersigs/batch?expire=$EXPIRE" <"$WORK/ids.s" 2>"$WORK/s.$name.$i.err" |
                nice -n "$CLIENT_NICE" tail -n 1 >"$WORK/s.$name.$i.sum"; } &
        fi
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i" || rc=$?; done
    t1=$(date +%s.%N)
    paced_stop "$name"
    local rss secs total rate
    rss=$(rss_peak)
    kill -0 "$SERVER_PID" 2>/dev/null || die "stream $name: usersigd died"
    [ "$rc" -eq 0 ] || die "stream $name: a client failed ($rc): $(tail -c 600 "$WORK/s.$name.1.err")"
    for i in $(seq "$k"); do
        if [ "$name" == big ]; then
            grep -qE "^batch [0-9a-f]+: $count signed $count failed 0 " "$WORK/s.$name.$i.err" ||
                die "stream $name: usersig batch did not sign $count: $(cat "$WORK/s.$name.$i.err")"
        else
            [ "$(cat "$WORK/s.$name.$i.err")" == 200 ] || die "stream $name #$i: HTTP $(cat "$WORK/s.$name.$i.err")"
            node -e 'const s = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).summary;
                if (!s || s.count !== +process.argv[2] || s.signed !== +process.argv[2] || s.failed !== 0) {
                    console.error(JSON.stringify(s)); process.exit(1); }' "$WORK/s.$name.$i.sum" "$count" ||
                die "stream $name #$i: the summary is not $count signed: $(cat "$WORK/s.$name.$i.sum")"
        fi
    done
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    total=$((k * count))
    rate=$(awk -v n="$total" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
    local label="$k x $count (curl, 1 chunked request each)"
    [ "$name" == big ] && label="1 x $count (usersig batch, 1 streamed request)"
    S_ROWS+=("| $label | $total | $secs | $rate | $rss | $PS_P50 | $PS_P99 | $(cut -d' ' -f1 /proc/loadavg) |")
    S_CHECKS+=("$name|$k|$rate|$rss|$PS_P99")
    NOTES+=("stream $name: $PS_OK single signs answered during it ($PS_BAD failed), p50 $PS_P50 ms, p99 $PS_P99 ms; load average after it $(cut -d' ' -f1-3 /proc/loadavg)")
}
if [ -n "$STREAM" ]; then
    awk -v n="$STREAM_N" 'BEGIN { for (i = 1; i <= n; i++) printf "user_%08d\n", i }' >"$WORK/ids.s"
    awk -v n="$STREAM_BIG" 'BEGIN { for (i = 1; i <= n; i++) printf "u%08d\n", i }' >"$WORK/ids.b"
    # Written to disk now, so that the kernel's writeback of these ~150 MB (about 30 s later)
    # does not fall inside a run, where the single signs' commits flush the WAL to the same disk.
    sync "$WORK/ids.s" "$WORK/ids.b"
    note "streamed: $STREAM_N identifiers a batch ($(($(stat -c %s "$WORK/ids.s") / 1048576)) MiB), $STREAM_BIG in the big one"
    # the tokens: 1000 signed through a streamed request, a sample verified
    head -n 1000 "$WORK/ids.s" >"$WORK/ids.v"
    IN=$WORK/ids.v
    timed "$WORK/out" "$WORK/err" "$USERSIG" batch --server "$BASE" --token-file "$WORK/token" \
        --sdkappid "$SDKAPPID" --expire "$EXPIRE"
    [ "$RC" -eq 0 ] || die "streamed check: exit status $RC: $(cat "$WORK/err")"
    verify_sample "streamed check" "$WORK/out" 1000 ndjson
    # idle: the single signs alone, as long as a run
    paced_start idle
    sleep 10
    paced_stop idle
    IDLE_P50=$PS_P50
    IDLE_P99=$PS_P99
    NOTES+=("single signs idle (one every 20 ms, 10 s): $PS_OK answered ($PS_BAD failed), p50 $PS_P50 ms, p99 $PS_P99 ms")
    for k in 1 4 8; do stream_run "c$k" "$k" "$STREAM_N"; done
    stream_run big 1 "$STREAM_BIG"
    rm -f "$WORK/ids.s" "$WORK/ids.b"
fi

if [ "$STREAM" == only ]; then
    echo
    echo "| batches at once | tokens | seconds | tokens/s (all) | usersigd peak RSS MiB | sign p50 ms | sign p99 ms | load avg |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${S_ROWS[@]}"
    echo
    echo "One run, $(date -u +%Y-%m-%d), clients and server on this machine ($(nproc) CPUs, $CPU);"
    echo "usersigd and usersig: $BUILD_TYPE build; the batch clients at nice $CLIENT_NICE, the single"
    echo "signs' wrk and usersigd at 0 (usersigd's workers at +5). Load average before the runs: $LOAD_BEFORE"
    echo "(1, 5, 15 min); the last column is the 1-minute one after each run. Single signs idle:"
    echo "p50 $IDLE_P50 ms, p99 $IDLE_P99 ms. usersigd idle: $IDLE_RSS MiB."
    for n in "${NOTES[@]}"; do echo "- $n"; done
    echo
    echo "Targets (issue 13):"
    r1=
    for row in "${S_CHECKS[@]}"; do
        IFS='|' read -r name k rate rss p99 <<<"$row"
        [ "$name" == c1 ] && r1=$rate
        awk -v n="$name" -v r="$rate" -v r1="$r1" -v m="$rss" -v p="$p99" -v i="$IDLE_P99" 'BEGIN {
            printf "- %s: peak RSS %s MiB (target <= 64: %s); sign p99 %s ms = %.1fx idle %s ms (target <= 3x: %s)",
                n, m, (m <= 64 ? "met" : "MISSED"), p, (i > 0 ? p / i : 0), i, (i > 0 && p <= 3 * i ? "met" : "MISSED")
            if (n == "c4") printf "; %s tokens/s vs %s with 1 batch (target >= 1x: %s)", r, r1, (r + 0 >= r1 + 0 ? "met" : "MISSED")
            printf "\n" }'
    done
    exit 0
fi

echo
echo "| client | level | tokens | seconds | tokens/s | vs Node | server peak RSS MiB | healthz p99 ms |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
echo
echo "One run, $(date -u +%Y-%m-%d), client and server on this machine ($(nproc) CPUs, $CPU);"
echo "usersigd and usersig: $BUILD_TYPE build; node $NODE_VERSION. Seconds: wall time of the client"
echo "process, to the last byte received (the Node row: the whole process, reading the identifiers"
echo "included; $(sed 's/^node: //' "$WORK/node.err"))."
echo "Server peak RSS: usersigd's own VmHWM over each run (reset before it through"
echo "/proc/PID/clear_refs); the embedded PostgreSQL runs as separate processes and is not counted."
echo "usersigd idle before the runs: $IDLE_RSS MiB. healthz: GET /healthz every ~20 ms on a new"
echo "connection while each run lasted."
for n in "${NOTES[@]}"; do echo "- $n"; done
echo
echo "Targets (issue 4):"
targets
echo
echo "Every run: the line count and the summary checked; $SAMPLE tokens verified with usersig verify."
if [ -n "$STREAM" ]; then
    echo
    echo "| batches at once | tokens | seconds | tokens/s (all) | usersigd peak RSS MiB | sign p50 ms | sign p99 ms | load avg |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${S_ROWS[@]}"
    echo
    echo "Single signs idle: p50 $IDLE_P50 ms, p99 $IDLE_P99 ms. Load average before the runs: $LOAD_BEFORE."
fi
