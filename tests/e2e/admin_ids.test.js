// Administrator identifiers, identifier prefixes and the admin_signer and rest_caller roles over
// HTTP against the real usersigd: PATCH /v1/apps/{sdkappid} with each administrator field valid
// and invalid (the app unchanged after every refusal), the insecure base URL only on a server
// started with tencent_allow_insecure_base_url; a signer refused for an administrator identifier
// (403 admin_identifier, the refusal in GET /v1/audit), admin_signer allowed within
// admin_max_expire and refused past it; a batch whose administrator line is refused in place
// while the others are signed (checked with the official Node library) and whose finish event
// counts the refusal; a prefix token allowed and refused, single and batch; token creation's
// rules for identifier_prefixes and rest_allow.
'use strict';

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const {
  E2E, api, expectError, expectStatus, appWithKey, crossCheck, startServer, stopAll,
} = require('./lib');

const servers = [];
after(async () => { await stopAll(servers); });

async function newToken(body) {
  const res = await api('POST', '/v1/tokens', {
    body: Object.assign({ name: `e2e ${body.role} ${crypto.randomBytes(4).toString('hex')}` },
      body),
  });
  return res;
}

async function tokenOf(body) {
  const res = await newToken(body);
  expectStatus(res, 201);
  return res.json;
}

async function getApp(sdkappid) {
  const res = await api('GET', `/v1/apps/${sdkappid}`);
  expectStatus(res, 200);
  // The active key's age (whole seconds) moves on by itself; the rest is the app's stored state.
  const { active_key_age: age, ...app } = res.json;
  assert.ok(Number.isInteger(age) && age >= 0, `active_key_age ${age}`);
  return app;
}

async function auditEvents(sdkappid, action) {
  const res = await api('GET', `/v1/audit?sdkappid=${sdkappid}&action=${action}&limit=1000`);
  expectStatus(res, 200);
  return res.json.events;
}

// A batch; returns { status, items (parsed lines before the last), last }.
async function batch(sdkappid, body, opts = {}) {
  const res = await fetch(`${E2E.url}/v1/apps/${sdkappid}/usersigs/batch` +
    (opts.query ? `?${opts.query}` : ''), {
    method: 'POST',
    headers: { authorization: `Bearer ${opts.token || E2E.admin}`,
      'content-type': opts.contentType || 'text/plain' },
    body,
    signal: AbortSignal.timeout(60000),
  });
  const text = await res.text();
  assert.equal(res.status, 200, text.slice(0, 400));
  const lines = text.slice(0, -1).split('\n').map((l) => JSON.parse(l));
  return { items: lines.slice(0, -1), last: lines[lines.length - 1] };
}

describe('administrator fields of an app', () => {
  let a;
  before(async () => { a = await appWithKey(); });

  test('a new app has none, a day, the default region', async () => {
    const app = await getApp(a.sdkappid);
    assert.deepEqual(app.admin_identifiers, []);
    assert.equal(app.admin_max_expire, 86400);
    assert.equal(app.gateway_identifier, null);
    assert.equal(app.tencent_base_url, 'https://console.tim.qq.com');
    assert.equal(app.tencent_region, 'china');
  });

  test('PATCH sets them; GET and the list show them; the change is audited', async () => {
    const res = await api('PATCH', `/v1/apps/${a.sdkappid}`, { body: {
      admin_identifiers: ['administrator', 'ops'], gateway_identifier: 'administrator',
      admin_max_expire: 7200, tencent_base_url: 'https://AdminApiSGP.im.qcloud.com/' } });
    expectStatus(res, 200);
    assert.deepEqual(res.json.admin_identifiers, ['administrator', 'ops']);
    assert.equal(res.json.gateway_identifier, 'administrator');
    assert.equal(res.json.admin_max_expire, 7200);
    assert.equal(res.json.tencent_base_url, 'https://adminapisgp.im.qcloud.com');
    assert.equal(res.json.tencent_region, 'singapore');
    const { active_key_age: age, ...patched } = res.json;
    assert.ok(Number.isInteger(age) && age >= 0, `active_key_age ${age}`);
    assert.deepEqual(await getApp(a.sdkappid), patched);
    const list = await api('GET', `/v1/apps?after=${a.sdkappid - 1}&limit=1`);
    expectStatus(list, 200);
    assert.deepEqual(list.json.apps[0].admin_identifiers, ['administrator', 'ops']);
    assert.equal(list.json.apps[0].gateway_identifier, 'administrator');
    const ev = (await auditEvents(a.sdkappid, 'app.update')).pop();
    assert.deepEqual(ev.details.changed.admin_identifiers,
      { from: [], to: ['administrator', 'ops'] });
    assert.deepEqual(ev.details.changed.gateway_identifier, { from: null, to: 'administrator' });
    assert.deepEqual(ev.details.changed.admin_max_expire, { from: 86400, to: 7200 });
    assert.deepEqual(ev.details.changed.tencent_base_url,
      { from: 'https://console.tim.qq.com', to: 'https://adminapisgp.im.qcloud.com' });
  });

  const eleven = Array.from({ length: 11 }, (_, i) => `admin${i}`);
  const bad = [
    ['11 identifiers', { admin_identifiers: eleven }, 400, 'invalid_field', ['at most 10']],
    ['an identifier of 33 bytes', { admin_identifiers: ['a'.repeat(33)] }, 400,
      'bad_identifier', ['admin_identifiers[0]']],
    ['an empty identifier', { admin_identifiers: [''] }, 400, 'bad_identifier', []],
    ['a control character', { admin_identifiers: ['ok', 'bad\u0001id'] }, 400,
      'bad_identifier', ['admin_identifiers[1]']],
    ['an identifier twice', { admin_identifiers: ['ops', 'ops'], gateway_identifier: null },
      400, 'invalid_field', ['twice']],
    ['not an array', { admin_identifiers: 'administrator' }, 400, 'invalid_field',
      ['admin_identifiers']],
    ['a gateway identifier not in the list', { gateway_identifier: 'ghost' }, 400,
      'invalid_field', ['gateway_identifier', 'admin_identifiers']],
    ['the gateway\'s identifier dropped', { admin_identifiers: ['ops'] }, 400, 'invalid_field',
      ['gateway_identifier']],
    ['an http base URL', { tencent_base_url: 'http://console.tim.qq.com' }, 400,
      'invalid_field', ['https://']],
    ['a loopback base URL', { tencent_base_url: 'https://127.0.0.1:8443' }, 400,
      'invalid_field', ['tencent_base_url']],
    ['another host', { tencent_base_url: 'https://console.tim.qq.com.example.com' }, 400,
      'invalid_field', ['console.tim.qq.com']],
    ['a path', { tencent_base_url: 'https://console.tim.qq.com/v4' }, 400, 'invalid_field', []],
    ['admin_max_expire 0', { admin_max_expire: 0 }, 400, 'bad_expire', ['admin_max_expire']],
    ['admin_max_expire over max_expire', { max_expire: 15552000, admin_max_expire: 15552001 }, 400,
      'bad_expire', ['admin_max_expire']],
  ];
  for (const [what, body, status, code, names] of bad) {
    test(`PATCH refused: ${what}`, async () => {
      const before = await getApp(a.sdkappid);
      const n = (await auditEvents(a.sdkappid, 'app.update')).length;
      expectError(await api('PATCH', `/v1/apps/${a.sdkappid}`, { body }), status, code, names);
      assert.deepEqual(await getApp(a.sdkappid), before, 'the app is unchanged');
      assert.equal((await auditEvents(a.sdkappid, 'app.update')).length, n, 'no event');
    });
  }

  test('a test stand-in URL only with tencent_allow_insecure_base_url', async () => {
    const own = await startServer('admin-ids-insecure',
      { env: { USERSIGD_TENCENT_ALLOW_INSECURE_BASE_URL: 'true' } });
    servers.push(own);
    const res = await api('PATCH', `/v1/apps/${a.sdkappid}`,
      { base: own.url, body: { tencent_base_url: 'http://127.0.0.1:18443' } });
    expectStatus(res, 200);
    assert.equal(res.json.tencent_base_url, 'http://127.0.0.1:18443');
    assert.equal(res.json.tencent_region, null);
    const back = await api('PATCH', `/v1/apps/${a.sdkappid}`,
      { body: { tencent_base_url: 'https://console.tim.qq.com' } });
    expectStatus(back, 200);
  });
});

describe('who signs an administrator identifier', () => {
  let a, signer, adminSigner;
  before(async () => {
    a = await appWithKey();
    expectStatus(await api('PATCH', `/v1/apps/${a.sdkappid}`,
      { body: { admin_identifiers: ['administrator'], gateway_identifier: 'administrator' } }),
    200);
    signer = (await tokenOf({ role: 'signer', apps: [a.sdkappid] })).token;
    adminSigner = (await tokenOf({ role: 'admin_signer', apps: [a.sdkappid] })).token;
  });

  test('a signer is refused, 403 admin_identifier, and the refusal is audited', async () => {
    const res = await api('POST', `/v1/apps/${a.sdkappid}/usersigs`,
      { token: signer, body: { identifier: 'administrator' } });
    expectError(res, 403, 'admin_identifier', ['administrator', 'admin_signer']);
    const ev = (await auditEvents(a.sdkappid, 'usersig.sign'))
      .filter((e) => e.outcome === 'admin_identifier');
    assert.equal(ev.length, 1);
    assert.equal(ev[0].details.identifier, 'administrator');
    assert.match(ev[0].actor_name, /^e2e signer/);
  });

  test('the signer still signs other identifiers', async () => {
    const res = await api('POST', `/v1/apps/${a.sdkappid}/usersigs`,
      { token: signer, body: { identifier: 'alice' } });
    expectStatus(res, 200);
    crossCheck(res.json.usersig, { sdkappid: a.sdkappid, secret: a.secret, identifier: 'alice' });
  });

  test('admin_signer signs it, its default expire lowered to admin_max_expire', async () => {
    const res = await api('POST', `/v1/apps/${a.sdkappid}/usersigs`,
      { token: adminSigner, body: { identifier: 'administrator' } });
    expectStatus(res, 200);
    const j = crossCheck(res.json.usersig,
      { sdkappid: a.sdkappid, secret: a.secret, identifier: 'administrator' });
    assert.equal(j['TLS.expire'], 86400);
  });

  test('admin_signer over admin_max_expire: 400 bad_expire', async () => {
    const res = await api('POST', `/v1/apps/${a.sdkappid}/usersigs`,
      { token: adminSigner, body: { identifier: 'administrator', expire: 86401 } });
    expectError(res, 400, 'bad_expire', ['admin_max_expire']);
    const ok = await api('POST', `/v1/apps/${a.sdkappid}/usersigs`,
      { token: adminSigner, body: { identifier: 'administrator', expire: 3600 } });
    expectStatus(ok, 200);
  });

  test('a batch: the administrator line refused in place, the others signed', async () => {
    const b = await batch(a.sdkappid, 'alice\nadministrator\nbob\n', { token: signer });
    assert.equal(b.items.length, 3);
    assert.equal(b.items[1].identifier, 'administrator');
    assert.equal(b.items[1].error.code, 'admin_identifier');
    for (const i of [0, 2]) {
      crossCheck(b.items[i].usersig,
        { sdkappid: a.sdkappid, secret: a.secret, identifier: b.items[i].identifier });
    }
    assert.equal(b.last.summary.signed, 2);
    assert.equal(b.last.summary.failed, 1);
    const fin = (await auditEvents(a.sdkappid, 'usersig.batch.finish'))
      .find((e) => e.details.batch_id === b.last.summary.batch_id);
    assert.ok(fin, 'the finish event');
    assert.deepEqual(fin.details.refused,
      { admin_identifier: 1, identifier_prefix: 0, admin_identifiers: ['administrator'] });
  });

  test('a batch by admin_signer: signed, an NDJSON line over admin_max_expire refused', async () => {
    const body = [{ identifier: 'administrator' }, { identifier: 'administrator', expire: 90000 },
      { identifier: 'carol', expire: 90000 }].map((o) => JSON.stringify(o)).join('\n');
    const b = await batch(a.sdkappid, body,
      { token: adminSigner, contentType: 'application/x-ndjson' });
    const j = crossCheck(b.items[0].usersig,
      { sdkappid: a.sdkappid, secret: a.secret, identifier: 'administrator' });
    assert.equal(j['TLS.expire'], 86400);
    assert.equal(b.items[1].error.code, 'bad_expire');
    crossCheck(b.items[2].usersig, { sdkappid: a.sdkappid, secret: a.secret, identifier: 'carol' });
    assert.equal(b.last.summary.failed, 1);
  });

  test('the next sign follows a PATCH at once', async () => {
    expectStatus(await api('PATCH', `/v1/apps/${a.sdkappid}`,
      { body: { admin_identifiers: ['administrator', 'alice'] } }), 200);
    expectError(await api('POST', `/v1/apps/${a.sdkappid}/usersigs`,
      { token: signer, body: { identifier: 'alice' } }), 403, 'admin_identifier');
  });
});

describe('identifier prefixes', () => {
  let a, prefixed;
  before(async () => {
    a = await appWithKey();
    const t = await tokenOf({ role: 'signer', apps: [a.sdkappid],
      identifier_prefixes: ['user_', 'bot-'] });
    assert.deepEqual(t.identifier_prefixes, ['user_', 'bot-']);
    assert.equal(t.rest_allow, null);
    prefixed = t.token;
  });

  test('an identifier in a prefix is signed', async () => {
    const res = await api('POST', `/v1/apps/${a.sdkappid}/usersigs`,
      { token: prefixed, body: { identifier: 'user_42' } });
    expectStatus(res, 200);
    crossCheck(res.json.usersig, { sdkappid: a.sdkappid, secret: a.secret, identifier: 'user_42' });
  });

  test('one outside: 403 identifier_prefix, audited', async () => {
    expectError(await api('POST', `/v1/apps/${a.sdkappid}/usersigs`,
      { token: prefixed, body: { identifier: 'mallory' } }), 403, 'identifier_prefix', ['user_']);
    const ev = (await auditEvents(a.sdkappid, 'usersig.sign'))
      .filter((e) => e.outcome === 'identifier_prefix');
    assert.equal(ev.length, 1);
    assert.equal(ev[0].details.identifier, 'mallory');
  });

  test('a batch: the line outside refused in place', async () => {
    const b = await batch(a.sdkappid, JSON.stringify({ identifiers: ['bot-1', 'mallory', 'user_'] }),
      { token: prefixed, contentType: 'application/json' });
    assert.equal(b.items[1].error.code, 'identifier_prefix');
    crossCheck(b.items[0].usersig, { sdkappid: a.sdkappid, secret: a.secret, identifier: 'bot-1' });
    crossCheck(b.items[2].usersig, { sdkappid: a.sdkappid, secret: a.secret, identifier: 'user_' });
    const fin = (await auditEvents(a.sdkappid, 'usersig.batch.finish'))
      .find((e) => e.details.batch_id === b.last.summary.batch_id);
    assert.deepEqual(fin.details.refused,
      { admin_identifier: 0, identifier_prefix: 1, admin_identifiers: [] });
  });
});

describe('token creation: identifier_prefixes and rest_allow', () => {
  const bad = [
    ['rest_caller without rest_allow', { role: 'rest_caller' }, 'missing_field', ['rest_allow']],
    ['an empty rest_allow', { role: 'rest_caller', rest_allow: [] }, 'invalid_field',
      ['rest_allow']],
    ['a pattern without a command', { role: 'rest_caller', rest_allow: ['openim'] },
      'invalid_field', ['rest_allow[0]']],
    ['a partial wildcard', { role: 'rest_caller', rest_allow: ['openim/send*'] },
      'invalid_field', ['rest_allow[0]']],
    ['a pattern twice', { role: 'rest_caller', rest_allow: ['openim/*', 'openim/*'] },
      'invalid_field', ['twice']],
    ['33 patterns', { role: 'rest_caller',
      rest_allow: Array.from({ length: 33 }, (_, i) => `svc${i}/cmd`) }, 'invalid_field', []],
    ['rest_allow on an auditor', { role: 'auditor', rest_allow: ['openim/*'] }, 'invalid_field',
      ['rest_caller']],
    ['rest_allow on a key_manager', { role: 'key_manager', rest_allow: ['openim/*'] },
      'invalid_field', ['rest_caller']],
    ['another command on a signer', { role: 'signer', rest_allow: ['openim/*'] },
      'invalid_field', ['im_open_login_svc/multiaccount_import']],
    ['prefixes on an auditor', { role: 'auditor', identifier_prefixes: ['u'] }, 'invalid_field',
      ['signing role']],
    ['prefixes on a rest_caller', { role: 'rest_caller', rest_allow: ['openim/*'],
      identifier_prefixes: ['u'] }, 'invalid_field', ['identifier_prefixes']],
    ['an empty prefix list', { role: 'signer', identifier_prefixes: [] }, 'invalid_field',
      ['identifier_prefixes']],
    ['17 prefixes', { role: 'signer',
      identifier_prefixes: Array.from({ length: 17 }, (_, i) => `p${i}`) }, 'invalid_field', []],
    ['a prefix of 33 bytes', { role: 'signer', identifier_prefixes: ['p'.repeat(33)] },
      'invalid_field', ['identifier_prefixes[0]']],
    ['a prefix with a control character', { role: 'signer', identifier_prefixes: ['a\tb'] },
      'invalid_field', ['identifier_prefixes[0]']],
  ];
  for (const [what, body, code, names] of bad) {
    test(`refused: ${what}`, async () => {
      expectError(await newToken(body), 400, code, names);
    });
  }

  test('a rest_caller with its patterns; listed back; it may not sign or read apps', async () => {
    const t = await tokenOf({ role: 'rest_caller',
      rest_allow: ['im_open_login_svc/account_import', 'openim/*'] });
    assert.equal(t.role, 'rest_caller');
    assert.deepEqual(t.rest_allow, ['im_open_login_svc/account_import', 'openim/*']);
    const list = await api('GET', '/v1/tokens');
    expectStatus(list, 200);
    const row = list.json.tokens.find((x) => x.id === t.id);
    assert.deepEqual(row.rest_allow, ['im_open_login_svc/account_import', 'openim/*']);
    assert.equal(row.identifier_prefixes, null);
    expectError(await api('GET', '/v1/apps', { token: t.token }), 403, 'forbidden');
    expectError(await api('POST', '/v1/usersigs/verify',
      { token: t.token, body: { usersig: 'x', identifier: 'a', sdkappid: 1 } }), 403, 'forbidden');
    const ev = await api('GET', `/v1/audit?action=token.create&limit=1000`);
    expectStatus(ev, 200);
    const created = ev.json.events.find((e) => e.details.token_id === t.id);
    assert.deepEqual(created.details.rest_allow, ['im_open_login_svc/account_import', 'openim/*']);
  });

  test('an admin_signer with prefixes', async () => {
    const t = await tokenOf({ role: 'admin_signer', identifier_prefixes: ['svc_'] });
    assert.deepEqual(t.identifier_prefixes, ['svc_']);
  });
});
