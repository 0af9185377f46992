// The REST gateway (POST /v1/apps/{sdkappid}/tencent/{servicename}/{command}) against the Tencent
// stand-in (tests/tencent/standin.js) over HTTPS with its test CA: a good call whose reply comes
// back byte for byte with X-Request-Id (and the account really imported in the stand-in), a
// rest_caller inside and outside its rest_allow (403 rest_not_allowed), roles without the
// permission (403 forbidden), an app without a gateway identifier (409), the app's rate limit
// (429 with Retry-After), a wrong key on the app (Tencent's 70009 passed through unchanged;
// repeated, Tencent's 70050, after which nothing is sent for a minute: 429 with Retry-After),
// Tencent answering HTTP 500 (502 tencent_bad_reply), a slow Tencent (504 tencent_timeout), an
// unreachable one (502 tencent_unreachable), a client that goes away (audited client_gone); the
// cached admin UserSig dropped when the app changes, here or in another process (the next call
// signs a new one under the new admin_max_expire); the audit events of every call, and no
// UserSig anywhere in the audit log.
'use strict';

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const {
  E2E, api, expectError, expectStatus, newAppId, newSecret, createApp, addKey, startServer,
  stopAll, psqlOk, standinCall, standinCA, startStandin,
} = require('./lib');

const servers = [];
let standin;
let standinPort;
let ca;
let work;
let own; // a server that calls the stand-in (test CA, insecure base URL allowed)
let slow; // one with tencent_rate 1 and tencent_timeout 1s

const good = { sdkappid: newAppId(), secret: newSecret() };
const wrongKey = { sdkappid: newAppId(), secret: newSecret() };
const noGateway = { sdkappid: newAppId(), secret: newSecret() };
const held = { sdkappid: newAppId(), secret: newSecret() }; // a wrong key, held after 70050

function standinRequest(method, p, body) {
  return standinCall(standinPort, ca, method, p, body);
}

async function setupApp(a, base) {
  await createApp(a.sdkappid);
  await addKey(a.sdkappid, a.secret);
  const res = await api('PATCH', `/v1/apps/${a.sdkappid}`, { base, body: {
    admin_identifiers: ['administrator', 'ops'], gateway_identifier: 'administrator',
    tencent_base_url: `https://127.0.0.1:${standinPort}` } });
  expectStatus(res, 200);
}

function call(sdkappid, svcCmd, body, opts = {}) {
  return api('POST', `/v1/apps/${sdkappid}/tencent/${svcCmd}`,
    Object.assign({ base: own.url, body }, opts));
}

async function token(body) {
  const res = await api('POST', '/v1/tokens', { body: Object.assign(
    { name: `e2e gw ${body.role} ${crypto.randomBytes(4).toString('hex')}` }, body) });
  expectStatus(res, 201);
  return res.json.token;
}

// One sample of a process's scrape: name with its labels, as the scrape writes it.
async function metric(base, name) {
  const m = await api('GET', '/metrics', { base });
  expectStatus(m, 200);
  const line = m.text.split('\n').find((l) => l.startsWith(`${name} `));
  assert.ok(line, `${name} is in the scrape`);
  return Number(line.split(' ')[1]);
}

// A call refused as held after a 70050: 429 naming it, Retry-After within the minute.
function expectHeld(res, least) {
  expectError(res, 429, 'tencent_rate_limited', ['70050', 'active key']);
  const after = Number(res.headers.get('retry-after'));
  assert.ok(after >= least && after <= 60, `Retry-After ${after}`);
}

async function gatewayEvents(sdkappid) {
  const res = await api('GET', `/v1/audit?sdkappid=${sdkappid}&action=tencent.call&limit=1000`);
  expectStatus(res, 200);
  return res.json.events;
}

before(async () => {
  work = fs.mkdtempSync(path.join(E2E.work, 'gw-'));
  ca = standinCA(work);
  const config = { apps: {
    [good.sdkappid]: { key: good.secret, admins: ['administrator', 'ops'] },
    [wrongKey.sdkappid]: { key: newSecret(), admins: ['administrator'] },
    [noGateway.sdkappid]: { key: noGateway.secret, admins: ['administrator'] },
    [held.sdkappid]: { key: newSecret(), admins: ['administrator'] },
  } };
  ({ proc: standin, port: standinPort } = await startStandin(config, work, 0));
  const env = { USERSIGD_TENCENT_CA_FILE: path.join(work, 'ca.pem'),
    USERSIGD_TENCENT_ALLOW_INSECURE_BASE_URL: 'true' };
  own = await startServer('gw', { env });
  servers.push(own);
  slow = await startServer('gw-slow', { env: Object.assign({ USERSIGD_TENCENT_RATE: '1',
    USERSIGD_TENCENT_TIMEOUT: '1s' }, env) });
  servers.push(slow);
  await setupApp(good, own.url);
  await setupApp(wrongKey, own.url);
  await setupApp(held, own.url);
  await createApp(noGateway.sdkappid);
  await addKey(noGateway.sdkappid, noGateway.secret);
});

after(async () => {
  try {
    await stopAll(servers);
  } finally {
    if (standin) standin.kill('SIGTERM'); // else the file waits on it until its timeout
  }
});

describe('the REST gateway', () => {
  test('a good call: Tencent\'s reply unchanged, with X-Request-Id; the account is there',
    async () => {
      const res = await call(good.sdkappid, 'im_open_login_svc/account_import',
        { UserID: 'alice', Nick: 'Alice' }, { headers: { 'x-request-id': 'gw-good-1' } });
      expectStatus(res, 200);
      assert.equal(res.headers.get('x-request-id'), 'gw-good-1');
      assert.match(res.headers.get('content-type'), /^application\/json/);
      assert.equal(res.text, JSON.stringify({ ActionStatus: 'OK', ErrorCode: 0, ErrorInfo: '' }));
      const acc = await standinRequest('GET', `/__standin/accounts?sdkappid=${good.sdkappid}`);
      assert.deepEqual(acc.accounts.map((a) => a.UserID), ['alice']);
      const check = await call(good.sdkappid, 'im_open_login_svc/account_check',
        { CheckItem: [{ UserID: 'alice' }, { UserID: 'bob' }] });
      expectStatus(check, 200);
      assert.deepEqual(check.json.ResultItem.map((i) => i.AccountStatus),
        ['Imported', 'NotImported']);
    });

  test('the reply\'s bytes as Tencent sent them (an injected reply with odd fields)', async () => {
    const injected = { ErrorCode: 0, Zeta: [1.5, -0, 'é\u2028'], Alpha: { b: null, a: true } };
    await standinRequest('POST', '/__standin/inject', { sdkappid: good.sdkappid,
      command: 'im_open_login_svc/account_check', replies: [injected] });
    const res = await call(good.sdkappid, 'im_open_login_svc/account_check',
      { CheckItem: [{ UserID: 'x' }] });
    expectStatus(res, 200);
    assert.equal(res.text, JSON.stringify(Object.assign(
      { ActionStatus: 'OK', ErrorCode: 0, ErrorInfo: '' }, injected)));
  });

  test('a rest_caller: its rest_allow passes, anything else is 403 rest_not_allowed, audited',
    async () => {
      const t = await token({ role: 'rest_caller', apps: [good.sdkappid],
        rest_allow: ['im_open_login_svc/account_check'] });
      const ok = await call(good.sdkappid, 'im_open_login_svc/account_check',
        { CheckItem: [{ UserID: 'alice' }] }, { token: t });
      expectStatus(ok, 200);
      assert.equal(ok.json.ResultItem[0].AccountStatus, 'Imported');
      expectError(await call(good.sdkappid, 'im_open_login_svc/account_import',
        { UserID: 'mallory' }, { token: t }), 403, 'rest_not_allowed',
      ['im_open_login_svc/account_import']);
      expectError(await call(good.sdkappid, 'openim/sendmsg', {}, { token: t }), 403,
        'rest_not_allowed');
      const acc = await standinRequest('GET', `/__standin/accounts?sdkappid=${good.sdkappid}`);
      assert.ok(!acc.accounts.some((a) => a.UserID === 'mallory'), 'nothing reached Tencent');
      const ev = (await gatewayEvents(good.sdkappid)).filter((e) => e.outcome === 'rest_not_allowed');
      assert.equal(ev.length, 2);
      assert.equal(ev[0].details.command, 'account_import');
      // Outside its app scope: 403 forbidden before anything.
      expectError(await call(wrongKey.sdkappid, 'im_open_login_svc/account_check',
        { CheckItem: [{ UserID: 'a' }] }, { token: t }), 403, 'forbidden');
      const star = await token({ role: 'rest_caller', rest_allow: ['im_open_login_svc/*'] });
      expectStatus(await call(good.sdkappid, 'im_open_login_svc/account_import',
        { UserID: 'carol' }, { token: star }), 200);
    });

  test('roles without the gateway: 403 forbidden', async () => {
    for (const role of ['signer', 'admin_signer', 'key_manager', 'auditor']) {
      const t = await token({ role });
      expectError(await call(good.sdkappid, 'im_open_login_svc/account_check',
        { CheckItem: [{ UserID: 'a' }] }, { token: t }), 403, 'forbidden');
    }
  });

  test('bad names, bodies and apps', async () => {
    expectError(await call(good.sdkappid, 'IM_open/account_check', {}), 400, 'invalid_param',
      ['servicename']);
    expectError(await call(good.sdkappid, `im_open_login_svc/${'a'.repeat(65)}`, {}), 400,
      'invalid_param', ['command']);
    expectError(await call(good.sdkappid, 'im_open_login_svc/account_check', undefined,
      { raw: '[1,2]' }), 400, 'bad_json');
    expectError(await call(newAppId(), 'im_open_login_svc/account_check', {}), 404,
      'app_not_found');
    expectError(await call(noGateway.sdkappid, 'im_open_login_svc/account_check', {}), 409,
      'invalid_state', ['gateway_identifier']);
  });

  test('a wrong key on the app: Tencent\'s 70009 passes through unchanged', async () => {
    const res = await call(wrongKey.sdkappid, 'im_open_login_svc/account_check',
      { CheckItem: [{ UserID: 'a' }] });
    expectStatus(res, 200);
    assert.equal(res.json.ActionStatus, 'FAIL');
    assert.equal(res.json.ErrorCode, 70009);
    assert.equal(res.text, JSON.stringify({ ActionStatus: 'FAIL', ErrorCode: 70009,
      ErrorInfo: 'UserSig verification failed: signed with another SDKAppID\'s key?' }));
    const ev = (await gatewayEvents(wrongKey.sdkappid)).pop();
    assert.equal(ev.outcome, 'fail');
    assert.equal(ev.details.action_status, 'FAIL');
    assert.equal(ev.details.error_code, 70009);
  });

  // The other process (slow) holds the account too, told through the database: its call is
  // refused without reaching Tencent, which would only have answered 70050 again.
  test('Tencent\'s 70050 after repeated failures: passed through, then 429 and nothing sent, ' +
    'in this process and in another', async () => {
      const check = { CheckItem: [{ UserID: 'a' }] };
      const sent = async () => (await standinRequest('GET',
        `/__standin/counters?sdkappid=${held.sdkappid}`))[held.sdkappid][
        'im_open_login_svc/account_check'].calls;
      await standinRequest('POST', '/__standin/config', { verify_fail_limit: 2 });
      try {
        for (let i = 0; i < 2; i++) {
          const r = await call(held.sdkappid, 'im_open_login_svc/account_check', check);
          expectStatus(r, 200);
          assert.equal(r.json.ErrorCode, 70009, r.text);
        }
        const hit = await call(held.sdkappid, 'im_open_login_svc/account_check', check);
        expectStatus(hit, 200);
        assert.equal(hit.json.ErrorCode, 70050, hit.text);
        assert.equal(await sent(), 3);
        expectHeld(await call(held.sdkappid, 'im_open_login_svc/account_check', check), 55);
        assert.equal(await sent(), 3, 'the held call never reached Tencent');
        const ev = await gatewayEvents(held.sdkappid);
        assert.equal(ev.length, 4, JSON.stringify(ev.map((e) => e.outcome)));
        assert.equal(ev.filter((e) => e.outcome === 'fail').length, 3);
        assert.equal(ev.filter((e) => e.details.error_code === 70050).length, 1);
        assert.equal(ev.filter((e) => e.outcome === 'tencent_rate_limited').length, 1);

        const holds = (base, origin) => metric(base, `usersigd_tencent_holds_total{origin="${origin}"}`);
        assert.equal(await holds(own.url, 'answered'), 1);
        assert.equal(await holds(slow.url, 'answered'), 0);
        // The NOTIFY leaves from a database thread as the 70050 comes back: wait for it.
        let told = 0;
        for (let i = 0; i < 50 && told === 0; i++) {
          told = await holds(slow.url, 'told');
          if (told === 0) await new Promise((r) => setTimeout(r, 100));
        }
        assert.equal(told, 1, 'the other process was told of the hold');
        expectHeld(await call(held.sdkappid, 'im_open_login_svc/account_check', check,
          { base: slow.url }), 50);
        assert.equal(await sent(), 3, 'the other process\'s call never reached Tencent either');
        const all = await gatewayEvents(held.sdkappid);
        assert.equal(all.length, 5, JSON.stringify(all.map((e) => e.outcome)));
        assert.equal(all.filter((e) => e.outcome === 'tencent_rate_limited').length, 2);
      } finally {
        await standinRequest('POST', '/__standin/config', { verify_fail_limit: 10 });
      }
    });

  // NOTIFY needs no privilege: a role that can connect could send a hold notice. Without the
  // keyring's MAC (a wrong one, or none) every process counts it and holds nothing.
  test('a hold notice no process made is ignored by every process', async () => {
    const refused = 'usersigd_tencent_hold_notices_refused_total';
    const before = [await metric(own.url, refused), await metric(slow.url, refused)];
    const told = await metric(own.url, 'usersigd_tencent_holds_total{origin="told"}');
    const until = Date.now() + 60000;
    const forged = `v1:${good.sdkappid}:${until}:${'0'.repeat(64)}:administrator`;
    const bare = `${good.sdkappid}:60000:administrator`;
    psqlOk(`SELECT pg_notify('usersigd_hold', '${forged}'), pg_notify('usersigd_hold', '${bare}')`);
    let now = before;
    for (let i = 0; i < 50 && (now[0] < before[0] + 2 || now[1] < before[1] + 2); i++) {
      await new Promise((r) => setTimeout(r, 100));
      now = [await metric(own.url, refused), await metric(slow.url, refused)];
    }
    assert.deepEqual(now, [before[0] + 2, before[1] + 2], 'both notices refused in each process');
    assert.equal(await metric(own.url, 'usersigd_tencent_holds_total{origin="told"}'), told);
    const res = await call(good.sdkappid, 'im_open_login_svc/account_check',
      { CheckItem: [{ UserID: 'a' }] });
    expectStatus(res, 200);
    assert.equal(res.json.ErrorCode, 0, res.text);
  });

  test('an app change, here or in another process, drops the cached admin UserSig', async () => {
    const check = { CheckItem: [{ UserID: 'a' }] };
    const signs = async () => {
      const res = await api('GET',
        `/v1/audit?sdkappid=${good.sdkappid}&action=usersig.sign&limit=1000`);
      expectStatus(res, 200);
      return res.json.events.filter((e) => e.details.identifier === 'administrator');
    };
    const gw = () => call(good.sdkappid, 'im_open_login_svc/account_check', check);
    expectStatus(await gw(), 200);
    const cached = (await signs()).length;
    expectStatus(await gw(), 200);
    assert.equal((await signs()).length, cached, 'the admin UserSig is cached');
    // Changed in this process: the next call signs under the new admin_max_expire.
    expectStatus(await api('PATCH', `/v1/apps/${good.sdkappid}`,
      { base: own.url, body: { admin_max_expire: 7200 } }), 200);
    expectStatus(await gw(), 200);
    let now = await signs();
    // Once, or twice when this process's own notification of the change came while that one
    // was being signed (a signing under way at a forget is not kept: it is signed again).
    assert.ok(now.length === cached + 1 || now.length === cached + 2,
      `signed again after the change: ${now.length - cached} signs`);
    assert.equal(now[now.length - 1].details.expire, 7200, JSON.stringify(now[now.length - 1]));
    // This process's own notification of that change may drop it once more (the listener's
    // copy of what the change's commit already evicted): wait until it stays cached.
    let settled = now.length;
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setTimeout(r, 200));
      expectStatus(await gw(), 200);
      const n = (await signs()).length;
      if (n === settled) break;
      settled = n;
    }
    expectStatus(await gw(), 200);
    now = await signs();
    assert.equal(now.length, settled, 'the new one is cached');
    assert.equal(now[now.length - 1].details.expire, 7200);
    // Changed through another process: its notification reaches this one's listener.
    expectStatus(await api('PATCH', `/v1/apps/${good.sdkappid}`,
      { base: slow.url, body: { admin_max_expire: 3600 } }), 200);
    for (let i = 0; i < 50 && now.length === settled; i++) {
      await new Promise((r) => setTimeout(r, 100));
      expectStatus(await gw(), 200);
      now = await signs();
    }
    assert.ok(now.length === settled + 1 || now.length === settled + 2,
      `signed again after the other process's change: ${now.length - settled} signs`);
    assert.equal(now[now.length - 1].details.expire, 3600);
  });

  test('Tencent answering HTTP 500: 502 tencent_bad_reply', async () => {
    await standinRequest('POST', '/__standin/inject', { sdkappid: good.sdkappid,
      command: 'im_open_login_svc/account_delete', replies: [{ http_status: 500 }] });
    expectError(await call(good.sdkappid, 'im_open_login_svc/account_delete',
      { DeleteItem: [{ UserID: 'nobody' }] }), 502, 'tencent_bad_reply', ['500']);
  });

  test('the app\'s rate limit: 429 tencent_rate_limited with Retry-After', async () => {
    const calls = [];
    for (let i = 0; i < 8; i++) {
      calls.push(call(good.sdkappid, 'im_open_login_svc/account_check',
        { CheckItem: [{ UserID: 'alice' }] }, { base: slow.url, timeoutMs: 30000 }));
    }
    const res = await Promise.all(calls);
    const limited = res.filter((r) => r.status === 429);
    const ok = res.filter((r) => r.status === 200);
    assert.ok(limited.length >= 3, `429s: ${res.map((r) => r.status)}`);
    assert.ok(ok.length >= 2, `200s: ${res.map((r) => r.status)}`);
    for (const r of limited) {
      expectError(r, 429, 'tencent_rate_limited');
      assert.ok(Number(r.headers.get('retry-after')) >= 1, r.headers.get('retry-after'));
    }
    const ev = (await gatewayEvents(good.sdkappid))
      .filter((e) => e.outcome === 'tencent_rate_limited');
    assert.ok(ev.length >= limited.length);
  });

  test('a slow Tencent: 504 tencent_timeout (tencent_timeout 1s)', async () => {
    await standinRequest('POST', '/__standin/inject', { sdkappid: good.sdkappid,
      command: 'im_open_login_svc/account_delete', replies: [{ delay_ms: 3000 }] });
    // The slow server's bucket (1 a second) is spent by the previous test: retry a 429.
    let res;
    for (let i = 0; i < 20; i++) {
      res = await call(good.sdkappid, 'im_open_login_svc/account_delete',
        { DeleteItem: [{ UserID: 'nobody' }] }, { base: slow.url });
      if (res.status !== 429) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    expectError(res, 504, 'tencent_timeout');
  });

  test('an unreachable Tencent: 502 tencent_unreachable', async () => {
    const a = { sdkappid: newAppId(), secret: newSecret() };
    await createApp(a.sdkappid);
    await addKey(a.sdkappid, a.secret);
    // A port nothing listens on: one the system gave and took back.
    const srv = http.createServer();
    await new Promise((r) => srv.listen(0, '127.0.0.1', r));
    const port = srv.address().port;
    await new Promise((r) => srv.close(r));
    expectStatus(await api('PATCH', `/v1/apps/${a.sdkappid}`, { base: own.url, body: {
      admin_identifiers: ['administrator'], gateway_identifier: 'administrator',
      tencent_base_url: `https://127.0.0.1:${port}` } }), 200);
    expectError(await call(a.sdkappid, 'im_open_login_svc/account_check', {}), 502,
      'tencent_unreachable', ['connect']);
  });

  test('a client that goes away: the call is cancelled and audited as client_gone', async () => {
    await standinRequest('POST', '/__standin/inject', { sdkappid: good.sdkappid,
      command: 'im_open_login_svc/account_delete', replies: [{ delay_ms: 2000 }] });
    const ctl = new AbortController();
    const p = fetch(`${own.url}/v1/apps/${good.sdkappid}/tencent/im_open_login_svc/account_delete`,
      { method: 'POST', signal: ctl.signal, body: JSON.stringify({ DeleteItem: [{ UserID: 'z' }] }),
        headers: { authorization: `Bearer ${E2E.admin}`, 'content-type': 'application/json',
          'x-request-id': 'gw-gone-1' } });
    await new Promise((r) => setTimeout(r, 400));
    ctl.abort();
    await assert.rejects(p);
    let ev;
    for (let i = 0; i < 50 && !ev; i++) {
      ev = (await gatewayEvents(good.sdkappid)).find((e) => e.details.request_id === 'gw-gone-1');
      if (!ev) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(ev, 'audited');
    assert.equal(ev.outcome, 'client_gone');
  });

  test('every call audited (actor, command, ActionStatus, ErrorCode, duration); no UserSig',
    async () => {
      const events = await gatewayEvents(good.sdkappid);
      const first = events.find((e) => e.details.request_id === 'gw-good-1');
      assert.ok(first, 'the good call is audited');
      assert.equal(first.outcome, 'ok');
      assert.equal(first.details.servicename, 'im_open_login_svc');
      assert.equal(first.details.command, 'account_import');
      assert.equal(first.details.action_status, 'OK');
      assert.equal(first.details.error_code, 0);
      assert.equal(first.details.http_status, 200);
      assert.equal(first.details.attempts, 1);
      assert.equal(typeof first.details.duration_ms, 'number');
      assert.equal(first.actor_name, 'bootstrap-admin', JSON.stringify(first));
      assert.ok(!JSON.stringify(first.details).includes('alice'), 'no body in the audit');
      // The administrator's UserSig was signed by the server itself, and audited as a sign.
      const signs = await api('GET',
        `/v1/audit?sdkappid=${good.sdkappid}&action=usersig.sign&limit=1000`);
      expectStatus(signs, 200);
      assert.ok(signs.json.events.some((e) => e.details.identifier === 'administrator'));
      // No UserSig (they start with eJ: zlib's header in base64) anywhere in the audit table.
      const n = psqlOk('SELECT count(*) FROM audit_log WHERE details::text ~ \'eJ[wxyz][A-Za-z0-9*_-]{40}\' OR details::text ILIKE \'%usersig=%\'');
      assert.equal(n, '0');
    });
});
