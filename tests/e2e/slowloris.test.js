// Slowloris: 1,000 connections that each send part of a request head and never its blank line,
// against a usersigd of this file's own with a short request_timeout. What must hold:
// - while they are open, /healthz on new connections answers 200 within HEALTHZ_MAX_MS, each time;
// - each slow connection ends within request_timeout and a margin: one that keeps sending a few
//   bytes a second gets the JSON 408 "request_timeout" of the head deadline (http_frame.c), one
//   that goes silent after its first bytes is closed by evhttp's inactivity timeout;
// - afterwards the server signs a UserSig as usual.
// The daemon raises its open files limit to the hard one at start (serve.c), and says so.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { performance } = require('node:perf_hooks');
const {
  E2E, newAppId, newSecret, createApp, addKey, sign, startServer, stopAll, createDatabase,
  dropDatabase, masterKey, crossCheck,
} = require('./lib');

const CONNECTIONS = 1000;
const SILENT = 300; // of them stop sending after their first bytes; the others trickle
const TIMEOUT_MS = 3000; // USERSIGD_REQUEST_TIMEOUT
const END_MARGIN_MS = 3000; // a slow connection ends within TIMEOUT_MS + this of its last byte
const TRICKLE_MS = 1000; // a trickling connection sends a few bytes this often
const HEALTHZ_TIMES = 20;
const HEALTHZ_MAX_MS = 500;

const pause = (ms) => new Promise((r) => setTimeout(r, ms));

function note(line) {
  process.stderr.write(`slowloris: ${line}\n`);
}

const servers = [];
let server;
let token;
let dbUrl;
let port;

before(async () => {
  dbUrl = createDatabase();
  server = await startServer('slowloris', {
    dbUrl,
    masterKeyFile: masterKey(),
    env: { USERSIGD_REQUEST_TIMEOUT: `${TIMEOUT_MS / 1000}s` },
  });
  servers.push(server);
  token = await server.adminToken();
  assert.ok(token, `no admin token on the first run of a fresh database:\n${server.log()}`);
  port = Number(new URL(server.url).port);
});

after(async () => {
  await stopAll(servers);
  if (dbUrl) dropDatabase(dbUrl);
});

// A process's open files limits, { soft, hard } (Infinity: unlimited).
function limits(pid) {
  const f = fs.readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n')
    .find((l) => l.startsWith('Max open files')).split(/\s+/);
  const n = (v) => (v === 'unlimited' ? Infinity : Number(v));
  return { soft: n(f[3]), hard: n(f[4]) };
}

function nofile(pid) {
  return limits(pid).soft;
}

// GET /healthz on a new connection (no keep-alive agent); resolves to { status, ms, body }.
function healthz() {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = http.get({
      host: '127.0.0.1', port, path: '/healthz', agent: false, headers: { connection: 'close' },
      timeout: 5000,
    }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, ms: performance.now() - t0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('no /healthz reply within 5 s')));
    req.on('error', reject);
  });
}

// One slow client. silent: sends the request line and part of a header, then nothing; else
// one more short header line every TRICKLE_MS, never the blank line. Resolves once the server
// ends the connection (or the guard gives up) to { silent, got, err, lastWriteAt, endAt,
// connectedAt }.
function slowClient(i, silent, guardMs) {
  return new Promise((resolve) => {
    const st = { silent, got: '', err: null, connectedAt: 0, lastWriteAt: 0, endAt: 0, open: true };
    const sock = net.connect({ host: '127.0.0.1', port });
    let timer = null;
    let guard = null;
    let k = 0;
    const write = (s) => {
      if (!st.open) return;
      sock.write(s, (err) => { if (!err) st.lastWriteAt = performance.now(); });
    };
    const done = () => {
      if (!st.open) return;
      st.open = false;
      st.endAt = performance.now();
      clearInterval(timer);
      clearTimeout(guard);
      resolve(st);
    };
    sock.setEncoding('latin1');
    sock.on('connect', () => {
      st.connectedAt = performance.now();
      write(`GET /v1/apps?slow=${i} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ${i}`);
      if (!silent) {
        timer = setInterval(() => { k += 1; write(`\r\nX-${k}: ${k}`); }, TRICKLE_MS);
      }
      guard = setTimeout(() => { st.err = 'still open'; sock.destroy(); done(); }, guardMs);
    });
    sock.on('data', (d) => { st.got += d; });
    sock.on('error', (e) => { st.err = st.err || e.code || String(e); });
    sock.on('close', done);
  });
}

// What a slow connection came to: '408' (the JSON request_timeout reply, then the close),
// 'closed' (closed with no reply), 'still open' (the guard gave up), or what else it was.
function outcome(st) {
  if (st.connectedAt === 0) return `not connected: ${st.err}`;
  if (st.err === 'still open') return 'still open';
  if (st.got === '') return 'closed';
  const m = /^HTTP\/1\.1 (\d{3}) [^\r]*\r\n([\s\S]*?)\r\n\r\n([\s\S]*)$/.exec(st.got);
  if (m && m[1] === '408') {
    let json;
    try { json = JSON.parse(m[3]); } catch (e) { json = undefined; }
    if (json && json.error && json.error.code === 'request_timeout' &&
        /connection: close/i.test(m[2])) return '408';
  }
  return `other: ${JSON.stringify(st.got.slice(0, 300))} ${st.err || ''}`;
}

test('the open files limit is raised at start, and fits the test', () => {
  const m = /open files limit: (\d+|unlimited)/.exec(server.log());
  assert.ok(m, `no "open files limit" line at start:\n${server.log()}`);
  const limit = m[1] === 'unlimited' ? Infinity : Number(m[1]);
  assert.equal(limit, nofile(server.proc.pid), 'the logged limit is the process\'s soft limit');
  const l = limits(server.proc.pid);
  assert.equal(l.soft, l.hard, 'the soft limit was raised to the hard one');
  assert.ok(limit >= CONNECTIONS + 100, `usersigd may open only ${limit} files`);
  assert.ok(nofile(process.pid) >= CONNECTIONS + 100,
    `this node process may open only ${nofile(process.pid)} files: raise the hard limit ` +
    '(ulimit -Hn) of the runner');
});

test('a soft limit of 1024 is raised to the hard one, and logged', (t) => {
  const { hard } = limits(process.pid);
  if (!(hard > 1024) || hard === Infinity) {
    t.skip(`the hard limit here is ${hard}`);
    return;
  }
  // It stops at once: the port is the running server's. The limit is raised before that.
  const r = spawnSync('prlimit', [`--nofile=1024:${hard}`, '--', E2E.usersigd, 'serve'], {
    env: Object.assign({}, process.env, {
      USERSIGD_DATABASE_URL: dbUrl,
      USERSIGD_MASTER_KEY_FILE: path.join(E2E.work, 'no-such-key'),
      USERSIGD_LISTEN: `127.0.0.1:${port}`,
      USERSIGD_DATA_DIR: path.join(E2E.work, `slowloris-limit-${process.pid}`),
    }),
    encoding: 'utf8',
    timeout: 30000,
  });
  const out = `${r.stdout}${r.stderr}`;
  assert.notEqual(r.status, 0, out);
  assert.match(out, new RegExp(`open files limit: ${hard}\\b`), out);
});

test('1,000 slow clients: /healthz answers, each ends in time, then a UserSig is signed', async () => {
  const guardMs = TIMEOUT_MS + TRICKLE_MS + END_MARGIN_MS + 5000;
  const t0 = performance.now();
  const clients = [];
  for (let i = 0; i < CONNECTIONS; i++) {
    clients.push(slowClient(i, i % 10 < SILENT / 100, guardMs)); // SILENT in every 1,000
    if (i % 100 === 99) await pause(20); // a short ramp, not the listen backlog all at once
  }
  const opened = performance.now() - t0;

  // While all of them are open (none can end before TIMEOUT_MS of its first byte).
  const probes = [];
  for (let i = 0; i < HEALTHZ_TIMES; i++) {
    probes.push(await healthz());
    await pause(50);
  }
  const probedBy = performance.now() - t0;
  const results = await Promise.all(clients);

  const count = {};
  const late = [];
  const early = [];
  const worst = {};
  for (const st of results) {
    const o = outcome(st);
    const key = `${st.silent ? 'silent' : 'trickle'} ${o}`;
    count[key] = (count[key] || 0) + 1;
    // From the last byte it sent (the silent ones) or its first (the head deadline): the head
    // deadline fires at the first byte after it, at most TRICKLE_MS later.
    const from = st.silent ? st.lastWriteAt || st.connectedAt : st.connectedAt;
    const budget = TIMEOUT_MS + (st.silent ? 0 : TRICKLE_MS) + END_MARGIN_MS;
    const took = st.endAt - from;
    if (took > budget) late.push(Math.round(took));
    // Not before the timeout either: each end is the timeout's, not some other refusal.
    if (st.endAt - st.connectedAt < TIMEOUT_MS - 100) early.push(Math.round(st.endAt - st.connectedAt));
    const g = st.silent ? 'silent' : 'trickle';
    worst[g] = Math.max(worst[g] || 0, Math.round(took));
  }
  const ms = probes.map((p) => Math.round(p.ms));
  note(`${CONNECTIONS} connections opened in ${Math.round(opened)} ms; /healthz ms: ${ms.join(' ')}` +
    ` (done ${Math.round(probedBy)} ms after the first connection)`);
  note(`outcomes: ${JSON.stringify(count)}; the longest end (ms after the last byte for the ` +
    `silent ones, the first for the others): ${JSON.stringify(worst)}`);

  const nSilent = results.filter((s) => s.silent).length;
  assert.equal(nSilent, SILENT);
  assert.ok(probedBy < TIMEOUT_MS, `the /healthz probes took until ${Math.round(probedBy)} ms: ` +
    'not all of them while every slow connection was open');
  for (const p of probes) {
    assert.equal(p.status, 200, `/healthz: ${p.status} ${p.body}`);
    assert.ok(p.ms <= HEALTHZ_MAX_MS, `/healthz took ${Math.round(p.ms)} ms (${ms.join(' ')})`);
  }
  assert.deepEqual(count, { 'silent closed': SILENT, 'trickle 408': CONNECTIONS - SILENT },
    `outcomes: ${JSON.stringify(count)}`);
  assert.deepEqual(early, [], `connections that ended before the timeout (ms): ${early.slice(0, 20).join(' ')}`);
  assert.deepEqual(late, [], `connections that ended late (ms): ${late.slice(0, 20).join(' ')}`);

  // The server is still itself.
  const opts = { base: server.url, token };
  const sdkappid = newAppId();
  const secret = newSecret();
  await createApp(sdkappid, {}, opts);
  await addKey(sdkappid, secret, {}, opts);
  const signed = await sign(sdkappid, { identifier: 'after-slowloris' }, opts);
  crossCheck(signed.usersig, { sdkappid, secret, identifier: 'after-slowloris' });
  const h = await healthz();
  assert.equal(h.status, 200);
});
