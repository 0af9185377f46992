// Batch signing with ?import=1 (POST /v1/apps/{sdkappid}/usersigs/batch?import=1) against the
// Tencent stand-in over HTTPS with its test CA: each identifier imported (multiaccount_import,
// 100 a call) before its UserSig is released; every token checked with the official library's
// HMAC; the stand-in holds the accounts whose tokens went out, and account_check agrees; a
// UserID Tencent keeps listing in FailAccounts and a call Tencent refuses whole are import_failed
// lines without a token; lines the pipeline refuses anyway (bad JSON, an identifier outside a
// token's prefixes) never reach Tencent; the batch's audit events carry the import and its
// counts; a client that leaves mid-import aborts the batch; the refusals: a signer without rest_allow, a JSON body, a bad import value, an app
// without a gateway identifier.
'use strict';

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const {
  E2E, api, expectError, expectStatus, newAppId, newSecret, createApp, addKey, startServer,
  stopAll, standinCall, standinCA, startStandin, tokens, postLines,
} = require('./lib');

const servers = [];
let standin;
let ca;
let own;
const app = { sdkappid: newAppId(), secret: newSecret() };
const bare = { sdkappid: newAppId(), secret: newSecret() }; // no gateway identifier

function standinRequest(method, p, body) {
  return standinCall(standin.port, ca, method, p, body);
}

async function standinIds(sdkappid) {
  const r = await standinRequest('GET', `/__standin/accounts?sdkappid=${sdkappid}`);
  return new Set(r.accounts.map((a) => a.UserID));
}

async function importCalls(sdkappid) {
  const c = await standinRequest('GET', `/__standin/counters?sdkappid=${sdkappid}`);
  const n = c[sdkappid] && c[sdkappid]['im_open_login_svc/multiaccount_import'];
  return n ? n.calls : 0;
}

// A batch with ?import=1: { status, items, last } (the error body when not 200).
async function batch(body, opts = {}) {
  const res = await postLines(own.url,
    `/v1/apps/${opts.sdkappid || app.sdkappid}/usersigs/batch?${opts.query || 'import=1'}`, body,
    opts);
  if (res.status !== 200) return res;
  const lines = res.lines.map((l) => JSON.parse(l));
  return { status: 200, items: lines.slice(0, -1), last: lines[lines.length - 1] };
}

function assertSigned(item, identifier) {
  assert.equal(item.identifier, identifier);
  assert.equal(typeof item.usersig, 'string', `${identifier}: ${JSON.stringify(item)}`);
  assert.equal(tokens.verify({ usersig: item.usersig, identifier, sdkappid: app.sdkappid,
    key: app.secret, now: Math.floor(Date.now() / 1000) }), 'ok');
}

async function token(body) {
  const res = await api('POST', '/v1/tokens', { base: own.url, body: Object.assign(
    { name: `e2e bi ${body.role} ${crypto.randomBytes(4).toString('hex')}` }, body) });
  expectStatus(res, 201);
  return res.json.token;
}

async function finishOf(batchId) {
  const ev = await api('GET',
    `/v1/audit?sdkappid=${app.sdkappid}&action=usersig.batch.finish&limit=1000`, { base: own.url });
  expectStatus(ev, 200);
  return ev.json.events.find((e) => e.details.batch_id === batchId);
}

before(async () => {
  const work = fs.mkdtempSync(path.join(E2E.work, 'bimp-'));
  ca = standinCA(work);
  standin = await startStandin({ apps: {
    [app.sdkappid]: { key: app.secret, admins: ['administrator'] },
    [bare.sdkappid]: { key: bare.secret, admins: ['administrator'] },
  } }, work, 0);
  own = await startServer('bimp', { env: { USERSIGD_TENCENT_CA_FILE: path.join(work, 'ca.pem'),
    USERSIGD_TENCENT_ALLOW_INSECURE_BASE_URL: 'true', USERSIGD_TENCENT_RATE: '1000' } });
  servers.push(own);
  for (const a of [app, bare]) {
    await createApp(a.sdkappid);
    await addKey(a.sdkappid, a.secret);
  }
  expectStatus(await api('PATCH', `/v1/apps/${app.sdkappid}`, { base: own.url, body: {
    admin_identifiers: ['administrator'], gateway_identifier: 'administrator',
    tencent_base_url: `https://127.0.0.1:${standin.port}` } }), 200);
});

after(async () => {
  try {
    await stopAll(servers);
  } finally {
    if (standin) standin.proc.kill('SIGTERM');
  }
});

describe('batch signing with ?import=1', () => {
  test('text: 250 identifiers imported before signing; FailAccounts and bad lines in place',
    async () => {
      const ids = Array.from({ length: 250 }, (_, i) => `bi_${String(i).padStart(4, '0')}`);
      ids.splice(130, 0, ''); // not an identifier: the pipeline refuses it, Tencent never sees it
      ids.splice(7, 0, 'b\u00e9'); // not one the app's identifier policy signs: never sent
      const callsBefore = await importCalls(app.sdkappid);
      const r = await batch(`${ids.join('\r\n')}\n`);
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.deepEqual(r.items.map((i) => i.identifier), ids);
      const held = await standinIds(app.sdkappid);
      for (let i = 0; i < ids.length; i++) {
        const id = ids[i];
        if (id === '' || id === 'b\u00e9') {
          assert.equal(r.items[i].error.code, 'bad_identifier');
          assert.equal(r.items[i].usersig, undefined);
        } else {
          assertSigned(r.items[i], id);
          assert.ok(held.has(id), `${id} was signed but is not in Tencent`);
        }
      }
      assert.ok(!held.has('b\u00e9') && !held.has(''));
      const s = r.last.summary;
      assert.deepEqual([s.count, s.signed, s.failed], [252, 250, 2]);
      // 250 accounts in 3 calls of at most 100 lines.
      assert.equal(await importCalls(app.sdkappid) - callsBefore, 3);

      const fin = await finishOf(s.batch_id);
      assert.equal(fin.outcome, 'complete');
      assert.deepEqual(fin.details.import, { imported: 250, failed: 0, calls: 3 });
      const ev = await api('GET', `/v1/audit?sdkappid=${app.sdkappid}&action=usersig.batch` +
        '&limit=1000', { base: own.url });
      const start = ev.json.events.find((e) => e.details.batch_id === s.batch_id);
      assert.equal(start.details.import, true);

      // Tencent's own check agrees with what was signed.
      const chk = await fetch(`${own.url}/v1/apps/${app.sdkappid}/accounts/check`, {
        method: 'POST', body: 'bi_0000\njosé\nbi_0249\n',
        headers: { authorization: `Bearer ${E2E.admin}`, 'content-type': 'text/plain' } });
      const lines = (await chk.text()).trim().split('\n').map((l) => JSON.parse(l));
      assert.deepEqual(lines.slice(0, 3).map((l) => l.status),
        ['imported', 'not_imported', 'imported']);
    });

  test('an account Tencent keeps listing in FailAccounts: import_failed, no token', async () => {
    const fail = { FailAccounts: ['fa_2'] };
    await standinRequest('POST', '/__standin/inject', { sdkappid: app.sdkappid,
      command: 'im_open_login_svc/multiaccount_import', replies: [fail, fail, fail] });
    const callsBefore = await importCalls(app.sdkappid);
    const r = await batch('fa_1\nfa_2\n');
    assert.equal(r.status, 200);
    assertSigned(r.items[0], 'fa_1'); // not listed: taken as imported by Tencent's reply
    assert.equal(r.items[1].identifier, 'fa_2');
    assert.equal(r.items[1].error.code, 'import_failed');
    assert.match(r.items[1].error.message, /fail_account/);
    assert.equal(r.items[1].usersig, undefined);
    assert.equal(await importCalls(app.sdkappid) - callsBefore, 3); // sent 3 times in all
    const fin = await finishOf(r.last.summary.batch_id);
    assert.deepEqual(fin.details.import, { imported: 1, failed: 1, calls: 3 });
  });

  test('NDJSON: per-line expire kept; a bad line never reaches Tencent', async () => {
    const before = await standinIds(app.sdkappid);
    const body = [
      JSON.stringify({ identifier: 'nd_one', expire: 600 }),
      'not json',
      JSON.stringify({ identifier: 'nd_two', room_id: 1234 }),
      JSON.stringify({ identifier: 'nd_three', colour: 'red' }),
    ].join('\n');
    const r = await batch(body, { contentType: 'application/x-ndjson' });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assertSigned(r.items[0], 'nd_one');
    assert.equal(tokens.decodeToken(r.items[0].usersig).json['TLS.expire'], 600);
    assert.equal(r.items[1].error.code, 'bad_json');
    assertSigned(r.items[2], 'nd_two');
    assert.equal(r.items[3].error.code, 'unknown_field');
    // (nd_three's account may be imported: the line is refused for its field only when it is
    // signed. No token goes out without its account.)
    const held = await standinIds(app.sdkappid);
    assert.ok(held.has('nd_one') && held.has('nd_two'));
    assert.ok(!before.has('nd_one') && !before.has('nd_two'));
  });

  test('a call Tencent refuses whole: its lines import_failed with Tencent\'s code, no token',
    async () => {
      await standinRequest('POST', '/__standin/inject', { sdkappid: app.sdkappid,
        command: 'im_open_login_svc/multiaccount_import',
        replies: [{ ActionStatus: 'FAIL', ErrorCode: 70402, ErrorInfo: 'invalid parameter' }] });
      const r = await batch('rf_a\nrf_b\n');
      assert.equal(r.status, 200);
      for (const [i, id] of ['rf_a', 'rf_b'].entries()) {
        assert.equal(r.items[i].identifier, id);
        assert.equal(r.items[i].error.code, 'import_failed');
        assert.match(r.items[i].error.message, /Tencent error 70402/);
      }
      assert.deepEqual([r.last.summary.signed, r.last.summary.failed], [0, 2]);
      const held = await standinIds(app.sdkappid);
      assert.ok(!held.has('rf_a') && !held.has('rf_b'));
    });

  test('a signer with rest_allow multiaccount_import and prefixes: outside ones not imported',
    async () => {
      const t = await token({ role: 'signer', apps: [app.sdkappid],
        identifier_prefixes: ['guest_'], rest_allow: ['im_open_login_svc/multiaccount_import'] });
      const r = await batch('guest_1\nstaff_1\nguest_2\n', { token: t });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assertSigned(r.items[0], 'guest_1');
      assert.equal(r.items[1].error.code, 'identifier_prefix');
      assertSigned(r.items[2], 'guest_2');
      const held = await standinIds(app.sdkappid);
      assert.ok(held.has('guest_1') && held.has('guest_2') && !held.has('staff_1'));
    });

  test('a client that leaves while its lines are being imported: the batch ends aborted',
    async () => {
      await standinRequest('POST', '/__standin/inject', { sdkappid: app.sdkappid,
        command: 'im_open_login_svc/multiaccount_import', replies: [{ delay_ms: 1500 }] });
      const ids = Array.from({ length: 300 }, (_, i) => `lv_${i}`).join('\n');
      const ac = new AbortController();
      const started = fetch(`${own.url}/v1/apps/${app.sdkappid}/usersigs/batch?import=1`, {
        method: 'POST', body: ids, signal: ac.signal,
        headers: { authorization: `Bearer ${E2E.admin}`, 'content-type': 'text/plain' } });
      await new Promise((r) => setTimeout(r, 300));
      ac.abort();
      await assert.rejects(started.then((res) => res.text()));
      let fin;
      for (let i = 0; i < 100 && !fin; i++) {
        const ev = await api('GET', `/v1/audit?sdkappid=${app.sdkappid}` +
          '&action=usersig.batch.finish&limit=1000', { base: own.url });
        fin = ev.json.events.find((e) => e.outcome === 'aborted' && e.details.import);
        if (!fin) await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(fin, 'the batch was recorded as aborted');
      assert.ok(fin.details.count < 300);
      // The server goes on: the next batch imports and signs.
      const r = await batch('lv_after\n');
      assertSigned(r.items[0], 'lv_after');
    });

  test('refusals: no rest_allow, a JSON body, a bad import value, no gateway identifier',
    async () => {
      const plain = await token({ role: 'signer', apps: [app.sdkappid] });
      let r = await batch('x1\n', { token: plain });
      expectError(r, 403, 'rest_not_allowed', ['im_open_login_svc/multiaccount_import']);
      r = await batch(JSON.stringify({ identifiers: ['x1'] }), { contentType: 'application/json' });
      expectError(r, 400, 'invalid_param', ['text/plain or application/x-ndjson']);
      r = await batch('x1\n', { query: 'import=2' });
      expectError(r, 400, 'invalid_param', ['import must be 0 or 1']);
      r = await batch('x1\n', { sdkappid: bare.sdkappid });
      expectError(r, 409, 'invalid_state', ['gateway_identifier']);
      const ev = await api('GET', `/v1/audit?sdkappid=${bare.sdkappid}&action=usersig.batch` +
        '&limit=100', { base: own.url });
      assert.ok(ev.json.events.some((e) => e.outcome === 'invalid_state'), 'the refusal audited');
      const held = await standinIds(app.sdkappid);
      assert.ok(!held.has('x1'));
      // Without import the same signer signs as before.
      r = await batch('x1\n', { token: plain, query: 'import=0' });
      assert.equal(r.status, 200);
      assertSigned(r.items[0], 'x1');
    });
});
