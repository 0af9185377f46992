// What the batch signing tests share (batch.test.js, batch_server.test.js): a batch posted and
// its reply parsed, a streamed batch read as it comes, the summary and the database's record of a
// batch checked, and an audit insert slowed for a while.
'use strict';

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const http = require('node:http');
const { E2E, api, show, expectStatus, psqlOk } = require('./lib');

const BATCH_TIMEOUT_MS = 240000;

const pause = (ms) => new Promise((r) => setTimeout(r, ms));

// POST a batch; returns { status, headers, text, json, lines, last, items } where lines are the
// output lines (without "\n"), last the last one parsed (NDJSON) and items the lines before it.
async function batch(sdkappid, body, opts = {}) {
  const headers = { 'content-type': opts.contentType || 'text/plain' };
  if (opts.accept) headers.accept = opts.accept;
  const token = opts.token === undefined ? E2E.admin : opts.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${opts.base || E2E.url}/v1/apps/${sdkappid}/usersigs/batch` +
    (opts.query ? `?${opts.query}` : ''), {
    method: 'POST', headers, body, signal: AbortSignal.timeout(opts.timeoutMs || BATCH_TIMEOUT_MS),
  });
  const text = await res.text();
  return batchReply(res.status, res.headers, text, sdkappid, opts);
}

// What batch() returns, from a reply's status, headers (with get()) and text.
function batchReply(status, headers, text, sdkappid, opts = {}) {
  const out = { status, headers, text, req: `batch ${sdkappid}` };
  try { out.json = JSON.parse(text); } catch (e) { /* a stream, or not JSON */ }
  if (status === 200) {
    assert.ok(text.endsWith('\n'), `the stream ends with a newline: ${text.slice(-200)}`);
    out.lines = text.slice(0, -1).split('\n');
    const lastLine = out.lines[out.lines.length - 1];
    out.items = out.lines.slice(0, -1);
    out.body = text.slice(0, text.length - lastLine.length - 1); // the lines before the last
    if (!opts.accept) out.last = JSON.parse(lastLine);
    else out.lastText = lastLine;
  }
  return out;
}

// A text/plain batch read with node:http as it streams: { first, done, text(), leave() }: first
// resolves at the first bytes of the body, done with what batch() returns once the reply ends;
// opts.paused keeps the reader paused after the first bytes until resume() is called.
function streamBatch(base, sdkappid, body, opts = {}) {
  const u = new URL(`${base}/v1/apps/${sdkappid}/usersigs/batch`);
  let text = '';
  let res = null;
  let onFirst;
  const first = new Promise((resolve) => { onFirst = resolve; });
  let req;
  const done = new Promise((resolve, reject) => {
    req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST',
      headers: { authorization: `Bearer ${E2E.admin}`, 'content-type': 'text/plain',
        'content-length': Buffer.byteLength(body) } }, (r) => {
      res = r;
      r.setEncoding('utf8');
      r.on('data', (c) => {
        const wasEmpty = text === '';
        text += c;
        if (wasEmpty) {
          if (opts.paused) r.pause();
          onFirst();
        }
      });
      const end = () => resolve(batchReply(r.statusCode,
        { get: (n) => r.headers[n.toLowerCase()] }, text, sdkappid));
      r.on('end', end);
      r.on('error', end);
      r.on('aborted', end);
    });
    req.on('error', (e) => (res ? resolve(batchReply(res.statusCode, { get: () => '' }, text,
      sdkappid)) : reject(e)));
    req.end(body);
  });
  return { first, done, text: () => text, leave: () => req.destroy(), resume: () => res.resume() };
}

// A trigger that makes the audit events `actions` of app sdkappid wait `seconds` in the
// database; returns the function that drops it.
function slowAudit(sdkappid, actions, seconds) {
  const fn = `e2e_slow_${sdkappid}`;
  psqlOk(`CREATE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN ` +
    `PERFORM pg_sleep(${seconds}); RETURN NEW; END $$`);
  psqlOk(`CREATE TRIGGER ${fn} BEFORE INSERT ON audit_log FOR EACH ROW WHEN (NEW.action IN (` +
    `${actions.map((x) => `'${x}'`).join(', ')}) AND NEW.sdkappid = ${sdkappid}) ` +
    `EXECUTE FUNCTION ${fn}()`);
  return () => {
    psqlOk(`DROP TRIGGER ${fn} ON audit_log`);
    psqlOk(`DROP FUNCTION ${fn}()`);
  };
}

// /healthz touches no database: it answers at once unless the event loop is held up.
async function answersAtOnce(what, base = E2E.url) {
  const t0 = Date.now();
  expectStatus(await api('GET', '/healthz', { base, token: null }), 200);
  const ms = Date.now() - t0;
  assert.ok(ms < 1000, `/healthz took ${ms} ms while ${what}`);
}

const sha256 = (s) => crypto.createHash('sha256').update(s).digest('hex');

// The NDJSON summary, checked against what came before it.
function checkSummary(res, want) {
  expectStatus(res, 200);
  assert.match(res.headers.get('content-type') || '', /^application\/x-ndjson/);
  const s = res.last.summary;
  assert.ok(s, `no summary as the last line: ${JSON.stringify(res.last)}`);
  assert.match(s.batch_id, /^[0-9a-f]{32}$/);
  assert.equal(s.count, res.items.length);
  assert.equal(s.count, want.count);
  if (want.signed !== undefined) assert.equal(s.signed, want.signed);
  assert.equal(s.signed + s.failed, s.count);
  if (want.keyVersion !== undefined) assert.equal(s.key_version, want.keyVersion);
  assert.equal(s.sha256, sha256(res.body), 'summary sha256 = SHA-256 of the lines before it');
  return s;
}

function parseItems(res) {
  return res.items.map((l, i) => {
    try {
      return JSON.parse(l);
    } catch (e) {
      throw new Error(`line ${i} is not JSON: ${l}`);
    }
  });
}

async function verifyOnServer(sdkappid, identifier, usersig) {
  const v = await api('POST', '/v1/usersigs/verify', { body: { usersig, sdkappid, identifier } });
  expectStatus(v, 200);
  assert.equal(v.json.valid, true, `verify ${identifier}: ${show(v)}`);
  return v.json;
}

async function signCount(sdkappid, version) {
  const res = await api('GET', `/v1/apps/${sdkappid}/keys`);
  expectStatus(res, 200);
  return res.json.keys.find((k) => k.version === version).sign_count;
}

function batchRow(batchId) {
  const out = psqlOk('SELECT sdkappid, key_version, actor_name, state, count, signed, failed, ' +
    `coalesce(sha256, ''), finished_at IS NOT NULL FROM batches WHERE batch_id = '${batchId}'`);
  if (!out) return null;
  const [sdkappid, keyVersion, actor, state, count, signed, failed, sha, finished] = out.split('|');
  return { sdkappid: Number(sdkappid), keyVersion: Number(keyVersion), actor, state,
    count: Number(count), signed: Number(signed), failed: Number(failed), sha256: sha,
    finished: finished === 't' };
}

async function auditEvents(sdkappid, action) {
  const res = await api('GET', `/v1/audit?sdkappid=${sdkappid}&action=${action}&limit=1000`);
  expectStatus(res, 200);
  return res.json.events;
}

// The start and finish events of a batch, and its row: all say the same.
async function checkRecorded(sdkappid, s, state = 'complete') {
  const row = batchRow(s.batch_id);
  assert.ok(row, `no batches row for ${s.batch_id}`);
  assert.deepEqual(row, { sdkappid, keyVersion: s.key_version, actor: 'bootstrap-admin', state,
    count: s.count, signed: s.signed, failed: s.failed, sha256: s.sha256, finished: true });
  const started = (await auditEvents(sdkappid, 'usersig.batch'))
    .filter((e) => e.details.batch_id === s.batch_id);
  assert.equal(started.length, 1, 'one start event');
  assert.equal(started[0].outcome, 'started');
  assert.equal(started[0].key_version, s.key_version);
  assert.equal(started[0].actor_name, 'bootstrap-admin');
  const finished = (await auditEvents(sdkappid, 'usersig.batch.finish'))
    .filter((e) => e.details.batch_id === s.batch_id);
  assert.equal(finished.length, 1, 'one finish event');
  assert.ok(finished[0].seq > started[0].seq);
  assert.equal(finished[0].outcome, state);
  assert.deepEqual(finished[0].details, { batch_id: s.batch_id, count: s.count, signed: s.signed,
    failed: s.failed, sha256: s.sha256, state });
  return { started: started[0], finished: finished[0] };
}

module.exports = {
  pause, batch, streamBatch, slowAudit, answersAtOnce, sha256, checkSummary, parseItems,
  verifyOnServer, signCount, auditEvents, checkRecorded,
};
