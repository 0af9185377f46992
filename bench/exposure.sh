#!/usr/bin/env bash
# Benchmark: GET /v1/apps/{sdkappid}/keys/{version}/exposure for an app with 10 million signs.
# Starts `usersigd serve` on a private PostgreSQL in a temp dir, creates an app with a key, signs
# a few UserSigs and one batch through the API (real rows), then seeds the audit log with
# EXPOSURE_SIGNS usersig.sign events (default 10,000,000) with SQL generate_series, in
# statements of a million (so the log's trigger keeps key_exposure as signing does, a statement
# at a time), expiries spread over 180 days, 1 million distinct identifiers, plus 200 batch
# manifests. Then it times EXPOSURE_CALLS (default 200) GET .../exposure with curl, one after the
# other (p50, p99, max), checks the total against the audit log counted directly (and times that
# count: what answering from the log's rows would cost), and prints the server-side execution
# time of the reply's two statements (EXPLAIN ANALYZE).
#
# The seeded events carry no valid MACs (the chain is not the point here; the database is
# thrown away). Needs curl, jq and psql. Uses EXPOSURE_BUILD_DIR's usersigd (default
# build-bench/, built Release as bench/online.sh does).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SDKAPPID=1400000000
KEY=5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e
SIGNS=${EXPOSURE_SIGNS:-10000000}
CALLS=${EXPOSURE_CALLS:-200}
CHUNK=1000000

die() { echo "exposure.sh: $*" >&2; exit 1; }
note() { echo "exposure.sh: $*" >&2; }
[[ $SIGNS =~ ^[1-9][0-9]{0,8}$ ]] || die "EXPOSURE_SIGNS must be 1..999999999"
[[ $CALLS =~ ^[1-9][0-9]{0,4}$ ]] || die "EXPOSURE_CALLS must be 1..99999"
for tool in curl jq psql; do command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed"; done

BUILD_DIR=${EXPOSURE_BUILD_DIR:-$ROOT/build-bench}
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
    note "configuring a Release build in $BUILD_DIR"
    cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DUSERSIGD_TESTS=OFF >/dev/null
fi
cmake --build "$BUILD_DIR" --target usersigd -j "$(nproc 2>/dev/null || echo 2)" >/dev/null ||
    die "the build failed (cmake --build $BUILD_DIR)"
USERSIGD=$BUILD_DIR/usersigd

WORK=$(mktemp -d "${TMPDIR:-/tmp}/usersig-exposure-bench.XXXXXX")
chmod 711 "$WORK"
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 300); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
umask 077
mkdir -m 755 "$WORK/data"

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
[ -n "$PORT" ] || die "usersigd did not say where it listens within 120 s"
BASE=http://127.0.0.1:$PORT
TOKEN=$(sed -n 's/^admin token: \(usg_[^ ]*\)$/\1/p' "$WORK/server.out" | head -1)
[ -n "$TOKEN" ] || die "usersigd printed no admin token"
printf 'Authorization: Bearer %s\n' "$TOKEN" >"$WORK/auth"
api() { # METHOD PATH [JSON]: prints the status; the body goes to $WORK/api.out
    curl -s -o "$WORK/api.out" -w '%{http_code}' -X "$1" -H @"$WORK/auth" \
        -H 'Content-Type: application/json' ${3:+--data-binary "$3"} "$BASE$2"
}
[ "$(api POST /v1/apps "{\"sdkappid\":$SDKAPPID,\"name\":\"exposure bench\"}")" == 201 ] || die "POST /v1/apps: $(cat "$WORK/api.out")"
[ "$(api POST /v1/apps/$SDKAPPID/keys "{\"secret\":\"$KEY\"}")" == 201 ] || die "POST keys: $(cat "$WORK/api.out")"
for i in $(seq 100); do
    [ "$(api POST /v1/apps/$SDKAPPID/usersigs "{\"identifier\":\"real$i\"}")" == 200 ] || die "sign: $(cat "$WORK/api.out")"
done
printf 'b%s\n' $(seq 1000) >"$WORK/batch.ids"
code=$(curl -s -o "$WORK/batch.out" -w '%{http_code}' -H @"$WORK/auth" -H 'Content-Type: text/plain' \
    --data-binary @"$WORK/batch.ids" "$BASE/v1/apps/$SDKAPPID/usersigs/batch")
[ "$code" == 200 ] || die "batch: HTTP $code"

PGDATA_DIR=$WORK/data/pg/data
PG_PORT=$(sed -n 4p "$PGDATA_DIR/postmaster.pid")
PG_SOCK=$(sed -n 5p "$PGDATA_DIR/postmaster.pid")
PG_OWNER=$(stat -c %U "$PGDATA_DIR")
sql() {
    if [ "$PG_OWNER" != "$(id -un)" ]; then
        (cd / && runuser -u "$PG_OWNER" -- psql -X -q -At -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$PG_PORT" -U usersigd -d usersigd -c "$1")
    else
        psql -X -q -At -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$PG_PORT" -U usersigd -d usersigd -c "$1"
    fi
}

# ---- seeding ----------------------------------------------------------------------------------
NOW=$(date +%s)
note "seeding $SIGNS usersig.sign events (statements of $CHUNK) ..."
T0=$(date +%s.%N)
done_n=0
while [ "$done_n" -lt "$SIGNS" ]; do
    n=$((SIGNS - done_n < CHUNK ? SIGNS - done_n : CHUNK))
    sql "INSERT INTO audit_log (seq, at, actor_id, actor_name, action, sdkappid, key_version, outcome, details, mac)
         SELECT l.seq + g, now(), NULL, 'bench', 'usersig.sign', $SDKAPPID, 1, 'ok',
                '{\"identifier\":\"u' || (($done_n + g) % 1000000) || '\",\"expire\":15552000,\"expire_at\":'
                || ($NOW - 86400 + (($done_n + g)::bigint * 7919) % 15638400) || '}',
                '\\x0000000000000000000000000000000000000000000000000000000000000000'::bytea
         FROM (SELECT max(seq) AS seq FROM audit_log) l, generate_series(1, $n) g" >/dev/null
    done_n=$((done_n + n))
    note "  $done_n"
done
sql "INSERT INTO batches (batch_id, sdkappid, key_version, actor_name, state, count, signed, failed, sha256, started_at, finished_at, expire)
     SELECT md5(g::text), $SDKAPPID, 1, 'bench', 'complete', 50000, 50000, 0, md5(g::text) || md5(g::text),
            now() - g * interval '1 hour', now() - g * interval '1 hour' + interval '1 minute', 15552000
     FROM generate_series(1, 200) g" >/dev/null
T1=$(date +%s.%N)
sql "VACUUM ANALYZE" >/dev/null
SEED_S=$(echo "$T1 - $T0" | bc)
ROWS=$(sql "SELECT count(*) FROM audit_log WHERE action = 'usersig.sign'")
HOURS=$(sql "SELECT count(*) FROM key_exposure")

# ---- measuring --------------------------------------------------------------------------------
[ "$(api GET /v1/apps/$SDKAPPID/keys/1/exposure)" == 200 ] || die "exposure: $(cat "$WORK/api.out")"
LIVE=$(jq .live.single "$WORK/api.out")
BATCH=$(jq .live.batch "$WORK/api.out")
DAYS=$(jq '.days | length' "$WORK/api.out")
printf 'url = "%s"\noutput = "/dev/null"\n' $(for _ in $(seq "$CALLS"); do echo "$BASE/v1/apps/$SDKAPPID/keys/1/exposure"; done) >"$WORK/calls.cfg"
curl -s -H @"$WORK/auth" -w '%{http_code} %{time_total}\n' -K "$WORK/calls.cfg" >"$WORK/times"
BAD=$(awk '$1 != 200' "$WORK/times" | wc -l)
read -r P50 P99 MAX < <(awk '{ print $2 * 1000 }' "$WORK/times" | sort -n |
    awk '{ v[NR] = $1 } END { printf "%.1f %.1f %.1f\n", v[int(NR * 0.5 + 0.999)], v[int(NR * 0.99 + 0.999)], v[NR] }')
T2=$(date +%s.%N)
DIRECT=$(sql "SELECT count(*) FROM audit_log WHERE action = 'usersig.sign' AND outcome = 'ok' AND sdkappid = $SDKAPPID
              AND key_version = 1
              AND (details::jsonb ->> 'expire_at')::bigint >= extract(epoch FROM now())::bigint / 3600 * 3600")
T3=$(date +%s.%N)
DIRECT_S=$(echo "$T3 - $T2" | bc)
EXPLAIN=$(sql "EXPLAIN (ANALYZE, FORMAT JSON)
  WITH s AS (SELECT expire_hour / 24 AS day, sum(count) AS n FROM key_exposure
             WHERE sdkappid = $SDKAPPID AND version = 1 AND expire_hour >= $(date +%s) / 3600 GROUP BY 1),
  b AS (SELECT (e.at + expire) / 86400 AS day, sum(signed) AS n FROM batches,
        LATERAL (SELECT extract(epoch FROM COALESCE(finished_at, now()))::bigint AS at) e
        WHERE sdkappid = $SDKAPPID AND key_version = 1 AND expire IS NOT NULL AND signed > 0
        AND e.at + expire > $(date +%s) GROUP BY 1)
  SELECT COALESCE(s.day, b.day), COALESCE(s.n, 0), COALESCE(b.n, 0) FROM s FULL JOIN b ON s.day = b.day ORDER BY 1" |
    jq '.[0]["Execution Time"]')

echo
echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); $(date -u +%Y-%m-%d); commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "seeded: $ROWS usersig.sign events ($SIGNS by SQL) and 201 batches in ${SEED_S} s; key_exposure: $HOURS rows"
echo "exposure: live single $LIVE, batch $BATCH, $DAYS days (the audit log counted directly, from the current hour as the summary counts: $DIRECT, in ${DIRECT_S} s)"
[ "$LIVE" == "$DIRECT" ] || echo "MISMATCH: the exposure's single count differs from the audit log's"
echo
echo "| request | calls | non-200 | p50 ms | p99 ms | max ms | days statement, server ms |"
echo "|---|---:|---:|---:|---:|---:|---:|"
echo "| GET /v1/apps/{sdkappid}/keys/1/exposure, $SIGNS signs | $CALLS | $BAD | $P50 | $P99 | $MAX | $EXPLAIN |"
