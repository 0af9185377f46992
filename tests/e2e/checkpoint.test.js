// Signed audit checkpoints against the attacks the chain alone cannot show, each on a database
// of its own (the suite's shared chain stays intact) with its own `usersigd serve`:
//  - a checkpoint is written every N events (and every T seconds), its Ed25519 signature checks
//    with the published public key (here with Node's own crypto), and the API and
//    `usersigd audit verify --checkpoint` accept it;
//  - a checkpoint signed with another Ed25519 key is refused;
//  - the chain rewritten with the real master key (tests/e2e/audit_remac.c, the keyring code:
//    every MAC recomputed after an edit, every stored checkpoint re-signed with the checkpoint
//    key that master key unseals) verifies alone and against the stored checkpoints, but a
//    checkpoint copied outside before it, with the public key copied outside, catches it;
//  - the tail of the log cut off (the checkpoint's own event included) leaves a valid shorter
//    chain, and the outside checkpoint, and the API's latest checkpoint, catch it.
'use strict';

const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const {
  E2E, api, show, expectStatus, expectError, appWithKey, sign, usersigdCli, startServer,
  stopAll, createDatabase, dropDatabase, masterKey,
} = require('./lib');

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, {
    env: Object.assign({}, process.env, opts.env || {}), encoding: 'utf8', timeout: 60000,
  });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const REMAC = process.env.E2E_AUDIT_REMAC;

// psql as the superuser on database url.
function psqlOn(url, sql) {
  const r = run('psql', [url, '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', sql]);
  assert.equal(r.code, 0, `psql failed: ${sql}\n${r.stderr}`);
  return r.stdout.trim();
}

// The signed text of a checkpoint (openapi.yaml AuditCheckpoint).
function signedText(c) {
  return `usersigd audit checkpoint v1\n${c.seq}\n${c.mac.toLowerCase()}\n${c.at_us}\n`;
}

function cli(env, args) {
  return usersigdCli(args, { env });
}

// A server on a new database writing checkpoints as settings say; some events on it.
async function setUp(t, settings) {
  const dbUrl = createDatabase();
  const mk = masterKey();
  const servers = [];
  t.after(async () => { await stopAll(servers); dropDatabase(dbUrl); });
  const start = async (name) => {
    const s = await startServer(name, { dbUrl, masterKeyFile: mk, env: settings });
    servers.push(s);
    return s;
  };
  const srv = await start('ckpt');
  const token = await srv.adminToken();
  assert.ok(token, 'no admin token printed');
  const opts = { base: srv.url, token };
  const env = { USERSIGD_DATABASE_URL: dbUrl, USERSIGD_MASTER_KEY_FILE: mk };
  return { dbUrl, mk, srv, token, opts, env, servers, start };
}

async function someEvents(opts, n) {
  const a = await appWithKey({}, opts);
  for (let i = 0; i < n; i++) await sign(a.sdkappid, { identifier: `ck${i}` }, opts);
  return a;
}

// Waits (at most ms) for a checkpoint at seq >= minSeq; returns the latest.
async function waitCheckpoint(opts, minSeq, ms = 15000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const res = await api('GET', '/v1/audit/checkpoints?limit=1000', opts);
    expectStatus(res, 200);
    const list = res.json.checkpoints;
    if (list.length > 0 && list[list.length - 1].seq >= minSeq) return list[list.length - 1];
    if (Date.now() > deadline) throw new Error(`no checkpoint at seq >= ${minSeq}: ${show(res)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function writeJson(name, obj) {
  const file = path.join(E2E.work, `${name}-${process.pid}.json`);
  fs.writeFileSync(file, JSON.stringify(obj, null, 2));
  return file;
}

test('checkpoints every N events, published key, forged checkpoints refused, a rewrite with ' +
  'the master key caught by an outside copy', async (t) => {
  assert.ok(REMAC && fs.existsSync(REMAC), 'E2E_AUDIT_REMAC does not name the audit_remac helper');
  const { dbUrl, opts, env, servers, start } = await setUp(t, {
    USERSIGD_AUDIT_CHECKPOINT_EVENTS: '5', USERSIGD_AUDIT_CHECKPOINT_SECONDS: '0',
  });
  await someEvents(opts, 6);
  const head = Number(psqlOn(dbUrl, 'SELECT max(seq) FROM audit_log'));
  const cp = await waitCheckpoint(opts, 5);
  assert.equal(cp.algorithm, 'ed25519');
  assert.match(cp.signature, /^[A-Za-z0-9+/]{86}==$/);
  assert.equal(cp.mac, psqlOn(dbUrl, `SELECT encode(mac, 'hex') FROM audit_log WHERE seq = ${cp.seq}`));
  assert.ok(cp.seq >= 5 && cp.seq <= head, `checkpoint seq ${cp.seq}, log head ${head}`);

  // The published key: PEM and raw, one fingerprint; Node's Ed25519 checks the signature.
  const kres = await api('GET', '/v1/audit/checkpoints/key', opts);
  expectStatus(kres, 200);
  const key = kres.json;
  const raw = Buffer.from(key.public_key, 'base64');
  assert.equal(raw.length, 32);
  assert.equal(key.fingerprint, crypto.createHash('sha256').update(raw).digest('hex'));
  assert.equal(cp.key_fingerprint, key.fingerprint);
  const pub = crypto.createPublicKey(key.public_key_pem);
  assert.equal(pub.asymmetricKeyType, 'ed25519');
  assert.deepEqual(pub.export({ format: 'der', type: 'spki' }).subarray(-32), raw);
  assert.ok(crypto.verify(null, Buffer.from(signedText(cp)), pub, Buffer.from(cp.signature, 'base64')),
    'Node does not verify the checkpoint\'s signature');

  // An auditor reads them; a signer may not.
  const auditor = await api('POST', '/v1/tokens', Object.assign({ body: { name: 'aud', role: 'auditor' } }, opts));
  expectStatus(auditor, 201);
  expectStatus(await api('GET', '/v1/audit/checkpoints', { base: opts.base, token: auditor.json.token }), 200);
  const signer = await api('POST', '/v1/tokens', Object.assign({ body: { name: 'sig', role: 'signer' } }, opts));
  expectError(await api('GET', '/v1/audit/checkpoints/key', { base: opts.base, token: signer.json.token }),
    403, 'forbidden');

  // The copies kept outside the database: the checkpoint and the public key.
  const cpFile = writeJson('checkpoint', cp);
  const keyFile = path.join(E2E.work, `checkpoint-key-${process.pid}.pem`);
  fs.writeFileSync(keyFile, key.public_key_pem);

  let v = await api('POST', '/v1/audit/verify', Object.assign({ body: { checkpoint: cp } }, opts));
  expectStatus(v, 200);
  assert.equal(v.json.ok, true, show(v));
  assert.equal(v.json.last_seq, cp.seq, show(v));
  assert.equal(v.json.checkpoint.problem, 'ok', show(v));
  assert.equal(v.json.checkpoint.key, 'stored', show(v));
  v = await api('POST', '/v1/audit/verify',
    Object.assign({ body: { checkpoint: cp, public_key: key.public_key } }, opts));
  assert.equal(v.json.ok, true, show(v));
  assert.equal(v.json.checkpoint.key, 'given', show(v));
  const g = await api('GET', '/v1/audit/verify', opts);
  expectStatus(g, 200);
  assert.equal(g.json.ok, true, show(g));
  assert.ok(g.json.checkpoint && g.json.checkpoint.ok && g.json.checkpoint.seq >= cp.seq, show(g));
  let r = cli(env, ['audit', 'verify', '--checkpoint', cpFile, '--public-key', keyFile]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, new RegExp(`^ok: ${cp.seq} events up to checkpoint seq ${cp.seq}`));
  r = cli(env, ['audit', 'verify', '--checkpoint', cpFile]);
  assert.equal(r.code, 0, r.stdout + r.stderr);

  // Malformed checkpoints are 400s.
  expectError(await api('POST', '/v1/audit/verify',
    Object.assign({ body: { checkpoint: Object.assign({}, cp, { mac: 'zz' }) } }, opts)), 400, 'invalid_field');
  expectError(await api('POST', '/v1/audit/verify',
    Object.assign({ body: { checkpoint: cp, public_key: 'AAAA' } }, opts)), 400, 'invalid_field');
  expectError(await api('POST', '/v1/audit/verify', Object.assign({ body: {} }, opts)), 400, 'missing_field');

  // Forged: the real seq and mac (or a later seq), signed with another Ed25519 key.
  const forger = crypto.generateKeyPairSync('ed25519');
  for (const f of [Object.assign({}, cp), Object.assign({}, cp, { seq: cp.seq + 1000 })]) {
    f.signature = crypto.sign(null, Buffer.from(signedText(f)), forger.privateKey).toString('base64');
    v = await api('POST', '/v1/audit/verify', Object.assign({ body: { checkpoint: f } }, opts));
    expectStatus(v, 200);
    assert.equal(v.json.ok, false, show(v));
    assert.equal(v.json.checkpoint.problem, 'bad_signature', show(v));
    assert.equal(v.json.checkpoint.signature_ok, false, show(v));
    r = cli(env, ['audit', 'verify', '--checkpoint', writeJson('forged', f), '--public-key', keyFile]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /bad_signature/);
  }
  // An altered real one (its time moved) fails too.
  v = await api('POST', '/v1/audit/verify',
    Object.assign({ body: { checkpoint: Object.assign({}, cp, { at_us: cp.at_us + 1 }) } }, opts));
  assert.equal(v.json.checkpoint.problem, 'bad_signature', show(v));

  // More events and a later checkpoint, so that the rewrite below has stored checkpoints after
  // the outside copy to re-sign.
  await someEvents(opts, 5);
  await waitCheckpoint(opts, cp.seq + 5);

  // The rewrite: the server stopped, an event before the outside copy's seq edited, then every
  // MAC and every stored checkpoint made to match with the stolen master key.
  await stopAll(servers);
  const target = cp.seq - 2;
  psqlOn(dbUrl, 'BEGIN; ALTER TABLE audit_log DISABLE TRIGGER ALL; ' +
    `UPDATE audit_log SET details = '{"rewritten":true}' WHERE seq = ${target}; ` +
    'ALTER TABLE audit_log ENABLE TRIGGER ALL; COMMIT;');
  r = cli(env, ['audit', 'verify']);
  assert.equal(r.code, 1, 'the edit alone is caught by the chain');
  const remac = run(REMAC, [], { env });
  assert.equal(remac.code, 0, remac.stderr);
  const lines = remac.stdout.trim().split('\n');
  const events = lines.filter((l) => l.startsWith('event '));
  const cps = lines.filter((l) => l.startsWith('checkpoint '));
  assert.ok(events.length >= 10 && cps.length >= 2, remac.stdout);
  assert.equal(events[0].split(' ')[1], String(target));
  const sql = ['BEGIN', 'ALTER TABLE audit_log DISABLE TRIGGER ALL',
    'ALTER TABLE audit_checkpoints DISABLE TRIGGER ALL'];
  for (const l of events) {
    const [, seq, mac] = l.split(' ');
    sql.push(`UPDATE audit_log SET mac = decode('${mac}', 'hex') WHERE seq = ${seq}`);
  }
  for (const l of cps) {
    const [, seq, mac, sig] = l.split(' ');
    sql.push(`UPDATE audit_checkpoints SET mac = decode('${mac}', 'hex'), ` +
      `signature = decode('${sig}', 'hex') WHERE seq = ${seq}`);
  }
  sql.push('ALTER TABLE audit_log ENABLE TRIGGER ALL', 'ALTER TABLE audit_checkpoints ENABLE TRIGGER ALL',
    'COMMIT');
  psqlOn(dbUrl, sql.join('; ') + ';');

  // Everything inside the database now agrees ...
  r = cli(env, ['audit', 'verify']);
  assert.equal(r.code, 0, `the rewritten chain should verify alone: ${r.stdout}${r.stderr}`);
  const srv2 = await start('ckpt2');
  const opts2 = { base: srv2.url, token: opts.token };
  const g2 = await api('GET', '/v1/audit/verify', opts2);
  expectStatus(g2, 200);
  assert.equal(g2.json.ok, true, `re-signed stored checkpoints agree with the rewrite: ${show(g2)}`);
  assert.equal(g2.json.checkpoint.ok, true, show(g2));
  // ... but the copy kept outside does not.
  r = cli(env, ['audit', 'verify', '--checkpoint', cpFile, '--public-key', keyFile]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stdout, new RegExp(`checkpoint seq ${cp.seq}: mac_mismatch`));
  v = await api('POST', '/v1/audit/verify',
    Object.assign({ body: { checkpoint: cp, public_key: key.public_key } }, opts2));
  expectStatus(v, 200);
  assert.equal(v.json.ok, false, show(v));
  assert.equal(v.json.checkpoint.problem, 'mac_mismatch', show(v));
  assert.equal(v.json.checkpoint.signature_ok, true, show(v));
});

test('the tail cut off the log (the checkpoint\'s event included) is caught by the checkpoint',
  async (t) => {
    // By time only: every second while events come.
    const { dbUrl, opts, env, servers, start } = await setUp(t, {
      USERSIGD_AUDIT_CHECKPOINT_EVENTS: '0', USERSIGD_AUDIT_CHECKPOINT_SECONDS: '1',
    });
    await someEvents(opts, 3);
    const head = Number(psqlOn(dbUrl, 'SELECT max(seq) FROM audit_log'));
    const cp = await waitCheckpoint(opts, head);
    const cpFile = writeJson('tail-checkpoint', cp);
    await stopAll(servers);

    psqlOn(dbUrl, 'BEGIN; ALTER TABLE audit_log DISABLE TRIGGER ALL; ' +
      `DELETE FROM audit_log WHERE seq >= ${cp.seq - 1}; ` +
      'ALTER TABLE audit_log ENABLE TRIGGER ALL; COMMIT;');
    // The chain alone: a valid, shorter log.
    let r = cli(env, ['audit', 'verify']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`^ok: ${cp.seq - 2} events`));
    // The outside checkpoint: the event it names is gone.
    r = cli(env, ['audit', 'verify', '--checkpoint', cpFile]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`checkpoint seq ${cp.seq}: missing_event`));

    const srv2 = await start('tail2');
    const opts2 = { base: srv2.url, token: opts.token };
    const g = await api('GET', '/v1/audit/verify', opts2);
    expectStatus(g, 200);
    assert.equal(g.json.ok, false, show(g));
    assert.equal(g.json.problem, 'ok', 'the chain itself is intact');
    assert.equal(g.json.checkpoint.problem, 'missing_event', show(g));
    const v = await api('POST', '/v1/audit/verify', Object.assign({ body: { checkpoint: cp } }, opts2));
    assert.equal(v.json.ok, false, show(v));
    assert.equal(v.json.checkpoint.problem, 'missing_event', show(v));
    // The writer signs nothing over the cut log, and says why.
    for (let i = 0; i < 50 && !/removed from its end/.test(srv2.log()); i++) {
      await new Promise((res) => setTimeout(res, 100));
    }
    assert.match(srv2.log(), /removed from its end/);
  });
