// usersigd when things go wrong around it, each on a database of its own: a wrong master key,
// database connections cut under it, its database gone. It must refuse or answer 503 with a
// JSON error, never crash, and recover when the database is back.
'use strict';

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const {
  api, show, expectError, expectStatus, newAppId, newSecret, createApp, addKey, sign, psql,
  startServer, stopAll, createDatabase, dropDatabase, masterKey,
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

// A server on a fresh database of its own: { url, token, db, key, server }.
async function ownServer(name) {
  const db = createDatabase();
  databases.push(db);
  const key = masterKey();
  const server = await startServer(name, { dbUrl: db, masterKeyFile: key });
  servers.push(server);
  const token = await server.adminToken();
  assert.ok(token, `no admin token printed on the first run:\n${server.log()}`);
  return { url: server.url, token, db, key, server };
}

const pause = (ms) => new Promise((r) => setTimeout(r, ms));

test('another master key on a keyring\'s database: serve refuses to start', async () => {
  const own = await ownServer('mk-first');
  const r = await startServer('mk-wrong', { dbUrl: own.db, masterKeyFile: masterKey(),
    mayFail: true, timeoutMs: 30000 });
  if (r.failed === undefined) {
    servers.push(r);
    assert.fail(`usersigd serves with a master key that does not open the keyring:\n${r.log()}`);
  }
  assert.notEqual(r.exited.code, 0, r.failed);
  assert.match(r.failed, /master key|keyring/i, r.failed);
  // The first server is unaffected.
  expectStatus(await api('GET', '/readyz', { base: own.url, token: null }), 200);
});

test('connections cut by PostgreSQL: the server reconnects and goes on', async () => {
  const own = await ownServer('reconnect');
  const opts = { base: own.url, token: own.token };
  const sdkappid = newAppId();
  await createApp(sdkappid, {}, opts);
  await addKey(sdkappid, newSecret(), {}, opts);
  const dbName = /\/([^/]+)$/.exec(own.db)[1];
  const cut = psql('SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity ' +
    `WHERE datname = '${dbName}' AND pid <> pg_backend_pid()`);
  assert.equal(cut.code, 0, cut.stderr);
  assert.ok(Number(cut.stdout.trim()) >= 1, `no connection to cut: ${cut.stdout}`);
  // At most a few 503s while it reconnects; then everything works again.
  let res;
  for (let i = 0; i < 50; i++) {
    res = await api('GET', `/v1/apps/${sdkappid}`, opts);
    if (res.status === 200) break;
    expectError(res, 503, 'unavailable');
    await pause(200);
  }
  expectStatus(res, 200);
  const u = await sign(sdkappid, { identifier: 'pat' }, opts);
  assert.equal(u.key_version, 1);
  const v = await api('GET', '/v1/audit/verify', opts);
  assert.equal(v.json && v.json.ok, true, show(v));
  assert.equal(own.server.proc.exitCode, null, 'the server exited');
});

test('its database gone: readyz and the API say 503 unavailable, healthz stays 200', async () => {
  const own = await ownServer('dbgone');
  const opts = { base: own.url, token: own.token };
  await createApp(newAppId(), {}, opts);
  const dropped = dropDatabase(own.db);
  assert.equal(dropped.code, 0, dropped.stderr);
  expectStatus(await api('GET', '/healthz', { base: own.url, token: null }), 200);
  expectError(await api('GET', '/readyz', { base: own.url, token: null }), 503, 'unavailable');
  // The token cannot be checked either: 503, not 401.
  expectError(await api('GET', '/v1/apps', opts), 503, 'unavailable');
  expectError(await api('POST', '/v1/apps', Object.assign({ body: { sdkappid: newAppId(),
    name: 'x' } }, opts)), 503, 'unavailable');
  await pause(300);
  assert.equal(own.server.proc.exitCode, null, `the server exited:\n${own.server.log()}`);
  expectStatus(await api('GET', '/healthz', { base: own.url, token: null }), 200);
});
