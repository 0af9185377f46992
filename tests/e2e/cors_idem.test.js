// CORS (an allow-list of origins, off by default; preflights without a token) and Idempotency-Key
// on the POSTs that create or change something (the first reply kept in PostgreSQL for 24 h and
// replayed, across processes too).
'use strict';

const { describe, test, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const http = require('node:http');
const {
  E2E, api, show, expectError, expectStatus, newAppId, createToken, psqlOk, startServer, stopAll,
} = require('./lib');

const servers = [];
after(() => stopAll(servers));

const ALLOWED = 'https://dash.example.com';
const ALSO = 'http://127.0.0.1:3000';
const OTHER = 'https://evil.example.net';

// The CORS tests that need a server started with cors_origins: the daemon hands the setting to
// the API server in server/daemon/serve.c (api_server_config.cors_origins).
const WIRED = {};

// One request with exactly these headers (fetch may not send Origin as given); resolves to
// { status, headers, text, json }.
function raw(base, method, urlPath, headers = {}, body) {
  return new Promise((resolve, reject) => {
    const u = new URL(base + urlPath);
    const req = http.request({
      host: u.hostname, port: u.port, path: u.pathname, method, headers,
      timeout: 20000,
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => {
        let json;
        try { json = JSON.parse(text); } catch (e) { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, json, req: `${method} ${urlPath}` });
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

function preflight(base, origin, urlPath, method = 'POST') {
  const h = { 'access-control-request-method': method,
    'access-control-request-headers': 'authorization, content-type, idempotency-key' };
  if (origin) h.origin = origin;
  return raw(base, 'OPTIONS', urlPath, h);
}

let corsServer = null;
async function corsBase() {
  if (!corsServer) {
    corsServer = await startServer('cors', { env: { USERSIGD_CORS_ORIGINS: `${ALLOWED}, ${ALSO}` } });
    servers.push(corsServer);
  }
  return corsServer.url;
}

describe('CORS', () => {
  test('off by default: a preflight is 403 cors_forbidden, and no CORS header is sent', async () => {
    const p = await preflight(E2E.url, ALLOWED, '/v1/apps');
    assert.equal(p.status, 403, p.text);
    assert.equal(p.json.error.code, 'cors_forbidden');
    assert.equal(p.headers['access-control-allow-origin'], undefined);
    const g = await raw(E2E.url, 'GET', '/healthz', { origin: ALLOWED });
    assert.equal(g.status, 200);
    assert.equal(g.headers['access-control-allow-origin'], undefined);
    // A plain OPTIONS (no Access-Control-Request-Method) is no preflight: 405 as before.
    const o = await raw(E2E.url, 'OPTIONS', '/v1/apps', { origin: ALLOWED });
    assert.equal(o.status, 405, o.text);
  });

  test('a preflight from an allowed origin: 204 with the path\'s methods, no token', WIRED, async () => {
    const base = await corsBase();
    const p = await preflight(base, ALLOWED, '/v1/apps');
    assert.equal(p.status, 204, p.text);
    assert.equal(p.headers['access-control-allow-origin'], ALLOWED);
    assert.equal(p.headers['access-control-allow-methods'], 'GET, POST');
    assert.equal(p.headers['access-control-allow-headers'],
      'Authorization, Content-Type, Idempotency-Key, X-Request-Id');
    assert.equal(p.headers['access-control-max-age'], '600');
    assert.match(p.headers.vary || '', /Origin/);
    const k = await preflight(base, ALSO, '/v1/apps/123/keys/2/disable');
    assert.equal(k.status, 204, k.text);
    assert.equal(k.headers['access-control-allow-origin'], ALSO);
    assert.equal(k.headers['access-control-allow-methods'], 'POST');
    const t = await preflight(base, ALLOWED, '/v1/tokens/7', 'DELETE');
    assert.equal(t.headers['access-control-allow-methods'], 'PATCH, DELETE');
    const none = await preflight(base, ALLOWED, '/v1/nothing-here');
    assert.equal(none.status, 404, none.text);
  });

  test('a preflight from another origin, or with no origin, is 403 cors_forbidden', async () => {
    const base = await corsBase();
    for (const origin of [OTHER, `${ALLOWED}/`, 'https://dash.example.com.evil.net', null]) {
      const p = await preflight(base, origin, '/v1/apps');
      assert.equal(p.status, 403, `${origin}: ${p.text}`);
      assert.equal(p.json.error.code, 'cors_forbidden');
      assert.equal(p.headers['access-control-allow-origin'], undefined);
    }
  });

  test('Access-Control-Allow-Origin on the replies to an allowed origin only', WIRED, async () => {
    const base = await corsBase();
    const ok = await raw(base, 'GET', '/v1/apps', { origin: ALLOWED, authorization: `Bearer ${E2E.admin}` });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.headers['access-control-allow-origin'], ALLOWED);
    assert.equal(ok.headers['access-control-expose-headers'], 'X-Request-Id, Retry-After');
    assert.match(ok.headers.vary || '', /Origin/);
    // An error reply carries it too (the browser may then read the JSON error).
    const denied = await raw(base, 'GET', '/v1/apps', { origin: ALSO });
    assert.equal(denied.status, 401);
    assert.equal(denied.headers['access-control-allow-origin'], ALSO);
  });

  test('no Access-Control-Allow-Origin for an origin not on the list', async () => {
    const base = await corsBase();
    const r = await raw(base, 'GET', '/healthz', { origin: OTHER });
    assert.equal(r.status, 200);
    assert.equal(r.headers['access-control-allow-origin'], undefined);
    const twice = await raw(base, 'GET', '/healthz', { origin: [ALLOWED, ALLOWED] });
    assert.equal(twice.headers['access-control-allow-origin'], undefined);
  });

  test('a malformed cors_origins refuses to start', WIRED, async () => {
    const r = await startServer('cors-bad', { env: { USERSIGD_CORS_ORIGINS: 'https://a.example/path' },
      mayFail: true, timeoutMs: 30000 });
    if (r.failed === undefined) {
      servers.push(r);
      assert.fail(`usersigd started with a malformed cors_origins (${WIRED.todo})`);
    }
    assert.match(r.failed, /cors_origins/);
  });
});

function appCreateEvents(sdkappid) {
  return Number(psqlOk(`SELECT count(*) FROM audit_log WHERE action = 'app.create' AND sdkappid = ${sdkappid}`));
}

function idemKey() {
  return `e2e-${crypto.randomBytes(8).toString('hex')}`;
}

describe('Idempotency-Key', () => {
  test('POST /v1/apps twice with a key: one app, the same answer replayed, one audit row', async () => {
    const sdkappid = newAppId();
    const key = idemKey();
    const body = { sdkappid, name: 'idem app' };
    const first = await api('POST', '/v1/apps', { body, headers: { 'idempotency-key': key } });
    expectStatus(first, 201);
    assert.equal(first.headers.get('idempotency-replayed'), null);
    const again = await api('POST', '/v1/apps', { body, headers: { 'idempotency-key': key } });
    expectStatus(again, 201);
    assert.equal(again.headers.get('idempotency-replayed'), 'true');
    assert.deepEqual(again.json, first.json);
    assert.equal(again.text, first.text);
    assert.notEqual(again.headers.get('x-request-id'), first.headers.get('x-request-id'));
    assert.equal(appCreateEvents(sdkappid), 1);
    const got = await api('GET', `/v1/apps/${sdkappid}`);
    expectStatus(got, 200);
    assert.equal(got.json.name, 'idem app', show(got));
  });

  test('the same key with another body is 422 idempotency_key_reused; nothing is done', async () => {
    const sdkappid = newAppId();
    const key = idemKey();
    const first = await api('POST', '/v1/apps',
      { body: { sdkappid, name: 'idem a' }, headers: { 'idempotency-key': key } });
    expectStatus(first, 201);
    const other = newAppId();
    const r = await api('POST', '/v1/apps',
      { body: { sdkappid: other, name: 'idem b' }, headers: { 'idempotency-key': key } });
    expectError(r, 422, 'idempotency_key_reused');
    expectError(await api('GET', `/v1/apps/${other}`), 404, 'app_not_found');
    // Another path under the same key is another request too.
    const k = await api('POST', `/v1/apps/${sdkappid}/keys`,
      { body: { sdkappid, name: 'idem a' }, headers: { 'idempotency-key': key } });
    expectError(k, 422, 'idempotency_key_reused');
  });

  test('a refusal is kept and replayed as well; each token has its own keys', async () => {
    const sdkappid = newAppId();
    const body = { sdkappid, name: 'idem dup' };
    expectStatus(await api('POST', '/v1/apps', { body }), 201);
    const key = idemKey();
    const first = await api('POST', '/v1/apps', { body, headers: { 'idempotency-key': key } });
    expectError(first, 409, 'app_exists');
    const again = await api('POST', '/v1/apps', { body, headers: { 'idempotency-key': key } });
    expectError(again, 409, 'app_exists');
    assert.equal(again.headers.get('idempotency-replayed'), 'true');
    assert.equal(again.text, first.text);
  });

  test('another token with the same key makes its own request', async () => {
    const other = await createToken('key_manager');
    const sdkappid = newAppId();
    const key = idemKey();
    const body = { sdkappid, name: 'idem per token' };
    expectStatus(await api('POST', '/v1/apps', { body, headers: { 'idempotency-key': key } }), 201);
    const r = await api('POST', '/v1/apps', { token: other, body, headers: { 'idempotency-key': key } });
    expectError(r, 409, 'app_exists');
    assert.equal(r.headers.get('idempotency-replayed'), null);
  });

  test('concurrent requests with one key: the work is done once', async () => {
    const sdkappid = newAppId();
    const key = idemKey();
    const body = { sdkappid, name: 'idem concurrent' };
    const all = await Promise.all(Array.from({ length: 8 },
      () => api('POST', '/v1/apps', { body, headers: { 'idempotency-key': key } })));
    let created = 0;
    for (const r of all) {
      if (r.status === 201) {
        if (r.headers.get('idempotency-replayed') !== 'true') created += 1;
      } else {
        expectError(r, 409, 'idempotency_in_progress');
      }
    }
    assert.equal(created, 1, all.map(show).join('\n'));
    assert.equal(appCreateEvents(sdkappid), 1);
  });

  test('the same key through a second usersigd on the same database is replayed', async () => {
    const second = await startServer('idem-second');
    servers.push(second);
    const sdkappid = newAppId();
    const key = idemKey();
    const body = { sdkappid, name: 'idem two processes' };
    const first = await api('POST', '/v1/apps', { body, headers: { 'idempotency-key': key } });
    expectStatus(first, 201);
    const there = await api('POST', '/v1/apps',
      { base: second.url, body, headers: { 'idempotency-key': key } });
    expectStatus(there, 201);
    assert.equal(there.headers.get('idempotency-replayed'), 'true');
    assert.equal(there.text, first.text);
    assert.equal(appCreateEvents(sdkappid), 1);
  });

  test('while the first request runs, the same key is 409 idempotency_in_progress', async () => {
    const sdkappid = newAppId();
    const key = idemKey();
    const body = { sdkappid, name: 'idem running' };
    expectStatus(await api('POST', '/v1/apps', { body, headers: { 'idempotency-key': key } }), 201);
    // The row as it is between the claim and the end of the first request.
    psqlOk(`UPDATE idempotency_keys SET state = 'running', status = NULL, body = NULL WHERE key = '${key}'`);
    const r = await api('POST', '/v1/apps', { body, headers: { 'idempotency-key': key } });
    expectError(r, 409, 'idempotency_in_progress');
    assert.equal(appCreateEvents(sdkappid), 1);
  });

  test('a key older than 24 h is forgotten: the request runs again', async () => {
    const sdkappid = newAppId();
    const key = idemKey();
    const body = { sdkappid, name: 'idem old' };
    expectStatus(await api('POST', '/v1/apps', { body, headers: { 'idempotency-key': key } }), 201);
    psqlOk(`UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = '${key}'`);
    const r = await api('POST', '/v1/apps', { body, headers: { 'idempotency-key': key } });
    expectError(r, 409, 'app_exists');
    assert.equal(r.headers.get('idempotency-replayed'), null);
    assert.equal(Number(psqlOk(`SELECT count(*) FROM idempotency_keys WHERE key = '${key}' AND status = 409`)), 1);
  });

  test('a malformed key is 400 invalid_param; without the header nothing changes', async () => {
    const sdkappid = newAppId();
    const body = { sdkappid, name: 'idem bad key' };
    for (const k of ['x'.repeat(129), 'tab\there']) {
      const r = await api('POST', '/v1/apps', { body, headers: { 'idempotency-key': k } });
      expectError(r, 400, 'invalid_param');
    }
    expectError(await api('GET', `/v1/apps/${sdkappid}`), 404, 'app_not_found');
    const before = Number(psqlOk('SELECT count(*) FROM idempotency_keys'));
    const a = await api('POST', '/v1/apps', { body });
    expectStatus(a, 201);
    assert.equal(a.headers.get('idempotency-replayed'), null);
    expectError(await api('POST', '/v1/apps', { body }), 409, 'app_exists');
    assert.equal(Number(psqlOk('SELECT count(*) FROM idempotency_keys')), before);
    // Both ran: the creation and the refusal of the second are each audited.
    assert.equal(appCreateEvents(sdkappid), 2);
  });

  test('POST /v1/tokens takes no key: its reply holds a secret, which is never kept', async () => {
    const key = idemKey();
    const body = { name: `idem token ${key}`, role: 'auditor' };
    const a = await api('POST', '/v1/tokens', { body, headers: { 'idempotency-key': key } });
    expectStatus(a, 201);
    const b = await api('POST', '/v1/tokens', { body, headers: { 'idempotency-key': key } });
    expectStatus(b, 201);
    assert.notEqual(a.json.token, b.json.token);
    assert.equal(b.headers.get('idempotency-replayed'), null);
    assert.equal(Number(psqlOk(`SELECT count(*) FROM idempotency_keys WHERE key = '${key}'`)), 0);
  });

  test('POST /v1/webhooks takes no key: its reply holds the webhook\'s secret', async () => {
    const key = idemKey();
    const body = { url: `https://hooks.example.com/${key}`, events: ['key.rotated'] };
    const a = await api('POST', '/v1/webhooks', { body, headers: { 'idempotency-key': key } });
    expectStatus(a, 201);
    const b = await api('POST', '/v1/webhooks', { body, headers: { 'idempotency-key': key } });
    expectStatus(b, 201);
    try {
      assert.notEqual(a.json.id, b.json.id);
      assert.notEqual(a.json.secret, b.json.secret);
      assert.equal(b.headers.get('idempotency-replayed'), null);
      assert.equal(Number(psqlOk(`SELECT count(*) FROM idempotency_keys WHERE key = '${key}'`)), 0);
    } finally {
      for (const id of new Set([a.json.id, b.json.id])) expectStatus(await api('DELETE', `/v1/webhooks/${id}`), 200);
    }
  });

  test('POST /v1/audit/verify takes no key: a verdict is of the chain as it is now', async () => {
    const key = idemKey();
    for (let i = 0; i < 2; i++) {
      const res = await api('POST', '/v1/audit/verify', { body: {}, headers: { 'idempotency-key': key } });
      assert.equal(res.headers.get('idempotency-replayed'), null, show(res));
    }
    assert.equal(Number(psqlOk(`SELECT count(*) FROM idempotency_keys WHERE key = '${key}'`)), 0);
  });
});
