// Bulk account import and check (POST /v1/apps/{sdkappid}/accounts/import, /accounts/check)
// against the Tencent stand-in over HTTPS with its test CA: text and NDJSON bodies answered in
// input order with a summary whose SHA-256 covers the lines; the stand-in holds exactly the
// accounts imported (nick and face URL too) and account_check agrees; 100 accounts a call; an
// invalid UserID that Tencent lists in FailAccounts fails in place while an injected FailAccounts
// entry is sent again and imported; Tencent's per-second limit (60007) and a stand-in restart are
// ridden out with retries; the manifest (accounts.import, accounts.import.finish) in the audit
// log; a rest_caller without the command and a wrong content type refused.
'use strict';

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const {
  E2E, api, expectError, expectStatus, newAppId, newSecret, createApp, addKey, startServer,
  stopAll, standinCall,
} = require('./lib');

const standinDir = path.join(__dirname, '..', 'tencent');
const servers = [];
let standin;
let standinPort;
let ca;
let work;
let own;
const app = { sdkappid: newAppId(), secret: newSecret() };
let config;

function startStandin(port) {
  standin = spawn('node', [path.join(standinDir, 'standin.js'), '--config-json',
    JSON.stringify(config), '--tls-dir', work, '--port', String(port)],
  { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    standin.stdout.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]).port);
    });
    standin.on('exit', (code) => reject(new Error(`stand-in exited ${code}`)));
  });
}

function standinRequest(method, p, body) {
  return standinCall(standinPort, ca, method, p, body);
}

async function accounts(kind, body, opts = {}) {
  const res = await fetch(`${own.url}/v1/apps/${app.sdkappid}/accounts/${kind}`, {
    method: 'POST', body,
    headers: { authorization: `Bearer ${opts.token || E2E.admin}`,
      'content-type': opts.contentType || 'text/plain' },
    signal: AbortSignal.timeout(120000),
  });
  const text = await res.text();
  if (res.status !== 200) return { status: res.status, json: JSON.parse(text), text };
  assert.ok(text.endsWith('\n'), text.slice(-200));
  const lines = text.slice(0, -1).split('\n');
  const items = lines.slice(0, -1).map((l) => JSON.parse(l));
  const last = JSON.parse(lines[lines.length - 1]);
  const sha = crypto.createHash('sha256')
    .update(lines.slice(0, -1).map((l) => `${l}\n`).join('')).digest('hex');
  return { status: 200, items, last, sha };
}

async function standinAccounts() {
  return (await standinRequest('GET', `/__standin/accounts?sdkappid=${app.sdkappid}`)).accounts;
}

before(async () => {
  work = fs.mkdtempSync(path.join(E2E.work, 'imp-'));
  const mk = spawnSync('bash', [path.join(standinDir, 'make_ca.sh'), work], { encoding: 'utf8' });
  assert.equal(mk.status, 0, mk.stderr);
  ca = fs.readFileSync(path.join(work, 'ca.pem'));
  config = { apps: { [app.sdkappid]: { key: app.secret, admins: ['administrator'] } } };
  standinPort = await startStandin(0);
  own = await startServer('imp', { env: { USERSIGD_TENCENT_CA_FILE: path.join(work, 'ca.pem'),
    USERSIGD_TENCENT_ALLOW_INSECURE_BASE_URL: 'true', USERSIGD_TENCENT_RATE: '1000' } });
  servers.push(own);
  await createApp(app.sdkappid);
  await addKey(app.sdkappid, app.secret);
  expectStatus(await api('PATCH', `/v1/apps/${app.sdkappid}`, { base: own.url, body: {
    admin_identifiers: ['administrator'], gateway_identifier: 'administrator',
    tencent_base_url: `https://127.0.0.1:${standinPort}` } }), 200);
});

after(async () => {
  try {
    const log = own.log;
    await stopAll(servers);
    // Every reply of the jobs above was written out or lost with its client: none is left
    // for the shutdown to wait on (a reply's end lost with its connection was once counted
    // as waiting, and held the stop for its whole grace period).
    assert.doesNotMatch(log(), /replies unfinished/);
  } finally {
    if (standin) standin.kill('SIGTERM'); // else the file waits on it until its timeout
  }
});

describe('account import and check', () => {
  test('text: 250 accounts in order, 3 calls, a bad line in place; check agrees', async () => {
    const ids = Array.from({ length: 250 }, (_, i) => `user_${String(i).padStart(4, '0')}`);
    ids.splice(120, 0, 'x'.repeat(33));
    const r = await accounts('import', `${ids.join('\r\n')}\n`);
    assert.equal(r.status, 200);
    assert.deepEqual(r.items.map((i) => i.identifier), ids);
    assert.equal(r.items[120].status, 'failed');
    assert.equal(r.items[120].error.code, 'bad_identifier');
    assert.ok(r.items.filter((_, i) => i !== 120).every((i) => i.status === 'imported'));
    assert.equal(r.last.summary.count, 251);
    assert.equal(r.last.summary.imported, 250);
    assert.equal(r.last.summary.failed, 1);
    assert.equal(r.last.summary.state, 'complete');
    assert.equal(r.last.summary.sha256, r.sha);
    assert.ok(r.last.summary.calls >= 3);
    const have = (await standinAccounts()).map((a) => a.UserID);
    assert.deepEqual(have, ids.filter((_, i) => i !== 120).sort());
    const counters = await standinRequest('GET', `/__standin/counters?sdkappid=${app.sdkappid}`);
    assert.equal(counters[app.sdkappid]['im_open_login_svc/multiaccount_import'].calls, 3);

    const c = await accounts('check', 'user_0000\nnobody\nuser_0249\n');
    assert.deepEqual(c.items.map((i) => [i.identifier, i.status]),
      [['user_0000', 'imported'], ['nobody', 'not_imported'], ['user_0249', 'imported']]);
    assert.equal(c.last.summary.not_imported, 1);
    assert.equal(c.last.summary.sha256, c.sha);

    const ev = await api('GET', `/v1/audit?sdkappid=${app.sdkappid}&limit=1000`);
    expectStatus(ev, 200);
    const start = ev.json.events.find((e) => e.action === 'accounts.import');
    const fin = ev.json.events.find((e) => e.action === 'accounts.import.finish');
    assert.equal(start.outcome, 'started');
    assert.equal(fin.outcome, 'complete');
    assert.equal(fin.details.job_id, start.details.job_id);
    assert.equal(fin.details.job_id, r.last.summary.job_id);
    assert.equal(fin.details.count, 251);
    assert.equal(fin.details.sha256, r.sha);
    assert.ok(ev.json.events.some((e) => e.action === 'accounts.check.finish'));
  });

  test('NDJSON with nick and face_url; Tencent\'s FailAccounts: sent again, or failed in place',
    async () => {
      await standinRequest('POST', '/__standin/inject', { sdkappid: app.sdkappid,
        command: 'im_open_login_svc/multiaccount_import',
        replies: [{ FailAccounts: ['nd_b', 'josé'] }] });
      // The injected reply imports nothing: the accounts not listed are taken as imported by
      // that reply, so the stand-in's own list is checked only for the ones sent again.
      const lines = [
        { identifier: 'nd_a', nick: 'A', face_url: 'https://example.com/a.png' },
        { identifier: 'nd_b', nick: 'B' },
        { identifier: 'josé' }, // UTF-8: sent, and the stand-in's rule lists it in FailAccounts
        { identifier: 'nd_c', color: 'red' },
        'not json',
      ].map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n');
      const r = await accounts('import', lines, { contentType: 'application/x-ndjson' });
      assert.equal(r.status, 200);
      assert.deepEqual(r.items.map((i) => i.status),
        ['imported', 'imported', 'failed', 'failed', 'failed']);
      assert.equal(r.items[2].identifier, 'josé');
      assert.equal(r.items[2].error.code, 'fail_account');
      assert.equal(r.items[3].error.code, 'unknown_field');
      assert.equal(r.items[4].error.code, 'bad_json');
      const have = await standinAccounts();
      const b = have.find((a) => a.UserID === 'nd_b');
      assert.ok(b, 'nd_b was sent again and imported');
      assert.equal(b.Nick, 'B');
      assert.ok(!have.some((a) => a.UserID === 'josé'));
    });

  test('Tencent\'s per-second limit (60007) is ridden out', async () => {
    await standinRequest('POST', '/__standin/config',
      { limits: { 'im_open_login_svc/multiaccount_import': 2 } });
    try {
      const ids = Array.from({ length: 800 }, (_, i) => `lim_${i}`);
      const r = await accounts('import', ids.join('\n'));
      assert.equal(r.last.summary.imported, 800, JSON.stringify(r.last));
      const counters = await standinRequest('GET', `/__standin/counters?sdkappid=${app.sdkappid}`);
      assert.ok(counters[app.sdkappid]['im_open_login_svc/multiaccount_import'].limited > 0,
        'the stand-in did refuse some calls');
    } finally {
      await standinRequest('POST', '/__standin/config',
        { limits: { 'im_open_login_svc/multiaccount_import': 100 } });
    }
  });

  test('a stand-in restart mid-job: the calls are retried and every account lands', async () => {
    const ids = Array.from({ length: 600 }, (_, i) => `rs_${i}`);
    // A slow upload: the stand-in goes down after the first lines and comes back on its port.
    const body = new ReadableStream({
      async start(ctl) {
        const enc = new TextEncoder();
        ctl.enqueue(enc.encode(`${ids.slice(0, 200).join('\n')}\n`));
        await new Promise((r) => setTimeout(r, 300));
        standin.kill('SIGKILL');
        await new Promise((r) => setTimeout(r, 200));
        ctl.enqueue(enc.encode(`${ids.slice(200).join('\n')}\n`));
        await new Promise((r) => setTimeout(r, 1000));
        await startStandin(standinPort);
        ctl.close();
      },
    });
    const res = await fetch(`${own.url}/v1/apps/${app.sdkappid}/accounts/import`, {
      method: 'POST', body, duplex: 'half',
      headers: { authorization: `Bearer ${E2E.admin}`, 'content-type': 'text/plain' },
      signal: AbortSignal.timeout(120000),
    });
    const text = await res.text();
    const lines = text.trim().split('\n').map((l) => JSON.parse(l));
    const sum = lines.pop().summary;
    assert.deepEqual(lines.map((l) => l.identifier), ids);
    assert.equal(sum.imported, 600, JSON.stringify(lines.filter((l) => l.status !== 'imported')
      .slice(0, 3)));
    const have = new Set((await standinAccounts()).map((a) => a.UserID));
    // The stand-in lost what it held before its restart: the accounts sent after it are there.
    assert.ok(ids.slice(200).every((i) => have.has(i)));
  });

  test('a client that leaves mid-job: the job ends aborted in the audit log', async () => {
    const ctl = new AbortController();
    const body = new ReadableStream({
      async start(c) {
        c.enqueue(new TextEncoder().encode('gone_1\ngone_2\n'));
        await new Promise((r) => setTimeout(r, 600));
        ctl.abort();
      },
    });
    await assert.rejects(fetch(`${own.url}/v1/apps/${app.sdkappid}/accounts/import`, {
      method: 'POST', body, duplex: 'half', signal: ctl.signal,
      headers: { authorization: `Bearer ${E2E.admin}`, 'content-type': 'text/plain' },
    }).then((res) => res.text()));
    let fin;
    for (let i = 0; i < 50 && !fin; i++) {
      const ev = await api('GET', `/v1/audit?sdkappid=${app.sdkappid}&action=accounts.import.finish&limit=1000`);
      fin = ev.json.events.find((e) => e.outcome === 'aborted');
      if (!fin) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(fin, 'the aborted job is recorded');
    assert.equal(fin.details.state, 'aborted');
    expectStatus(await api('GET', '/healthz', { base: own.url }), 200);
  });

  test('refusals: a rest_caller without the command, a wrong content type', async () => {
    const t = await api('POST', '/v1/tokens', { body: { name: `imp rc ${crypto.randomUUID()}`,
      role: 'rest_caller', rest_allow: ['im_open_login_svc/account_check'] } });
    expectStatus(t, 201);
    const r = await accounts('import', 'a\n', { token: t.json.token });
    expectError({ status: r.status, json: r.json, text: r.text, req: 'import' }, 403,
      'rest_not_allowed', ['multiaccount_import']);
    const ok = await accounts('check', 'a\n', { token: t.json.token });
    assert.equal(ok.status, 200);
    const s = await api('POST', '/v1/tokens', { body: { name: `imp s ${crypto.randomUUID()}`,
      role: 'signer' } });
    const f = await accounts('check', 'a\n', { token: s.json.token });
    assert.equal(f.status, 403);
    const ct = await accounts('import', '{"a":1}', { contentType: 'application/json' });
    assert.equal(ct.status, 415);
  });
});
