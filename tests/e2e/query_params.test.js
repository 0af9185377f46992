// Query parameters are the route table's, on every route: each operation of openapi.yaml,
// called with a parameter no route takes (?zzz=1), is 400 invalid_param naming it, from the
// framework and before the handler (the paths name no existing app, key, token or webhook, so
// a handler that ran anyway would change nothing); a filter a route lacks
// (GET /v1/tokens?role=admin) is refused rather than ignored; the check comes after the token
// check (no token: 401, whatever the query); a listed parameter still works.
'use strict';

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { api, show, expectError, expectStatus, createApp, newAppId } = require('./lib');

const SPEC = path.join(__dirname, '..', '..', 'admin-api', 'openapi.yaml');

// The (method, path) of every operation, read as test_routes.c reads the file (its layout rules
// are at its top: a path at 2 spaces, a method at 4).
function operations() {
  const ops = [];
  let inPaths = false;
  let cur = null;
  for (const line of fs.readFileSync(SPEC, 'utf8').split('\n')) {
    if (/^\S/.test(line)) inPaths = line === 'paths:';
    if (!inPaths) continue;
    let m = /^ {2}(\/\S*):$/.exec(line);
    if (m) cur = m[1];
    m = /^ {4}(get|post|put|patch|delete):$/.exec(line);
    if (m && cur) ops.push({ method: m[1].toUpperCase(), pattern: cur });
  }
  return ops;
}

// Path parameters that name nothing that exists (valid for the router, unknown to the store).
const PARAMS = {
  sdkappid: '4294967295',
  version: '2147483647',
  id: '9223372036854775807',
  servicename: 'im_open_login_svc',
  command: 'account_check',
  file: 'index.html',
};

function concrete(pattern) {
  return pattern.replace(/\{(\w+)\}/g, (_, name) => {
    assert.ok(PARAMS[name], `no test value for {${name}} in ${pattern}`);
    return PARAMS[name];
  });
}

test('every route refuses a query parameter it does not take', async () => {
  const ops = operations();
  assert.ok(ops.length >= 40, `openapi.yaml read: only ${ops.length} operations`);
  for (const op of ops) {
    // No body: the query check comes before the body's (415, bad_json), on every route.
    const res = await api(op.method, `${concrete(op.pattern)}?zzz=1`);
    const err = expectError(res, 400, 'invalid_param', ['"zzz"']);
    assert.match(err.message, /this route takes/, `${op.method} ${op.pattern}: ${show(res)}`);
  }
});

test('a filter a route lacks is refused, not ignored', async () => {
  expectError(await api('GET', '/v1/tokens?role=admin'), 400, 'invalid_param',
    ['"role"', 'takes no query parameters']);
  expectError(await api('POST', `/v1/apps/${PARAMS.sdkappid}/usersigs?expire=60`,
    { body: { identifier: 'u1' } }), 400, 'invalid_param', ['"expire"']);
  // A route that takes some says which.
  expectError(await api('GET', '/v1/audit?actions=app.create'), 400, 'invalid_param',
    ['"actions"', 'sdkappid, action, actor, since, until, after, limit']);
});

test('the token is checked first: without one, the query says nothing', async () => {
  expectError(await api('GET', '/v1/tokens?role=admin', { token: null }), 401, 'unauthorized');
  expectError(await api('GET', '/v1/tokens?role=admin', { token: 'usg_1_nope' }), 401,
    'unauthorized');
});

test('a listed parameter still works', async () => {
  const a = await createApp(newAppId());
  await createApp(newAppId());
  const page = expectStatus(await api('GET', '/v1/apps?limit=1'), 200);
  assert.equal(page.apps.length, 1, JSON.stringify(page));
  const mine = expectStatus(await api('GET', `/v1/apps?after=${a.sdkappid - 1}&limit=1`), 200);
  assert.equal(mine.apps[0].sdkappid, a.sdkappid, JSON.stringify(mine));
  const ev = expectStatus(await api('GET', `/v1/audit?sdkappid=${a.sdkappid}&action=app.create`),
    200);
  assert.equal(ev.events.length, 1, JSON.stringify(ev));
});

test('the audit log\'s time bounds: Unix seconds up to 9999-12-31, or RFC 3339', async () => {
  const a = await createApp(newAppId());
  const q = (p) => api('GET', `/v1/audit?sdkappid=${a.sdkappid}&action=app.create&${p}`);
  const now = Math.floor(Date.now() / 1000);
  // The app's creation lies between a minute ago and the year 9999's last second.
  for (const p of [`since=${now - 60}`, `since=00${now - 60}`, 'until=253402300799',
    `since=${new Date((now - 60) * 1000).toISOString()}`]) {
    const ev = expectStatus(await q(p), 200);
    assert.equal(ev.events.length, 1, `${p}: ${JSON.stringify(ev)}`);
  }
  // ...and not before a minute ago, nor after now plus a minute.
  for (const p of [`until=${now - 60}`, `since=${now + 60}`]) {
    const ev = expectStatus(await q(p), 200);
    assert.equal(ev.events.length, 0, `${p}: ${JSON.stringify(ev)}`);
  }
  for (const p of ['since=253402300800', 'since=18446744073709551616', 'since=-1', 'since=1e9',
    'since=%2B1', 'since=', 'until=1%20']) {
    expectError(await q(p), 400, 'invalid_param', [p.split('=')[0]]);
  }
});
