// Helpers of the end-to-end suite (tests/e2e/*.test.js), which drives the real usersigd binary
// over HTTP. tests/e2e/run.sh starts the server and passes, in the environment:
//   E2E_URL             http://127.0.0.1:PORT of the server it started
//   E2E_ADMIN_TOKEN     the admin token that server printed on its first run
//   E2E_USERSIG         the usersig CLI
//   E2E_USERSIGD        the usersigd binary (to start more processes, and for `audit verify`)
//   E2E_DB_URL          the run's own database (a superuser connection)
//   E2E_MASTER_KEY_FILE the master key file of that database
//   E2E_WORK            a scratch directory of this run
'use strict';

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');

const nodeDir = path.join(__dirname, '..', 'node');
const tokens = require(path.join(nodeDir, 'verify_tokens.js'));
const TLSSigAPIv2 = require(path.join(nodeDir, 'node_modules', 'tls-sig-api-v2'));

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the suite through tests/e2e/run.sh`);
  return v;
}

const E2E = {
  get url() { return env('E2E_URL'); },
  get admin() { return env('E2E_ADMIN_TOKEN'); },
  get usersig() { return env('E2E_USERSIG'); },
  get usersigd() { return env('E2E_USERSIGD'); },
  get dbUrl() { return env('E2E_DB_URL'); },
  get masterKeyFile() { return env('E2E_MASTER_KEY_FILE'); },
  get work() { return env('E2E_WORK'); },
};

const REQUEST_TIMEOUT_MS = 20000;
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

// One HTTP request. opts: token (default the admin token; null sends none), body (JSON-encoded
// unless raw is set), raw (a string or Buffer sent as is), contentType, headers, base (another
// server's URL). Returns { status, headers, text, json } (json undefined when not JSON).
async function api(method, urlPath, opts = {}) {
  const headers = Object.assign({}, opts.headers || {});
  const token = opts.token === undefined ? E2E.admin : opts.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let body;
  if (opts.raw !== undefined) {
    body = opts.raw;
    headers['content-type'] = opts.contentType || 'application/json';
  } else if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['content-type'] = opts.contentType || 'application/json';
  }
  const res = await fetch((opts.base || E2E.url) + urlPath, {
    method,
    headers,
    body,
    signal: AbortSignal.timeout(opts.timeoutMs || REQUEST_TIMEOUT_MS),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch (e) {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json, req: `${method} ${urlPath}` };
}

function show(res) {
  return `${res.req} -> HTTP ${res.status} ${res.text.slice(0, 600)}`;
}

// Asserts a JSON error reply: status, error.code, and that the message names each of `names`.
function expectError(res, status, code, names = []) {
  assert.equal(res.status, status, `want ${status} ${code}, got ${show(res)}`);
  assert.ok(res.json && res.json.error, `no {"error": ...} body: ${show(res)}`);
  assert.equal(res.json.error.code, code, `want code ${code}, got ${show(res)}`);
  assert.equal(typeof res.json.error.message, 'string', show(res));
  assert.ok(res.json.error.message.length > 0, show(res));
  for (const n of names) {
    assert.ok(res.json.error.message.includes(n),
      `the message should name "${n}": ${res.json.error.message}`);
  }
  return res.json.error;
}

function expectStatus(res, status) {
  assert.equal(res.status, status, `want ${status}, got ${show(res)}`);
  return res.json;
}

// Unique SDKAppIDs: each test file is its own process, so the pid keeps files apart and the
// counter keeps tests apart; the run's database is fresh anyway.
let appCounter = 0;
const appBase = 1000000000 + (process.pid % 2000000) * 1000 + crypto.randomInt(0, 500);
function newAppId() {
  appCounter += 1;
  return appBase + appCounter;
}

// A fresh v2 secret as the console shows it: 64 hex characters.
function newSecret() {
  return crypto.randomBytes(32).toString('hex');
}

async function createApp(sdkappid, extra = {}, opts = {}) {
  const res = await api('POST', '/v1/apps',
    Object.assign({ body: Object.assign({ sdkappid, name: `e2e app ${sdkappid}` }, extra) }, opts));
  expectStatus(res, 201);
  return res.json;
}

async function addKey(sdkappid, secret, extra = {}, opts = {}) {
  const res = await api('POST', `/v1/apps/${sdkappid}/keys`,
    Object.assign({ body: Object.assign({ secret }, extra) }, opts));
  expectStatus(res, 201);
  return res.json;
}

// An app with one active key; returns { sdkappid, secret }.
async function appWithKey(extra = {}, opts = {}) {
  const sdkappid = newAppId();
  const secret = newSecret();
  await createApp(sdkappid, extra, opts);
  const key = await addKey(sdkappid, secret, {}, opts);
  assert.equal(key.state, 'active');
  return { sdkappid, secret, version: key.version };
}

async function sign(sdkappid, body, opts = {}) {
  const res = await api('POST', `/v1/apps/${sdkappid}/usersigs`, Object.assign({ body }, opts));
  expectStatus(res, 200);
  return res.json;
}

async function createToken(role, apps, name) {
  const body = { name: name || `e2e ${role} ${crypto.randomBytes(4).toString('hex')}`, role };
  if (apps) body.apps = apps;
  const res = await api('POST', '/v1/tokens', { body });
  expectStatus(res, 201);
  assert.match(res.json.token, /^usg_\d+_[A-Za-z0-9_-]{43}$/);
  return res.json.token;
}

// Writes a key file (mode 0600) for the usersig CLI; returns its path.
function keyFile(secret) {
  const dir = path.join(E2E.work, 'keys');
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, `k-${process.pid}-${crypto.randomBytes(6).toString('hex')}`);
  fs.writeFileSync(file, secret, { mode: 0o600 });
  return file;
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, {
    input: opts.input,
    env: Object.assign({}, process.env, opts.env || {}),
    encoding: 'utf8',
    timeout: opts.timeoutMs || 60000,
  });
  if (r.error) throw r.error;
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

// The offline usersig CLI.
function usersig(args, opts) {
  return run(E2E.usersig, args, opts);
}

// `usersigd ARGS` against the run's database and master key.
function usersigdCli(args, opts = {}) {
  return run(E2E.usersigd, args, Object.assign({}, opts, {
    env: Object.assign({
      USERSIGD_DATABASE_URL: E2E.dbUrl,
      USERSIGD_MASTER_KEY_FILE: E2E.masterKeyFile,
      USERSIGD_DATA_DIR: path.join(E2E.work, 'cli'),
    }, opts.env || {}),
  }));
}

// psql as the superuser on the run's database; returns { code, stdout, stderr }.
function psql(sql) {
  return run('psql', [E2E.dbUrl, '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', sql]);
}

function psqlOk(sql) {
  const r = psql(sql);
  assert.equal(r.code, 0, `psql failed: ${sql}\n${r.stderr}`);
  return r.stdout.trim();
}

// Checks our token on the Node side, the SPEC way, and against the official library's own MAC
// routine: decodes it, recomputes TLS.sig and runs tests/node/verify_tokens.js's verify().
// Returns the decoded JSON.
function crossCheck(token, { sdkappid, secret, identifier }) {
  const d = tokens.decodeToken(token);
  assert.ok(!d.error, `the token does not decode: ${d.error}`);
  const j = d.json;
  assert.equal(j['TLS.ver'], '2.0');
  assert.equal(j['TLS.identifier'], identifier);
  assert.equal(j['TLS.sdkappid'], sdkappid);
  const want = tokens.specSig(secret, identifier, sdkappid, j['TLS.time'], j['TLS.expire'],
    j['TLS.userbuf']);
  assert.equal(j['TLS.sig'], want, 'TLS.sig differs from the one recomputed per SPEC');
  const official = new TLSSigAPIv2.Api(sdkappid, secret)._hmacsha256(identifier, j['TLS.time'],
    j['TLS.expire'], j['TLS.userbuf'] === undefined ? null : j['TLS.userbuf']);
  assert.equal(j['TLS.sig'], official, 'TLS.sig differs from the official library\'s');
  const verdict = tokens.verify({ token, key: secret, identifier, sdkappid,
    now: Math.floor(Date.now() / 1000) });
  assert.equal(verdict, 'ok', `verify_tokens.js says ${verdict}`);
  return j;
}

// ---- More server processes on the run's database --------------------------------------------

const children = new Set();
process.on('exit', () => {
  for (const c of children) {
    try { c.kill('SIGKILL'); } catch (e) { /* gone */ }
  }
});

// One `usersigd serve` on listen address `listen`; resolves to { url, proc, log(), stop() }
// once it logs its port and /healthz answers, or to { failed: output } if it exits first.
async function launch(name, listen, timeoutMs, opts) {
  const dataDir = path.join(E2E.work, `srv-${name}-${process.pid}`);
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const proc = spawn(E2E.usersigd, ['serve'].concat(opts.args || []), {
    env: Object.assign({}, process.env, {
      USERSIGD_DATABASE_URL: opts.dbUrl || E2E.dbUrl,
      USERSIGD_MASTER_KEY_FILE: opts.masterKeyFile || E2E.masterKeyFile,
      USERSIGD_LISTEN: listen,
      USERSIGD_DATA_DIR: dataDir,
    }, opts.env || {}),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(proc);
  let out = '';
  const onData = (b) => { out += b.toString('utf8'); };
  proc.stdout.on('data', onData);
  proc.stderr.on('data', onData);
  let exited = null;
  const exitPromise = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      exited = { code, signal };
      children.delete(proc);
      resolve(exited);
    });
  });
  const log = () => out;
  const stop = async () => {
    if (exited) return exited;
    proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), 10000);
    const r = await exitPromise;
    clearTimeout(t);
    return r;
  };
  const deadline = Date.now() + timeoutMs;
  let url = null;
  while (Date.now() < deadline && !exited) {
    const m = /listening on (?:http:\/\/)?(?:127\.0\.0\.1|\[::1\]|localhost):(\d+)/.exec(out);
    if (m) {
      url = `http://127.0.0.1:${m[1]}`;
      try {
        const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) });
        if (res.status === 200) {
          // The admin token of a first run comes on stdout around the listening line.
          const adminToken = async () => {
            for (let i = 0; i < 50; i++) {
              const t = /admin token: (usg_\d+_[A-Za-z0-9_-]+)/.exec(out);
              if (t) return t[1];
              await new Promise((r) => setTimeout(r, 100));
            }
            return null;
          };
          return { url, proc, log, stop, adminToken, dataDir };
        }
      } catch (e) { /* not yet */ }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  if (exited) {
    await new Promise((r) => setTimeout(r, 50)); // the last output
    return { failed: out, exited };
  }
  await stop();
  throw new Error(`usersigd serve (${name}) did not come up within ${timeoutMs} ms` +
    `\n--- its output ---\n${out}`);
}

// Starts `usersigd serve` on 127.0.0.1:0 with the run's database and master key (or opts.dbUrl,
// opts.masterKeyFile), plus the environment in opts.env (settings such as
// USERSIGD_MAX_BODY_SIZE; USERSIGD_DATABASE_URL: '' for the embedded PostgreSQL) and the
// arguments opts.args after `serve`. name picks its data dir. Resolves to { url, proc, log(),
// stop(), adminToken(), dataDir } once /healthz answers; with opts.mayFail, to
// { failed: output, exited } if it exits on startup.
async function startServer(name, opts = {}) {
  const r = await launch(name, '127.0.0.1:0', opts.timeoutMs || 60000, opts);
  if (r.failed !== undefined && opts.mayFail) return r;
  if (r.failed !== undefined) {
    throw new Error(`usersigd serve (${name}) exited ${JSON.stringify(r.exited)} on startup` +
      `\n--- its output ---\n${r.failed}`);
  }
  return r;
}

// Stops servers started by startServer; throws if one did not exit 0 on SIGTERM (a crash, or
// AddressSanitizer's report at exit).
async function stopAll(servers) {
  const bad = [];
  for (const s of servers) {
    const r = await s.stop();
    if (r.code !== 0) bad.push(`exited ${JSON.stringify(r)}:\n${s.log().slice(-4000)}`);
  }
  servers.length = 0;
  if (bad.length) throw new Error(`usersigd serve did not stop cleanly: ${bad.join('\n')}`);
}

// A new empty database on the run's cluster; returns its URL. dropDatabase() removes it.
let dbCounter = 0;
function createDatabase() {
  dbCounter += 1;
  const name = `e2e_${process.pid}_${dbCounter}`;
  psqlOk(`CREATE DATABASE ${name} TEMPLATE template0`);
  return E2E.dbUrl.replace(/\/[^/]*$/, `/${name}`);
}

function dropDatabase(url) {
  const name = /\/([^/]+)$/.exec(url)[1];
  return psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
}

// A new master key file (64 hex characters, mode 0600); returns its path.
function masterKey() {
  const file = path.join(E2E.work, `master-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
  fs.writeFileSync(file, crypto.randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
  return file;
}

// POSTs a text/plain batch to the server at base with node:http, reads about `bytes` of the
// reply and then drops the connection: a client that leaves halfway.
function batchAndLeave(base, sdkappid, body, bytes) {
  return new Promise((resolve, reject) => {
    const u = new URL(`${base}/v1/apps/${sdkappid}/usersigs/batch`);
    let got = 0;
    let settled = false;
    const req = http.request({
      host: u.hostname, port: u.port, path: u.pathname, method: 'POST',
      headers: { authorization: `Bearer ${E2E.admin}`, 'content-type': 'text/plain',
        'content-length': Buffer.byteLength(body) },
    }, (res) => {
      res.on('data', (chunk) => {
        got += chunk.length;
        if (got >= bytes && !settled) {
          settled = true;
          req.destroy();
          resolve({ status: res.statusCode, got });
        }
      });
      res.on('end', () => {
        if (!settled) {
          settled = true;
          resolve({ status: res.statusCode, got, ended: true });
        }
      });
    });
    req.on('error', (e) => { if (!settled) { settled = true; reject(e); } });
    req.end(body);
  });
}

// The embedded PostgreSQL of a data directory: the postmaster's pid from pg/data/postmaster.pid
// if that process lives, else null (no file, or a stale one).
function embeddedPostmaster(dataDir) {
  let text;
  try {
    text = fs.readFileSync(path.join(dataDir, 'pg', 'data', 'postmaster.pid'), 'utf8');
  } catch (e) {
    if (e.code === 'ENOENT') return null;
    throw e;
  }
  const pid = Number(text.split('\n')[0]);
  if (!(pid > 0)) return null;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (e) {
    if (e.code === 'ESRCH') return null;
    throw e;
  }
}

// A request to the Tencent stand-in's own test endpoints (tests/tencent/standin.js) over HTTPS
// with its test CA: the JSON reply.
// POST a text body to a streamed endpoint (batches, account imports) of the server at base:
// { status, json, text } when not 200; { status: 200, text, lines } otherwise, lines being the
// reply's lines without their newlines (the last one is the summary).
async function postLines(base, urlPath, body, opts = {}) {
  const res = await fetch(`${base}${urlPath}`, {
    method: 'POST', body,
    headers: { authorization: `Bearer ${opts.token || E2E.admin}`,
      'content-type': opts.contentType || 'text/plain' },
    signal: AbortSignal.timeout(opts.timeoutMs || 120000),
  });
  const text = await res.text();
  if (res.status !== 200) return { status: res.status, json: JSON.parse(text), text };
  assert.ok(text.endsWith('\n'), `the reply does not end with a newline: ${text.slice(-200)}`);
  return { status: 200, text, lines: text.slice(0, -1).split('\n') };
}

function standinCall(port, ca, method, p, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? '' : JSON.stringify(body);
    const req = require('node:https').request({ host: '127.0.0.1', port, method, path: p, ca,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString('utf8'))));
    });
    req.on('error', reject);
    req.end(data);
  });
}

// The Tencent stand-in (tests/tencent/standin.js) over HTTPS: standinCA(dir) makes its test CA
// and certificate in dir (once) and returns the CA's PEM; startStandin(config, dir, port) starts
// it with them (port 0: a free one) and resolves to { proc, port } once it listens.
function standinCA(dir) {
  const mk = spawnSync('bash', [path.join(__dirname, '..', 'tencent', 'make_ca.sh'), dir],
    { encoding: 'utf8' });
  if (mk.status !== 0) throw new Error(`make_ca.sh failed: ${mk.stderr}`);
  return fs.readFileSync(path.join(dir, 'ca.pem'));
}

function startStandin(config, dir, port) {
  const proc = spawn('node', [path.join(__dirname, '..', 'tencent', 'standin.js'),
    '--config-json', JSON.stringify(config), '--tls-dir', dir, '--port', String(port)],
  { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve({ proc, port: JSON.parse(out.split('\n')[0]).port });
    });
    proc.on('exit', (code) => reject(new Error(`stand-in exited ${code}`)));
  });
}

module.exports = {
  standinCall, standinCA, startStandin,
  stopAll, createDatabase, dropDatabase, masterKey,
  E2E, RFC3339, api, show, expectError, expectStatus, newAppId, newSecret, createApp, addKey,
  appWithKey, sign, createToken, keyFile, usersig, usersigdCli, psql, psqlOk, crossCheck,
  startServer, tokens, TLSSigAPIv2, batchAndLeave, embeddedPostmaster, postLines,
};
