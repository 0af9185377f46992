// usersigd over a primary and a synchronous streaming standby, both named in one libpq
// multi-host URL with target_session_attrs=read-write. Under a sign load the primary is stopped
// (immediate: its processes end as in a crash) and the standby promoted. What must hold:
// - during the switch every sign gets a 200 or a quick 503 {"error":{"code":"unavailable"}}
//   with Retry-After; no request hangs, no connection is dropped;
// - usersigd follows by itself: signs succeed again against the new primary, with no restart;
// - on the new primary every UserSig a client received has its usersig.sign audit row
//   (synchronous replication: no acknowledged commit is lost), and the chain verifies across
//   the switch.
// The two clusters are this file's own, made with initdb and pg_basebackup in a temp dir.
// Each measured figure is printed as a "failover:" line on stderr.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const path = require('node:path');
const { performance } = require('node:perf_hooks');
const { spawn, spawnSync } = require('node:child_process');
const {
  newAppId, newSecret, createApp, addKey, api, show, usersigdCli, startServer, stopAll, masterKey,
} = require('./lib');

const pause = (ms) => new Promise((r) => setTimeout(r, ms));
const CONCURRENCY = 8;
const DB_CONNECTIONS = 4; // usersigd's pool: each of its threads must follow
const STANDBY_NAME = 'usersigd_standby';
const REQUEST_TIMEOUT_MS = 5000; // a reply later than this is a hang
const REPLY_503_MAX_MS = 3000; // each 503 of the switch arrives within this
const FOLLOW_MAX_MS = 10000; // promoted: the first 200 within this

function note(line) {
  process.stderr.write(`failover: ${line}\n`);
}

function run(cmd, args, timeoutMs = 60000) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

// ---- a primary and its standby ----------------------------------------------------------------

const asRoot = process.getuid() === 0;

function pgBindir() {
  for (const d of ['/usr/lib/postgresql/15/bin', run('pg_config', ['--bindir']).stdout.trim()]) {
    if (d && ['pg_ctl', 'pg_basebackup'].every((b) => fs.existsSync(path.join(d, b)))) return d;
  }
  throw new Error('no pg_ctl or pg_basebackup: install postgresql-15');
}
const bindir = pgBindir();

// A server command as the clusters' owner (postgres when we are root: PostgreSQL refuses root).
function asOwner(cmd, args, timeoutMs) {
  const bin = path.join(bindir, cmd);
  return asRoot ? run('runuser', ['-u', 'postgres', '--', bin].concat(args), timeoutMs)
    : run(bin, args, timeoutMs);
}

// asOwner without blocking the event loop (the sign load runs on): resolves to { code, out }.
function asOwnerAsync(cmd, args) {
  const bin = path.join(bindir, cmd);
  const [c, a] = asRoot ? ['runuser', ['-u', 'postgres', '--', bin].concat(args)] : [bin, args];
  return new Promise((resolve, reject) => {
    const p = spawn(c, a, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (b) => { out += b; });
    p.stderr.on('data', (b) => { out += b; });
    p.on('error', reject);
    p.on('exit', (code) => resolve({ code, out }));
  });
}

function ownerOk(cmd, args, timeoutMs) {
  const r = asOwner(cmd, args, timeoutMs);
  assert.equal(r.code, 0, `${cmd} ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

// A port nothing listens on now (a start that still loses the race is retried on a new one).
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const DB = 'failover';

class Node {
  constructor(base, name) {
    this.name = name;
    this.data = path.join(base, name);
    this.sock = path.join(base, 'sock');
    this.log = path.join(base, `${name}.log`);
    this.port = 0;
  }

  url(db = DB) {
    return `postgresql://usersigd@127.0.0.1:${this.port}/${db}`;
  }

  psql(sql, db) {
    return run('psql', [this.url(db), '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', sql]);
  }

  // psql without blocking the event loop; resolves to its trimmed output, rejects on failure.
  psqlAsync(sql, db) {
    return new Promise((resolve, reject) => {
      const p = spawn('psql', [this.url(db), '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1',
        '-c', sql], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      p.stdout.on('data', (b) => { out += b; });
      p.stderr.on('data', (b) => { err += b; });
      p.on('error', reject);
      p.on('exit', (code) => (code === 0 ? resolve(out.trim())
        : reject(new Error(`psql on ${this.name} failed: ${sql}\n${err}`))));
    });
  }

  psqlOk(sql, db) {
    const r = this.psql(sql, db);
    assert.equal(r.code, 0, `psql on ${this.name} failed: ${sql}\n${r.stderr}`);
    return r.stdout.trim();
  }

  // Starts on a free port (retried if another process takes it first).
  async start() {
    for (let attempt = 0; attempt < 10; attempt++) {
      this.port = await freePort();
      fs.rmSync(this.log, { force: true });
      const r = asOwner('pg_ctl', ['-D', this.data, '-l', this.log, '-w', '-t', '60',
        '-o', `-p ${this.port}`, 'start'], 90000);
      if (r.code === 0) return;
      const log = fs.existsSync(this.log) ? fs.readFileSync(this.log, 'utf8') : '';
      if (!/could not (bind|create listen)|address already in use/i.test(log)) {
        assert.fail(`pg_ctl start (${this.name}): ${r.stdout}${r.stderr}\n${log.slice(-3000)}`);
      }
    }
    assert.fail(`no free port for ${this.name} after 10 tries`);
  }

  running() {
    return fs.existsSync(path.join(this.data, 'postmaster.pid'));
  }

  async stop(mode) {
    const r = await asOwnerAsync('pg_ctl', ['-D', this.data, '-m', mode, '-w', '-t', '30', 'stop']);
    assert.equal(r.code, 0, `pg_ctl stop (${this.name}): ${r.out}`);
  }

  async promote() {
    const r = await asOwnerAsync('pg_ctl', ['-D', this.data, '-w', '-t', '30', 'promote']);
    assert.equal(r.code, 0, `pg_ctl promote (${this.name}): ${r.out}`);
  }
}

// The primary: initdb, WAL for a standby, a replication entry in pg_hba, and (once the standby
// streams) synchronous_standby_names naming it. The standby: pg_basebackup -R from the primary,
// its primary_conninfo carrying the application_name the primary waits for. The standby itself
// waits for no one: promoted, it must commit alone.
async function makePair(base) {
  const primary = new Node(base, 'primary');
  const standby = new Node(base, 'standby');
  fs.mkdirSync(primary.sock, { recursive: true, mode: 0o700 });
  if (asRoot) run('chown', ['-R', 'postgres:', base]);
  ownerOk('initdb', ['-D', primary.data, '-U', 'usersigd', '-A', 'trust', '-E', 'UTF8',
    '--no-locale'], 120000);
  fs.appendFileSync(path.join(primary.data, 'postgresql.conf'), `
# failover.test.js: a primary with a synchronous standby
listen_addresses = '127.0.0.1'
unix_socket_directories = '${primary.sock}'
wal_level = replica
max_wal_senders = 5
synchronous_commit = on
fsync = off
shared_buffers = 32MB
max_connections = 100
log_min_messages = warning
`);
  fs.appendFileSync(path.join(primary.data, 'pg_hba.conf'),
    '\nhost replication usersigd 127.0.0.1/32 trust\n');
  await primary.start();
  primary.psqlOk(`CREATE DATABASE ${DB} TEMPLATE template0`, 'postgres');

  ownerOk('pg_basebackup', ['-h', '127.0.0.1', '-p', String(primary.port), '-U', 'usersigd',
    '-D', standby.data, '-R', '-X', 'stream', '-c', 'fast'], 120000);
  const auto = path.join(standby.data, 'postgresql.auto.conf');
  const conninfo = `host=127.0.0.1 port=${primary.port} user=usersigd ` +
    `application_name=${STANDBY_NAME}`;
  fs.appendFileSync(auto, `\nprimary_conninfo = '${conninfo}'\nsynchronous_standby_names = ''\n`);
  assert.ok(fs.existsSync(path.join(standby.data, 'standby.signal')),
    'pg_basebackup -R wrote no standby.signal');
  await standby.start();

  primary.psqlOk(`ALTER SYSTEM SET synchronous_standby_names = '"${STANDBY_NAME}"'`, 'postgres');
  primary.psqlOk('SELECT pg_reload_conf()', 'postgres');
  const deadline = Date.now() + 20000;
  let state = '';
  while (Date.now() < deadline) {
    state = primary.psqlOk('SELECT state || \' \' || sync_state FROM pg_stat_replication ' +
      `WHERE application_name = '${STANDBY_NAME}'`, 'postgres');
    if (state === 'streaming sync') break;
    await pause(100);
  }
  assert.equal(state, 'streaming sync', 'the standby did not become a streaming synchronous one');
  assert.equal(standby.psqlOk('SELECT pg_is_in_recovery()', 'postgres'), 't');
  assert.equal(primary.psqlOk('SHOW synchronous_commit', 'postgres'), 'on');
  return { primary, standby };
}

// ---- a sign load ------------------------------------------------------------------------------

// One POST over agent; resolves to { t0, t1, ms, status, json, text, code, retryAfter,
// identifier, error } (error: the client-side failure, a reset or a timeout).
function signOnce(agent, base, token, sdkappid, identifier) {
  const u = new URL(`${base}/v1/apps/${sdkappid}/usersigs`);
  const body = JSON.stringify({ identifier });
  const t0 = performance.now();
  return new Promise((resolve) => {
    let done = false;
    const finish = (r) => {
      if (done) return;
      done = true;
      const t1 = performance.now();
      resolve(Object.assign({ t0, t1, ms: t1 - t0, identifier }, r));
    };
    const req = http.request({
      agent, host: u.hostname, port: u.port, path: u.pathname, method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json',
        'content-length': Buffer.byteLength(body) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => {
        let json;
        try { json = JSON.parse(text); } catch (e) { json = undefined; }
        finish({ status: res.statusCode, json, text,
          code: json && json.error ? json.error.code : undefined,
          retryAfter: res.headers['retry-after'] });
      });
      res.on('error', (e) => finish({ error: e.code || e.message }));
    });
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error('timeout')));
    req.on('error', (e) => finish({ error: e.code || e.message }));
    req.end(body);
  });
}

// CONCURRENCY clients signing in a loop over keep-alive connections, each identifier unique
// (tag-client-n), until stop(). results holds every reply in the order they came.
function signLoad(base, token, sdkappid, tag) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const results = [];
  let stopping = false;
  const client = async (c) => {
    for (let n = 0; !stopping; n++) {
      const r = await signOnce(agent, base, token, sdkappid, `${tag}-${c}-${n}`);
      results.push(r);
      if (r.status !== 200) await pause(20); // Retry-After, shortened: do not spin
    }
  };
  const clients = [];
  for (let c = 0; c < CONCURRENCY; c++) clients.push(client(c));
  let stopped = null;
  return {
    results,
    stop() {
      stopping = true;
      if (stopped === null) {
        stopped = Promise.all(clients).then(() => { agent.destroy(); return results; });
      }
      return stopped;
    },
  };
}

function tally(results) {
  const t = {};
  for (const r of results) {
    const k = r.error ? `error ${r.error}` : `${r.status}${r.code ? ` ${r.code}` : ''}`;
    t[k] = (t[k] || 0) + 1;
  }
  return JSON.stringify(t);
}

function quantile(xs, q) {
  const s = xs.slice().sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))] : NaN;
}

const fmt = (ms) => `${ms.toFixed(1)} ms`;

async function waitUntil(what, fn, ms) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (fn()) return;
    await pause(20);
  }
  assert.fail(`timed out after ${ms} ms waiting for ${what}`);
}

// ---- the test ---------------------------------------------------------------------------------

let baseDir = null;
let pair = null;
const servers = [];

// The postmasters run in sessions of their own, out of reach of a kill of this process group:
// they go with this process however it ends.
function destroyPair() {
  if (baseDir === null) return;
  for (const n of pair ? [pair.primary, pair.standby] : []) {
    if (n.running()) asOwner('pg_ctl', ['-D', n.data, '-m', 'immediate', '-w', '-t', '30', 'stop']);
  }
  fs.rmSync(baseDir, { recursive: true, force: true });
  baseDir = null;
  pair = null;
}
process.on('exit', () => {
  try { destroyPair(); } catch (e) { /* exiting anyway */ }
});
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.once(sig, () => {
    try { destroyPair(); } finally { process.exit(sig === 'SIGTERM' ? 143 : 130); }
  });
}

before(async () => {
  // Under /tmp: the postgres user must reach it, and the socket path stays short.
  baseDir = fs.mkdtempSync('/tmp/usersigd-failover.');
  pair = await makePair(baseDir);
});

after(async () => {
  try {
    await stopAll(servers.filter((s) => s.proc.exitCode === null && !s.proc.signalCode));
  } finally {
    destroyPair();
  }
});

test('primary stopped and standby promoted under a sign load: 503s with Retry-After during ' +
  'the switch, usersigd follows by itself, no UserSig without its audit row, the chain ' +
  'verifies', async () => {
  const { primary, standby } = pair;
  // libpq's own multi-host form: the hosts in order, the first that accepts writes wins.
  const dbUrl = `host=127.0.0.1,127.0.0.1 port=${primary.port},${standby.port} dbname=${DB} ` +
    'user=usersigd target_session_attrs=read-write';
  const key = masterKey();
  const server = await startServer('failover', { dbUrl, masterKeyFile: key,
    env: { USERSIGD_DB_CONNECTIONS: String(DB_CONNECTIONS) } });
  servers.push(server);
  const token = await server.adminToken();
  assert.ok(token, `no admin token printed on the first run:\n${server.log()}`);
  const sdkappid = newAppId();
  const opts = { base: server.url, token };
  await createApp(sdkappid, {}, opts);
  await addKey(sdkappid, newSecret(), {}, opts);

  const load = signLoad(server.url, token, sdkappid, 'fo');
  let results;
  let tStopped;
  let tPromote;
  let tPromoted;
  let conns = 0;
  try {
    await pause(2000);
    const before = load.results.filter((r) => r.status === 200).length;
    assert.ok(before >= CONCURRENCY, `few signs before the switch: ${tally(load.results)}`);
    await primary.stop('immediate');
    tStopped = performance.now();
    await pause(1000); // the switch as an operator or a failover manager makes it: not at once
    tPromote = performance.now();
    await standby.promote();
    tPromoted = performance.now();
    await waitUntil('a 200 from the new primary',
      () => load.results.some((r) => r.t0 >= tPromoted && r.status === 200), FOLLOW_MAX_MS);
    // Under the load every pool thread gets work, meets its dead session and reconnects.
    const deadline = Date.now() + 8000;
    for (;;) {
      conns = Number(await standby.psqlAsync('SELECT count(*) FROM pg_stat_activity ' +
        `WHERE datname = '${DB}' AND application_name = 'usersigd'`));
      if (conns >= DB_CONNECTIONS || Date.now() > deadline) break;
      await pause(100);
    }
    await pause(2000);
  } finally {
    results = await load.stop();
  }

  // Every reply is a 200 or a 503 unavailable with Retry-After, none late, none dropped.
  for (const r of results) {
    assert.ok(!r.error, `a sign failed on the client side (${r.error}) after ${fmt(r.ms)}`);
    if (r.status === 200) {
      assert.equal(typeof (r.json && r.json.usersig), 'string', r.text);
      continue;
    }
    assert.equal(r.status, 503, `want 200 or 503, got ${r.status} ${r.text}`);
    assert.equal(r.code, 'unavailable', r.text);
    assert.equal(typeof r.json.error.message, 'string', r.text);
    assert.equal(r.retryAfter, '1', `Retry-After: ${r.retryAfter}`);
    assert.ok(r.ms < REPLY_503_MAX_MS, `a 503 took ${fmt(r.ms)}`);
  }
  // Asked with the primary gone and the standby not yet promoted: no writable PostgreSQL.
  const during = results.filter((r) => r.t0 >= tStopped && r.t1 <= tPromote);
  assert.ok(during.length >= CONCURRENCY, `few requests during the switch: ${tally(during)}`);
  assert.deepEqual(during.filter((r) => r.status !== 503).map((r) => r.status), [],
    `with no writable PostgreSQL every sign must be a 503: ${tally(during)}`);

  // It followed by itself: the first 200 after the promotion, then nothing but 200s (every
  // database thread reconnected to the new primary).
  const first = results.filter((r) => r.t0 >= tPromoted && r.status === 200)
    .reduce((a, b) => (a.t1 <= b.t1 ? a : b));
  const settled = results.filter((r) => r.t0 >= first.t1 + 1000);
  assert.ok(settled.length >= CONCURRENCY, `few signs after the switch: ${tally(settled)}`);
  assert.deepEqual(settled.filter((r) => r.status !== 200).map((r) => r.status), [],
    `signs still failing on the new primary: ${tally(settled)}`);
  assert.equal(server.proc.exitCode, null, `usersigd exited:\n${server.log()}`);
  assert.equal(standby.psqlOk('SELECT pg_is_in_recovery()'), 'f');
  assert.ok(conns >= DB_CONNECTIONS,
    `${conns} usersigd connections on the new primary: a pool thread did not follow`);

  // On the new primary: every 200 has its committed usersig.sign row.
  const ok = results.filter((r) => r.status === 200);
  const out = standby.psqlOk('SELECT details::json->>\'identifier\' FROM audit_log ' +
    `WHERE action = 'usersig.sign' AND outcome = 'ok' AND sdkappid = ${sdkappid}`);
  const rows = new Set(out === '' ? [] : out.split('\n'));
  const missing = ok.filter((r) => !rows.has(r.identifier)).map((r) => r.identifier);
  assert.deepEqual(missing, [],
    `UserSigs issued whose audit row the new primary lacks: ${missing}`);
  assert.ok(ok.length <= rows.size, `${ok.length} 200s, ${rows.size} rows`);

  // The chain verifies across the switch, offline and through the server.
  const v = usersigdCli(['audit', 'verify'], { env: { USERSIGD_DATABASE_URL: standby.url(),
    USERSIGD_MASTER_KEY_FILE: key } });
  assert.equal(v.code, 0, `usersigd audit verify on the new primary: ${v.stdout}${v.stderr}`);
  assert.match(v.stdout, /^ok: \d+ events/m, v.stdout);
  const online = await api('GET', '/v1/audit/verify', { base: server.url, token });
  assert.equal(online.json && online.json.ok, true, show(online));

  const firstMs = first.t1 - tPromoted;
  note(`replies ${tally(results)}`);
  const duringMs = during.map((r) => r.ms);
  note(`during the switch ${tally(during)}, 503 p50 ${fmt(quantile(duringMs, 0.5))} ` +
    `max ${fmt(Math.max(...duringMs))}`);
  note(`first 200 ${fmt(firstMs)} after pg_ctl promote returned`);
  note(`200 replies ${ok.length}, ok audit rows on the new primary ${rows.size}, ` +
    `usersigd connections there ${conns}`);
  note(v.stdout.trim());
});
