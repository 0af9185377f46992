// Batch manifests over the API (GET /v1/apps/{sdkappid}/usersigs/batches) against the real
// usersigd: a completed batch listed with its summary's counts and SHA-256, one whose client left
// halfway listed aborted, one cut short by a crash (a row left running) found by ?state=running,
// paging in (started_at, batch_id) order with limit and after, ties included; who may read them
// (admin and auditor, in scope) and the refusals (unknown app, bad parameters); a usersigd killed
// (SIGKILL) mid-batch: the next process to start marks its batch interrupted, with the
// usersig.batch.finish event, and the audit chain verifies.
'use strict';

const { describe, test, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const http = require('node:http');
const { spawnSync } = require('node:child_process');
const {
  E2E, RFC3339, api, show, expectError, expectStatus, newAppId, appWithKey, createToken, psqlOk,
  batchAndLeave, startServer, stopAll, createDatabase, dropDatabase, masterKey,
} = require('./lib');

const servers = [];
const databases = [];
after(async () => {
  try {
    await stopAll(servers);
  } finally {
    for (const db of databases) dropDatabase(db);
  }
});

const pause = (ms) => new Promise((r) => setTimeout(r, ms));
const sha256 = (s) => crypto.createHash('sha256').update(s).digest('hex');

// POSTs a text/plain batch to base and reads it all; returns the summary, checked against the
// lines.
async function batchOn(base, token, sdkappid, ids) {
  const res = await fetch(`${base}/v1/apps/${sdkappid}/usersigs/batch`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'text/plain' },
    body: ids.join('\n'),
    signal: AbortSignal.timeout(60000),
  });
  const text = await res.text();
  assert.equal(res.status, 200, text.slice(0, 600));
  const lines = text.slice(0, -1).split('\n');
  const s = JSON.parse(lines[lines.length - 1]).summary;
  assert.ok(s, `no summary: ${lines[lines.length - 1]}`);
  assert.equal(s.sha256, sha256(text.slice(0, text.length - lines[lines.length - 1].length - 1)));
  return s;
}

async function batch(sdkappid, ids) {
  return batchOn(E2E.url, E2E.admin, sdkappid, ids);
}

async function list(sdkappid, query = '', opts = {}) {
  return api('GET', `/v1/apps/${sdkappid}/usersigs/batches${query ? `?${query}` : ''}`, opts);
}

async function listOk(sdkappid, query = '', opts = {}) {
  const res = await list(sdkappid, query, opts);
  expectStatus(res, 200);
  assert.ok(Array.isArray(res.json.batches), JSON.stringify(res.json));
  assert.ok('next_after' in res.json, JSON.stringify(res.json));
  return res.json;
}

// A batches row as a crash leaves it: running, never closed. started is a SQL timestamptz.
function insertRunning(sdkappid, version, started = 'now()') {
  const id = crypto.randomBytes(16).toString('hex');
  psqlOk('INSERT INTO batches (batch_id, sdkappid, key_version, actor_name, started_at) ' +
    `VALUES ('${id}', ${sdkappid}, ${version}, 'crashed-client', ${started})`);
  return id;
}

const FIELDS = ['batch_id', 'sdkappid', 'key_version', 'actor_id', 'actor_name', 'state', 'count',
  'signed', 'failed', 'sha256', 'started_at', 'finished_at'];

// psql on another database of the run's cluster; returns its output, trimmed.
function psqlOn(dbUrl, sql) {
  const r = spawnSync('psql', [dbUrl, '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', sql],
    { encoding: 'utf8', timeout: 60000 });
  assert.equal(r.status, 0, `psql failed: ${sql}\n${r.stderr}`);
  return r.stdout.trim();
}

// POSTs a text/plain batch to base and stops reading once the first bytes arrive, the connection
// left open: the server's output backs up and the batch stays running. Resolves to the request
// (destroy() it) once the batch streams.
function batchAndStall(base, token, sdkappid, body) {
  return new Promise((resolve, reject) => {
    const u = new URL(`${base}/v1/apps/${sdkappid}/usersigs/batch`);
    const req = http.request({
      host: u.hostname, port: u.port, path: u.pathname, method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'text/plain',
        'content-length': Buffer.byteLength(body) },
    }, (res) => {
      if (res.statusCode !== 200) {
        reject(new Error(`batch: status ${res.statusCode}`));
        return;
      }
      res.once('data', () => {
        res.pause();
        resolve(req);
      });
    });
    req.on('error', () => {}); // destroyed on purpose later
    req.end(body);
  });
}

describe('batch manifests over the API', () => {
  test('a completed batch is listed complete, with its summary\'s counts and SHA-256',
    async () => {
      const a = await appWithKey();
      assert.deepEqual(await listOk(a.sdkappid), { batches: [], next_after: null });
      // An empty line is an item too: an error line.
      const s = await batch(a.sdkappid, ['alice', '', 'bob']);
      assert.equal(s.count, 3);
      assert.equal(s.failed, 1);
      const page = await listOk(a.sdkappid);
      assert.equal(page.next_after, null);
      assert.equal(page.batches.length, 1);
      const b = page.batches[0];
      assert.deepEqual(Object.keys(b).sort(), [...FIELDS].sort());
      assert.equal(b.batch_id, s.batch_id);
      assert.equal(b.sdkappid, a.sdkappid);
      assert.equal(b.key_version, s.key_version);
      assert.equal(b.state, 'complete');
      assert.equal(b.count, s.count);
      assert.equal(b.signed, s.signed);
      assert.equal(b.failed, s.failed);
      assert.equal(b.sha256, s.sha256);
      assert.equal(b.actor_name, 'bootstrap-admin');
      assert.equal(typeof b.actor_id, 'number');
      assert.match(b.started_at, RFC3339);
      assert.match(b.finished_at, RFC3339);
      assert.ok(Date.parse(b.finished_at) >= Date.parse(b.started_at));
    });

  test('a client that leaves halfway: listed aborted, with what was sent', async () => {
    const a = await appWithKey();
    const ids = [];
    for (let i = 0; i < 300000; i++) ids.push(`half-${i}`);
    const r = await batchAndLeave(E2E.url, a.sdkappid, ids.join('\n'), 64 * 1024);
    assert.equal(r.status, 200);
    assert.ok(!r.ended, 'the client left before the end');
    let b;
    for (let i = 0; i < 100; i++) {
      const page = await listOk(a.sdkappid);
      assert.equal(page.batches.length, 1);
      b = page.batches[0];
      if (b.state !== 'running') break;
      await pause(100);
    }
    assert.equal(b.state, 'aborted', JSON.stringify(b));
    assert.ok(b.count > 0 && b.count < ids.length, JSON.stringify(b));
    assert.equal(b.signed, b.count);
    assert.equal(b.failed, 0);
    assert.match(b.sha256, /^[0-9a-f]{64}$/);
    assert.match(b.finished_at, RFC3339);
    const aborted = await listOk(a.sdkappid, 'state=aborted');
    assert.deepEqual(aborted.batches.map((x) => x.batch_id), [b.batch_id]);
    assert.deepEqual((await listOk(a.sdkappid, 'state=complete')).batches, []);
  });

  test('?state=running finds a batch cut short by a crash', async () => {
    const a = await appWithKey();
    const done = await batch(a.sdkappid, ['carol']);
    const id = insertRunning(a.sdkappid, a.version);
    const running = await listOk(a.sdkappid, 'state=running');
    assert.equal(running.next_after, null);
    assert.equal(running.batches.length, 1);
    const b = running.batches[0];
    assert.equal(b.batch_id, id);
    assert.equal(b.state, 'running');
    assert.equal(b.sha256, null);
    assert.equal(b.finished_at, null);
    assert.equal(b.actor_id, null);
    assert.equal(b.actor_name, 'crashed-client');
    assert.equal(b.count, 0);
    assert.match(b.started_at, RFC3339);
    const complete = await listOk(a.sdkappid, 'state=complete');
    assert.deepEqual(complete.batches.map((x) => x.batch_id), [done.batch_id]);
    const all = await listOk(a.sdkappid);
    assert.deepEqual(all.batches.map((x) => x.batch_id), [done.batch_id, id]);
  });

  test('paging: limit=1 and after walk (started_at, batch_id) order, ties included',
    async () => {
      const a = await appWithKey();
      // Three rows at one instant (ordered by batch_id), one earlier, one later.
      const t = "'2026-01-02T03:04:05.123456Z'::timestamptz";
      const tie = [insertRunning(a.sdkappid, a.version, t), insertRunning(a.sdkappid, a.version, t),
        insertRunning(a.sdkappid, a.version, t)].sort();
      const first = insertRunning(a.sdkappid, a.version, `${t} - interval '1 microsecond'`);
      const last = insertRunning(a.sdkappid, a.version, `${t} + interval '1 second'`);
      const want = [first, ...tie, last];

      const seen = [];
      let after = null;
      for (let i = 0; i < 10; i++) {
        const page = await listOk(a.sdkappid,
          `limit=1${after === null ? '' : `&after=${encodeURIComponent(after)}`}`);
        assert.ok(page.batches.length <= 1);
        seen.push(...page.batches.map((x) => x.batch_id));
        after = page.next_after;
        if (after === null) break;
        assert.equal(typeof after, 'string');
      }
      assert.equal(after, null, 'the walk ends');
      assert.deepEqual(seen, want);
      // The last page is exact: a full page that ends the list says so.
      const two = await listOk(a.sdkappid, 'limit=2');
      assert.deepEqual(two.batches.map((x) => x.batch_id), want.slice(0, 2));
      const rest = await listOk(a.sdkappid, `limit=3&after=${encodeURIComponent(two.next_after)}`);
      assert.deepEqual(rest.batches.map((x) => x.batch_id), want.slice(2));
      assert.equal(rest.next_after, null);
      // A cursor combines with the state filter.
      const done = await batch(a.sdkappid, ['dave']);
      const page = await listOk(a.sdkappid,
        `state=complete&after=${encodeURIComponent(two.next_after)}`);
      assert.deepEqual(page.batches.map((x) => x.batch_id), [done.batch_id]);
    });

  test('who may read: admin and auditor in scope; signer, key_manager, other scope 403',
    async () => {
      const a = await appWithKey();
      const other = await appWithKey();
      await batch(a.sdkappid, ['erin']);
      const signer = await createToken('signer', [a.sdkappid]);
      expectError(await list(a.sdkappid, '', { token: signer }), 403, 'forbidden');
      const keyManager = await createToken('key_manager');
      expectError(await list(a.sdkappid, '', { token: keyManager }), 403, 'forbidden');
      const auditorOther = await createToken('auditor', [other.sdkappid]);
      expectError(await list(a.sdkappid, '', { token: auditorOther }), 403, 'forbidden');
      assert.deepEqual((await listOk(other.sdkappid, '', { token: auditorOther })).batches, []);
      const auditor = await createToken('auditor', [a.sdkappid]);
      assert.equal((await listOk(a.sdkappid, '', { token: auditor })).batches.length, 1);
      const auditorAll = await createToken('auditor');
      assert.equal((await listOk(a.sdkappid, '', { token: auditorAll })).batches.length, 1);
      expectError(await list(a.sdkappid, '', { token: null }), 401, 'unauthorized');
    });

  test('refusals: unknown app 404; bad state, limit, after or parameter 400', async () => {
    const a = await appWithKey();
    expectError(await list(newAppId()), 404, 'app_not_found');
    expectError(await list(a.sdkappid, 'state=done'), 400, 'invalid_param', ['state']);
    expectError(await list(a.sdkappid, 'state='), 400, 'invalid_param', ['state']);
    for (const q of ['limit=0', 'limit=1001', 'limit=x', 'limit=-1']) {
      expectError(await list(a.sdkappid, q), 400, 'invalid_param', ['limit']);
    }
    const id = 'a'.repeat(32);
    for (const after of ['', '12', id, `x.${id}`, `12.${id.slice(1)}`, `12.${'A'.repeat(32)}`,
      `012.${id}`, `99999999999999999999.${id}`, `-1.${id}`, `12.${id}0`]) {
      expectError(await list(a.sdkappid, `after=${encodeURIComponent(after)}`), 400,
        'invalid_param', ['after']);
    }
    expectError(await list(a.sdkappid, 'sdkappid=1'), 400, 'invalid_param', ['sdkappid']);
    const page = await listOk(a.sdkappid, `limit=1000&after=0.${id}`);
    assert.deepEqual(page, { batches: [], next_after: null });
  });

  test('a usersigd killed (SIGKILL) mid-batch: the next start marks the batch interrupted',
    async () => {
      const db = createDatabase();
      databases.push(db);
      const key = masterKey();
      const first = await startServer('batch-kill-1', { dbUrl: db, masterKeyFile: key });
      servers.push(first);
      const token = await first.adminToken();
      assert.ok(token, `no admin token printed on the first run:\n${first.log()}`);
      const opts = { base: first.url, token };
      const a = await appWithKey({}, opts);
      const ids = [];
      for (let i = 0; i < 300000; i++) ids.push(`kill-${i}`);
      const req = await batchAndStall(first.url, token, a.sdkappid, ids.join('\n'));
      const running = await listOk(a.sdkappid, 'state=running', opts);
      assert.equal(running.batches.length, 1, JSON.stringify(running));
      const id = running.batches[0].batch_id;

      first.proc.kill('SIGKILL');
      const r = await first.stop(); // reaps it
      assert.equal(r.signal, 'SIGKILL', JSON.stringify(r));
      req.destroy();
      servers.splice(servers.indexOf(first), 1);
      assert.equal(psqlOn(db, `SELECT state FROM batches WHERE batch_id = '${id}'`), 'running',
        'a crash leaves the batch running');

      const second = await startServer('batch-kill-2', { dbUrl: db, masterKeyFile: key });
      servers.push(second);
      const opts2 = { base: second.url, token };
      const page = await listOk(a.sdkappid, 'state=interrupted', opts2);
      assert.equal(page.batches.length, 1, JSON.stringify(page));
      const b = page.batches[0];
      assert.equal(b.batch_id, id);
      assert.equal(b.state, 'interrupted');
      assert.equal(b.count, null);
      assert.equal(b.signed, null);
      assert.equal(b.failed, null);
      assert.equal(b.sha256, null);
      assert.match(b.finished_at, RFC3339);
      assert.deepEqual((await listOk(a.sdkappid, 'state=running', opts2)).batches, []);
      // Its event, appended with the change, by the server itself; the chain verifies.
      assert.equal(psqlOn(db, 'SELECT count(*) FROM audit_log WHERE action = ' +
        "'usersig.batch.finish' AND outcome = 'interrupted' AND actor_name = 'usersigd' AND " +
        `details::jsonb ->> 'batch_id' = '${id}'`), '1');
      const v = await api('GET', '/v1/audit/verify', opts2);
      assert.equal(v.json && v.json.ok, true, show(v));
      // The new process signs batches of its own.
      const s = await batchOn(second.url, token, a.sdkappid, ['after-kill']);
      assert.equal(s.signed, 1);
      assert.equal((await listOk(a.sdkappid, 'state=complete', opts2)).batches.length, 1);
    });
});
