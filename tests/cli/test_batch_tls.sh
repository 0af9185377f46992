#!/usr/bin/env bash
# Tests of `usersig batch` over HTTPS against the real usersigd, two ways: through a TLS
# terminator in front of a plain-HTTP usersigd (a small Node script: node:https in, node:http
# out, requests and answers piped as they stream; it also serves the expired and wrong-name
# certificates), and against usersigd's own TLS listener (a second usersigd with tls_cert_file
# and tls_key_file, on the first one's private PostgreSQL and master key). The certificates are
# made here by openssl: a CA, a server certificate for 127.0.0.1 and localhost signed by it, an
# expired one, one for another name, and a second CA that signed none of them. Cases: --ca-file
# with the right CA (and in a bundle) signs, its output byte for byte that of the plain-HTTP run;
# the system's store, the wrong CA, the expired certificate and the name mismatch are each
# refused with a message naming the problem, exit status 2, nothing sent and no secret printed.
#
# Usage: bash tests/cli/test_batch_tls.sh PATH/TO/usersig PATH/TO/usersigd
# usersigd runs on a private PostgreSQL of its own (USERSIGD_DATA_DIR), in a temp dir (KEEP_TMP=1
# keeps it, with every run's stdout and stderr).
# Needs node, openssl and curl (skipped with a visible "skip:" line without them, a failure when
# $CI is set). Ends with one line "batch_tls: N passed, M failed"; exit status 1 if M > 0 or N == 0.
set -u

if [ $# -ne 2 ]; then
    echo "usage: bash $0 PATH/TO/usersig PATH/TO/usersigd" >&2
    exit 2
fi
U=$1
D=$2
for b in "$U" "$D"; do
    if [ ! -x "$b" ]; then
        echo "batch_tls: $b is not an executable" >&2
        exit 2
    fi
done
umask 077
TMP=$(mktemp -d "${TMPDIR:-/tmp}/usersig-batch-tls.XXXXXX") || exit 2
chmod 711 "$TMP" # as root, the private PostgreSQL runs as its own user below it
SERVER_PID=
PROXY_PID=
TLSD_PID=
stop() { # PID: TERM, up to 30 s, then KILL
    local pid=$1
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
}
cleanup() {
    stop "$PROXY_PID"
    stop "$TLSD_PID" # before the first usersigd: it uses that one's PostgreSQL
    stop "$SERVER_PID"
    if [ -n "${KEEP_TMP:-}" ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
unset USERSIGD_TOKEN

PASS=0
FAIL=0
pass() {
    PASS=$((PASS + 1))
    if [ -n "${VERBOSE:-}" ]; then echo "ok: $1"; fi
    return 0
}
fail() {
    FAIL=$((FAIL + 1))
    echo "FAIL: $1"
    if [ $# -gt 1 ] && [ -n "$2" ]; then
        printf '      %s\n' "$(printf '%s' "$2" | tr '\n' ' ' | head -c 800)"
    fi
    return 0
}
finish() {
    echo "batch_tls: $PASS passed, $FAIL failed"
    if [ "$FAIL" -gt 0 ] || [ "$PASS" -eq 0 ]; then exit 1; fi
    exit 0
}
for c in node openssl curl; do
    if ! command -v "$c" >/dev/null 2>&1; then
        if [ -n "${CI:-}" ]; then fail "$c is required (CI)"; else echo "skip: no $c"; fi
        finish
    fi
done

# ---- usersigd on a private PostgreSQL, an app and its key ---------------------------------------
mkdir -m 755 "$TMP/data"
while IFS= read -r v; do unset "$v"; done < <(compgen -e | grep '^USERSIGD_' || true)
USERSIGD_DATA_DIR=$TMP/data USERSIGD_LISTEN=127.0.0.1:0 "$D" serve >"$TMP/server.out" 2>"$TMP/server.err" &
SERVER_PID=$!
PORT=
for _ in $(seq 1200); do
    PORT=$(sed -n 's/.* INFO listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$TMP/server.err" | head -1)
    [ -n "$PORT" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$PORT" ]; then
    fail "usersigd did not start" "$(tail -20 "$TMP/server.err")"
    finish
fi
HTTP_URL=http://127.0.0.1:$PORT
TOKEN=$(sed -n 's/^admin token: \(usg_[^ ]*\)$/\1/p' "$TMP/server.out" | head -1)
if [ -z "$TOKEN" ]; then
    fail "usersigd printed no admin token"
    finish
fi
printf '%s\n' "$TOKEN" >"$TMP/token"
printf 'Authorization: Bearer %s\n' "$TOKEN" >"$TMP/auth" # curl -H @file: not in argv
api() { # METHOD PATH JSON: prints the status code
    curl -s -o "$TMP/api.out" -w '%{http_code}' -X "$1" -H @"$TMP/auth" \
        -H 'Content-Type: application/json' --data-binary "$3" "$HTTP_URL$2"
}
SECRET=$(openssl rand -hex 32)
code=$(api POST /v1/apps '{"sdkappid":1400000000,"name":"tls test"}')
[ "$code" == 201 ] || [ "$code" == 200 ] || fail "POST /v1/apps: HTTP $code" "$(cat "$TMP/api.out")"
code=$(api POST /v1/apps/1400000000/keys "{\"secret\":\"$SECRET\"}")
[ "$code" == 201 ] || [ "$code" == 200 ] || fail "POST /v1/apps/1400000000/keys: HTTP $code" "$(cat "$TMP/api.out")"
printf '%s' "$SECRET" >"$TMP/app.key"

# ---- certificates ------------------------------------------------------------------------------
C=$TMP/certs
mkdir "$C"
mkca() { # NAME
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$C/$1.key" \
        -out "$C/$1.pem" -days 2 -subj "/CN=usersig test $1" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
}
mkcert() { # NAME DAYS SAN: a server certificate signed by the CA "ca"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$C/$1.key" \
        -out "$C/$1.csr" -subj "/CN=usersig test $1" &&
        printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$3" >"$C/$1.ext" &&
        openssl x509 -req -in "$C/$1.csr" -CA "$C/ca.pem" -CAkey "$C/ca.key" -CAcreateserial \
            -days "$2" -extfile "$C/$1.ext" -out "$C/$1.pem"
}
if ! { mkca ca && mkca otherca && mkcert good 2 "IP:127.0.0.1,DNS:localhost" &&
    mkcert expired -1 "IP:127.0.0.1,DNS:localhost" && mkcert wrongname 2 "DNS:wrong.example"; } >"$TMP/openssl.log" 2>&1; then
    fail "openssl could not make the certificates" "$(tail -5 "$TMP/openssl.log")"
    finish
fi
cat "$C/otherca.pem" "$C/ca.pem" >"$C/bundle.pem"

# ---- the TLS terminator ------------------------------------------------------------------------
cat >"$TMP/tls_proxy.js" <<'EOF'
'use strict';
// One https listener per certificate, each piping every request to usersigd over plain HTTP
// and its answer back as it streams (no buffering). Writes "good expired wrongname" ports.
const https = require('https');
const http = require('http');
const fs = require('fs');
const [portFile, upstreamPort, dir] = process.argv.slice(2);

function proxy(req, res) {
  const up = http.request({ host: '127.0.0.1', port: +upstreamPort, method: req.method, path: req.url,
    headers: req.headers }, (ur) => {
    res.writeHead(ur.statusCode, ur.statusMessage, ur.headers);
    ur.pipe(res);
  });
  up.on('error', (e) => {
    if (!res.headersSent) {
      res.writeHead(502, { 'Content-Type': 'text/plain', Connection: 'close' });
      res.end('upstream: ' + e.message + '\n');
    } else {
      res.destroy();
    }
  });
  req.pipe(up);
}
const names = ['good', 'expired', 'wrongname'];
const ports = [];
let ready = 0;
names.forEach((name, i) => {
  const s = https.createServer({ key: fs.readFileSync(`${dir}/${name}.key`),
    cert: fs.readFileSync(`${dir}/${name}.pem`), minVersion: 'TLSv1.2' }, proxy);
  s.listen(0, '127.0.0.1', () => {
    ports[i] = s.address().port;
    if (++ready === names.length) fs.writeFileSync(portFile, ports.join(' '));
  });
});
EOF
node "$TMP/tls_proxy.js" "$TMP/ports" "$PORT" "$C" 2>"$TMP/proxy.err" &
PROXY_PID=$!
for _ in $(seq 100); do [ -s "$TMP/ports" ] && break; sleep 0.05; done
if [ ! -s "$TMP/ports" ]; then
    fail "the TLS terminator did not start" "$(cat "$TMP/proxy.err")"
    finish
fi
read -r GOOD EXPIRED WRONGNAME <"$TMP/ports"

# ---- helpers -----------------------------------------------------------------------------------
awk 'BEGIN { for (i = 1; i <= 2000; i++) printf "user_%06d\n", i }' >"$TMP/ids"
# run TAG SERVER [ARGS...]: usersig batch with the token file; stdout $TMP/out.TAG, stderr
# $TMP/err.TAG, exit status $TMP/rc.TAG
run() {
    local tag=$1 server=$2
    shift 2
    "$U" batch --server "$server" --token-file "$TMP/token" --sdkappid 1400000000 "$@" \
        <"$TMP/ids" >"$TMP/out.$tag" 2>"$TMP/err.$tag"
    echo $? >"$TMP/rc.$tag"
}
rc_of() { cat "$TMP/rc.$1"; }
no_secret() { # NAME TAG: neither the API token nor the app's key on its streams
    if grep -qF -e "$TOKEN" -e "$SECRET" "$TMP/out.$2" "$TMP/err.$2"; then
        fail "$1: a secret is printed"
    else
        pass "$1: no secret printed"
    fi
}
batches() { # the number of batches usersigd recorded
    curl -s -H @"$TMP/auth" "$HTTP_URL/v1/apps/1400000000/usersigs/batches?limit=100" |
        node -e 'console.log(JSON.parse(require("fs").readFileSync(0, "utf8")).batches.length)'
}

# ---- the right CA: the same output as over plain HTTP ------------------------------------------
# Tokens carry the second they were signed in, so the two runs go at once; runs whose tokens were
# not signed in the same seconds line for line (a second's turn falling between other lines) are
# tried again (at most 5 times).
sign_times() { # TAG: the TLS.time of every token of out.TAG, one line (decoded as Tencent's format)
    node -e 'const zlib = require("zlib");
        const t = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean).map((l) => {
            const b = JSON.parse(l).usersig.replace(/\*/g, "+").replace(/-/g, "/").replace(/_/g, "=");
            return JSON.parse(zlib.inflateSync(Buffer.from(b, "base64")).toString())["TLS.time"]; });
        console.log(t.join(","))' "$TMP/out.$1"
}
# same_as_plain PLAINTAG TAG SERVER [ARGS...]: run TAG against SERVER at the same time as run
# PLAINTAG over plain HTTP; same=1 when both exit 0 with byte-identical output, try the try.
same_as_plain() {
    local plain=$1 tag=$2 server=$3 p1 p2
    shift 3
    same=0
    for try in 1 2 3 4 5; do
        run "$plain" "$HTTP_URL" &
        p1=$!
        run "$tag" "$server" "$@" &
        p2=$!
        wait "$p1" "$p2"
        [ "$(rc_of "$plain")" -eq 0 ] && [ "$(rc_of "$tag")" -eq 0 ] || return 0
        if cmp -s "$TMP/out.$plain" "$TMP/out.$tag"; then
            same=1
            return 0
        fi
        [ "$(sign_times "$plain")" != "$(sign_times "$tag")" ] || return 0 # the same seconds: a real difference
    done
}
same_as_plain http https "https://127.0.0.1:$GOOD" --ca-file "$C/ca.pem"
[ "$(rc_of http)" -eq 0 ] && pass "plain HTTP: exit 0" || fail "plain HTTP: exit $(rc_of http)" "$(cat "$TMP/err.http")"
[ "$(rc_of https)" -eq 0 ] && pass "https --ca-file CA: exit 0" || fail "https --ca-file CA: exit $(rc_of https)" "$(cat "$TMP/err.https")"
[ "$(wc -l <"$TMP/out.https")" -eq 2000 ] && pass "https: 2000 lines" || fail "https: $(wc -l <"$TMP/out.https") lines"
if [ "$same" -eq 1 ]; then pass "https output byte-identical to plain HTTP (try $try)"; else
    fail "https output differs from plain HTTP" "$(diff "$TMP/out.http" "$TMP/out.https" | head -4)"
fi
grep -qE "^batch [0-9a-f]+: 2000 signed 2000 failed 0 key_version 1 sha256 [0-9a-f]{64}$" "$TMP/err.https" &&
    pass "https: the summary checked and reported" || fail "https: summary" "$(cat "$TMP/err.https")"
no_secret "https --ca-file CA" https
tok=$(sed -n 7p "$TMP/out.https" | node -e 'const o = JSON.parse(require("fs").readFileSync(0, "utf8")); console.log(o.identifier + " " + o.usersig)')
if "$U" verify --sdkappid 1400000000 --key-file "$TMP/app.key" --identifier "${tok%% *}" "${tok#* }" >/dev/null 2>&1; then
    pass "https: a token verifies with the app's key"
else
    fail "https: a token does not verify"
fi
run bundle "https://localhost:$GOOD" --ca-file "$C/bundle.pem" --max-request-bytes 8K
[ "$(rc_of bundle)" -eq 0 ] && pass "https by host name, --ca-file a bundle, several requests: exit 0" ||
    fail "https bundle: exit $(rc_of bundle)" "$(cat "$TMP/err.bundle")"
[ "$(grep -c '^batch ' "$TMP/err.bundle")" -ge 3 ] && [ "$(wc -l <"$TMP/out.bundle")" -eq 2000 ] &&
    pass "https bundle: 2000 lines in several requests" || fail "https bundle: requests" "$(cat "$TMP/err.bundle")"

# ---- refusals: exit 2, the problem named, nothing sent ------------------------------------------
# refused NAME TAG PATTERN SERVER [ARGS...]
refused() {
    local name=$1 tag=$2 pattern=$3 before after
    shift 3
    before=$(batches)
    run "$tag" "$@"
    after=$(batches)
    [ "$(rc_of "$tag")" -eq 2 ] && pass "$name: exit 2" || fail "$name: exit $(rc_of "$tag"), want 2" "$(cat "$TMP/err.$tag")"
    grep -qE -- "$pattern" "$TMP/err.$tag" && pass "$name: the problem named" ||
        fail "$name: stderr lacks /$pattern/" "$(cat "$TMP/err.$tag")"
    [ ! -s "$TMP/out.$tag" ] && pass "$name: no output" || fail "$name: output written"
    [ "$before" == "$after" ] && pass "$name: no batch on the server" || fail "$name: a batch was made ($before -> $after)"
    no_secret "$name" "$tag"
}
refused "system store (no --ca-file)" system \
    "^usersig: TLS: the certificate of 127\.0\.0\.1:$GOOD is not trusted: it is not signed by a CA of the system's store \(give the server's CA with --ca-file\) \(.*\); nothing was sent$" \
    "https://127.0.0.1:$GOOD"
refused "the wrong CA" wrongca \
    "^usersig: TLS: the certificate of 127\.0\.0\.1:$GOOD is not trusted: it is not signed by the CA of the file given with --ca-file \(.*\); nothing was sent$" \
    "https://127.0.0.1:$GOOD" --ca-file "$C/otherca.pem"
refused "an expired certificate" expired \
    "^usersig: TLS: the certificate of 127\.0\.0\.1:$EXPIRED has expired \(or this machine's clock is wrong\); nothing was sent$" \
    "https://127.0.0.1:$EXPIRED" --ca-file "$C/ca.pem"
refused "a name mismatch" wrongname \
    "^usersig: TLS: the certificate of 127\.0\.0\.1:$WRONGNAME is not for the name 127\.0\.0\.1 \(name mismatch: .*\); nothing was sent$" \
    "https://127.0.0.1:$WRONGNAME" --ca-file "$C/ca.pem"
refused "a name mismatch (by host name)" wrongname2 \
    "^usersig: TLS: the certificate of localhost:$WRONGNAME is not for the name localhost \(name mismatch: .*\); nothing was sent$" \
    "https://localhost:$WRONGNAME" --ca-file "$C/ca.pem"
refused "plain HTTP to the TLS port" plain "did not answer in HTTP/1.1|closed the connection|HTTP 400" \
    "http://127.0.0.1:$GOOD"


# ---- usersigd's own TLS listener ---------------------------------------------------------------
# A second usersigd serving HTTPS itself with the good certificate, on the same database (the
# first one's private PostgreSQL, through its socket) and the same master key: the same app, key
# and admin token.
mkdir -m 755 "$TMP/data-tls"
USERSIGD_DATA_DIR=$TMP/data-tls USERSIGD_LISTEN=127.0.0.1:0 \
    USERSIGD_DATABASE_URL="host=$TMP/data/pg/run port=5432 dbname=usersigd user=usersigd" \
    USERSIGD_MASTER_KEY_FILE=$TMP/data/master.key \
    USERSIGD_TLS_CERT_FILE=$C/good.pem USERSIGD_TLS_KEY_FILE=$C/good.key \
    "$D" serve >"$TMP/tlsd.out" 2>"$TMP/tlsd.err" &
TLSD_PID=$!
TLS_PORT=
for _ in $(seq 600); do
    TLS_PORT=$(sed -n 's/.* INFO listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$TMP/tlsd.err" | head -1)
    [ -n "$TLS_PORT" ] && break
    kill -0 "$TLSD_PID" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$TLS_PORT" ]; then
    fail "usersigd with tls_cert_file did not start" "$(tail -20 "$TMP/tlsd.err")"
    finish
fi
grep -q "INFO listening on 127\.0\.0\.1:$TLS_PORT.*TLS" "$TMP/tlsd.err" &&
    pass "usersigd TLS: the listening line says TLS" || fail "usersigd TLS: listening line" "$(grep listening "$TMP/tlsd.err")"
same_as_plain http2 tlsd "https://127.0.0.1:$TLS_PORT" --ca-file "$C/ca.pem"
[ "$(rc_of tlsd)" -eq 0 ] && pass "usersigd TLS --ca-file CA: exit 0" ||
    fail "usersigd TLS --ca-file CA: exit $(rc_of tlsd)" "$(cat "$TMP/err.tlsd")"
[ "$(wc -l <"$TMP/out.tlsd")" -eq 2000 ] && pass "usersigd TLS: 2000 lines" || fail "usersigd TLS: $(wc -l <"$TMP/out.tlsd") lines"
if [ "$same" -eq 1 ]; then pass "usersigd TLS output byte-identical to plain HTTP (try $try)"; else
    fail "usersigd TLS output differs from plain HTTP" "$(diff "$TMP/out.http2" "$TMP/out.tlsd" | head -4)"
fi
grep -qE "^batch [0-9a-f]+: 2000 signed 2000 failed 0 key_version 1 sha256 [0-9a-f]{64}$" "$TMP/err.tlsd" &&
    pass "usersigd TLS: the summary checked and reported" || fail "usersigd TLS: summary" "$(cat "$TMP/err.tlsd")"
no_secret "usersigd TLS --ca-file CA" tlsd
run tlsd_bundle "https://localhost:$TLS_PORT" --ca-file "$C/bundle.pem" --max-request-bytes 8K
[ "$(rc_of tlsd_bundle)" -eq 0 ] && [ "$(grep -c '^batch ' "$TMP/err.tlsd_bundle")" -ge 3 ] &&
    [ "$(wc -l <"$TMP/out.tlsd_bundle")" -eq 2000 ] &&
    pass "usersigd TLS by host name, a bundle, several requests: 2000 lines" ||
    fail "usersigd TLS bundle: exit $(rc_of tlsd_bundle)" "$(cat "$TMP/err.tlsd_bundle")"
refused "usersigd TLS: the wrong CA" tlsd_wrongca \
    "^usersig: TLS: the certificate of 127\.0\.0\.1:$TLS_PORT is not trusted: it is not signed by the CA of the file given with --ca-file \(.*\); nothing was sent$" \
    "https://127.0.0.1:$TLS_PORT" --ca-file "$C/otherca.pem"
refused "usersigd TLS: the system store" tlsd_system \
    "^usersig: TLS: the certificate of 127\.0\.0\.1:$TLS_PORT is not trusted: it is not signed by a CA of the system's store \(give the server's CA with --ca-file\) \(.*\); nothing was sent$" \
    "https://127.0.0.1:$TLS_PORT"
refused "usersigd TLS: plain HTTP to its port" tlsd_plain "did not answer in HTTP/1.1|closed the connection|HTTP 400" \
    "http://127.0.0.1:$TLS_PORT"

# One streamed request of 1,000,000 identifiers (14 MB) from a pipe, over usersigd's own TLS:
# signed whole (usersig batch checks the count and the SHA-256), usersigd's peak RSS well under
# the body's size plus its idle RSS (it reads the body as it signs, 256 KiB at most held)
echo 5 >"/proc/$TLSD_PID/clear_refs" 2>/dev/null
awk 'BEGIN { for (i = 1; i <= 1000000; i++) printf "s%07d\n", i }' |
    "$U" batch --server "https://127.0.0.1:$TLS_PORT" --ca-file "$C/ca.pem" --token-file "$TMP/token" \
        --sdkappid 1400000000 >/dev/null 2>"$TMP/err.stream"
rc=$?
hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$TLSD_PID/status")
[ "$rc" -eq 0 ] && grep -qE "^batch [0-9a-f]+: 1000000 signed 1000000 failed 0 key_version 1 sha256 [0-9a-f]{64}$" "$TMP/err.stream" &&
    [ "$(grep -c '^batch ' "$TMP/err.stream")" -eq 1 ] &&
    pass "usersigd TLS: 1,000,000 identifiers from a pipe in one streamed request" ||
    fail "usersigd TLS: streamed 1,000,000: exit $rc" "$(cat "$TMP/err.stream")"
# Under AddressSanitizer (ASAN_OPTIONS set by tests/run.sh) its quarantine holds freed memory:
# the bound is checked on the plain build only.
[ -n "${ASAN_OPTIONS:-}" ] && hwm=0
[ -n "$hwm" ] && [ "$hwm" -lt 40960 ] && pass "usersigd TLS: peak RSS ${hwm} kB < 40 MiB while streaming 14 MB" ||
    fail "usersigd TLS: peak RSS ${hwm:-?} kB while streaming 14 MB (want < 40 MiB)"

finish
