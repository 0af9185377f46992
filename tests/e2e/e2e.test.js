// End-to-end tests of the admin API against the real usersigd (started by tests/e2e/run.sh):
// health, authentication and roles, apps and keys (UserSigs and the audit log:
// usersigs.test.js). Each test makes its own apps (unique SDKAppIDs) and keys, so tests do not
// depend on one another.
'use strict';

const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const {
  E2E, RFC3339, api, show, expectError, expectStatus, newAppId, newSecret, createApp, addKey,
  appWithKey, sign, createToken, usersigdCli, crossCheck, psqlOk,
} = require('./lib');

describe('health', () => {
  test('GET /healthz is 200 {"status":"ok"} without a token', async () => {
    const res = await api('GET', '/healthz', { token: null });
    expectStatus(res, 200);
    assert.equal(res.json.status, 'ok');
    assert.match(res.headers.get('x-request-id') || '', /^[0-9a-f]{16}$/);
  });

  test('GET /readyz is 200 ready with the schema version', async () => {
    const res = await api('GET', '/readyz', { token: null });
    expectStatus(res, 200);
    assert.equal(res.json.status, 'ready');
    // The last migration of migrations/ (0001_init.sql ...).
    const last = fs.readdirSync(path.join(__dirname, '..', '..', 'migrations'))
      .map((f) => /^(\d+)_.*\.sql$/.exec(f)).filter(Boolean).map((m) => Number(m[1]))
      .reduce((x, y) => Math.max(x, y), 0);
    assert.equal(res.json.schema_version, last, show(res));
  });

  test('an unknown path is 404 not_found, a wrong method 405 with Allow', async () => {
    expectError(await api('GET', '/v1/nothing-here'), 404, 'not_found');
    const res = await api('DELETE', '/v1/apps');
    expectError(res, 405, 'method_not_allowed');
    const allow = (res.headers.get('allow') || '').toUpperCase();
    assert.ok(allow.includes('GET') && allow.includes('POST'), `Allow: ${allow}`);
  });
});

describe('authentication and roles', () => {
  test('no token is 401 with WWW-Authenticate', async () => {
    const res = await api('GET', '/v1/apps', { token: null });
    expectError(res, 401, 'unauthorized');
    assert.match(res.headers.get('www-authenticate') || '', /^Bearer/);
  });

  test('a bad token is 401 and the reply does not repeat it', async () => {
    for (const bad of ['usg_1_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', 'garbage',
      'usg_999999_' + 'x'.repeat(43)]) {
      const res = await api('GET', '/v1/apps', { token: bad });
      expectError(res, 401, 'unauthorized');
      assert.ok(!res.text.includes(bad), 'the reply repeats the token');
      assert.match(res.headers.get('www-authenticate') || '', /^Bearer/);
    }
    // The admin token with its secret changed.
    // (The first character of the secret: the last one also holds padding bits.)
    const at = E2E.admin.indexOf('_', 4) + 1;
    const tampered = E2E.admin.slice(0, at) + (E2E.admin[at] === 'A' ? 'B' : 'A') +
      E2E.admin.slice(at + 1);
    expectError(await api('GET', '/v1/apps', { token: tampered }), 401, 'unauthorized');
  });

  test('POST /v1/tokens creates a token that works; a revoked one is 401', async () => {
    const res = await api('POST', '/v1/tokens', { body: { name: 'e2e auditor', role: 'auditor' } });
    expectStatus(res, 201);
    assert.equal(res.json.role, 'auditor');
    assert.equal(res.json.name, 'e2e auditor');
    assert.equal(res.json.apps, null);
    assert.match(res.json.created_at, RFC3339);
    assert.match(res.json.token, new RegExp(`^usg_${res.json.id}_`));
    expectStatus(await api('GET', '/v1/apps', { token: res.json.token }), 200);
    const list = await api('GET', '/v1/tokens');
    expectStatus(list, 200);
    assert.ok(list.json.tokens.some((t) => t.id === res.json.id));
    const secret = res.json.token.slice(res.json.token.indexOf('_', 4) + 1);
    assert.ok(!list.text.includes(secret), 'the list shows a secret');
    const rev = await api('DELETE', `/v1/tokens/${res.json.id}`);
    expectStatus(rev, 200);
    assert.match(rev.json.revoked_at, RFC3339);
    expectError(await api('GET', '/v1/apps', { token: res.json.token }), 401, 'unauthorized');
    expectError(await api('DELETE', '/v1/tokens/987654321'), 404, 'token_not_found');
  });

  test('a token past its ttl is 401', async () => {
    const res = await api('POST', '/v1/tokens', { body: { name: 'e2e short', role: 'auditor', ttl: 1 } });
    expectStatus(res, 201);
    assert.match(res.json.expires_at, RFC3339);
    await new Promise((r) => setTimeout(r, 2100));
    expectError(await api('GET', '/v1/apps', { token: res.json.token }), 401, 'unauthorized');
  });

  test('a refused token creation is recorded, a long unknown field name cut to 64 bytes', async () => {
    // 63 bytes (a unique prefix and "a"s), then a 2-byte UTF-8 character across the 64-byte
    // cut, then far more than an audit event may hold.
    const keep = `z${Date.now().toString(16)}`.padEnd(63, 'a');
    const body = { name: 'e2e refused', role: 'auditor', [`${keep}\u00e9${'b'.repeat(20000)}`]: 1 };
    const since = Math.floor(Date.now() / 1000) - 1;
    expectError(await api('POST', '/v1/tokens', { body }), 400, 'unknown_field');
    const ev = await api('GET', `/v1/audit?action=token.create&since=${since}&limit=1000`);
    expectStatus(ev, 200);
    const hit = ev.json.events.filter((e) => e.outcome === 'unknown_field' && e.details &&
      typeof e.details.field === 'string' && e.details.field.startsWith(keep.slice(0, 12)));
    assert.equal(hit.length, 1, show(ev));
    assert.equal(hit[0].details.field, keep);
  });

  test('`usersigd token create` makes a working scoped token', async () => {
    const a = await appWithKey();
    const b = await appWithKey();
    const r = usersigdCli(['token', 'create', '--name', 'e2e-cli-signer', '--role', 'signer',
      '--apps', String(a.sdkappid)]);
    assert.equal(r.code, 0, `usersigd token create: ${r.stdout}${r.stderr}`);
    const m = /usg_\d+_[A-Za-z0-9_-]{43}/.exec(r.stdout);
    assert.ok(m, `no token in: ${r.stdout}`);
    assert.ok(!r.stderr.includes(m[0]), 'the token is in the log');
    await sign(a.sdkappid, { identifier: 'olga' }, { token: m[0] });
    expectError(await api('POST', `/v1/apps/${b.sdkappid}/usersigs`,
      { token: m[0], body: { identifier: 'olga' } }), 403, 'forbidden');
    const ev = await api('GET', '/v1/audit?action=token.create&actor=' +
      encodeURIComponent('e2e-cli-signer'));
    expectStatus(ev, 200);
  });

  test('a scoped auditor sees only its apps and their events', async () => {
    const a = await appWithKey();
    const b = await appWithKey();
    const auditor = await createToken('auditor', [a.sdkappid]);
    const list = await api('GET', `/v1/apps?after=${a.sdkappid - 1}&limit=1000`,
      { token: auditor });
    expectStatus(list, 200);
    assert.deepEqual(list.json.apps.map((x) => x.sdkappid), [a.sdkappid]);
    const ev = await api('GET', '/v1/audit?limit=1000', { token: auditor });
    expectStatus(ev, 200);
    assert.ok(ev.json.events.length >= 2, show(ev));
    assert.ok(ev.json.events.every((e) => e.sdkappid === a.sdkappid), show(ev));
    expectError(await api('GET', `/v1/apps/${b.sdkappid}`, { token: auditor }), 403, 'forbidden');
  });

  test('every reply has an X-Request-Id; JSON replies are no-store', async () => {
    for (const res of [await api('GET', '/v1/apps', { token: null }),
      await api('GET', '/v1/apps'), await api('GET', '/v1/nothing')]) {
      assert.match(res.headers.get('x-request-id') || '', /^[0-9a-f]{16}$/, show(res));
      assert.equal(res.headers.get('cache-control'), 'no-store', show(res));
      assert.match(res.headers.get('content-type') || '', /^application\/json/, show(res));
    }
  });

  test('key_manager: apps and keys yes; audit, tokens and signing 403', async () => {
    const km = await createToken('key_manager');
    const sdkappid = newAppId();
    await createApp(sdkappid, {}, { token: km });
    await addKey(sdkappid, newSecret(), {}, { token: km });
    expectStatus(await api('GET', `/v1/apps/${sdkappid}/keys`, { token: km }), 200);
    expectError(await api('GET', '/v1/audit', { token: km }), 403, 'forbidden');
    expectError(await api('GET', '/v1/audit/verify', { token: km }), 403, 'forbidden');
    expectError(await api('POST', '/v1/tokens', { token: km, body: { name: 'x', role: 'admin' } }),
      403, 'forbidden');
    expectError(await api('GET', '/v1/tokens', { token: km }), 403, 'forbidden');
    expectError(await api('POST', `/v1/apps/${sdkappid}/usersigs`,
      { token: km, body: { identifier: 'alice' } }), 403, 'forbidden');
  });

  test('signer scoped to one app: signs there; 403 elsewhere and outside its role', async () => {
    const a = await appWithKey();
    const b = await appWithKey();
    const signer = await createToken('signer', [a.sdkappid]);
    const got = await sign(a.sdkappid, { identifier: 'alice' }, { token: signer });
    assert.equal(got.sdkappid, a.sdkappid);
    expectError(await api('POST', `/v1/apps/${b.sdkappid}/usersigs`,
      { token: signer, body: { identifier: 'alice' } }), 403, 'forbidden');
    // Verifying a token of an app outside the scope.
    const tb = await sign(b.sdkappid, { identifier: 'bob' });
    expectError(await api('POST', '/v1/usersigs/verify',
      { token: signer, body: { usersig: tb.usersig } }), 403, 'forbidden');
    const va = await api('POST', '/v1/usersigs/verify',
      { token: signer, body: { usersig: got.usersig, identifier: 'alice' } });
    expectStatus(va, 200);
    assert.equal(va.json.valid, true, show(va));
    // Outside the role.
    expectError(await api('POST', '/v1/apps',
      { token: signer, body: { sdkappid: newAppId(), name: 'x' } }), 403, 'forbidden');
    expectError(await api('GET', `/v1/apps/${a.sdkappid}/keys`, { token: signer }), 403,
      'forbidden');
    expectError(await api('POST', `/v1/apps/${a.sdkappid}/keys`,
      { token: signer, body: { secret: newSecret() } }), 403, 'forbidden');
    expectError(await api('GET', '/v1/audit', { token: signer }), 403, 'forbidden');
    expectError(await api('GET', '/v1/tokens', { token: signer }), 403, 'forbidden');
  });

  test('a scoped admin may not manage tokens; a scoped key_manager may not create other apps',
    async () => {
      const sdkappid = newAppId();
      const admin = await createToken('admin', [sdkappid]);
      expectError(await api('GET', '/v1/tokens', { token: admin }), 403, 'forbidden');
      expectError(await api('POST', '/v1/tokens',
        { token: admin, body: { name: 'x', role: 'signer' } }), 403, 'forbidden');
      const km = await createToken('key_manager', [sdkappid]);
      await createApp(sdkappid, {}, { token: km });
      expectError(await api('POST', '/v1/apps',
        { token: km, body: { sdkappid: newAppId(), name: 'x' } }), 403, 'forbidden');
      expectError(await api('GET', `/v1/apps/${newAppId()}`, { token: km }), 403, 'forbidden');
    });

  test('auditor: reads apps, keys and audit; cannot sign, verify or change', async () => {
    const a = await appWithKey();
    const auditor = await createToken('auditor');
    expectStatus(await api('GET', `/v1/apps/${a.sdkappid}`, { token: auditor }), 200);
    expectStatus(await api('GET', `/v1/apps/${a.sdkappid}/keys`, { token: auditor }), 200);
    expectStatus(await api('GET', `/v1/audit?sdkappid=${a.sdkappid}`, { token: auditor }), 200);
    expectError(await api('POST', `/v1/apps/${a.sdkappid}/usersigs`,
      { token: auditor, body: { identifier: 'alice' } }), 403, 'forbidden');
    const t = await sign(a.sdkappid, { identifier: 'alice' });
    expectError(await api('POST', '/v1/usersigs/verify',
      { token: auditor, body: { usersig: t.usersig } }), 403, 'forbidden');
    expectError(await api('POST', '/v1/apps',
      { token: auditor, body: { sdkappid: newAppId(), name: 'x' } }), 403, 'forbidden');
    expectError(await api('PATCH', `/v1/apps/${a.sdkappid}`,
      { token: auditor, body: { name: 'x' } }), 403, 'forbidden');
    expectError(await api('POST', `/v1/apps/${a.sdkappid}/keys/rotate`,
      { token: auditor, body: { secret: newSecret() } }), 403, 'forbidden');
    expectError(await api('POST', '/v1/tokens',
      { token: auditor, body: { name: 'x', role: 'admin' } }), 403, 'forbidden');
  });
});

describe('apps', () => {
  test('create is 201 with the defaults; GET returns it', async () => {
    const sdkappid = newAppId();
    const res = await api('POST', '/v1/apps', { body: { sdkappid, name: 'Shop' } });
    expectStatus(res, 201);
    assert.equal(res.json.sdkappid, sdkappid);
    assert.equal(res.json.name, 'Shop');
    assert.equal(res.json.default_expire, 15552000);
    assert.equal(res.json.max_expire, 315360000);
    assert.equal(res.json.identifier_policy, 'printable');
    assert.equal(res.json.active_key_version, null);
    assert.match(res.json.created_at, RFC3339);
    assert.match(res.json.updated_at, RFC3339);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    const got = await api('GET', `/v1/apps/${sdkappid}`);
    expectStatus(got, 200);
    assert.deepEqual(got.json, res.json);
  });

  test('a duplicate is 409 app_exists and changes nothing', async () => {
    const sdkappid = newAppId();
    const first = await createApp(sdkappid, { name: 'first' });
    expectError(await api('POST', '/v1/apps', { body: { sdkappid, name: 'second' } }), 409,
      'app_exists');
    const got = await api('GET', `/v1/apps/${sdkappid}`);
    assert.deepEqual(got.json, first);
    // The refusal is in the audit log (and only there).
    const audit = await api('GET', `/v1/audit?sdkappid=${sdkappid}&action=app.create`);
    expectStatus(audit, 200);
    assert.deepEqual(audit.json.events.map((e) => e.outcome), ['ok', 'app_exists']);
  });

  test('malformed JSON is 400 bad_json', async () => {
    expectError(await api('POST', '/v1/apps', { raw: '{"sdkappid": 1,' }), 400, 'bad_json');
    expectError(await api('POST', '/v1/apps', { raw: '[1,2]' }), 400, 'bad_json');
    expectError(await api('POST', '/v1/apps', { raw: '{"name":"a","name":"b","sdkappid":5}' }),
      400, 'bad_json');
  });

  test('a field of the wrong type is 400 invalid_field naming it', async () => {
    expectError(await api('POST', '/v1/apps', { body: { sdkappid: 'abc', name: 'x' } }), 400,
      'invalid_field', ['sdkappid']);
    expectError(await api('POST', '/v1/apps', { body: { sdkappid: newAppId(), name: 42 } }), 400,
      'invalid_field', ['name']);
    expectError(await api('POST', '/v1/apps',
      { body: { sdkappid: 4294967296, name: 'x' } }), 400, 'invalid_field', ['sdkappid']);
    expectError(await api('POST', '/v1/apps',
      { body: { sdkappid: newAppId(), name: 'x', identifier_policy: 'loose' } }), 400,
    'invalid_field', ['identifier_policy']);
  });

  test('an unknown field is 400 unknown_field naming it; a missing one missing_field',
    async () => {
      expectError(await api('POST', '/v1/apps',
        { body: { sdkappid: newAppId(), name: 'x', colour: 'red' } }), 400, 'unknown_field',
      ['colour']);
      expectError(await api('POST', '/v1/apps', { body: { name: 'x' } }), 400, 'missing_field',
        ['sdkappid']);
    });

  test('default_expire over max_expire is 400 bad_expire', async () => {
    expectError(await api('POST', '/v1/apps',
      { body: { sdkappid: newAppId(), name: 'x', default_expire: 7200, max_expire: 3600 } }),
    400, 'bad_expire');
  });

  test('an oversize body is 413 body_too_large, answered before the body is read', async () => {
    const big = JSON.stringify({ sdkappid: newAppId(), name: 'x', pad: 'p'.repeat(1100 * 1024) });
    // The answer comes as soon as the headers declare too much, and the connection closes: a
    // client still writing the body may see its write fail, so this one reads the answer as
    // it comes (fetch would give up on the failed write).
    const url = new URL('/v1/apps', E2E.url);
    const res = await new Promise((resolve, reject) => {
      const req = require('node:http').request(url, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${E2E.admin}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(big),
        },
      }, (r) => {
        let text = '';
        r.setEncoding('utf8');
        r.on('data', (d) => { text += d; });
        r.on('end', () => resolve({ status: r.statusCode, text }));
        r.on('error', reject);
      });
      // EPIPE / ECONNRESET while writing: the answer, if it came, decides; else that error.
      req.on('error', (e) => setTimeout(() => reject(e), 2000));
      req.end(big);
    });
    assert.equal(res.status, 413, res.text);
    assert.equal(JSON.parse(res.text).error.code, 'body_too_large');
  });

  test('a body not sent as JSON is 415', async () => {
    expectError(await api('POST', '/v1/apps',
      { raw: JSON.stringify({ sdkappid: newAppId(), name: 'x' }), contentType: 'text/plain' }),
    415, 'unsupported_media_type');
  });

  test('an unknown app is 404 app_not_found; a malformed id 400 invalid_param', async () => {
    const sdkappid = newAppId();
    expectError(await api('GET', `/v1/apps/${sdkappid}`), 404, 'app_not_found');
    expectError(await api('GET', `/v1/apps/${sdkappid}/keys`), 404, 'app_not_found');
    expectError(await api('PATCH', `/v1/apps/${sdkappid}`, { body: { name: 'x' } }), 404,
      'app_not_found');
    expectError(await api('POST', `/v1/apps/${sdkappid}/usersigs`,
      { body: { identifier: 'alice' } }), 404, 'app_not_found');
    expectError(await api('GET', '/v1/apps/abc'), 400, 'invalid_param');
    expectError(await api('GET', '/v1/apps/0'), 400, 'invalid_param');
    expectError(await api('GET', '/v1/apps/4294967296'), 400, 'invalid_param');
  });

  test('a wrong method on an app is 405 with Allow', async () => {
    const sdkappid = newAppId();
    await createApp(sdkappid);
    const res = await api('DELETE', `/v1/apps/${sdkappid}`);
    expectError(res, 405, 'method_not_allowed');
    const allow = (res.headers.get('allow') || '').toUpperCase();
    assert.ok(allow.includes('GET') && allow.includes('PATCH'), `Allow: ${allow}`);
  });

  test('PATCH changes the fields given and keeps the others', async () => {
    const sdkappid = newAppId();
    const before = await createApp(sdkappid,
      { name: 'before', default_expire: 86400, max_expire: 86400 });
    const res = await api('PATCH', `/v1/apps/${sdkappid}`,
      { body: { name: 'after', default_expire: 3600, identifier_policy: 'strict' } });
    expectStatus(res, 200);
    assert.equal(res.json.name, 'after');
    assert.equal(res.json.default_expire, 3600);
    assert.equal(res.json.identifier_policy, 'strict');
    assert.equal(res.json.max_expire, 86400);
    assert.equal(res.json.created_at, before.created_at);
    const got = await api('GET', `/v1/apps/${sdkappid}`);
    assert.deepEqual(got.json, res.json);
    // The result must keep default_expire <= max_expire.
    expectError(await api('PATCH', `/v1/apps/${sdkappid}`, { body: { max_expire: 60 } }), 400,
      'bad_expire');
    expectError(await api('PATCH', `/v1/apps/${sdkappid}`, { body: { sdkappid: 5 } }), 400,
      'unknown_field', ['sdkappid']);
    expectError(await api('PATCH', `/v1/apps/${sdkappid}`, { body: { name: false } }), 400,
      'invalid_field', ['name']);
    const empty = await api('PATCH', `/v1/apps/${sdkappid}`, { body: {} });
    assert.equal(empty.status, 400, show(empty));
    assert.deepEqual((await api('GET', `/v1/apps/${sdkappid}`)).json, res.json);
  });

  test('list pages in SDKAppID order', async () => {
    const ids = [newAppId(), newAppId(), newAppId()];
    for (const id of ids) await createApp(id);
    const res = await api('GET', `/v1/apps?after=${ids[0] - 1}&limit=2`);
    expectStatus(res, 200);
    assert.deepEqual(res.json.apps.map((a) => a.sdkappid), ids.slice(0, 2));
    assert.equal(res.json.next_after, ids[1]);
    const next = await api('GET', `/v1/apps?after=${res.json.next_after}&limit=1`);
    expectStatus(next, 200);
    assert.deepEqual(next.json.apps.map((a) => a.sdkappid), [ids[2]]);
    expectError(await api('GET', '/v1/apps?limit=0'), 400, 'invalid_param');
  });
});

describe('keys', () => {
  test('imports at once into one app each get a version of their own, all 201', async () => {
    const sdkappid = newAppId();
    await createApp(sdkappid);
    const n = 12;
    const res = await Promise.all(Array.from({ length: n }, () =>
      api('POST', `/v1/apps/${sdkappid}/keys`, { body: { secret: newSecret() } })));
    for (const r of res) expectStatus(r, 201);
    assert.deepEqual(res.map((r) => r.json.version).sort((a, b) => a - b),
      Array.from({ length: n }, (_, i) => i + 1));
    assert.equal(res.filter((r) => r.json.state === 'active').length, 1);
    const events = Number(psqlOk(`SELECT count(*) FROM audit_log WHERE action = 'key.import' AND sdkappid = ${sdkappid} AND outcome = 'ok'`));
    assert.equal(events, n);
  });

  test('import, list without secrets, rotate, disable the active 409, destroy', async () => {
    const sdkappid = newAppId();
    const s1 = newSecret();
    const s2 = newSecret();
    await createApp(sdkappid);

    const k1 = await api('POST', `/v1/apps/${sdkappid}/keys`, { body: { secret: s1 } });
    expectStatus(k1, 201);
    assert.equal(k1.json.version, 1);
    assert.equal(k1.json.state, 'active');
    assert.equal(k1.json.kind, 'hmac');
    assert.match(k1.json.fingerprint, /^[0-9a-f]{16}$/);
    assert.match(k1.json.activated_at, RFC3339);
    assert.ok(!k1.text.includes(s1), 'the reply holds the secret');

    const k2 = await api('POST', `/v1/apps/${sdkappid}/keys`, { body: { secret: s2 } });
    expectStatus(k2, 201);
    assert.equal(k2.json.version, 2);
    assert.equal(k2.json.state, 'pending');
    assert.notEqual(k2.json.fingerprint, k1.json.fingerprint);

    const list = await api('GET', `/v1/apps/${sdkappid}/keys`);
    expectStatus(list, 200);
    assert.deepEqual(list.json.keys.map((k) => [k.version, k.state]),
      [[1, 'active'], [2, 'pending']]);
    assert.ok(!list.text.includes(s1) && !list.text.includes(s2), 'the list holds a secret');
    for (const k of list.json.keys) {
      assert.equal(k.sdkappid, sdkappid);
      assert.ok(!('secret' in k) && !('sealed' in k), JSON.stringify(k));
    }
    assert.equal((await api('GET', `/v1/apps/${sdkappid}`)).json.active_key_version, 1);

    const rot = await api('POST', `/v1/apps/${sdkappid}/keys/rotate`, { body: { version: 2 } });
    expectStatus(rot, 200);
    assert.equal(rot.json.active.version, 2);
    assert.equal(rot.json.active.state, 'active');
    assert.equal(rot.json.retired.version, 1);
    assert.equal(rot.json.retired.state, 'retired');
    assert.match(rot.json.retired.retired_at, RFC3339);
    assert.equal((await api('GET', `/v1/apps/${sdkappid}`)).json.active_key_version, 2);

    expectError(await api('POST', `/v1/apps/${sdkappid}/keys/2/disable`), 409, 'invalid_state');
    const refused = await api('GET', `/v1/audit?sdkappid=${sdkappid}&action=key.disable`);
    expectStatus(refused, 200);
    assert.deepEqual(refused.json.events.map((e) => [e.key_version, e.outcome]),
      [[2, 'invalid_state']], show(refused));
    expectError(await api('POST', `/v1/apps/${sdkappid}/keys/2/destroy`,
      { body: { reason: 'no' } }), 409, 'invalid_state');
    expectError(await api('POST', `/v1/apps/${sdkappid}/keys/1/destroy`, { body: {} }), 400,
      'missing_field', ['reason']);
    expectError(await api('POST', `/v1/apps/${sdkappid}/keys/9/disable`), 404, 'key_not_found');

    const d = await api('POST', `/v1/apps/${sdkappid}/keys/1/destroy`,
      { body: { reason: 'leaked in a log' } });
    expectStatus(d, 200);
    assert.equal(d.json.state, 'destroyed');
    assert.equal(d.json.destroy_reason, 'leaked in a log');
    assert.match(d.json.destroyed_at, RFC3339);
    expectError(await api('POST', `/v1/apps/${sdkappid}/keys/1/destroy`,
      { body: { reason: 'again' } }), 409, 'invalid_state');
    // A destroyed key is never added again, here included.
    const again = await api('POST', `/v1/apps/${sdkappid}/keys`, { body: { secret: s1 } });
    assert.equal(again.status, 409, show(again));
    const after = await api('GET', `/v1/apps/${sdkappid}/keys`);
    assert.deepEqual(after.json.keys.map((k) => [k.version, k.state]),
      [[1, 'destroyed'], [2, 'active']]);
  });

  test('the same secret twice in one app is 409 conflict', async () => {
    const a = await appWithKey();
    const res = await api('POST', `/v1/apps/${a.sdkappid}/keys`, { body: { secret: a.secret } });
    expectError(res, 409, 'conflict');
  });

  test('bad key bodies are 400', async () => {
    const a = await appWithKey();
    const both = await api('POST', `/v1/apps/${a.sdkappid}/keys`,
      { body: { secret: newSecret(), private_key_pem: 'x' } });
    assert.equal(both.status, 400, show(both));
    const none = await api('POST', `/v1/apps/${a.sdkappid}/keys`, { body: { activate: true } });
    assert.equal(none.status, 400, show(none));
    expectError(await api('POST', `/v1/apps/${a.sdkappid}/keys`,
      { body: { secret: newSecret(), extra: 1 } }), 400, 'unknown_field', ['extra']);
    expectError(await api('POST', `/v1/apps/${a.sdkappid}/keys`,
      { body: { private_key_pem: '-----BEGIN EC PRIVATE KEY-----\nnope\n-----END EC PRIVATE KEY-----\n' } }),
    400, 'bad_key');
    const list = await api('GET', `/v1/apps/${a.sdkappid}/keys`);
    assert.equal(list.json.keys.length, 1);
  });

  test('rotate refuses what it cannot do', async () => {
    const a = await appWithKey();
    expectError(await api('POST', `/v1/apps/${a.sdkappid}/keys/rotate`, { body: { version: 7 } }),
      404, 'key_not_found');
    expectError(await api('POST', `/v1/apps/${a.sdkappid}/keys/rotate`, { body: { version: 1 } }),
      409, 'invalid_state');
    const none = await api('POST', `/v1/apps/${a.sdkappid}/keys/rotate`, { body: {} });
    assert.equal(none.status, 400, show(none));
    const two = await api('POST', `/v1/apps/${a.sdkappid}/keys/rotate`,
      { body: { version: 1, secret: newSecret() } });
    assert.equal(two.status, 400, show(two));
    const list = await api('GET', `/v1/apps/${a.sdkappid}/keys`);
    assert.deepEqual(list.json.keys.map((k) => [k.version, k.state]), [[1, 'active']]);
    expectError(await api('POST', `/v1/apps/${newAppId()}/keys/rotate`,
      { body: { secret: newSecret() } }), 404, 'app_not_found');
  });

  test('a destroyed key of app A still cannot be added to app B', async () => {
    const a = await appWithKey();
    expectStatus(await api('POST', `/v1/apps/${a.sdkappid}/keys/rotate`,
      { body: { secret: newSecret() } }), 200);
    expectStatus(await api('POST', `/v1/apps/${a.sdkappid}/keys/1/destroy`,
      { body: { reason: 'rotated out' } }), 200);
    const b = await appWithKey();
    expectError(await api('POST', `/v1/apps/${b.sdkappid}/keys`, { body: { secret: a.secret } }),
      409, 'key_used_by_other_app');
  });

  test('activate: true makes the new version active at once', async () => {
    const a = await appWithKey();
    const k = await addKey(a.sdkappid, newSecret(), { activate: true });
    assert.equal(k.version, 2);
    assert.equal(k.state, 'active');
    const list = await api('GET', `/v1/apps/${a.sdkappid}/keys`);
    assert.deepEqual(list.json.keys.map((x) => x.state), ['retired', 'active']);
  });

  test('another app\'s secret is 409 key_used_by_other_app, audited, nothing changed',
    async () => {
      const a = await appWithKey();
      const b = await appWithKey();
      const before = await api('GET', `/v1/apps/${b.sdkappid}/keys`);
      expectStatus(before, 200);
      const res = await api('POST', `/v1/apps/${b.sdkappid}/keys`, { body: { secret: a.secret } });
      expectError(res, 409, 'key_used_by_other_app');
      assert.ok(!res.text.includes(a.secret));
      const rot = await api('POST', `/v1/apps/${b.sdkappid}/keys/rotate`,
        { body: { secret: a.secret } });
      expectError(rot, 409, 'key_used_by_other_app');
      const after = await api('GET', `/v1/apps/${b.sdkappid}/keys`);
      assert.deepEqual(after.json, before.json);
      const aKeys = await api('GET', `/v1/apps/${a.sdkappid}/keys`);
      assert.equal(aKeys.json.keys.length, 1);
      const audit = await api('GET', `/v1/audit?sdkappid=${b.sdkappid}&limit=1000`);
      expectStatus(audit, 200);
      const refusals = audit.json.events.filter((e) => e.outcome === 'key_used_by_other_app');
      assert.ok(refusals.length >= 1,
        `no key_used_by_other_app refusal in B's audit log: ${audit.text.slice(0, 2000)}`);
      assert.ok(refusals.every((e) => e.details.other_sdkappid === a.sdkappid), show(audit));
      assert.ok(!audit.text.includes(a.secret), 'the audit log holds the secret');
      // A reader scoped to B does not learn which app holds the key (A is outside its scope).
      const auditor = await createToken('auditor', [b.sdkappid]);
      const seen = await api('GET', `/v1/audit?sdkappid=${b.sdkappid}&limit=1000`, { token: auditor });
      const hidden = expectStatus(seen, 200).events.filter((e) => e.outcome === 'key_used_by_other_app');
      assert.equal(hidden.length, refusals.length, show(seen));
      assert.ok(hidden.every((e) => e.details.other_sdkappid === "(outside the reader's scope)"), show(seen));
      assert.ok(!seen.text.includes(String(a.sdkappid)), show(seen));
    });

  test('rotate to a new secret: old tokens verify with the retired version', async () => {
    const a = await appWithKey();
    const old = await sign(a.sdkappid, { identifier: 'alice' });
    assert.equal(old.key_version, 1);
    const s2 = newSecret();
    const rot = await api('POST', `/v1/apps/${a.sdkappid}/keys/rotate`, { body: { secret: s2 } });
    expectStatus(rot, 200);
    assert.equal(rot.json.active.version, 2);
    assert.equal(rot.json.retired.version, 1);
    const fresh = await sign(a.sdkappid, { identifier: 'alice' });
    assert.equal(fresh.key_version, 2);
    crossCheck(fresh.usersig, { sdkappid: a.sdkappid, secret: s2, identifier: 'alice' });
    const v = await api('POST', '/v1/usersigs/verify',
      { body: { usersig: old.usersig, identifier: 'alice' } });
    expectStatus(v, 200);
    assert.equal(v.json.valid, true, show(v));
    assert.equal(v.json.key_version, 1);

    // Disabled, the retired version stops verifying; enabled again, it verifies.
    const dis = await api('POST', `/v1/apps/${a.sdkappid}/keys/1/disable`,
      { body: { reason: 'suspected leak' } });
    expectStatus(dis, 200);
    assert.equal(dis.json.state, 'disabled');
    const v2 = await api('POST', '/v1/usersigs/verify', { body: { usersig: old.usersig } });
    expectStatus(v2, 200);
    assert.equal(v2.json.valid, false, show(v2));
    assert.equal(v2.json.verdict, 'key_disabled', show(v2));
    assert.equal(v2.json.tencent_code, 70009, show(v2));
    assert.equal(v2.json.key_version, 1, show(v2));
    const en = await api('POST', `/v1/apps/${a.sdkappid}/keys/1/enable`);
    expectStatus(en, 200);
    assert.equal(en.json.state, 'retired');
    expectError(await api('POST', `/v1/apps/${a.sdkappid}/keys/1/enable`), 409, 'invalid_state');
    const v3 = await api('POST', '/v1/usersigs/verify', { body: { usersig: old.usersig } });
    assert.equal(v3.json.valid, true, show(v3));
    assert.equal(v3.json.key_version, 1);
  });
});
