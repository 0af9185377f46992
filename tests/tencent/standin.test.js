// The Tencent REST stand-in (standin.js) itself, over HTTPS with a CA from make_ca.sh, with
// UserSigs made by Tencent's official Node library (tls-sig-api-v2, pinned in tests/node): a good
// admin UserSig is taken; another app's key, an expired one, another identifier and a non-admin are
// refused with Tencent's codes at HTTP 200, and too many failures held (70050); the URL parameters are checked; the 100-item limit; the
// four account commands agree with each other and with /__standin/accounts; the per-second limit
// answers 60007 and is counted, and can be changed or switched off.
// Usage: node --test tests/tencent/standin.test.js
'use strict';

const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const https = require('node:https');
const os = require('node:os');
const path = require('node:path');
const { after, before, describe, test } = require('node:test');

const TLSSigAPIv2 = require(path.join(__dirname, '..', 'node', 'node_modules', 'tls-sig-api-v2'));

const APP = 1400000001;
const KEY = '5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e';
const OTHER_KEY = 'a'.repeat(64);
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'standin-test-'));
let proc;
let port;
let ca;

function sig(identifier, { key = KEY, app = APP, expire = 600 } = {}) {
  return new TLSSigAPIv2.Api(app, key).genUserSig(identifier, expire);
}

function request(method, pathAndQuery, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
    const req = https.request({ host: '127.0.0.1', port, method, path: pathAndQuery, ca,
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode, json: JSON.parse(text) });
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

function query({ app = APP, identifier = 'administrator', usersig, random = 12345,
  contenttype = 'json' } = {}) {
  const q = new URLSearchParams();
  if (app !== null) q.set('sdkappid', String(app));
  if (identifier !== null) q.set('identifier', identifier);
  if (usersig !== null) q.set('usersig', usersig === undefined ? sig(identifier) : usersig);
  if (random !== null) q.set('random', String(random));
  if (contenttype !== null) q.set('contenttype', contenttype);
  return q.toString();
}

function rest(cmd, body, opts) {
  return request('POST', `/v4/im_open_login_svc/${cmd}?${query(opts)}`, body);
}

function assertFail(r, code) {
  assert.equal(r.status, 200);
  assert.equal(r.json.ActionStatus, 'FAIL', JSON.stringify(r.json));
  assert.equal(r.json.ErrorCode, code, JSON.stringify(r.json));
  assert.equal(typeof r.json.ErrorInfo, 'string');
}

before(async () => {
  const mk = spawnSync('bash', [path.join(__dirname, 'make_ca.sh'), work], { encoding: 'utf8' });
  assert.equal(mk.status, 0, mk.stderr);
  ca = fs.readFileSync(path.join(work, 'ca.pem'));
  const config = { apps: { [APP]: { key: KEY, admins: ['administrator', 'ops'] },
    1400000002: { key: OTHER_KEY, admins: ['administrator'] } } };
  proc = spawn('node', [path.join(__dirname, 'standin.js'), '--config-json', JSON.stringify(config),
    '--tls-dir', work, '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  port = await new Promise((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]).port);
    });
    proc.on('exit', (code) => reject(new Error(`stand-in exited ${code}`)));
  });
});

after(() => {
  if (proc) proc.kill('SIGTERM');
  fs.rmSync(work, { recursive: true, force: true });
});

describe('the admin UserSig', () => {
  test('one made by the official library with the app key is taken', async () => {
    const r = await rest('account_check', { CheckItem: [{ UserID: 'x' }] });
    assert.equal(r.json.ActionStatus, 'OK', JSON.stringify(r.json));
    assert.equal(r.json.ErrorCode, 0);
  });

  test('another key: 70009', async () => {
    assertFail(await rest('account_check', { CheckItem: [{ UserID: 'x' }] },
      { usersig: sig('administrator', { key: OTHER_KEY }) }), 70009);
  });

  test('expired: 70001 (the stand-in\'s clock moved past it), then taken again', async () => {
    const token = sig('administrator', { expire: 600 });
    const now = Math.floor(Date.now() / 1000);
    await request('POST', '/__standin/config', { now: now + 601 + 5 });
    try {
      assertFail(await rest('account_check', { CheckItem: [{ UserID: 'x' }] }, { usersig: token }),
        70001);
    } finally {
      await request('POST', '/__standin/config', { now: null });
    }
    const r = await rest('account_check', { CheckItem: [{ UserID: 'x' }] }, { usersig: token });
    assert.equal(r.json.ErrorCode, 0);
  });

  test('made for another identifier: 70013; for another app: 70014', async () => {
    assertFail(await rest('account_check', { CheckItem: [{ UserID: 'x' }] },
      { usersig: sig('ops') }), 70013);
    assertFail(await rest('account_check', { CheckItem: [{ UserID: 'x' }] },
      { usersig: sig('administrator', { app: 1400000002, key: KEY }) }), 70014);
  });

  test('a valid UserSig of an account that is not an admin: 60010', async () => {
    assertFail(await rest('account_check', { CheckItem: [{ UserID: 'x' }] },
      { identifier: 'alice', usersig: sig('alice') }), 60010);
  });

  test('failed UserSigs past the limit: 70050 for the identifier, a good one too, until the hold ends',
    async () => {
      await request('POST', '/__standin/config', { verify_fail_limit: 3, verify_hold_ms: 400 });
      try {
        const bad = sig('ops', { key: OTHER_KEY });
        for (let i = 0; i < 3; i++) {
          assertFail(await rest('account_check', { CheckItem: [{ UserID: 'x' }] },
            { identifier: 'ops', usersig: bad }), 70009);
        }
        const good = { identifier: 'ops', usersig: sig('ops') };
        assertFail(await rest('account_check', { CheckItem: [{ UserID: 'x' }] }, good), 70050);
        // Another identifier of the same app is not held.
        const other = await rest('account_check', { CheckItem: [{ UserID: 'x' }] });
        assert.equal(other.json.ErrorCode, 0, JSON.stringify(other.json));
        await new Promise((r) => setTimeout(r, 450));
        const r = await rest('account_check', { CheckItem: [{ UserID: 'x' }] }, good);
        assert.equal(r.json.ErrorCode, 0, JSON.stringify(r.json));
      } finally {
        await request('POST', '/__standin/config', { verify_fail_limit: 10, verify_hold_ms: 60000 });
      }
    });

  test('garbage, empty, or an unknown app', async () => {
    assertFail(await rest('account_check', {}, { usersig: 'eJyrVg' }), 70003);
    assertFail(await rest('account_check', {}, { usersig: 'not*base64!' }), 70003);
    assertFail(await rest('account_check', {}, { usersig: '' }), 70002);
    assertFail(await rest('account_check', {}, { app: 1400000099,
      usersig: sig('administrator', { app: 1400000099 }) }), 70020);
  });
});

describe('the URL', () => {
  test('every parameter present and valid', async () => {
    assertFail(await rest('account_check', {}, { app: null }), 60012);
    assertFail(await rest('account_check', {}, { app: 'abc' }), 60012);
    assertFail(await rest('account_check', {}, { app: 4294967296 }), 60012);
    assertFail(await rest('account_check', {}, { random: null }), 60002);
    assertFail(await rest('account_check', {}, { random: 4294967296 }), 60002);
    assertFail(await rest('account_check', {}, { random: -1 }), 60002);
    assertFail(await rest('account_check', {}, { contenttype: 'xml' }), 60002);
    assertFail(await rest('account_check', {}, { contenttype: null }), 60002);
    assertFail(await rest('account_check', {}, { identifier: null, usersig: sig('a') }), 60004);
    const q = query();
    assertFail(await request('POST', `/v4/im_open_login_svc/account_check?${q}&random=1`, {}),
      60002);
    assertFail(await request('GET', `/v4/im_open_login_svc/account_check?${q}`), 60002);
  });

  test('an unknown service or command: 60009; a body that is not JSON: 60003', async () => {
    assertFail(await rest('no_such_command', {}), 60009);
    assertFail(await request('POST', `/v4/no_such_svc/account_check?${query()}`, {}), 60009);
    assertFail(await rest('account_check', '{not json'), 60003);
    assertFail(await rest('account_check', '[1]'), 60003);
  });
});

describe('the account commands', () => {
  test('import, check, delete and the test read-back agree', async () => {
    await request('POST', '/__standin/reset');
    let r = await rest('account_import', { UserID: 'alice', Nick: 'Alice', FaceUrl: 'https://a/f' });
    assert.equal(r.json.ErrorCode, 0);
    r = await rest('multiaccount_import', { AccountList: [{ UserID: 'bob', Nick: 'Bob' },
      { UserID: '' }, { UserID: 'x'.repeat(33) }, { UserID: 'tab\there' }, { UserID: 'carol' },
      { UserID: 'alice', Nick: 'Alice 2' }] });
    assert.equal(r.json.ActionStatus, 'OK');
    assert.deepEqual(r.json.FailAccounts, ['', 'x'.repeat(33), 'tab\there']);
    r = await request('GET', `/__standin/accounts?sdkappid=${APP}`);
    assert.deepEqual(r.json.accounts, [
      { UserID: 'alice', Nick: 'Alice 2', FaceUrl: '' },
      { UserID: 'bob', Nick: 'Bob', FaceUrl: '' },
      { UserID: 'carol', Nick: '', FaceUrl: '' },
    ]);
    r = await rest('account_check', { CheckItem: [{ UserID: 'alice' }, { UserID: 'dave' }] });
    assert.deepEqual(r.json.ResultItem, [
      { UserID: 'alice', ResultCode: 0, ResultInfo: '', AccountStatus: 'Imported' },
      { UserID: 'dave', ResultCode: 0, ResultInfo: '', AccountStatus: 'NotImported' },
    ]);
    r = await rest('account_delete', { DeleteItem: [{ UserID: 'alice' }, { UserID: 'dave' }] });
    assert.deepEqual(r.json.ResultItem, [
      { ResultCode: 0, ResultInfo: '', UserID: 'alice' },
      { ResultCode: 70107, ResultInfo: 'Err_TLS_PT_Open_Login_Account_Not_Exist', UserID: 'dave' },
    ]);
    r = await rest('account_check', { CheckItem: [{ UserID: 'alice' }] });
    assert.equal(r.json.ResultItem[0].AccountStatus, 'NotImported');
    assertFail(await rest('account_import', { UserID: 'x'.repeat(33) }), 70402);
    assertFail(await rest('account_import', { Nick: 'no id' }), 70402);
  });

  test('100 items at most, in each list', async () => {
    const ids = (n) => Array.from({ length: n }, (_, i) => ({ UserID: `u${i}` }));
    let r = await rest('multiaccount_import', { AccountList: ids(100) });
    assert.equal(r.json.ErrorCode, 0);
    assert.deepEqual(r.json.FailAccounts, []);
    assertFail(await rest('multiaccount_import', { AccountList: ids(101) }), 70402);
    r = await rest('account_check', { CheckItem: ids(100) });
    assert.equal(r.json.ResultItem.length, 100);
    assertFail(await rest('account_check', { CheckItem: ids(101) }), 70402);
    assertFail(await rest('account_delete', { DeleteItem: ids(101) }), 70402);
    r = await rest('account_delete', { DeleteItem: ids(100) });
    assert.ok(r.json.ResultItem.every((x) => x.ResultCode === 0));
  });
});

describe('per-second limits', () => {
  test('past the limit 60007, counted; changed; switched off', async () => {
    await request('POST', '/__standin/reset');
    await request('POST', '/__standin/config', { limits: { 'im_open_login_svc/account_check': 5 } });
    const token = sig('administrator');
    const body = { CheckItem: [{ UserID: 'x' }] };
    const replies = await Promise.all(Array.from({ length: 8 },
      () => rest('account_check', body, { usersig: token })));
    const codes = replies.map((r) => r.json.ErrorCode).sort();
    assert.deepEqual(codes, [0, 0, 0, 0, 0, 60007, 60007, 60007]);
    let c = (await request('GET', `/__standin/counters?sdkappid=${APP}`)).json;
    assert.deepEqual(c[APP]['im_open_login_svc/account_check'], { calls: 8, limited: 3, ok: 5 });
    // Another command of the same app has a limit of its own.
    const other = await rest('account_delete', { DeleteItem: [{ UserID: 'x' }] }, { usersig: token });
    assert.equal(other.json.ErrorCode, 0);
    // A second later the window has moved.
    await new Promise((r) => setTimeout(r, 1050));
    assert.equal((await rest('account_check', body, { usersig: token })).json.ErrorCode, 0);
    // Off: 30 at once all pass.
    await request('POST', '/__standin/config', { limits: { 'im_open_login_svc/account_check': 0 } });
    const many = await Promise.all(Array.from({ length: 30 },
      () => rest('account_check', body, { usersig: token })));
    assert.ok(many.every((r) => r.json.ErrorCode === 0));
    // The app-wide limit answers 60011.
    await request('POST', '/__standin/config', { app_limit: 2 });
    const app = await Promise.all(Array.from({ length: 4 },
      () => rest('account_check', body, { usersig: token })));
    assert.deepEqual(app.map((r) => r.json.ErrorCode).sort(), [0, 0, 60011, 60011]);
    await request('POST', '/__standin/config', { app_limit: null,
      limits: { 'im_open_login_svc/account_check': 100 } });
    c = (await request('GET', '/__standin/counters')).json;
    assert.equal(c[APP]['im_open_login_svc/account_check'].limited, 5);
  });
});
