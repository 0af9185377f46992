// The master key, end to end, on a database of its own: `usersigd master-key create` makes a
// key file, `usersigd rewrap` re-seals the keyring under it; after a restart with the new key
// every key version signs and verifies as before and the audit chain made before the rewrap
// still verifies, while the old master key no longer opens anything.
'use strict';

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const {
  E2E, api, show, expectStatus, newAppId, newSecret, createApp, addKey, sign, usersigdCli,
  crossCheck, startServer, stopAll, createDatabase, dropDatabase, masterKey,
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

test('rewrap under a new master key keeps keys and the audit chain', async () => {
  const db = createDatabase();
  databases.push(db);
  const oldKey = masterKey();
  const cli = (args, key) => usersigdCli(args, { env: {
    USERSIGD_DATABASE_URL: db, USERSIGD_MASTER_KEY_FILE: key } });

  let server = await startServer('rewrap-1', { dbUrl: db, masterKeyFile: oldKey });
  servers.push(server);
  const token = await server.adminToken();
  assert.ok(token, `no admin token on the first run:\n${server.log()}`);
  let opts = { base: server.url, token };
  const sdkappid = newAppId();
  const s1 = newSecret();
  const s2 = newSecret();
  await createApp(sdkappid, {}, opts);
  await addKey(sdkappid, s1, {}, opts);
  await addKey(sdkappid, s2, { activate: true }, opts);
  const t1 = await sign(sdkappid, { identifier: 'quinn' }, opts);
  assert.equal(t1.key_version, 2);
  const before = await api('GET', '/v1/audit/verify', opts);
  expectStatus(before, 200);
  assert.equal(before.json.ok, true, show(before));
  await stopAll(servers);

  // A new key file, made by usersigd itself, mode 0600.
  const newKey = path.join(E2E.work, `master-new-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
  const made = cli(['master-key', 'create', newKey], oldKey);
  assert.equal(made.code, 0, `usersigd master-key create: ${made.stdout}${made.stderr}`);
  assert.equal(fs.statSync(newKey).mode & 0o777, 0o600);
  assert.match(fs.readFileSync(newKey, 'utf8').trim(), /^[0-9a-f]{64}$/);

  const rw = cli(['rewrap', '--new-master-key-file', newKey], oldKey);
  assert.equal(rw.code, 0, `usersigd rewrap: ${rw.stdout}${rw.stderr}`);

  // The old key opens nothing any more.
  const stale = await startServer('rewrap-old', { dbUrl: db, masterKeyFile: oldKey,
    mayFail: true, timeoutMs: 30000 });
  if (stale.failed === undefined) {
    servers.push(stale);
    assert.fail(`usersigd serves with the master key of before the rewrap:\n${stale.log()}`);
  }

  server = await startServer('rewrap-2', { dbUrl: db, masterKeyFile: newKey });
  servers.push(server);
  opts = { base: server.url, token };
  const v = await api('POST', '/v1/usersigs/verify',
    { base: server.url, token, body: { usersig: t1.usersig, identifier: 'quinn' } });
  expectStatus(v, 200);
  assert.equal(v.json.valid, true, show(v));
  assert.equal(v.json.key_version, 2);
  const t2 = await sign(sdkappid, { identifier: 'quinn' }, opts);
  crossCheck(t2.usersig, { sdkappid, secret: s2, identifier: 'quinn' });
  // The retired version opens too: rotate back to it and sign.
  expectStatus(await api('POST', `/v1/apps/${sdkappid}/keys/rotate`,
    Object.assign({ body: { version: 1 } }, opts)), 200);
  const t3 = await sign(sdkappid, { identifier: 'quinn' }, opts);
  assert.equal(t3.key_version, 1);
  crossCheck(t3.usersig, { sdkappid, secret: s1, identifier: 'quinn' });

  const later = await api('GET', '/v1/audit/verify', opts);
  expectStatus(later, 200);
  assert.equal(later.json.ok, true, show(later));
  assert.ok(later.json.last_seq > before.json.last_seq);
  const ev = await api('GET', '/v1/audit?action=keyring.rewrap', opts);
  expectStatus(ev, 200);
  assert.equal(ev.json.events.length, 1, show(ev));
  const verify = cli(['audit', 'verify'], newKey);
  assert.equal(verify.code, 0, `usersigd audit verify: ${verify.stdout}${verify.stderr}`);
});
