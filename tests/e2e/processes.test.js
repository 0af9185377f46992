// usersigd processes sharing one database: a restart keeps every key working, and two servers
// at once see each other's changes at once and keep one audit chain.
'use strict';

const { describe, test, after } = require('node:test');
const assert = require('node:assert/strict');
const {
  E2E, api, show, expectStatus, expectError, newSecret, appWithKey, sign, keyFile, usersig, usersigdCli,
  crossCheck, startServer, stopAll,
} = require('./lib');

const servers = [];
let second = null; // the second process, shared by the tests of 'two processes'
after(() => stopAll(servers));

async function start(name) {
  const s = await startServer(name);
  servers.push(s);
  return s;
}

// A verify or a token check answered from the other process's cache follows the change when
// that process's listener has the notification, which PostgreSQL sends at the change's commit:
// well under a millisecond, but a request can still overtake it (seen under AddressSanitizer on
// two busy cores). Asks again every 10 ms until done(reply), for 1 s at most; returns the last
// reply. (A sign is exact: its group checks the app's generation and the token in its
// transaction.)
async function soon(ask, done) {
  let r = await ask();
  for (let i = 0; i < 100 && !done(r); i++) {
    await new Promise((res) => setTimeout(res, 10));
    r = await ask();
  }
  return r;
}

function cliVerify(sdkappid, secret, identifier, token) {
  const r = usersig(['verify', '--sdkappid', String(sdkappid), '--key-file', keyFile(secret),
    '--identifier', identifier, token]);
  assert.equal(r.code, 0, `usersig verify: ${r.stdout}${r.stderr}`);
  assert.equal(r.stdout.trim(), 'ok');
}

describe('restart', () => {
  test('after a restart a key signs and verifies as before', async () => {
    let s = await start('restart-1');
    const a = await appWithKey({}, { base: s.url });
    const before = await sign(a.sdkappid, { identifier: 'grace' }, { base: s.url });
    assert.equal(before.key_version, 1);
    const r = await s.stop();
    assert.equal(r.code, 0, `usersigd exited ${JSON.stringify(r)} on SIGTERM:\n${s.log()}`);

    s = await start('restart-2');
    const v = await api('POST', '/v1/usersigs/verify',
      { base: s.url, body: { usersig: before.usersig, identifier: 'grace' } });
    expectStatus(v, 200);
    assert.equal(v.json.valid, true, show(v));
    assert.equal(v.json.key_version, 1);
    const fresh = await sign(a.sdkappid, { identifier: 'grace' }, { base: s.url });
    assert.equal(fresh.key_version, 1);
    cliVerify(a.sdkappid, a.secret, 'grace', fresh.usersig);
    cliVerify(a.sdkappid, a.secret, 'grace', before.usersig);
    crossCheck(fresh.usersig, { sdkappid: a.sdkappid, secret: a.secret, identifier: 'grace' });
    // The run's main server agrees.
    const v2 = await api('POST', '/v1/usersigs/verify',
      { body: { usersig: fresh.usersig, identifier: 'grace' } });
    assert.equal(v2.json && v2.json.valid, true, show(v2));
  });
});

describe('two processes', () => {
  test('a rotation through one is seen at once by the other', async () => {
    const p2 = await start('second');
    second = p2;
    const a = await appWithKey();
    const s2 = newSecret();
    // Warm the second process on the old key first, so a cache of it would show.
    const old = await sign(a.sdkappid, { identifier: 'heidi' }, { base: p2.url });
    assert.equal(old.key_version, 1);
    const rot = await api('POST', `/v1/apps/${a.sdkappid}/keys/rotate`, { body: { secret: s2 } });
    expectStatus(rot, 200);
    assert.equal(rot.json.active.version, 2);
    const fresh = await sign(a.sdkappid, { identifier: 'heidi' }, { base: p2.url });
    assert.equal(fresh.key_version, 2, 'the second process signed with the old key');
    cliVerify(a.sdkappid, s2, 'heidi', fresh.usersig);
    const v = await api('POST', '/v1/usersigs/verify',
      { base: p2.url, body: { usersig: old.usersig, identifier: 'heidi' } });
    assert.equal(v.json && v.json.valid, true, show(v));
    assert.equal(v.json.key_version, 1);
  });

  test('a token revoked through one is refused at once by the other', async () => {
    const p2 = second && second.proc.exitCode === null ? second : await start('second-r');
    const a = await appWithKey();
    const made = await api('POST', '/v1/tokens',
      { body: { name: 'revoke across', role: 'signer', apps: [a.sdkappid] } });
    expectStatus(made, 201);
    const tok = made.json.token;
    // Used through the second process first, so a cache of it there would show.
    const ok = await api('POST', `/v1/apps/${a.sdkappid}/usersigs`,
      { base: p2.url, token: tok, body: { identifier: 'ivan' } });
    expectStatus(ok, 200);
    expectStatus(await api('DELETE', `/v1/tokens/${made.json.id}`), 200);
    expectError(await api('POST', `/v1/apps/${a.sdkappid}/usersigs`,
      { base: p2.url, token: tok, body: { identifier: 'ivan' } }), 401, 'unauthorized');
    expectError(await soon(() => api('POST', '/v1/usersigs/verify',
      { base: p2.url, token: tok, body: { usersig: ok.json.usersig } }), (r) => r.status !== 200),
    401, 'unauthorized');
  });

  test('a key disabled through one no longer verifies through the other', async () => {
    const p2 = second && second.proc.exitCode === null ? second : await start('second-d');
    const a = await appWithKey();
    const s2 = newSecret();
    const t1 = await sign(a.sdkappid, { identifier: 'judy' }, { base: p2.url });
    const verifyOn2 = (usersig) => api('POST', '/v1/usersigs/verify',
      { base: p2.url, body: { usersig, identifier: 'judy' } });
    // The second process has the app cached, version 1 verifying.
    let v = await verifyOn2(t1.usersig);
    assert.equal(v.json && v.json.verdict, 'ok', show(v));
    expectStatus(await api('POST', `/v1/apps/${a.sdkappid}/keys/rotate`, { body: { secret: s2 } }), 200);
    expectStatus(await api('POST', `/v1/apps/${a.sdkappid}/keys/1/disable`, { body: {} }), 200);
    v = await soon(() => verifyOn2(t1.usersig), (r) => r.json && r.json.verdict !== 'ok');
    assert.equal(v.json && v.json.verdict, 'key_disabled', show(v));
    assert.equal(v.json.tencent_code, 70009);
    // And the new version, which the second process never saw, verifies there.
    const t2 = await sign(a.sdkappid, { identifier: 'judy' });
    assert.equal(t2.key_version, 2);
    v = await verifyOn2(t2.usersig);
    assert.equal(v.json && v.json.verdict, 'ok', show(v));
    assert.equal(v.json.key_version, 2);
  });

  test('interleaved writes from both keep one audit chain', async () => {
    const p2 = second && second.proc.exitCode === null ? second : await start('second-b');
    const a = await appWithKey();
    const bases = [E2E.url, p2.url];
    const jobs = [];
    for (let i = 0; i < 40; i++) {
      jobs.push(sign(a.sdkappid, { identifier: `user${i}` }, { base: bases[i % 2] }));
    }
    // A rotation in the middle, through the second process, and a PATCH through the first.
    jobs.push(api('POST', `/v1/apps/${a.sdkappid}/keys/rotate`,
      { base: p2.url, body: { secret: newSecret() } }).then((r) => expectStatus(r, 200)));
    jobs.push(api('PATCH', `/v1/apps/${a.sdkappid}`, { body: { name: 'renamed' } })
      .then((r) => expectStatus(r, 200)));
    await Promise.all(jobs);

    const ev = await api('GET', `/v1/audit?sdkappid=${a.sdkappid}&action=usersig.sign&limit=1000`);
    expectStatus(ev, 200);
    assert.equal(ev.json.events.length, 40);
    const seqs = ev.json.events.map((e) => e.seq);
    assert.equal(new Set(seqs).size, seqs.length, 'two events share a seq');

    for (const base of bases) {
      const v = await api('GET', '/v1/audit/verify', { base });
      expectStatus(v, 200);
      assert.equal(v.json.ok, true, show(v));
    }
    const cli = usersigdCli(['audit', 'verify']);
    assert.equal(cli.code, 0, `usersigd audit verify: ${cli.stdout}${cli.stderr}`);
  });
});
