#!/usr/bin/env bash
# Tests of `usersig batch`, the batch endpoint's client, against a small fake server (Node's http
# module, written below; it also answers the accounts endpoints, for `usersig import`'s checks)
# that answers like POST /v1/apps/{sdkappid}/usersigs/batch: chunked
# NDJSON or CSV lines in input order, then a summary with the SHA-256 of the lines. The first path
# segment of --server's prefix picks a misbehaviour (a wrong sha256, a stream cut short, lines out
# of order, 413 over a size, 429 busy, ...), so one fake server serves every case. The client
# sends one chunked request by default (streamed as stdin is read); mode "live" answers each line
# as it arrives, as usersigd does, so both directions run at once.
#
# Usage: bash tests/cli/test_batch_client.sh PATH/TO/usersig
# Needs node (skipped with a visible "skip:" line without it, a failure when $CI is set).
# Ends with one line "batch_client: N passed, M failed"; exit status 1 if M > 0 or N == 0.
set -u

if [ $# -ne 1 ]; then
    echo "usage: bash $0 PATH/TO/usersig" >&2
    exit 2
fi
U=$1
if [ ! -x "$U" ]; then
    echo "batch_client: $U is not an executable" >&2
    exit 2
fi
umask 077
TMP=$(mktemp -d "${TMPDIR:-/tmp}/usersig-batch-client.XXXXXX") || exit 2
FAKE_PID=
cleanup() {
    if [ -n "$FAKE_PID" ]; then kill "$FAKE_PID" 2>/dev/null; fi
    rm -rf "$TMP"
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
        printf '      %s\n' "$(printf '%s' "$2" | tr '\n' ' ' | head -c 600)"
    fi
    return 0
}
finish() {
    echo "batch_client: $PASS passed, $FAIL failed"
    if [ "$FAIL" -gt 0 ] || [ "$PASS" -eq 0 ]; then exit 1; fi
    exit 0
}

if ! command -v node >/dev/null 2>&1; then
    if [ -n "${CI:-}" ]; then fail "node is required for the fake server (CI)"; else echo "skip: no node"; fi
    finish
fi

# ---- the fake server ---------------------------------------------------------------------------
cat >"$TMP/fake.js" <<'EOF'
'use strict';
const http = require('http');
const crypto = require('crypto');
const fs = require('fs');
const [portFile, logFile] = process.argv.slice(2);
const TOKEN = process.env.FAKE_TOKEN;
let busyCount = 0;

function fail(res, status, code, message) {
  const body = JSON.stringify({ error: { code, message } });
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body),
    'X-Request-Id': 'fake0001', Connection: 'close' });
  res.end(body);
}
function csvQuote(s) {
  return /[,"]|^ | $/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
}

// The accounts endpoints (`usersig import`): "bad..." fails, "nobody..." is not_imported (for a
// check, or mode notimp), the rest imported; then the accounts summary. Modes bend one thing.
function accounts(req, res, mode, check) {
  if (req.headers.authorization !== 'Bearer ' + TOKEN) return fail(res, 401, 'unauthorized', 'bad token');
  if (mode === 'denied') {
    return fail(res, 403, 'rest_not_allowed', "this token's rest_allow does not cover im_open_login_svc/multiaccount_import");
  }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const ndjson = req.headers['content-type'] === 'application/x-ndjson';
    const ids = Buffer.concat(chunks).toString('utf8').split('\n');
    if (ids[ids.length - 1] === '') ids.pop();
    fs.appendFileSync(logFile, JSON.stringify({ url: req.url, ndjson, items: ids.length,
      te: req.headers['transfer-encoding'] || '' }) + '\n');
    const lines = ids.map((l) => (ndjson ? JSON.parse(l).identifier : l)).map((id) => JSON.stringify(
      id.startsWith('bad') ? { identifier: id, status: 'failed', error: { code: 'bad_identifier', message: 'no' } }
        : { identifier: id, status: (check || mode === 'notimp') && id.startsWith('nobody') ? 'not_imported' : 'imported' }));
    if (mode === 'reorder') [lines[0], lines[1]] = [lines[1], lines[0]];
    const sha = crypto.createHash('sha256');
    for (const l of lines) sha.update(l + '\n');
    const n = (st) => lines.filter((l) => l.includes(`"status":"${st}"`)).length;
    const s = { job_id: 'f'.repeat(32), state: mode === 'aborted' ? 'aborted' : 'complete', count: ids.length,
      imported: n('imported') + (mode === 'count' ? 1 : 0), failed: n('failed'), calls: Math.ceil(ids.length / 100),
      sha256: mode === 'badsha' ? '0'.repeat(64) : sha.digest('hex') };
    if (check) s.not_imported = n('not_imported');
    res.writeHead(200, { 'Content-Type': 'application/x-ndjson' });
    res.end(lines.map((l) => l + '\n').join('') + (mode === 'nosummary' ? '' : JSON.stringify({ summary: s }) + '\n'));
  });
}

const server = http.createServer((req, res) => {
  const acc = /^(?:\/([a-z0-9]+))?\/v1\/apps\/1400000000\/accounts\/(import|check)$/.exec(req.url);
  if (acc) return accounts(req, res, acc[1] || 'ok', acc[2] === 'check');
  const m = /^(?:\/([a-z0-9]+))?\/v1\/apps\/(\d+)\/usersigs\/batch(?:\?(.*))?$/.exec(req.url);
  const mode = m ? m[1] || 'ok' : '';
  const len = Number(req.headers['content-length'] || -1);
  if (!m) return fail(res, 404, 'not_found', 'no such path ' + req.url);
  if (mode === 'html') {
    res.writeHead(502, { 'Content-Type': 'text/html', Connection: 'close' });
    return res.end('<html><body>Bad Gateway</body></html>');
  }
  if (mode === 'plain') {
    res.writeHead(503, { 'Content-Type': 'text/plain', Connection: 'close' });
    return res.end('overloaded, retry later\n');
  }
  if (req.headers.authorization !== 'Bearer ' + TOKEN) return fail(res, 401, 'unauthorized', 'bad token');
  if (m[2] !== '1400000000') return fail(res, 404, 'app_not_found', 'no app ' + m[2]);
  // busy: two of every three requests are 429 (usersigd's batch_max_running); busylong asks
  // for an hour. Answered before the body is read (a streamed one is not sent: no 100 Continue).
  if (mode === 'busylong' || (mode === 'busy' && busyCount++ % 3 !== 2)) {
    fs.appendFileSync(logFile, JSON.stringify({ mode, busy: true, te: req.headers['transfer-encoding'] || '' }) + '\n');
    const body = JSON.stringify({ error: { code: 'too_many_batches', message: '8 batches are running' } });
    res.writeHead(429, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body),
      'Retry-After': mode === 'busylong' ? '3600' : '1', 'X-Request-Id': 'fake0002', Connection: 'close' });
    return res.end(body);
  }
  if (mode === 'live' || mode === 'livecut') return live(req, res, mode);
  // reset: the connection reset, unanswered, once the body passes 128 KiB; reset0 at its first
  // bytes (a server that failed, not one that limits a request's size)
  if (mode === 'reset' || mode === 'reset0') {
    let got = 0;
    return req.on('data', (c) => {
      got += c.length;
      if (mode === 'reset0' || got > 128 * 1024) req.socket.resetAndDestroy();
    });
  }
  const lim = /^limit(\d+)$/.exec(mode);
  if (mode === 'always413' || (lim && len > Number(lim[1]))) {
    // Answer before reading the body, as a server enforcing its limit does, then close. What
    // comes meanwhile is read and dropped (a lingering close, as servers do): closed with unread
    // bytes in its buffer, the socket would send a reset, which can reach the client before it
    // has read the 413, and take the answer with it. Written on the socket itself: node's own
    // reply with Connection: close destroys the socket once written, unread bytes or not.
    fs.appendFileSync(logFile, JSON.stringify({ mode, len, refused: true }) + '\n');
    const body = JSON.stringify({ error: { code: 'body_too_large',
      message: 'the body is over 1 MiB: split the input into several requests' } });
    const sock = req.socket;
    req.resume();
    sock.end('HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\nX-Request-Id: fake0001\r\nConnection: close\r\n\r\n` +
      body);
    setTimeout(() => sock.destroy(), 10000).unref();
    return;
  }
  if (req.headers['content-type'] !== 'text/plain') return fail(res, 415, 'unsupported_media_type', 'text/plain');
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('latin1');
    const ids = body.split('\n');
    if (ids.length && ids[ids.length - 1] === '') ids.pop();
    const csv = req.headers.accept === 'text/csv';
    fs.appendFileSync(logFile, JSON.stringify({ mode, len, bytes: body.length, items: ids.length,
      query: m[3] || '', accept: req.headers.accept, endsNL: body.endsWith('\n'),
      host: req.headers.host, te: req.headers['transfer-encoding'] || '' }) + '\n');
    let lines = ids.map((raw) => {
      const id = raw.replace(/\r$/, '');
      const bad = id === '' || id.startsWith('bad') || id.length > 32;
      if (csv) return csvQuote(id) + (bad ? ',,bad_identifier' : ',sig.' + Buffer.from(id).toString('hex'));
      let line = bad
        ? JSON.stringify({ identifier: id, error: { code: 'bad_identifier', message: 'not allowed here' } })
        : JSON.stringify({ identifier: id, usersig: 'sig.' + Buffer.from(id).toString('hex'), key_version: 3 });
      if (mode === 'uesc') line = line.replace(/"identifier":"((?:[^"\\]|\\.)*)"/, (all, s) =>
        '"identifier":"' + JSON.parse('"' + s + '"').replace(/[^A-Za-z0-9]/g,
          (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0')) + '"');
      return line;
    });
    if (mode === 'reorder' && lines.length > 2) [lines[1], lines[2]] = [lines[2], lines[1]];
    if (mode === 'toomany') lines.push(lines[0]);
    let stop = null;
    if ((mode === 'break' || mode === 'cut') && lines.length > 3) { lines = lines.slice(0, 3); stop = mode; }
    const sha = crypto.createHash('sha256');
    for (const l of lines) sha.update(l + '\n', 'latin1');
    const count = ids.length;
    const failed = lines.filter((l) => /"error":|,,bad_identifier$/.test(l)).length;
    const s = { batch_id: crypto.randomBytes(8).toString('hex'), count: count + (mode === 'count' ? 1 : 0),
      signed: count - failed, failed, key_version: 3,
      sha256: mode === 'badsha' ? crypto.createHash('sha256').update('x').digest('hex') : sha.digest('hex') };
    let out = lines.map((l) => l + '\n').join('');
    if (stop === 'break') out += JSON.stringify({ error: { code: 'internal', message: 'boom' } }) + '\n';
    else if (stop === null && mode !== 'nosummary') {
      out += csv ? `#summary,batch_id=${s.batch_id},count=${s.count},signed=${s.signed},failed=${s.failed},` +
        `key_version=3,sha256=${s.sha256}\n` : JSON.stringify({ summary: s }) + '\n';
    }
    const buf = Buffer.from(out, 'latin1');
    const type = csv ? 'text/csv' : 'application/x-ndjson';
    if (mode === 'clen') {
      res.writeHead(200, { 'Content-Type': type, 'Content-Length': buf.length });
      return res.end(buf);
    }
    res.writeHead(200, { 'Content-Type': type });
    // Odd-sized chunks, so lines and the summary cross chunk boundaries.
    let at = 0, i = 0;
    while (at < buf.length) {
      const n = 1 + ((i++ * 7919) % 700);
      res.write(buf.subarray(at, at + n));
      at += n;
    }
    if (stop === 'cut') return setTimeout(() => res.socket.destroy(), 50);
    res.end();
  });
});
// Answers each whole line as it arrives (NDJSON), the summary at the body's end; livecut answers
// three lines, then ends as usersigd does for a body cut short: its last line an error.
function live(req, res, mode) {
  const sha = crypto.createHash('sha256');
  let rest = '', count = 0, failed = 0, bytes = 0, ended = false;
  res.writeHead(200, { 'Content-Type': 'application/x-ndjson' });
  const put = (l) => { sha.update(l + '\n', 'latin1'); res.write(l + '\n'); };
  req.on('data', (c) => {
    if (ended) return;
    bytes += c.length;
    const parts = (rest + c.toString('latin1')).split('\n');
    rest = parts.pop();
    for (const id of parts) {
      if (mode === 'livecut' && count === 3) {
        ended = true;
        res.end(JSON.stringify({ error: { code: 'bad_request', message: 'the request body was cut short ' +
          '(the client stopped sending mid-way): its whole lines were answered, and the batch is recorded ' +
          'as aborted after 3 lines (batch_id 00000000000000000000000000000001, request id fake0003)' } }) + '\n');
        return req.destroy();
      }
      count++;
      const bad = id.startsWith('bad');
      if (bad) failed++;
      put(JSON.stringify(bad ? { identifier: id, error: { code: 'bad_identifier', message: 'no' } }
        : { identifier: id, usersig: 'sig.' + Buffer.from(id).toString('hex'), key_version: 3 }));
    }
  });
  req.on('end', () => {
    if (ended) return;
    fs.appendFileSync(logFile, JSON.stringify({ mode, live: true, bytes, items: count,
      te: req.headers['transfer-encoding'] || '', expect: req.headers.expect || '' }) + '\n');
    const s = { batch_id: crypto.randomBytes(8).toString('hex'), count, signed: count - failed, failed,
      key_version: 3, sha256: sha.digest('hex') };
    res.end(JSON.stringify({ summary: s }) + '\n');
  });
}

server.listen(0, '127.0.0.1', () => {
  // The same handler on IPv6 loopback too, when there is one (the port file says "port port6").
  const six = http.createServer(server.listeners('request')[0]);
  const done = (p6) => fs.writeFileSync(portFile, server.address().port + ' ' + p6);
  six.on('error', () => done(0));
  six.listen(0, '::1', () => done(six.address().port));
});
EOF

TOKEN=usg_7_fakefakefakefakefakefakefakefakefakefake123
FAKE_TOKEN=$TOKEN node "$TMP/fake.js" "$TMP/port" "$TMP/log" 2>"$TMP/fake.err" &
FAKE_PID=$!
for _ in $(seq 100); do [ -s "$TMP/port" ] && break; sleep 0.05; done
if [ ! -s "$TMP/port" ]; then
    fail "the fake server did not start" "$(cat "$TMP/fake.err")"
    finish
fi
read -r PORT PORT6 <"$TMP/port"
URL=http://127.0.0.1:$PORT
printf '%s\n' "$TOKEN" >"$TMP/token"
chmod 600 "$TMP/token"

# batch INPUT_FILE [ARGS...]: runs usersig batch with the token file and the app; sets RC, OUT
# (stdout file $TMP/out), ERR (stderr text). A fresh request log each time.
batch_raw() {
    local in=$1
    shift
    : >"$TMP/log"
    "$U" batch "$@" <"$in" >"$TMP/out" 2>"$TMP/err"
    RC=$?
    ERR=$(cat "$TMP/err")
}
batch() {
    local in=$1 server=$2
    shift 2
    batch_raw "$in" --server "$server" --token-file "$TMP/token" --sdkappid 1400000000 "$@"
}
expect_rc() { # NAME WANT
    if [ "$RC" -eq "$2" ]; then pass "$1: exit $2"; else fail "$1: exit $RC, want $2" "stderr: $ERR"; fi
}
expect_err() { # NAME PATTERN (grep -E on stderr)
    if grep -qE -- "$2" "$TMP/err"; then pass "$1: stderr /$2/"; else fail "$1: stderr lacks /$2/" "$ERR"; fi
}
expect_no_err() { # NAME PATTERN
    if grep -qE -- "$2" "$TMP/err"; then fail "$1: stderr has /$2/" "$ERR"; else pass "$1: no /$2/"; fi
}
# expected_ndjson IDS_FILE > lines the fake server answers for those identifiers (all good ones)
expected_ndjson() {
    node -e '
      const ids = require("fs").readFileSync(process.argv[1], "latin1").split("\n");
      if (ids[ids.length - 1] === "") ids.pop();
      for (let id of ids) { id = id.replace(/\r$/, ""); if (id === "") continue;
        process.stdout.write(JSON.stringify({ identifier: id, usersig: "sig." + Buffer.from(id).toString("hex"), key_version: 3 }) + "\n"); }
    ' "$1"
}
same_file() { # NAME WANT_FILE
    if cmp -s "$2" "$TMP/out"; then pass "$1: output as expected"; else
        fail "$1: output differs" "$(diff "$2" "$TMP/out" | head -5)"
    fi
}

(printf 'a\nb\n'; head -c 70000 /dev/zero | tr '\0' x; printf '\nc\n') >"$TMP/idslong"
batch "$TMP/idslong" "$URL"
expect_rc "a 70,000-byte line" 2
expect_err "a 70,000-byte line" "^usersig: input line 3 is longer than 65536 bytes: not an identifier$"

awk 'BEGIN { for (i = 1; i <= 10; i++) printf "user_%04d\n", i }' >"$TMP/ids10"
awk 'BEGIN { for (i = 1; i <= 1000; i++) printf "user_%06d\n", i }' >"$TMP/ids1000"
expected_ndjson "$TMP/ids10" >"$TMP/want10"
expected_ndjson "$TMP/ids1000" >"$TMP/want1000"

# ---- usage -------------------------------------------------------------------------------------
batch_raw /dev/null --help
expect_rc "--help" 0
if grep -q 'always verified' "$TMP/out" && grep -q -- '--ca-file F' "$TMP/out" && grep -q -- '--max-request-bytes' "$TMP/out"; then pass "--help text"; else fail "--help text" "$(cat "$TMP/out")"; fi
batch_raw /dev/null
expect_rc "no options" 2
expect_err "no options" "--server is required"
batch_raw /dev/null --server "$URL"
expect_rc "no --sdkappid" 2
# a closed stdin is refused, not read as an empty input, and nothing is sent
: >"$TMP/log"
"$U" batch --server "$URL" --token-file "$TMP/token" --sdkappid 1400000000 <&- >"$TMP/out" 2>"$TMP/err"
RC=$? ERR=$(cat "$TMP/err")
expect_rc "stdin closed" 2
expect_err "stdin closed" "^usersig: standard input is closed: give the identifiers on a pipe or from a file"
[ -s "$TMP/log" ] && fail "stdin closed: a request was sent" || pass "stdin closed: nothing sent"
"$U" import --server "$URL" --token-file "$TMP/token" --sdkappid 1400000000 <&- >"$TMP/out" 2>"$TMP/err"
RC=$? ERR=$(cat "$TMP/err")
expect_rc "import, stdin closed" 2
expect_err "import, stdin closed" "give the accounts on a pipe"
# https to a plain-HTTP server: the handshake fails, said as such, before anything is sent
batch "$TMP/ids10" "https://127.0.0.1:$PORT"
expect_rc "https URL to a plain-HTTP server" 2
expect_err "https URL to a plain-HTTP server" "^usersig: TLS: the handshake with 127.0.0.1:$PORT failed .*; nothing was sent$"
[ -s "$TMP/log" ] && fail "https to plain HTTP: a request was sent" || pass "https to plain HTTP: nothing sent"
for bad in "ftp://x" "http://" "http://h:0" "http://h:99999" "http://u:p@h:1" "http://h:1/?q=1" "http://::1:80"; do
    batch "$TMP/ids10" "$bad"
    expect_rc "bad URL $bad" 2
done
batch "$TMP/ids10" "$URL" --token "$TOKEN"
expect_rc "no --token option (argv)" 2
batch "$TMP/ids10" "$URL" --max-request-bytes 10
expect_rc "--max-request-bytes too small" 2
batch "$TMP/ids10" "$URL" --format xml
expect_rc "--format xml" 2
batch "$TMP/ids10" "$URL" --level 10
expect_rc "--level 10" 2
batch "$TMP/ids10" "$URL" extra
expect_rc "extra argument" 2

# Values kept out of errors: an option's value, a stray operand or a --token-file path may be the
# token typed in the wrong place, so a refusal names the option and never repeats the value.
SECRET=SECRETVALUE_9c41e07a
no_secret() { # NAME: neither stream holds $SECRET
    if grep -qF -- "$SECRET" "$TMP/err" "$TMP/out"; then
        fail "$1: the value is echoed" "$(cat "$TMP/err" "$TMP/out")"
    else
        pass "$1: the value is on neither stream"
    fi
}
# refused NAME PHRASE ARGS...: exit 2, stderr names PHRASE, $SECRET on neither stream, nothing sent
refused() {
    local name=$1 phrase=$2
    shift 2
    batch "$TMP/ids10" "$URL" "$@"
    expect_rc "$name" 2
    expect_err "$name" "$phrase"
    no_secret "$name"
    [ -s "$TMP/log" ] && fail "$name: a request was sent" || pass "$name: nothing sent"
}
refused_raw() { # as refused, without the standard --server/--token-file/--sdkappid
    local name=$1 phrase=$2
    shift 2
    batch_raw "$TMP/ids10" "$@"
    expect_rc "$name" 2
    expect_err "$name" "$phrase"
    no_secret "$name"
    [ -s "$TMP/log" ] && fail "$name: a request was sent" || pass "$name: nothing sent"
}
refused_raw "--sdkappid SECRET" "--sdkappid must be a number from 1 to 4294967295$" \
    --server "$URL" --token-file "$TMP/token" --sdkappid "$SECRET"
refused_raw "--sdkappid=SECRET" "--sdkappid must be a number" \
    --server "$URL" --token-file "$TMP/token" "--sdkappid=$SECRET"
refused_raw "--sdkappid 1SECRET" "--sdkappid must be a number" \
    --server "$URL" --token-file "$TMP/token" --sdkappid "1$SECRET"
refused "--expire SECRET" "--expire must be 1 to 315360000 seconds$" --expire "$SECRET"
refused "--expire 0" "--expire must be 1 to 315360000 seconds$" --expire 0
refused "--level SECRET" "--level must be 0 to 9$" --level "$SECRET"
refused "--format SECRET" "--format must be ndjson or csv$" --format "$SECRET"
refused "--max-request-bytes SECRET" "--max-request-bytes must be 64 bytes to 1G$" --max-request-bytes "$SECRET"
refused "--max-request-bytes 2G" "--max-request-bytes must be 64 bytes to 1G$" --max-request-bytes 2G
refused "a stray SECRET" "unexpected argument after the options" "$SECRET"
refused "a stray SECRET after --" "unexpected argument after the options" -- "$SECRET"
refused_raw "--token-file SECRET (no such file)" "cannot open token file given with --token-file: No such file" \
    --server "$URL" --sdkappid 1400000000 --token-file "$SECRET"
refused_raw "--token-file naming a directory" "token file given with --token-file is unreadable" \
    --server "$URL" --sdkappid 1400000000 --token-file "$TMP"
mkdir "$TMP/$SECRET"
printf 'usg 1\n' >"$TMP/$SECRET/spacetoken"
printf '\n\n' >"$TMP/$SECRET/emptytoken"
refused_raw "--token-file with a space in the token" "the token in the file given with --token-file has a space" \
    --server "$URL" --sdkappid 1400000000 --token-file "$TMP/$SECRET/spacetoken"
refused_raw "--token-file with an empty token" "the token in the file given with --token-file is empty" \
    --server "$URL" --sdkappid 1400000000 --token-file "$TMP/$SECRET/emptytoken"
cp "$TMP/token" "$TMP/$SECRET/token"
chmod 644 "$TMP/$SECRET/token"
batch_raw "$TMP/ids10" --server "$URL" --sdkappid 1400000000 --token-file "$TMP/$SECRET/token"
expect_rc "token file 0644 under a SECRET path" 0
expect_err "token file 0644 under a SECRET path" "warning: token file given with --token-file is readable by other users"
if grep -qF -- "$SECRET" "$TMP/err"; then fail "token file 0644: the path is echoed" "$ERR"; else pass "token file 0644: the path is not echoed"; fi
# --ca-file: only with https, checked before anything is sent, its path never repeated
printf 'not a certificate\n' >"$TMP/$SECRET/notpem"
refused "--ca-file with an http URL" "--ca-file is for an https:// --server" --ca-file "$TMP/$SECRET/notpem"
refused_raw "--ca-file SECRET (no such file)" "cannot open the file given with --ca-file$" \
    --server "https://127.0.0.1:$PORT" --token-file "$TMP/token" --sdkappid 1400000000 --ca-file "$TMP/$SECRET/none"
refused_raw "--ca-file not PEM" "the file given with --ca-file holds no PEM certificate$" \
    --server "https://127.0.0.1:$PORT" --token-file "$TMP/token" --sdkappid 1400000000 --ca-file "$TMP/$SECRET/notpem"
rm -rf "${TMP:?}/$SECRET"

# ---- the token ---------------------------------------------------------------------------------
batch_raw "$TMP/ids10" --server "$URL" --sdkappid 1400000000
expect_rc "no token" 2
expect_err "no token" "USERSIGD_TOKEN"
[ -s "$TMP/log" ] && fail "no token: a request was sent" || pass "no token: nothing sent"
USERSIGD_TOKEN=$TOKEN batch_raw "$TMP/ids10" --server "$URL" --sdkappid 1400000000
expect_rc "token from \$USERSIGD_TOKEN" 0
same_file "token from \$USERSIGD_TOKEN" "$TMP/want10"
batch "$TMP/ids10" "$URL"
expect_rc "token from --token-file (0600)" 0
expect_no_err "token file 0600" "warning"
chmod 644 "$TMP/token"
batch "$TMP/ids10" "$URL"
expect_rc "token file 0644" 0
expect_err "token file 0644" "warning: token file .* readable by other users"
chmod 600 "$TMP/token"
(printf 'a\nb\n'; head -c 70000 /dev/zero | tr '\0' x; printf '\nc\n') >"$TMP/idslong"
batch "$TMP/idslong" "$URL"
expect_rc "a 70,000-byte line" 2
expect_err "a 70,000-byte line" "^usersig: input line 3 is longer than 65536 bytes: not an identifier$"
printf 'usg_9_wrong\n' >"$TMP/badtoken"
USERSIGD_TOKEN=$TOKEN batch_raw "$TMP/ids10" --server "$URL" --sdkappid 1400000000 --token-file "$TMP/badtoken"
expect_rc "--token-file wins over \$USERSIGD_TOKEN; wrong token" 2
expect_err "401" "HTTP 401: unauthorized: bad token \(request id fake0001\)"
printf 'usg 1\n' >"$TMP/spacetoken"
batch_raw "$TMP/ids10" --server "$URL" --sdkappid 1400000000 --token-file "$TMP/spacetoken"
expect_rc "token with a space" 2
batch_raw "$TMP/ids10" --server "$URL" --sdkappid 1400000000 --token-file "$TMP/nonexistent"
expect_rc "missing token file" 2

# ---- answers -----------------------------------------------------------------------------------
batch "$TMP/ids10" "$URL" --expire 60 --level 0
expect_rc "10 identifiers" 0
same_file "10 identifiers" "$TMP/want10"
expect_err "summary on stderr" "^batch [0-9a-f]{16}: 10 signed 10 failed 0 key_version 3 sha256 [0-9a-f]{64}$"
if grep -q '"query":"expire=60&level=0"' "$TMP/log" && grep -q '"accept":"application/x-ndjson"' "$TMP/log" &&
    grep -q "\"host\":\"127.0.0.1:$PORT\"" "$TMP/log"; then
    pass "query, Accept and Host sent"
else
    fail "query, Accept and Host sent" "$(cat "$TMP/log")"
fi
if grep -q summary "$TMP/out"; then fail "the summary line is not in stdout"; else pass "no summary in stdout"; fi
expect_no_err "no progress line when stderr is not a terminal" $'\r'

batch "$TMP/ids1000" "$URL" --max-request-bytes 1000
expect_rc "split into requests" 0
same_file "split into requests: order kept" "$TMP/want1000"
node -e '
  const log = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
  const items = log.reduce((a, r) => a + r.items, 0);
  const ok = log.length >= 12 && items === 1000 && log.every((r) => r.len <= 1000 && r.len === r.bytes && r.endsNL);
  if (!ok) { console.error(JSON.stringify(log.slice(0, 3))); process.exit(1); }
' "$TMP/log" && pass "split: requests of at most 1000 bytes, whole lines, 1000 identifiers" ||
    fail "split: request sizes" "$(head -c 400 "$TMP/log")"
[ "$(grep -c '^batch ' "$TMP/err")" -ge 12 ] && pass "split: one summary line per request" ||
    fail "split: summary lines" "$ERR"

# a line exactly at the limit, and one over it
printf '%s\n' "$(head -c 63 /dev/zero | tr '\0' a)" >"$TMP/ids63"
batch "$TMP/ids63" "$URL" --max-request-bytes 64
expect_rc "a 64-byte line with --max-request-bytes 64" 1 # the fake refuses ids over 32 bytes
printf '%s\n' "$(head -c 64 /dev/zero | tr '\0' a)" >"$TMP/ids64"
batch "$TMP/ids64" "$URL" --max-request-bytes 64
expect_rc "a line over --max-request-bytes" 2
expect_err "a line over --max-request-bytes" "input line 1 is 64 bytes"

# CRLF, blank lines (skipped), a final line without a newline, identifiers needing JSON escapes
printf 'a\r\nb\n\n\r\nquo"te\\x\n  sp  \nlast' >"$TMP/idsmix"
printf 'a\nb\nquo"te\\x\n  sp  \nlast\n' >"$TMP/idsmix.clean"
expected_ndjson "$TMP/idsmix.clean" >"$TMP/wantmix"
batch "$TMP/idsmix" "$URL"
expect_rc "CRLF, blank lines, no final newline" 0
same_file "CRLF, blank lines, no final newline" "$TMP/wantmix"
batch "$TMP/idsmix" "$URL/uesc"
expect_rc "identifiers written with \\u escapes" 0

# errors in place, named by input line (blank lines counted)
printf 'u1\nbad1\nu3\n\nu5\nbad6\n' >"$TMP/idsbad"
batch "$TMP/idsbad" "$URL" --max-request-bytes 64
expect_rc "failed identifiers" 1
expect_err "failed identifiers named" "2 of 5 identifiers failed, at input lines 2 \(bad_identifier\), 6 \(bad_identifier\);"
if [ "$(wc -l <"$TMP/out")" -eq 5 ] && sed -n 2p "$TMP/out" | grep -q '"identifier":"bad1","error"' &&
    sed -n 5p "$TMP/out" | grep -q '"identifier":"bad6","error"'; then
    pass "error lines in place"
else
    fail "error lines in place" "$(cat "$TMP/out")"
fi
# blank lines between all 10000 identifiers: past 4096 runs of them a request is sent early
awk 'BEGIN { for (i = 1; i <= 10000; i++) { print (i == 9999 ? "bad" : "u") i; print "" } }' >"$TMP/idsgaps"
batch "$TMP/idsgaps" "$URL" --max-request-bytes 32M
expect_rc "blank line runs" 1
expect_err "blank line runs: the line named" "1 of 10000 identifiers failed, at input line 19997 \(bad_identifier\);"
[ "$(grep -c '^batch ' "$TMP/err")" -eq 3 ] && pass "blank line runs: 3 requests" || fail "blank line runs: requests" "$ERR"
batch "$TMP/idsgaps" "$URL"
expect_rc "blank line runs, streamed" 1
expect_err "blank line runs, streamed: the line named" "1 of 10000 identifiers failed, at input line 19997 \(bad_identifier\);"
[ "$(grep -c '^batch ' "$TMP/err")" -eq 1 ] && pass "blank line runs, streamed: 1 request" || fail "blank line runs, streamed: requests" "$ERR"
awk 'BEGIN { for (i = 1; i <= 40; i++) { print "bad" i; print "ok" i } }' >"$TMP/idsbad40"
batch "$TMP/idsbad40" "$URL" --max-request-bytes 100
expect_rc "40 failed" 1
expect_err "first 20 lines, then a count" "40 of 80 identifiers failed, at input lines 1 \(bad_identifier\), 3 .* 39 \(bad_identifier\) and 20 more;"

# CSV
printf 'alice\nbad,comma\n sp\nq"uote\n{curly\n' >"$TMP/idscsv"
batch "$TMP/idscsv" "$URL" --format csv
expect_rc "csv" 1
expect_err "csv: failed line" "1 of 5 identifiers failed, at input line 2 \(bad_identifier\);"
expect_err "csv: summary" "^batch [0-9a-f]+: 5 signed 4 failed 1 key_version 3 sha256 [0-9a-f]{64}$"
if [ "$(sed -n 2p "$TMP/out")" == '"bad,comma",,bad_identifier' ] && [ "$(sed -n 4p "$TMP/out")" == '"q""uote",sig.7122756f7465' ] &&
    ! grep -q '^#summary' "$TMP/out" && grep -q '"accept":"text/csv"' "$TMP/log"; then
    pass "csv rows"
else
    fail "csv rows" "$(cat "$TMP/out")"
fi
batch "$TMP/ids10" "$URL/badsha" --format csv
expect_rc "csv: sha256 mismatch" 2

# a Content-Length answer instead of chunked
batch "$TMP/ids10" "$URL/clen"
expect_rc "Content-Length answer" 0
same_file "Content-Length answer" "$TMP/want10"

# ---- the server misbehaves ---------------------------------------------------------------------
batch "$TMP/ids10" "$URL/badsha"
expect_rc "sha256 mismatch" 2
expect_err "sha256 mismatch" "SHA-256 MISMATCH in batch"
expect_err "sha256 mismatch: no resume from it" "stdout cannot be trusted"
expect_no_err "sha256 mismatch: no resume from it" "resume from line"
batch "$TMP/ids10" "$URL/count"
expect_rc "summary count wrong" 2
expect_err "summary count wrong" "does not match"
expect_err "summary count wrong: no resume from it" "run the whole input again"
batch "$TMP/ids10" "$URL/nosummary"
expect_rc "no summary" 2
expect_err "no summary" "without its summary line"
batch "$TMP/ids10" "$URL/reorder"
expect_rc "lines out of order" 2
expect_err "lines out of order" "out of order"
batch "$TMP/ids10" "$URL/toomany"
expect_rc "more lines than sent" 2
batch "$TMP/ids1000" "$URL/break" --max-request-bytes 1000
expect_rc "stream stopped by the server" 2
expect_err "stream stopped by the server" "stopped the batch after 3 of .*: internal: boom"
expect_err "resume hint" "stopped after 3 answered identifiers \(input lines up to 3, in stdout\); resume from line 4"
[ "$(wc -l <"$TMP/out")" -eq 3 ] && pass "stream stopped: 3 lines in stdout" || fail "stream stopped: stdout"
[ "$(grep -c refused "$TMP/log"; wc -l <"$TMP/log")" == "0
1" ] && pass "stream stopped: no request after it" || fail "stream stopped: requests" "$(cat "$TMP/log")"
batch "$TMP/ids10" "$URL/cut"
expect_rc "connection cut mid-stream" 2
expect_err "connection cut mid-stream" "closed the connection in the middle of its answer"
batch "$TMP/ids10" "$URL/html"
expect_rc "502 with an HTML body" 2
expect_err "502 with an HTML body" "answered HTTP 502 Bad Gateway$"
batch "$TMP/ids10" "$URL/plain"
expect_rc "503 with a text body" 2
expect_err "503 with a text body" "answered HTTP 503 Service Unavailable: overloaded, retry later$"
batch "$TMP/ids10" "http://127.0.0.1:$PORT/nope/x"
expect_rc "404" 2
expect_err "404" "HTTP 404: not_found"
batch_raw "$TMP/ids10" --server "$URL" --token-file "$TMP/token" --sdkappid 1400000001
expect_rc "unknown app" 2
expect_err "unknown app" "HTTP 404: app_not_found: no app 1400000001"

# 413: a request over the server's limit is split in two until it fits
batch "$TMP/ids1000" "$URL/limit3000" --max-request-bytes 12000
expect_rc "413: split and sent again" 0
same_file "413: split and sent again: order kept" "$TMP/want1000"
expect_err "413: said" "refused a request of 12000 bytes \(HTTP 413: body_too_large: .*split.*\); sending at most 6[0-9]{3} bytes"
node -e '
  const log = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
  const sent = log.filter((r) => !r.refused);
  if (sent.some((r) => r.len > 3000) || sent.reduce((a, r) => a + r.items, 0) !== 1000) process.exit(1);
' "$TMP/log" && pass "413: every accepted request within the limit" || fail "413: request log" "$(head -c 400 "$TMP/log")"
# the same with bodies the server does not read before it answers 413 and closes: the answer
# is heard although the sending breaks off
awk 'BEGIN { for (i = 1; i <= 200000; i++) printf "user_%06d\n", i }' >"$TMP/ids200k"
expected_ndjson "$TMP/ids200k" >"$TMP/want200k"
batch "$TMP/ids200k" "$URL/limit1000000" --max-request-bytes 4M
expect_rc "413 before a 2.4 MB body is read: split and sent again" 0
same_file "413 before a 2.4 MB body is read: order kept" "$TMP/want200k"
expect_err "413 before a 2.4 MB body is read: said" "refused a request of 2400000 bytes \(HTTP 413: body_too_large: "
batch "$TMP/ids10" "$URL/always413" --max-request-bytes 1M
expect_rc "413 for one identifier" 2
expect_err "413 for one identifier" "refuses even a request of one identifier \([0-9]+ bytes\): HTTP 413: body_too_large: the body is over 1 MiB: split.*\(request id fake0001\)"
# a streamed request refused as too large: nothing was signed, and the way out is named
batch "$TMP/ids10" "$URL/always413"
expect_rc "413 to a streamed request" 2
expect_err "413 to a streamed request" "refused the streamed request as too large \(HTTP 413: body_too_large: .*\): it limits a request's size; nothing was signed: run again with --max-request-bytes"
[ -s "$TMP/out" ] && fail "413 to a streamed request: stdout not empty" || pass "413 to a streamed request: stdout empty"

# ---- streamed requests -------------------------------------------------------------------------
# one chunked request, after 100 Continue, whatever the input size (no --max-request-bytes)
batch "$TMP/ids1000" "$URL"
expect_rc "streamed: 1000 identifiers" 0
same_file "streamed: 1000 identifiers" "$TMP/want1000"
node -e '
  const log = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
  if (log.length !== 1 || log[0].te !== "chunked" || log[0].len !== -1 || log[0].items !== 1000) process.exit(1);
' "$TMP/log" && pass "streamed: one chunked request" || fail "streamed: one chunked request" "$(cat "$TMP/log")"
# a large input from a pipe, answered line by line as it arrives ("live"); the client's memory
# stays bounded (it holds only what is sent and not yet answered), VmHWM sampled from /proc
N_LARGE=1000000
awk -v n=$N_LARGE 'BEGIN { for (i = 1; i <= n; i++) printf "user_%08d\n", i }' |
    "$U" batch --server "$URL/live" --token-file "$TMP/token" --sdkappid 1400000000 >"$TMP/out" 2>"$TMP/err" &
BPID=$!
HWM=0
while kill -0 $BPID 2>/dev/null; do
    h=$(awk '/^VmHWM/ { print $2 }' /proc/$BPID/status 2>/dev/null)
    [ -n "$h" ] && [ "$h" -gt "$HWM" ] && HWM=$h
    sleep 0.1
done
wait $BPID
RC=$?
ERR=$(cat "$TMP/err")
expect_rc "streamed: $N_LARGE identifiers from a pipe" 0
expect_err "streamed: $N_LARGE identifiers: summary" "^batch [0-9a-f]{16}: $N_LARGE signed $N_LARGE failed 0 key_version 3 sha256 [0-9a-f]{64}$"
if [ "$(wc -l <"$TMP/out")" -eq $N_LARGE ] && [ "$(tail -n 1 "$TMP/out" | cut -c1-30)" == '{"identifier":"user_01000000",' ]; then
    pass "streamed: $N_LARGE lines out, in order"
else
    fail "streamed: $N_LARGE lines out" "$(wc -l <"$TMP/out") lines; last $(tail -n 1 "$TMP/out" | head -c 80)"
fi
# the input is 14 MB: the client starts at some 11 MiB (libcurl, OpenSSL) and holds at most 4 MiB
# of the input (sent, not yet answered): one holding the input whole would pass 25 MiB
# Under AddressSanitizer (tests/run.sh's second pass sets ASAN_OPTIONS) freed memory is held in
# its quarantine, so the bound is only checked on the plain build.
if [ -n "${ASAN_OPTIONS:-}" ]; then pass "streamed: client peak RSS ${HWM} kB (not bounded under the sanitizers)"
elif [ "$HWM" -gt 0 ] && [ "$HWM" -lt 20480 ]; then pass "streamed: client peak RSS ${HWM} kB < 20 MiB"; else
    fail "streamed: client peak RSS ${HWM} kB (want < 20 MiB, 0 = not sampled)"; fi
grep -q '"live":true,"bytes":14000000,"items":1000000,"te":"chunked","expect":"100-continue"' "$TMP/log" &&
    pass "streamed: one chunked request of 14 MB after Expect: 100-continue" || fail "streamed: request log" "$(cat "$TMP/log")"
# a slow pipe: the first line is answered (and written out) before the second is typed
: >"$TMP/log"
{
    echo u1
    for _ in $(seq 100); do grep -q '"identifier":"u1"' "$TMP/out" 2>/dev/null && break; sleep 0.05; done
    grep -q '"identifier":"u1"' "$TMP/out" 2>/dev/null || echo late
    sleep 0.3
    printf 'u2\n\nbad4\nu5'
} | "$U" batch --server "$URL/live" --token-file "$TMP/token" --sdkappid 1400000000 >"$TMP/out" 2>"$TMP/err"
RC=$?
ERR=$(cat "$TMP/err")
expect_rc "streamed: a slow pipe" 1
expect_err "streamed: a slow pipe: the failed line named" "1 of 4 identifiers failed, at input line 4 \(bad_identifier\);"
if [ "$(cut -c1-18 "$TMP/out" | tr '\n' ' ')" == '{"identifier":"u1" {"identifier":"u2" {"identifier":"bad {"identifier":"u5" ' ]; then
    pass "streamed: a slow pipe: u1 answered before u2 was sent"
else
    fail "streamed: a slow pipe: output" "$(cat "$TMP/out")"
fi
# fifo_batch_start SERVER LINES: `usersig batch` in the background (BPID) reading a FIFO that
# stays open after LINES (printf format) are written to it; fifo_batch_wait: its end (RC, ERR).
fifo_batch_start() {
    rm -f "$TMP/bfifo"
    mkfifo "$TMP/bfifo"
    "$U" batch --server "$1" --token-file "$TMP/token" --sdkappid 1400000000 \
        <"$TMP/bfifo" >"$TMP/out" 2>"$TMP/err" &
    BPID=$!
    exec 8>"$TMP/bfifo"
    # shellcheck disable=SC2059 # the lines are a printf format
    printf "$2" >&8
}
fifo_batch_wait() {
    wait "$BPID"
    RC=$?
    exec 8>&-
    rm -f "$TMP/bfifo"
    ERR=$(cat "$TMP/err")
}
# interrupted (SIGINT) while stdin is still open: the answered lines whole in stdout, where to
# resume, exit 128 + 2
fifo_batch_start "$URL/live" 'u1\nu2\nu3\n'
for _ in $(seq 200); do grep -q '"identifier":"u3"' "$TMP/out" 2>/dev/null && break; sleep 0.05; done
kill -INT $BPID
fifo_batch_wait
expect_rc "interrupted" 130
expect_err "interrupted" "interrupted \(signal 2\)"
expect_err "interrupted: resume hint" "stopped after 3 answered identifiers \(input lines up to 3, in stdout\); resume from line 4 \(tail -n \+4\)"
[ "$(wc -l <"$TMP/out")" -eq 3 ] && [ "$(tail -c 1 "$TMP/out" | od -An -tx1 | tr -d ' ')" == 0a ] &&
    pass "interrupted: 3 whole lines in stdout" || fail "interrupted: stdout" "$(cat "$TMP/out")"
# a reset while the body is sent: the --max-request-bytes hint only once enough was sent for a
# size limit to be the cause
awk 'BEGIN { for (i = 1; i <= 700000; i++) printf "user_%06d\n", i }' >"$TMP/ids700k"
batch "$TMP/ids700k" "$URL/reset"
expect_rc "streamed: reset past 128 KiB" 2
expect_err "streamed: reset past 128 KiB" "closed the connection while the request was being sent .*try --max-request-bytes 32M"
rm -f "$TMP/ids700k"
fifo_batch_start "$URL/reset0" 'u1\nu2\n'
fifo_batch_wait
expect_rc "streamed: reset at the first bytes" 2
expect_err "streamed: reset at the first bytes" "closed the connection while the request was being sent \([^)]*\)$"
if grep -q -- "--max-request-bytes" "$TMP/err"; then
    fail "streamed: reset at the first bytes: no size hint" "$ERR"
else
    pass "streamed: reset at the first bytes: no size hint"
fi
# the server's last line for a body cut short (usersigd: bad_request, the batch aborted): the
# lines before it kept, exit 2, where to resume
batch "$TMP/ids1000" "$URL/livecut"
expect_rc "streamed: the server's cut line" 2
expect_err "streamed: the server's cut line" "stopped the batch after 3 of the [0-9]+ identifiers sent: bad_request: the request body was cut short .*recorded as aborted after 3 lines"
expect_err "streamed: the server's cut line: resume hint" "stopped after 3 answered identifiers \(input lines up to 3, in stdout\); resume from line 4 \(tail -n \+4\)"
[ "$(wc -l <"$TMP/out")" -eq 3 ] && pass "streamed: the server's cut line: 3 lines in stdout" || fail "streamed: cut: stdout" "$(cat "$TMP/out")"
# the server's other last-line errors, streamed, NDJSON and CSV
batch "$TMP/ids1000" "$URL/break"
expect_rc "streamed: the server stopped the batch" 2
expect_err "streamed: the server stopped the batch" "stopped the batch after 3 of the 1000 identifiers sent: internal: boom"
batch "$TMP/ids1000" "$URL/break" --format csv
expect_rc "streamed csv: the server stopped the batch" 2

# ---- 429 too_many_batches ----------------------------------------------------------------------
# two refusals with Retry-After: 1, then accepted: waited for, said, nothing lost, no body sent
# with a refused request (the streamed body waits for 100 Continue)
batch "$TMP/ids1000" "$URL/busy"
expect_rc "429 twice, then accepted" 0
same_file "429 twice, then accepted" "$TMP/want1000"
[ "$(grep -c 'the server is busy (HTTP 429: too_many_batches: 8 batches are running (request id fake0002)); trying again in 1 s' "$TMP/err")" -eq 2 ] &&
    pass "429: each wait said" || fail "429: each wait said" "$ERR"
[ "$(grep -c '"busy":true' "$TMP/log")" -eq 2 ] && grep -q '"items":1000' "$TMP/log" &&
    pass "429: 2 refused, then 1000 identifiers" || fail "429: request log" "$(cat "$TMP/log")"
batch "$TMP/ids1000" "$URL/busy" --max-request-bytes 6000
expect_rc "429 with --max-request-bytes" 0
same_file "429 with --max-request-bytes" "$TMP/want1000"
batch "$TMP/ids10" "$URL/busylong"
expect_rc "429 asking for an hour" 2
expect_err "429 asking for an hour" "the server is busy \(HTTP 429: too_many_batches: .*\) and asks for 3600 s before another try; run the batch again later"
[ -s "$TMP/out" ] && fail "429 asking for an hour: stdout not empty" || pass "429 asking for an hour: nothing signed"

# ---- connections -------------------------------------------------------------------------------
CLOSED=$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')
batch "$TMP/ids10" "http://127.0.0.1:$CLOSED"
expect_rc "connection refused" 2
expect_err "connection refused" "cannot connect to 127.0.0.1:$CLOSED"
batch "$TMP/ids10" "http://localhost:$PORT"
expect_rc "host name" 0
if [ "$PORT6" != 0 ]; then
    batch "$TMP/ids10" "http://[::1]:$PORT6/"
    expect_rc "IPv6 address" 0
    same_file "IPv6 address" "$TMP/want10"
    grep -q "\"host\":\"\[::1\]:$PORT6\"" "$TMP/log" && pass "IPv6: Host header" || fail "IPv6: Host header" "$(cat "$TMP/log")"
    batch "$TMP/ids10" "http://[::1]:$CLOSED"
    expect_rc "IPv6 connection refused" 2
    expect_err "IPv6 connection refused" "cannot connect to \[::1\]:$CLOSED: "
else
    echo "skip: no IPv6 loopback"
fi
batch "$TMP/ids10" "http://no-such-host.invalid:$PORT"
expect_rc "unknown host" 2
expect_err "unknown host" "cannot resolve no-such-host.invalid"
batch /dev/null "$URL"
expect_rc "empty input" 0
expect_err "empty input" "no identifiers on stdin"
[ -s "$TMP/log" ] && fail "empty input: a request was sent" || pass "empty input: nothing sent"

# ---- usersig import: the same client at the accounts endpoints ---------------------------------
imp() { # INPUT_FILE SERVER [ARGS...]: as batch, for usersig import
    local in=$1 server=$2
    shift 2
    : >"$TMP/log"
    "$U" import --server "$server" --token-file "$TMP/token" --sdkappid 1400000000 "$@" <"$in" >"$TMP/out" 2>"$TMP/err"
    RC=$?
    ERR=$(cat "$TMP/err")
}
printf 'acc1\nacc2\n' >"$TMP/acc2"
printf 'acc1\nbad2\n\nnobody4\nacc5\n' >"$TMP/acc5"
imp "$TMP/acc2" "$URL"
expect_rc "import" 0
expect_err "import" '^import f{32}: 2 imported 2 failed 0 calls 1 sha256 [0-9a-f]{64}$'
grep -q '"url":"/v1/apps/1400000000/accounts/import","ndjson":false,"items":2,"te":"chunked"' "$TMP/log" &&
    pass "import: one chunked text request to /accounts/import" || fail "import: the request" "$(cat "$TMP/log")"
imp "$TMP/acc5" "$URL" --check
expect_rc "import --check, a failed line" 1
expect_err "import --check" '^check f{32}: 4 imported 2 not_imported 1 failed 1 calls 1 sha256 '
expect_err "import --check" '1 of 4 accounts failed, at input line 2 \(bad_identifier\)'
grep -q '"url":"/v1/apps/1400000000/accounts/check"' "$TMP/log" && pass "import --check: /accounts/check" ||
    fail "import --check: the request" "$(cat "$TMP/log")"
imp "$TMP/acc5" "$URL/notimp"
expect_rc "import answered not_imported" 2
expect_err "import answered not_imported" 'unexpected line in the server.s answer: .*not_imported'
for c in "badsha|SHA-256 MISMATCH in import f{32}" "reorder|is not for input line 1 \(the answer is out of order\)" \
    "aborted|import f{32}: the server recorded the job as aborted, not complete" \
    "count|the summary \(count 2, imported 3, failed 0\) does not match" "nosummary|without its summary line" \
    "denied|the server answered HTTP 403: rest_not_allowed: .*multiaccount_import \(request id fake0001\)"; do
    imp "$TMP/acc2" "$URL/${c%%|*}"
    expect_rc "import ${c%%|*}" 2
    expect_err "import ${c%%|*}" "${c#*|}"
done
printf '{"identifier":"n\\u0031"}\n{"identifier":"n2","nick":"x"}\n' >"$TMP/acc.ndjson"
imp "$TMP/acc.ndjson" "$URL" --ndjson
expect_rc "import --ndjson (an escaped identifier compared decoded)" 0
grep -q '"ndjson":true,"items":2' "$TMP/log" && pass "import --ndjson: application/x-ndjson" ||
    fail "import --ndjson: the request" "$(cat "$TMP/log")"
imp "$TMP/acc.ndjson" "$URL/reorder" --ndjson
expect_rc "import --ndjson out of order" 2
imp "$TMP/acc2" "$URL" --expire 60
expect_rc "import --expire" 2
expect_err "import --expire" 'unknown option --expire'
batch "$TMP/acc2" "$URL" --check
expect_rc "batch --check" 2

# ---- progress on a terminal --------------------------------------------------------------------
if command -v script >/dev/null 2>&1; then
    : >"$TMP/log"
    script -qec "\"$U\" batch --server $URL --token-file $TMP/token --sdkappid 1400000000 --max-request-bytes 1000 <$TMP/ids1000 >$TMP/out" "$TMP/tty" >/dev/null 2>&1
    if grep -q 'usersig batch: 1000 done, 0 failed, .*/s (100%), ETA 0:00:00' "$TMP/tty"; then
        pass "progress line on a terminal"
    else
        fail "progress line on a terminal" "$(tr '\r' '|' <"$TMP/tty" | tail -c 300)"
    fi
    script -qec "\"$U\" batch --server $URL/live --token-file $TMP/token --sdkappid 1400000000 <$TMP/ids1000 >$TMP/out" "$TMP/tty" >/dev/null 2>&1
    if grep -q 'usersig batch: 1000 done, 0 failed, .*/s (100%), ETA 0:00:00' "$TMP/tty"; then
        pass "progress line on a terminal, streamed"
    else
        fail "progress line on a terminal, streamed" "$(tr '\r' '|' <"$TMP/tty" | tail -c 300)"
    fi
    script -qec "\"$U\" import --server $URL --token-file $TMP/token --sdkappid 1400000000 <$TMP/acc2 >$TMP/out" "$TMP/tty" >/dev/null 2>&1
    if grep -q 'usersig import: 2 done, 0 failed, .*/s (100%), ETA 0:00:00' "$TMP/tty"; then
        pass "import: progress line on a terminal"
    else
        fail "import: progress line on a terminal" "$(tr '\r' '|' <"$TMP/tty" | tail -c 300)"
    fi
else
    echo "skip: no script(1) for the terminal test"
fi

finish
