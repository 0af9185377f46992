// Webhooks against the real server and PostgreSQL, with a local receiver (node:http) that checks
// every signature the way the README tells a receiver to (HMAC-SHA256 over "timestamp.body"
// with the secret shown once, and openssl's for one of them): the events of key, token and
// batch changes, a refused key reuse and a checkpoint, in order per endpoint; a receiver down
// for a while then up (nothing lost, order kept); a slow receiver (the attempt times out, is
// tried again, arrives twice with the same event id); a receiver that keeps failing (the
// delivery ends failed with its attempts listed, and is re-sent); a wrong secret or a changed
// body detected by the check; https only without webhook_allow_insecure_url; delete. A 2xx with
// a body over the 64 KiB bound delivers once; without webhook_allow_insecure_url no internal
// address is connected to, however the URL spells it or its name resolves.
'use strict';

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const net = require('node:net');
const crypto = require('node:crypto');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const {
  E2E, api, show, expectError, expectStatus, newAppId, newSecret, startServer, stopAll,
  createDatabase, dropDatabase, masterKey, usersigdCli,
} = require('./lib');

const servers = [];
const databases = [];
let dbUrl;
after(async () => {
  await stopAll(servers);
  if (dbUrl) dropDatabase(dbUrl);
  for (const db of databases) dropDatabase(db);
});

// The receiver's check, as in the README: the signature over `${timestamp}.${body}`, compared in
// constant time, and a timestamp within 5 minutes.
function signatureOk(secretHex, headers, body) {
  const ts = headers['usersigd-timestamp'];
  const sig = headers['usersigd-signature'] || '';
  if (!/^\d+$/.test(ts || '') || !sig.startsWith('v1=')) return false;
  if (Math.abs(Date.now() / 1000 - Number(ts)) > 300) return false;
  const want = crypto.createHmac('sha256', Buffer.from(secretHex, 'hex'))
    .update(`${ts}.${body}`).digest();
  const got = Buffer.from(sig.slice(3), 'hex');
  return got.length === want.length && crypto.timingSafeEqual(got, want);
}

// A receiver on 127.0.0.1 (port kept across restarts): behave(req, n) picks the reply of the
// n-th request: { status, delayMs, body }. got holds every request: { headers, body, json, ok }.
function receiver(secretRef, port = 0) {
  const r = { got: [], behave: () => ({ status: 200 }), server: null, port };
  r.start = () => new Promise((resolve) => {
    r.server = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const n = r.got.length;
        const entry = { at: Date.now(), headers: req.headers, body, json: JSON.parse(body), ok: signatureOk(secretRef.secret, req.headers, body) };
        r.got.push(entry);
        const b = r.behave(entry, n);
        setTimeout(() => { res.writeHead(b.status, { 'content-type': 'text/plain' }); res.end(b.body === undefined ? 'ok' : b.body); },
          b.delayMs || 0);
      });
    });
    r.server.listen(r.port, '127.0.0.1', () => { r.port = r.server.address().port; resolve(); });
  });
  r.stop = () => new Promise((resolve) => { r.server.closeAllConnections(); r.server.close(() => resolve()); });
  r.url = () => `http://127.0.0.1:${r.port}/hook`;
  return r;
}

async function until(what, fn, ms = 20000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

const ALL = ['key.imported', 'key.rotated', 'key.disabled', 'key.enabled', 'key.destroyed',
  'key.used_by_other_app', 'batch.finished', 'batch.aborted', 'batch.interrupted',
  'token.created', 'token.revoked'];

test('webhooks: signed events in order, receiver down then up, slow, failing, re-sent', async () => {
  dbUrl = createDatabase();
  const srv = await startServer('webhooks', {
    dbUrl, masterKeyFile: masterKey(), env: {
      USERSIGD_WEBHOOK_ALLOW_INSECURE_URL: 'true', USERSIGD_WEBHOOK_TIMEOUT: '1s',
      USERSIGD_WEBHOOK_RETRY_MIN: '200ms', USERSIGD_WEBHOOK_RETRY_MAX: '1s',
      USERSIGD_WEBHOOK_MAX_ATTEMPTS: '4', USERSIGD_AUDIT_CHECKPOINT_EVENTS: '5',
    },
  });
  servers.push(srv);
  const token = await srv.adminToken();
  const o = (extra = {}) => Object.assign({ base: srv.url, token }, extra);

  // Refusals first: nothing is made.
  let res = await api('POST', '/v1/webhooks', o({ body: { url: 'http://127.0.0.1:1/x', events: ['no.such'] } }));
  expectError(res, 400, 'invalid_field', ['no.such']);
  res = await api('POST', '/v1/webhooks', o({ body: { url: 'http://127.0.0.1:1/x', events: ['token.created', 'token.created'] } }));
  expectError(res, 400, 'invalid_field', ['twice']);
  res = await api('POST', '/v1/webhooks', o({ body: { url: 'ftp://example.com/x', events: ['token.created'] } }));
  expectError(res, 400, 'invalid_field', ['https://']);
  res = await api('POST', '/v1/webhooks', o({ body: { url: 'https://u:p@example.com/x', events: ['token.created'] } }));
  expectError(res, 400, 'invalid_field', ['user info']);
  res = await api('POST', '/v1/webhooks', o({ body: { url: 'http://127.0.0.1:1/x', events: ['token.created'], sdkappid: 999 } }));
  expectError(res, 404, 'app_not_found');
  // The run's main server has no webhook_allow_insecure_url: https only, and no loopback host.
  res = await api('POST', '/v1/webhooks', { body: { url: 'http://127.0.0.1:1/x', events: ['token.created'] } });
  expectError(res, 400, 'invalid_field', ['https://', 'webhook_allow_insecure_url']);
  res = await api('POST', '/v1/webhooks', { body: { url: 'https://127.0.0.1/x', events: ['token.created'] } });
  expectError(res, 400, 'invalid_field', ['loopback']);
  res = await api('POST', '/v1/webhooks', { body: { url: 'https://[::1]:8443/x', events: ['token.created'] } });
  expectError(res, 400, 'invalid_field', ['loopback']);
  // Other spellings of internal addresses, as libcurl would connect to them.
  for (const url of ['https://2130706433/x', 'https://127.1/x', 'https://0x7f.0.0.1/x',
    'https://0177.0.0.1/x', 'https://0/x', 'https://10.1/x', 'https://169.254.43518/latest/meta-data',
    'https://localhost./x']) {
    res = await api('POST', '/v1/webhooks', { body: { url, events: ['token.created'] } });
    expectError(res, 400, 'invalid_field', ['loopback']);
  }
  for (const url of ['https://[::1%25lo]/x', 'https://[fe80::1%25eth0]/x']) {
    res = await api('POST', '/v1/webhooks', { body: { url, events: ['token.created'] } });
    expectError(res, 400, 'invalid_field', ['zone ID']);
  }
  res = await api('POST', '/v1/webhooks', { body: { url: 'https://127.0.0.1./x', events: ['token.created'] } });
  expectError(res, 400, 'invalid_field', ['trailing dot']);
  const signer = await api('POST', '/v1/tokens', o({ body: { name: 'wh-signer', role: 'signer' } }));
  res = await api('GET', '/v1/webhooks', o({ token: signer.json.token }));
  expectError(res, 403, 'forbidden');
  res = await api('GET', '/v1/webhooks', o());
  assert.deepEqual(expectStatus(res, 200).webhooks, []);
  assert.ok(res.json.event_types.includes('key.rotation_due'));

  // Endpoint A: every change event.
  const refA = { secret: '' };
  const A = receiver(refA);
  await A.start();
  res = await api('POST', '/v1/webhooks', o({ body: { url: A.url(), events: ALL } }));
  expectStatus(res, 201);
  const hookA = res.json;
  assert.match(hookA.secret, /^[0-9a-f]{64}$/);
  refA.secret = hookA.secret;
  assert.equal(hookA.sdkappid, null);
  res = await api('GET', `/v1/webhooks/${hookA.id}`, o());
  assert.equal(expectStatus(res, 200).secret, undefined, 'the secret is shown once');
  assert.ok(!JSON.stringify((await api('GET', '/v1/webhooks', o())).json).includes(hookA.secret));
  const sealed = spawnSync('psql', [dbUrl, '-XAtq', '-c', `SELECT encode(sealed, 'hex') FROM webhooks WHERE id = ${hookA.id}`]).stdout.toString();
  assert.ok(!sealed.includes(hookA.secret), 'stored sealed, not in clear');
  // Endpoint C: the checkpoints only.
  const refC = { secret: '' };
  const C = receiver(refC);
  await C.start();
  res = await api('POST', '/v1/webhooks', o({ body: { url: C.url(), events: ['audit.checkpoint'] } }));
  refC.secret = expectStatus(res, 201).secret;

  // Changes: an app and its keys, a refused key reuse, tokens, a batch.
  const app = newAppId();
  const s1 = newSecret();
  expectStatus(await api('POST', '/v1/apps', o({ body: { sdkappid: app, name: 'wh' } })), 201);
  expectStatus(await api('POST', `/v1/apps/${app}/keys`, o({ body: { secret: s1 } })), 201);
  expectStatus(await api('POST', `/v1/apps/${app}/keys/rotate`, o({ body: { secret: newSecret() } })), 200);
  expectStatus(await api('POST', `/v1/apps/${app}/keys/1/disable`, o()), 200);
  expectStatus(await api('POST', `/v1/apps/${app}/keys/1/enable`, o()), 200);
  const other = newAppId();
  expectStatus(await api('POST', '/v1/apps', o({ body: { sdkappid: other, name: 'wh2' } })), 201);
  expectError(await api('POST', `/v1/apps/${other}/keys`, o({ body: { secret: s1 } })), 409, 'key_used_by_other_app');
  const t2 = expectStatus(await api('POST', '/v1/tokens', o({ body: { name: 'wh-t', role: 'auditor' } })), 201);
  expectStatus(await api('DELETE', `/v1/tokens/${t2.id}`, o()), 200);
  const b = await fetch(`${srv.url}/v1/apps/${app}/usersigs/batch`, {
    method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'text/plain' }, body: 'a\nb\n',
  });
  assert.equal(b.status, 200, await b.text());
  const want = ['token.created', 'key.imported', 'key.imported', 'key.rotated', 'key.disabled',
    'key.enabled', 'key.used_by_other_app', 'token.created', 'token.revoked', 'batch.finished'];
  await until('the events at A', () => A.got.length >= want.length - 1).catch((e) => {
    throw new Error(`${e.message}: got ${A.got.map((g) => g.json.type)}\n${srv.log().slice(-6000)}`);
  });
  // token.created first: the signer token made above, after A existed? No: before. Drop it.
  const types = A.got.map((g) => g.json.type);
  assert.deepEqual(types, want.slice(1), `the events in order: ${types}`);
  for (const g of A.got) {
    assert.ok(g.ok, `signature checks: ${JSON.stringify(g.headers)}`);
    assert.equal(g.headers['usersigd-event'], g.json.type);
    assert.match(g.headers['content-type'], /^application\/json/);
  }
  const ids = A.got.map((g) => Number(g.headers['usersigd-event-id']));
  assert.deepEqual(ids, [...ids].sort((x, y) => x - y), 'event ids ascending');
  const seqs = A.got.map((g) => g.json.audit_seq);
  assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y), 'in audit order');
  assert.equal(A.got[2].json.details.to, 2, 'key.rotated says from and to');
  assert.equal(A.got[5].json.sdkappid, other);
  assert.equal(A.got[8].json.details.signed, 2);
  // The same check with openssl, as the README's shell lines do it.
  const g0 = A.got[0];
  const mac = spawnSync('openssl', ['dgst', '-sha256', '-mac', 'HMAC', '-macopt', `hexkey:${hookA.secret}`],
    { input: `${g0.headers['usersigd-timestamp']}.${g0.body}` }).stdout.toString();
  assert.ok(mac.trim().endsWith(g0.headers['usersigd-signature'].slice(3)), `openssl: ${mac}`);
  // A wrong secret, or a changed body, fails the check.
  assert.equal(signatureOk(newSecret(), g0.headers, g0.body), false);
  assert.equal(signatureOk(hookA.secret, g0.headers, g0.body.replace('"key.imported"', '"key.destroyed"')), false);
  assert.equal(signatureOk(hookA.secret, Object.assign({}, g0.headers, { 'usersigd-timestamp': String(Number(g0.headers['usersigd-timestamp']) + 1) }), g0.body), false);
  // The checkpoints went to C.
  await until('a checkpoint at C', () => C.got.length >= 1);
  assert.ok(C.got[0].ok);
  assert.equal(C.got[0].json.type, 'audit.checkpoint');
  assert.match(C.got[0].json.details.signature, /\S/);

  // Down, then up: nothing lost, in order.
  await A.stop();
  const n0 = A.got.length;
  for (let i = 0; i < 3; i++) expectStatus(await api('POST', '/v1/tokens', o({ body: { name: `down-${i}`, role: 'auditor' } })), 201);
  const listDown = await until('failed attempts while down', async () => {
    const r = await api('GET', `/v1/webhooks/${hookA.id}/deliveries?after=0&limit=100`, o());
    const pend = r.json.deliveries.filter((d) => d.state === 'pending');
    return pend.length === 3 && pend[0].attempts >= 1 ? r.json : null;
  });
  const head = listDown.deliveries.find((d) => d.state === 'pending');
  assert.match(head.last_error, /connect/, JSON.stringify(head));
  await A.start();
  await until('the events after the receiver is back', () => A.got.length >= n0 + 3);
  assert.deepEqual(A.got.slice(n0).map((g) => g.json.details.name), ['down-0', 'down-1', 'down-2']);
  assert.ok(A.got.slice(n0).every((g) => g.ok));

  // Slow: the first attempt times out (1 s), the retry arrives; the receiver sees it twice.
  // Another endpoint (B) gets the same events meanwhile: a slow endpoint holds only its own.
  const refB = { secret: '' };
  const B = receiver(refB);
  await B.start();
  res = await api('POST', '/v1/webhooks', o({ body: { url: B.url(), events: ['token.created'] } }));
  refB.secret = expectStatus(res, 201).secret;
  const n1 = A.got.length;
  A.behave = (e, n) => (n === n1 ? { status: 200, delayMs: 2500 } : { status: 200 });
  expectStatus(await api('POST', '/v1/tokens', o({ body: { name: 'slow', role: 'auditor' } })), 201);
  await until('A has the slow event', () => A.got.length > n1);
  expectStatus(await api('POST', '/v1/tokens', o({ body: { name: 'slow2', role: 'auditor' } })), 201);
  await until('B has both events', () => B.got.some((g) => g.json.details.name === 'slow2'));
  const b2 = B.got.find((g) => g.json.details.name === 'slow2');
  assert.ok(b2.at < A.got[n1].at + 1000,
    `B had its next event before A's attempt timed out: ${b2.at - A.got[n1].at} ms after A's`);
  assert.deepEqual(B.got.map((g) => g.json.details.name), ['slow', 'slow2']);
  assert.ok(B.got.every((g) => g.ok));
  await until('the slow event twice, then the next', () => A.got.length >= n1 + 3);
  assert.equal(A.got[n1].headers['usersigd-event-id'], A.got[n1 + 1].headers['usersigd-event-id']);
  assert.equal(A.got[n1 + 2].json.details.name, 'slow2', 'A in order after its retry');
  let r = await api('GET', `/v1/webhooks/${hookA.id}/deliveries?after=0&limit=500`, o());
  const slow = r.json.deliveries[r.json.deliveries.length - 2];
  const slow2 = r.json.deliveries[r.json.deliveries.length - 1];
  r = await until('the slow delivery recorded', async () => {
    const x = await api('GET', `/v1/webhook-deliveries/${slow.id}`, o());
    return x.json.state === 'delivered' ? x : null;
  });
  assert.equal(r.json.attempt_list.length, 2, show(r));
  assert.match(r.json.attempt_list[0].error, /timeout/);
  assert.equal(r.json.attempt_list[1].status, 200);
  assert.equal(r.json.body.details.name, 'slow');

  // Failing: four attempts of HTTP 500, then failed; the next event still goes; re-sent.
  A.behave = () => ({ status: 500 });
  expectStatus(await api('POST', '/v1/tokens', o({ body: { name: 'fails', role: 'auditor' } })), 201);
  r = await api('GET', `/v1/webhooks/${hookA.id}/deliveries?after=${slow2.id}`, o());
  const failing = r.json.deliveries[0];
  r = await until('the delivery failed', async () => {
    const x = await api('GET', `/v1/webhook-deliveries/${failing.id}`, o());
    return x.json.state === 'failed' ? x : null;
  });
  assert.equal(r.json.attempt_list.length, 4);
  assert.ok(r.json.attempt_list.every((a) => a.status === 500 && a.error === 'HTTP 500'));
  res = await api('GET', `/v1/webhooks/${hookA.id}`, o());
  assert.equal(res.json.failed, 1);
  A.behave = () => ({ status: 204 });
  expectStatus(await api('POST', '/v1/tokens', o({ body: { name: 'after-failed', role: 'auditor' } })), 201);
  await until('the next event after a failed one', () => A.got.some((g) => g.json.details.name === 'after-failed'));
  res = await api('POST', `/v1/webhook-deliveries/${failing.id}/resend`, o());
  assert.equal(expectStatus(res, 200).state, 'pending');
  await until('the re-sent delivery', async () => (await api('GET', `/v1/webhook-deliveries/${failing.id}`, o())).json.state === 'delivered');
  res = await api('POST', `/v1/webhook-deliveries/${failing.id}/resend`, o());
  expectError(res, 409, 'invalid_state', ['not failed']);
  res = await api('POST', '/v1/webhook-deliveries/999999/resend', o());
  expectError(res, 404, 'not_found');
  const audit = await api('GET', '/v1/audit?action=webhook.resend', o());
  assert.equal(expectStatus(audit, 200).events.length, 1);

  // Delete: gone, its deliveries with it; no more posts.
  res = await api('DELETE', `/v1/webhooks/${hookA.id}`, o());
  assert.equal(expectStatus(res, 200).deleted, true);
  expectError(await api('GET', `/v1/webhooks/${hookA.id}`, o()), 404, 'not_found');
  expectError(await api('GET', `/v1/webhooks/${hookA.id}/deliveries`, o()), 404, 'not_found');
  const n2 = A.got.length;
  expectStatus(await api('POST', '/v1/tokens', o({ body: { name: 'after-delete', role: 'auditor' } })), 201);
  await new Promise((res2) => setTimeout(res2, 1500));
  assert.equal(A.got.length, n2, 'nothing sent to a deleted endpoint');
  await A.stop();
  await B.stop();
  await C.stop();
});

test('webhooks: two processes deliver once, a failed audit verification, a destroyed key, rewrap',
  async () => {
    const db = createDatabase();
    databases.push(db);
    const oldKey = masterKey();
    const env = {
      USERSIGD_WEBHOOK_ALLOW_INSECURE_URL: 'true', USERSIGD_WEBHOOK_TIMEOUT: '2s',
      USERSIGD_WEBHOOK_RETRY_MIN: '200ms', USERSIGD_WEBHOOK_RETRY_MAX: '1s',
    };
    const s1 = await startServer('webhooks-p1', { dbUrl: db, masterKeyFile: oldKey, env });
    servers.push(s1);
    const token = await s1.adminToken();
    const s2 = await startServer('webhooks-p2', { dbUrl: db, masterKeyFile: oldKey, env });
    servers.push(s2);
    const psqlDb = (sql) => {
      const r = spawnSync('psql', [db, '-XAtq', '-v', 'ON_ERROR_STOP=1', '-c', sql]);
      assert.equal(r.status, 0, r.stderr.toString());
      return r.stdout.toString().trim();
    };
    const ref = { secret: '' };
    const R = receiver(ref);
    await R.start();
    let res = await api('POST', '/v1/webhooks', { base: s2.url, token,
      body: { url: R.url(), events: ['token.created', 'audit.verify_failed', 'key.destroyed', 'key.rotation_due'] } });
    ref.secret = expectStatus(res, 201).secret;

    // Events made on both processes: each arrives once, in the audit's order.
    for (let i = 0; i < 6; i++) {
      const base = i % 2 ? s2.url : s1.url;
      expectStatus(await api('POST', '/v1/tokens', { base, token, body: { name: `p-${i}`, role: 'auditor' } }), 201);
    }
    await until('six events', () => R.got.length >= 6);
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(R.got.length, 6, 'each event once');
    assert.deepEqual(R.got.map((g) => g.json.details.name), ['p-0', 'p-1', 'p-2', 'p-3', 'p-4', 'p-5']);
    assert.ok(R.got.every((g) => g.ok));
    assert.equal(psqlDb('SELECT count(*) FROM webhook_lease'), '1');

    // A destroyed key.
    const app = newAppId();
    const o1 = { base: s1.url, token };
    expectStatus(await api('POST', '/v1/apps', Object.assign({ body: { sdkappid: app, name: 'wh-d' } }, o1)), 201);
    expectStatus(await api('POST', `/v1/apps/${app}/keys`, Object.assign({ body: { secret: newSecret() } }, o1)), 201);
    expectStatus(await api('POST', `/v1/apps/${app}/keys/rotate`, Object.assign({ body: { secret: newSecret() } }, o1)), 200);
    expectStatus(await api('POST', `/v1/apps/${app}/keys/1/destroy`, Object.assign({ body: { reason: 'reset in the console' } }, o1)), 200);
    await until('key.destroyed', () => R.got.some((g) => g.json.type === 'key.destroyed'));
    const d = R.got.find((g) => g.json.type === 'key.destroyed').json;
    assert.equal(d.sdkappid, app);
    assert.equal(d.key_version, 1);

    // A key past its app's rotate_every: reported once, whichever process checks.
    res = await api('PATCH', `/v1/apps/${app}`, Object.assign({ body: { rotate_every: 1 } }, o1));
    expectStatus(res, 200);
    const due = await until('key.rotation_due', () => R.got.find((g) => g.json.type === 'key.rotation_due'), 20000);
    assert.equal(due.json.sdkappid, app);
    assert.equal(due.json.key_version, 2);
    assert.equal(due.json.details.rotate_every, 1);
    assert.ok(due.ok);
    await new Promise((r) => setTimeout(r, 6000));
    assert.equal(R.got.filter((g) => g.json.type === 'key.rotation_due').length, 1, 'reported once');

    // A failed audit verification: an event edited behind the triggers, put back after.
    const seq = psqlDb(`SELECT seq FROM audit_log WHERE action = 'app.create' AND sdkappid = ${app}`);
    const original = psqlDb(`SELECT encode(convert_to(details, 'UTF8'), 'hex') FROM audit_log WHERE seq = ${seq}`);
    const edit = (v) => psqlDb('BEGIN; ALTER TABLE audit_log DISABLE TRIGGER ALL; ' +
      `UPDATE audit_log SET details = ${v} WHERE seq = ${seq}; ALTER TABLE audit_log ENABLE TRIGGER ALL; COMMIT;`);
    edit(`'{"tampered":true}'`);
    try {
      res = await api('GET', '/v1/audit/verify', o1);
      assert.equal(expectStatus(res, 200).ok, false, show(res));
      const f = await until('audit.verify_failed', () => R.got.find((g) => g.json.type === 'audit.verify_failed'));
      assert.equal(f.json.details.problem, 'mac_mismatch');
      assert.equal(f.json.details.bad_seq, Number(seq));
      assert.ok(f.ok);
    } finally {
      edit(`convert_from(decode('${original}', 'hex'), 'UTF8')`);
    }
    res = await api('GET', '/v1/audit/verify', o1);
    assert.equal(expectStatus(res, 200).ok, true, show(res));

    // Rewrap: the endpoint's secret is re-sealed; the same secret signs after the restart.
    await stopAll(servers);
    const cli = (args, key) => usersigdCli(args, { env: { USERSIGD_DATABASE_URL: db, USERSIGD_MASTER_KEY_FILE: key } });
    const newKey = path.join(E2E.work, `master-wh-${process.pid}`);
    assert.equal(cli(['master-key', 'create', newKey], oldKey).code, 0);
    const rw = cli(['rewrap', '--new-master-key-file', newKey], oldKey);
    assert.equal(rw.code, 0, `${rw.stdout}${rw.stderr}`);
    const s3 = await startServer('webhooks-p3', { dbUrl: db, masterKeyFile: newKey, env });
    servers.push(s3);
    const n = R.got.length;
    expectStatus(await api('POST', '/v1/tokens', { base: s3.url, token, body: { name: 'after-rewrap', role: 'auditor' } }), 201);
    await until('the event after the rewrap', () => R.got.length > n);
    assert.equal(R.got[n].json.details.name, 'after-rewrap');
    assert.ok(R.got[n].ok, 'signed with the same secret, opened under the new master key');
    fs.rmSync(newKey, { force: true });
    await R.stop();
  });

// A server of the test's own on a database of its own, with env: { db, srv, o } (o: the options
// of an admin call to it).
async function ownServer(name, env) {
  const db = createDatabase();
  databases.push(db);
  const srv = await startServer(name, { dbUrl: db, masterKeyFile: masterKey(), env });
  servers.push(srv);
  const token = await srv.adminToken();
  return { db, srv, o: (extra = {}) => Object.assign({ base: srv.url, token }, extra) };
}

test('webhooks: a 2xx with a body over the 64 KiB bound is delivered, once; the URL path in no log', async () => {
  const { srv, o } = await ownServer('webhooks-big', {
    USERSIGD_WEBHOOK_ALLOW_INSECURE_URL: 'true', USERSIGD_WEBHOOK_TIMEOUT: '2s',
    USERSIGD_WEBHOOK_RETRY_MIN: '200ms', USERSIGD_WEBHOOK_RETRY_MAX: '400ms',
    USERSIGD_WEBHOOK_MAX_ATTEMPTS: '3', USERSIGD_LOG_LEVEL: 'debug',
  });
  const ref = { secret: '' };
  const R = receiver(ref);
  await R.start();
  R.behave = () => ({ status: 200, body: 'x'.repeat(200 * 1024) });
  // A receiver whose path is its secret (as chat services' incoming webhooks are).
  const secretPath = 'T01/B02/pathsecret7f3a9c';
  let res = await api('POST', '/v1/webhooks', o({ body: { url: `${R.url()}/${secretPath}`, events: ['token.created'] } }));
  const hook = expectStatus(res, 201);
  ref.secret = hook.secret;
  expectStatus(await api('POST', '/v1/tokens', o({ body: { name: 'big-reply', role: 'auditor' } })), 201);
  const d = await until('the delivery ended', async () => {
    const r = await api('GET', `/v1/webhooks/${hook.id}/deliveries?after=0&limit=10`, o());
    const x = r.json.deliveries[0];
    return x && x.state !== 'pending' ? x : null;
  });
  res = await api('GET', `/v1/webhook-deliveries/${d.id}`, o());
  assert.equal(expectStatus(res, 200).state, 'delivered', show(res));
  assert.equal(res.json.attempt_list.length, 1, show(res));
  assert.equal(res.json.attempt_list[0].status, 200);
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(R.got.length, 1, 'sent once');
  assert.ok(R.got[0].ok);
  res = await api('GET', '/v1/audit?action=webhook.create&limit=10', o());
  const ev = expectStatus(res, 200).events.find((e) => e.details.webhook_id === hook.id);
  assert.equal(ev.details.url, `127.0.0.1:${R.port}/...`, show(res));
  assert.match(srv.log(), new RegExp(`outbound POST 127\\.0\\.0\\.1:${R.port}/\\.\\.\\.: ok 200`));
  assert.ok(!srv.log().includes('pathsecret7f3a9c'), 'the path is in no log');
  await R.stop();
});

test('webhooks: no connection to an internal address without webhook_allow_insecure_url', async () => {
  const { db, o } = await ownServer('webhooks-internal', {
    USERSIGD_WEBHOOK_TIMEOUT: '2s', USERSIGD_WEBHOOK_RETRY_MIN: '200ms',
    USERSIGD_WEBHOOK_RETRY_MAX: '400ms', USERSIGD_WEBHOOK_MAX_ATTEMPTS: '2',
  });
  // A listener that counts the connections made to it (and closes them).
  let connections = 0;
  const listener = net.createServer((sock) => { connections++; sock.destroy(); });
  await new Promise((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const port = listener.address().port;
  // A name that passes the URL rule and later resolves to 127.0.0.1: registered under a public
  // name, then pointed (as a DNS change would) at "localhost", which /etc/hosts resolves.
  let res = await api('POST', '/v1/webhooks', o({ body: { url: 'https://hooks.example.invalid/x', events: ['token.created'] } }));
  const hook = expectStatus(res, 201);
  const r = spawnSync('psql', [db, '-XAtq', '-v', 'ON_ERROR_STOP=1', '-c',
    `UPDATE webhooks SET url = 'https://localhost:${port}/hook' WHERE id = ${hook.id}`]);
  assert.equal(r.status, 0, r.stderr.toString());
  expectStatus(await api('POST', '/v1/tokens', o({ body: { name: 'internal', role: 'auditor' } })), 201);
  const d = await until('the delivery failed', async () => {
    const x = await api('GET', `/v1/webhooks/${hook.id}/deliveries?after=0&limit=10`, o());
    const y = x.json.deliveries[0];
    return y && y.state === 'failed' ? y : null;
  });
  res = await api('GET', `/v1/webhook-deliveries/${d.id}`, o());
  expectStatus(res, 200);
  assert.equal(res.json.attempt_list.length, 2, show(res));
  for (const a of res.json.attempt_list)
    assert.match(a.error, /^connect: the address (127\.0\.0\.1|::1) is internal/, show(res));
  assert.match(res.json.last_error, /is internal/, show(res));
  assert.equal(connections, 0, 'nothing connected to the internal address');
  await new Promise((resolve) => listener.close(resolve));
});
