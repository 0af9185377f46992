// Batch signing with a streamed body (admin-api/http_frame.c, batch.c, server/pipeline): a body
// cut short mid-line, a client that uploads slowly, a client that stops reading while it still
// uploads (back-pressure both ways), the limit on batches at once (batch_max_running), and two
// batches sharing the workers. One server of its own: 2 workers, request_timeout 3 s,
// batch_max_running 2.
'use strict';

const { test, describe, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const {
  E2E, api, expectError, expectStatus, appWithKey, startServer, stopAll, psqlOk,
} = require('./lib.js');

const servers = [];
after(async () => { await stopAll(servers); });

const pause = (ms) => new Promise((r) => setTimeout(r, ms));
const sha256 = (s) => crypto.createHash('sha256').update(s).digest('hex');

function vm(pid, field) {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

// The chunked body of a reply (its bytes after the head), de-chunked.
function dechunk(buf) {
  const parts = [];
  let at = 0;
  for (;;) {
    const lf = buf.indexOf('\r\n', at);
    if (lf < 0) throw new Error('a chunked reply cut short');
    const size = parseInt(buf.subarray(at, lf).toString('latin1'), 16);
    at = lf + 2;
    if (size === 0) break;
    parts.push(buf.subarray(at, at + size));
    at += size + 2;
  }
  return Buffer.concat(parts).toString('utf8');
}

// A request on a raw socket that may half-close: write(), end() (FIN, still reading); done
// resolves once the server closes, with { status, headers, text } (text de-chunked).
function rawBatch(base, sdkappid, head) {
  const u = new URL(base);
  const sock = net.connect({ host: u.hostname, port: Number(u.port), allowHalfOpen: true });
  const got = [];
  sock.on('data', (b) => got.push(b));
  const done = new Promise((resolve, reject) => {
    sock.on('error', reject);
    sock.on('close', () => {
      const all = Buffer.concat(got);
      const end = all.indexOf('\r\n\r\n');
      if (end < 0) return reject(new Error(`no reply head: ${all.toString('latin1')}`));
      const lines = all.subarray(0, end).toString('latin1').split('\r\n');
      const status = Number(lines[0].split(' ')[1]);
      const headers = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
      }
      const rest = all.subarray(end + 4);
      const text = headers['transfer-encoding'] === 'chunked' ? dechunk(rest) : rest.toString();
      resolve({ status, headers, text });
    });
  });
  sock.write(`POST /v1/apps/${sdkappid}/usersigs/batch HTTP/1.1\r\nHost: t\r\n` +
    `Authorization: Bearer ${E2E.admin}\r\nContent-Type: text/plain\r\n${head}\r\n`);
  return { write: (s) => sock.write(s), end: () => sock.end(), destroy: () => sock.destroy(), done };
}

// A streamed upload with node:http (chunked): { req, res (a promise), text() }.
function uploadBatch(base, sdkappid, opts = {}) {
  const u = new URL(`${base}/v1/apps/${sdkappid}/usersigs/batch`);
  const req = http.request({
    host: u.hostname, port: u.port, path: u.pathname, method: 'POST',
    headers: Object.assign({ authorization: `Bearer ${E2E.admin}`, 'content-type': 'text/plain' },
      opts.headers || {}),
  });
  const chunks = [];
  let firstAt = 0;
  let bytes = 0;
  const res = new Promise((resolve, reject) => {
    req.on('error', reject);
    req.on('response', (r) => {
      if (opts.paused) r.pause();
      r.on('data', (b) => {
        if (!firstAt) firstAt = Date.now();
        bytes += b.length;
        chunks.push(b);
      });
      r.on('end', () => resolve({ status: r.statusCode, headers: r.headers,
        text: Buffer.concat(chunks).toString('utf8'), firstAt }));
      r.on('error', reject);
      if (opts.onResponse) opts.onResponse(r);
    });
  });
  return { req, res, received: () => bytes, firstAt: () => firstAt };
}

function summaryOf(text) {
  const lines = text.slice(0, -1).split('\n');
  const last = JSON.parse(lines[lines.length - 1]);
  return { items: lines.slice(0, -1), last, body: text.slice(0, text.length - lines[lines.length - 1].length - 1) };
}

function manifest(sdkappid) {
  const rows = psqlOk(`SELECT state, count, signed, failed FROM batches WHERE sdkappid = ${sdkappid}`);
  const [state, count, signed, failed] = rows.split('|');
  return { state, count: Number(count), signed: Number(signed), failed: Number(failed) };
}

async function manifestSettled(sdkappid) {
  for (let i = 0; i < 100; i++) {
    const m = manifest(sdkappid);
    if (m.state !== 'running') return m;
    await pause(50);
  }
  return manifest(sdkappid);
}

describe('batch signing, streamed', () => {
  let own;

  test('start a server: 2 workers, request_timeout 3s, batch_max_running 2', async () => {
    own = await startServer('stream', { env: { USERSIGD_WORKERS: '2',
      USERSIGD_REQUEST_TIMEOUT: '3s', USERSIGD_BATCH_MAX_RUNNING: '2' } });
    servers.push(own);
  });

  test('a body cut short mid-line: whole lines answered, then the error; aborted, recorded',
    async () => {
      const a = await appWithKey();
      // Content-Length promises more than comes: the client half-closes mid-line.
      const c = rawBatch(own.url, a.sdkappid, 'Content-Length: 1000\r\n');
      c.write('alice\nbob\ncarol\ndav');
      await pause(200);
      c.end();
      const r = await c.done;
      assert.equal(r.status, 200);
      assert.equal(r.headers.connection, 'close');
      const s = summaryOf(r.text);
      assert.deepEqual(s.items.map((l) => JSON.parse(l).identifier), ['alice', 'bob', 'carol']);
      assert.ok(s.items.every((l) => JSON.parse(l).usersig), r.text);
      assert.equal(s.last.error.code, 'bad_request', r.text);
      assert.match(s.last.error.message, /cut short.*recorded as aborted after 3 lines/);
      const m = await manifestSettled(a.sdkappid);
      assert.deepEqual(m, { state: 'aborted', count: 3, signed: 3, failed: 0 });
      // Chunked, cut between two chunks (no last chunk): the same, at a line boundary.
      const b = await appWithKey();
      const d = rawBatch(own.url, b.sdkappid, 'Transfer-Encoding: chunked\r\n');
      d.write('6\r\nalice\n\r\n4\r\nbob\n\r\n');
      await pause(200);
      d.end();
      const r2 = await d.done;
      const s2 = summaryOf(r2.text);
      assert.equal(s2.items.length, 2, r2.text);
      assert.equal(s2.last.error.code, 'bad_request');
      assert.deepEqual(await manifestSettled(b.sdkappid),
        { state: 'aborted', count: 2, signed: 2, failed: 0 });
      expectStatus(await api('GET', '/healthz', { base: own.url, token: null }), 200);
    });

  test('a slow upload: tokens come before the body ends, nothing times out (gaps under ' +
    'request_timeout, 5 s in all)', async () => {
    const a = await appWithKey();
    const u = uploadBatch(own.url, a.sdkappid);
    const n = 10;
    let lastWrite = 0;
    for (let i = 0; i < n; i++) {
      u.req.write(`slow${i}\n`);
      lastWrite = Date.now();
      await pause(500);
    }
    u.req.end();
    const r = await u.res;
    assert.equal(r.status, 200);
    const s = summaryOf(r.text);
    assert.equal(s.last.summary.count, n, r.text);
    assert.equal(s.last.summary.signed, n);
    assert.equal(s.last.summary.sha256, sha256(s.body));
    assert.ok(r.firstAt > 0 && r.firstAt < lastWrite - 2000,
      `the first tokens came ${lastWrite - r.firstAt} ms before the last line was sent`);
    assert.equal((await manifestSettled(a.sdkappid)).state, 'complete');
  });

  test('a client that stops reading while it uploads: the server stops reading too, stays ' +
    'responsive and bounded; resumed, the batch completes', async () => {
    const a = await appWithKey();
    // 80 MB, far more than the socket buffers of both ends hold: lines too long to be
    // identifiers (an error line each, cheap), and a valid one every 100th, so that the body is
    // large but the signing quick.
    const long = 'x'.repeat(1999);
    const lines = 40000;
    const rssBefore = vm(own.proc.pid, 'VmRSS');
    let reader = null;
    const u = uploadBatch(own.url, a.sdkappid, { paused: true, onResponse: (r) => { reader = r; } });
    let sent = 0;
    let blocked = false;
    const writeAll = (async () => {
      for (let i = 0; i < lines; i++) {
        const line = (i % 100 === 0 ? `ok${i}` : long) + '\n';
        sent += line.length;
        if (!u.req.write(line)) {
          blocked = true;
          await new Promise((r) => u.req.once('drain', r));
        }
      }
      u.req.end();
    })();
    // Stalled both ways: the upload stops well short of its end.
    await pause(1500);
    const at1 = sent;
    await pause(700);
    const at2 = sent;
    assert.ok(blocked && at2 === at1 && at2 < lines * 2000 / 2,
      `the upload stalls: ${at1} then ${at2} bytes of ${lines * 2000}`);
    expectStatus(await api('GET', '/healthz', { base: own.url, token: null }), 200);
    if (!process.env.ASAN_OPTIONS) {
      const grown = vm(own.proc.pid, 'VmRSS') - rssBefore;
      assert.ok(grown < 32 * 1024 * 1024, `RSS grew ${grown} bytes while stalled`);
    }
    assert.ok(reader, 'the reply started');
    reader.resume();
    await writeAll;
    const r = await u.res;
    const s = summaryOf(r.text);
    assert.equal(s.last.summary.count, lines, r.text.slice(-500));
    assert.equal(s.last.summary.signed, lines / 100);
    assert.equal(s.last.summary.sha256, sha256(s.body));
  });

  test('batch_max_running: a third batch is 429 too_many_batches with Retry-After; freed, ' +
    'it runs', async () => {
    const a = await appWithKey();
    const held = [uploadBatch(own.url, a.sdkappid), uploadBatch(own.url, a.sdkappid)];
    for (const h of held) h.req.write('first\n');
    // Both running: their first token has come.
    for (let i = 0; i < 100 && !held.every((h) => h.received() > 0); i++) await pause(50);
    assert.ok(held.every((h) => h.received() > 0), 'two batches run');
    const res = await api('POST', `/v1/apps/${a.sdkappid}/usersigs/batch`,
      { base: own.url, raw: 'third\n', contentType: 'text/plain' });
    expectError(res, 429, 'too_many_batches', ['batch_max_running']);
    assert.equal(res.headers.get('retry-after'), '5');
    for (const h of held) h.req.end('last\n');
    for (const h of held) assert.equal(summaryOf((await h.res).text).last.summary.count, 2);
    const ok = await api('POST', `/v1/apps/${a.sdkappid}/usersigs/batch`,
      { base: own.url, raw: 'third\n', contentType: 'text/plain' });
    expectStatus(ok, 200);
  });

  test('two batches share the workers: a small one started second ends first, the big one ' +
    'progresses meanwhile', async () => {
    const a = await appWithKey();
    const big = 120000;
    const small = 12000;
    const ids = (n, p) => Array.from({ length: n }, (_, i) => `${p}${i}`).join('\n') + '\n';
    const A = uploadBatch(own.url, a.sdkappid);
    A.req.end(ids(big, 'a'));
    for (let i = 0; i < 200 && A.received() === 0; i++) await pause(25);
    const B = uploadBatch(own.url, a.sdkappid);
    const bStart = A.received();
    B.req.end(ids(small, 'b'));
    let aDone = false;
    A.res.then(() => { aDone = true; });
    const rb = await B.res;
    const aAtB = A.received();
    assert.equal(summaryOf(rb.text).last.summary.count, small);
    assert.ok(!aDone, 'the big batch is still running when the small one ends');
    assert.ok(aAtB > bStart, `the big batch progressed meanwhile: ${bStart} -> ${aAtB} bytes`);
    const ra = await A.res;
    assert.equal(summaryOf(ra.text).last.summary.count, big);
  });
});
