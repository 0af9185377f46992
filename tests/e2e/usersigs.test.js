// End-to-end tests of the admin API against the real usersigd (started by tests/e2e/run.sh):
// signing UserSigs (checked with the usersig CLI and the official Node library), verify and its
// verdicts, and the audit log those write. Each test makes its own apps (unique SDKAppIDs) and
// keys, so tests do not depend on one another.
'use strict';

const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const {
  RFC3339, api, show, expectError, expectStatus, newAppId, newSecret, createApp, addKey,
  appWithKey, sign, keyFile, usersig, usersigdCli, crossCheck, tokens,
} = require('./lib');

const now = () => Math.floor(Date.now() / 1000);

describe('usersigs', () => {
  test('sign: the token verifies with the usersig CLI and the Node library', async () => {
    const a = await appWithKey();
    const t0 = now();
    const res = await api('POST', `/v1/apps/${a.sdkappid}/usersigs`,
      { body: { identifier: 'alice' } });
    expectStatus(res, 200);
    const u = res.json;
    assert.equal(u.sdkappid, a.sdkappid);
    assert.equal(u.identifier, 'alice');
    assert.equal(u.key_version, 1);
    assert.ok(Math.abs(u.issued_at - t0) <= 5, `issued_at ${u.issued_at}, now ${t0}`);
    assert.equal(u.expire_at, u.issued_at + 15552000);
    assert.equal(u.expire, 15552000);
    assert.match(u.usersig, /^[A-Za-z0-9*_-]+$/);

    const cli = usersig(['verify', '--sdkappid', String(a.sdkappid), '--key-file',
      keyFile(a.secret), '--identifier', 'alice', u.usersig]);
    assert.equal(cli.code, 0, `usersig verify: ${cli.stdout}${cli.stderr}`);
    assert.equal(cli.stdout.trim(), 'ok');
    const wrong = usersig(['verify', '--sdkappid', String(a.sdkappid), '--key-file',
      keyFile(newSecret()), '--identifier', 'alice', u.usersig]);
    assert.notEqual(wrong.code, 0, 'a token verified with another secret');

    // Counted on the key, recorded in the audit log, the token itself not kept.
    const keys = await api('GET', `/v1/apps/${a.sdkappid}/keys`);
    expectStatus(keys, 200);
    assert.equal(keys.json.keys[0].sign_count, 1, show(keys));
    assert.match(keys.json.keys[0].last_used_at || '', RFC3339, show(keys));
    const audit = await api('GET', `/v1/audit?sdkappid=${a.sdkappid}&action=usersig.sign`);
    expectStatus(audit, 200);
    assert.equal(audit.json.events.length, 1, show(audit));
    assert.equal(audit.json.events[0].key_version, 1);
    assert.ok(!audit.text.includes(u.usersig), 'the audit log holds the token');

    const j = crossCheck(u.usersig, { sdkappid: a.sdkappid, secret: a.secret, identifier: 'alice' });
    assert.equal(j['TLS.time'], u.issued_at);
    assert.equal(j['TLS.expire'], 15552000);
    assert.ok(!('TLS.userbuf' in j));
  });

  test('expire: default, explicit, over max_expire 400 bad_expire', async () => {
    const a = await appWithKey({ default_expire: 600, max_expire: 3600 });
    const d = await sign(a.sdkappid, { identifier: 'bob' });
    assert.equal(d.expire_at - d.issued_at, 600);
    const e = await sign(a.sdkappid, { identifier: 'bob', expire: 3600 });
    assert.equal(e.expire_at - e.issued_at, 3600);
    crossCheck(e.usersig, { sdkappid: a.sdkappid, secret: a.secret, identifier: 'bob' });
    expectError(await api('POST', `/v1/apps/${a.sdkappid}/usersigs`,
      { body: { identifier: 'bob', expire: 3601 } }), 400, 'bad_expire');
    expectError(await api('POST', `/v1/apps/${a.sdkappid}/usersigs`,
      { body: { identifier: 'bob', expire: 0 } }), 400, 'bad_expire');
  });

  test('bad identifiers are 400 bad_identifier', async () => {
    const a = await appWithKey();
    for (const identifier of ['x'.repeat(33), 'tab\there', 'caf\u00e9', '']) {
      expectError(await api('POST', `/v1/apps/${a.sdkappid}/usersigs`, { body: { identifier } }),
        400, 'bad_identifier');
    }
    expectError(await api('POST', `/v1/apps/${a.sdkappid}/usersigs`, { body: {} }), 400,
      'missing_field', ['identifier']);
    expectError(await api('POST', `/v1/apps/${a.sdkappid}/usersigs`,
      { body: { identifier: 7 } }), 400, 'invalid_field', ['identifier']);
    // 32 bytes of printable ASCII are fine under the default policy, not under strict.
    const edge = 'A b!~' + 'x'.repeat(27);
    const ok = await sign(a.sdkappid, { identifier: edge });
    crossCheck(ok.usersig, { sdkappid: a.sdkappid, secret: a.secret, identifier: edge });
    const s = await appWithKey({ identifier_policy: 'strict' });
    expectError(await api('POST', `/v1/apps/${s.sdkappid}/usersigs`,
      { body: { identifier: 'a b' } }), 400, 'bad_identifier');
    await sign(s.sdkappid, { identifier: 'user_01-x' });
  });

  test('an app without an active key is 409 invalid_state', async () => {
    const sdkappid = newAppId();
    await createApp(sdkappid);
    expectError(await api('POST', `/v1/apps/${sdkappid}/usersigs`,
      { body: { identifier: 'alice' } }), 409, 'invalid_state');
  });

  test('PrivateMapKey with room_id and room_str', async () => {
    const a = await appWithKey();
    const r = await sign(a.sdkappid, { identifier: 'carol', room_id: 1234, privilege_map: 3 });
    const j = crossCheck(r.usersig, { sdkappid: a.sdkappid, secret: a.secret, identifier: 'carol' });
    assert.equal(typeof j['TLS.userbuf'], 'string');
    const ub = tokens.parseUserbuf(Buffer.from(j['TLS.userbuf'], 'base64'));
    assert.equal(ub.version, 0);
    assert.equal(ub.account, 'carol');
    assert.equal(ub.sdkappid, a.sdkappid);
    assert.equal(ub.room_id, 1234);
    assert.equal(ub.privilege_map, 3);
    assert.equal(ub.expire_at, r.expire_at);
    const cli = usersig(['verify', '--sdkappid', String(a.sdkappid), '--key-file',
      keyFile(a.secret), '--identifier', 'carol', '--room-id', '1234', r.usersig]);
    assert.equal(cli.code, 0, `usersig verify: ${cli.stdout}${cli.stderr}`);

    const s = await sign(a.sdkappid, { identifier: 'carol', room_str: 'room-a' });
    const js = crossCheck(s.usersig, { sdkappid: a.sdkappid, secret: a.secret, identifier: 'carol' });
    const ubs = tokens.parseUserbuf(Buffer.from(js['TLS.userbuf'], 'base64'));
    assert.equal(ubs.version, 1);
    assert.equal(ubs.room_str, 'room-a');
    assert.equal(ubs.privilege_map, 255);

    expectError(await api('POST', `/v1/apps/${a.sdkappid}/usersigs`,
      { body: { identifier: 'carol', room_id: 1, room_str: 'x' } }), 400, 'bad_room');
    expectError(await api('POST', `/v1/apps/${a.sdkappid}/usersigs`,
      { body: { identifier: 'carol', privilege_map: 3 } }), 400, 'bad_privilege');
    expectError(await api('POST', `/v1/apps/${a.sdkappid}/usersigs`,
      { body: { identifier: 'carol', room_id: 1, privilege_map: 256 } }), 400, 'bad_privilege');
  });

  test('verify: valid with key_version; wrong identifier 70013; malformed', async () => {
    const a = await appWithKey();
    const u = await sign(a.sdkappid, { identifier: 'dave' });
    const v = await api('POST', '/v1/usersigs/verify',
      { body: { usersig: u.usersig, identifier: 'dave', sdkappid: a.sdkappid } });
    expectStatus(v, 200);
    assert.equal(v.json.valid, true, show(v));
    assert.equal(v.json.verdict, 'ok');
    assert.equal(v.json.tencent_code, 0);
    assert.equal(v.json.key_version, 1);
    assert.equal(v.json.sdkappid, a.sdkappid);
    assert.equal(v.json.identifier, 'dave');
    assert.equal(v.json.issued_at, u.issued_at);
    assert.equal(v.json.expire_at, u.expire_at);

    const w = await api('POST', '/v1/usersigs/verify',
      { body: { usersig: u.usersig, identifier: 'mallory' } });
    expectStatus(w, 200);
    assert.equal(w.json.valid, false);
    assert.equal(w.json.verdict, 'identifier_mismatch');
    assert.equal(w.json.tencent_code, 70013);

    const m = await api('POST', '/v1/usersigs/verify', { body: { usersig: 'not-a-token' } });
    expectStatus(m, 200);
    assert.equal(m.json.valid, false);
    assert.equal(m.json.verdict, 'malformed');

    expectError(await api('POST', '/v1/usersigs/verify', { body: {} }), 400, 'missing_field',
      ['usersig']);
    expectError(await api('POST', '/v1/usersigs/verify',
      { body: { usersig: u.usersig, sdkappid: newAppId() } }), 404, 'app_not_found');
  });

  test('verify: a token signed with app A\'s key claiming app B is 70009 signed_by A',
    async () => {
      const a = await appWithKey();
      const b = await appWithKey();
      const made = usersig(['sign', '--sdkappid', String(b.sdkappid), '--key-file',
        keyFile(a.secret), '--identifier', 'erin', '--expire', '3600']);
      assert.equal(made.code, 0, `usersig sign: ${made.stderr}`);
      const token = made.stdout.trim();
      const v = await api('POST', '/v1/usersigs/verify',
        { body: { usersig: token, identifier: 'erin' } });
      expectStatus(v, 200);
      assert.equal(v.json.valid, false, show(v));
      assert.equal(v.json.verdict, 'signature_mismatch');
      assert.equal(v.json.tencent_code, 70009);
      assert.equal(v.json.sdkappid, b.sdkappid);
      assert.deepEqual(v.json.signed_by, { sdkappid: a.sdkappid, key_version: a.version });
    });
});

describe('verify verdicts', () => {
  // A token made offline with the usersig CLI.
  function offline(sdkappid, secret, identifier, extra = []) {
    const r = usersig(['sign', '--sdkappid', String(sdkappid), '--key-file', keyFile(secret),
      '--identifier', identifier, ...extra]);
    assert.equal(r.code, 0, `usersig sign: ${r.stderr}`);
    return r.stdout.trim();
  }
  async function verify(body) {
    const res = await api('POST', '/v1/usersigs/verify', { body });
    expectStatus(res, 200);
    return res.json;
  }

  test('expired: 70001, the matching version still named', async () => {
    const a = await appWithKey();
    const token = offline(a.sdkappid, a.secret, 'judy',
      ['--time', String(now() - 7200), '--expire', '60']);
    const v = await verify({ usersig: token, identifier: 'judy' });
    assert.equal(v.valid, false);
    assert.equal(v.verdict, 'expired');
    assert.equal(v.tencent_code, 70001);
    assert.equal(v.key_version, 1);
    assert.equal(v.expire, 60);
  });

  test('a pending version\'s signature is key_pending 70009 naming it', async () => {
    const a = await appWithKey();
    const s2 = newSecret();
    await addKey(a.sdkappid, s2);
    const v = await verify({ usersig: offline(a.sdkappid, s2, 'kim'), identifier: 'kim' });
    assert.equal(v.valid, false);
    assert.equal(v.verdict, 'key_pending');
    assert.equal(v.tencent_code, 70009);
    assert.equal(v.key_version, 2);
  });

  test('an app without a key is no_key 70016; an unknown secret signature_mismatch', async () => {
    const sdkappid = newAppId();
    await createApp(sdkappid);
    const v = await verify({ usersig: offline(sdkappid, newSecret(), 'leo') });
    assert.equal(v.valid, false);
    assert.equal(v.verdict, 'no_key');
    assert.equal(v.tencent_code, 70016);
    const a = await appWithKey();
    const w = await verify({ usersig: offline(a.sdkappid, newSecret(), 'leo') });
    assert.equal(w.valid, false);
    assert.equal(w.verdict, 'signature_mismatch');
    assert.equal(w.tencent_code, 70009);
    assert.ok(w.signed_by === undefined || w.signed_by === null, JSON.stringify(w));
  });

  test('a destroyed version verifies nothing', async () => {
    const a = await appWithKey();
    const old = await sign(a.sdkappid, { identifier: 'mia' });
    expectStatus(await api('POST', `/v1/apps/${a.sdkappid}/keys/rotate`,
      { body: { secret: newSecret() } }), 200);
    expectStatus(await api('POST', `/v1/apps/${a.sdkappid}/keys/1/destroy`,
      { body: { reason: 'end of life' } }), 200);
    const v = await verify({ usersig: old.usersig, identifier: 'mia' });
    assert.equal(v.valid, false, JSON.stringify(v));
    assert.notEqual(v.verdict, 'ok');
  });

  test('a PrivateMapKey verifies with its room', async () => {
    const a = await appWithKey();
    const r = await sign(a.sdkappid, { identifier: 'nina', room_str: 'lobby' });
    const v = await verify({ usersig: r.usersig, identifier: 'nina' });
    assert.equal(v.valid, true, JSON.stringify(v));
    assert.equal(v.key_version, 1);
  });
});

describe('audit', () => {
  test('lists the app\'s events in seq order, pages, and the chain verifies', async () => {
    const a = await appWithKey();
    const rot = await api('POST', `/v1/apps/${a.sdkappid}/keys/rotate`,
      { body: { secret: newSecret() } });
    expectStatus(rot, 200);
    await sign(a.sdkappid, { identifier: 'frank' });

    const res = await api('GET', `/v1/audit?sdkappid=${a.sdkappid}`);
    expectStatus(res, 200);
    const ev = res.json.events;
    assert.ok(!res.text.includes(a.secret), 'the audit log holds a secret');
    const actions = ev.map((e) => e.action);
    const keyAdd = 'key.import'; // the action name in openapi.yaml's AuditEvent
    for (const want of ['app.create', keyAdd, 'key.rotate', 'usersig.sign']) {
      assert.ok(actions.includes(want), `no ${want} in ${JSON.stringify(actions)}`);
    }
    assert.ok(actions.indexOf('app.create') < actions.indexOf(keyAdd));
    assert.ok(actions.indexOf(keyAdd) < actions.indexOf('key.rotate'));
    assert.ok(actions.indexOf('key.rotate') < actions.lastIndexOf('usersig.sign'));
    for (let i = 0; i < ev.length; i++) {
      const e = ev[i];
      if (i > 0) assert.ok(e.seq > ev[i - 1].seq, 'events out of seq order');
      assert.equal(e.sdkappid, a.sdkappid);
      assert.equal(e.outcome, 'ok');
      assert.match(e.at, RFC3339);
      assert.match(e.mac, /^[0-9a-f]{64}$/);
      assert.equal(typeof e.details, 'object');
      assert.equal(typeof e.actor_name, 'string');
    }
    const signEv = ev.find((e) => e.action === 'usersig.sign');
    assert.equal(signEv.key_version, 2);
    assert.equal(res.json.next_after, null);

    // Paging: two at a time gives the same events.
    const paged = [];
    let after = 0;
    for (let guard = 0; guard < 50; guard++) {
      const p = await api('GET', `/v1/audit?sdkappid=${a.sdkappid}&limit=2&after=${after}`);
      expectStatus(p, 200);
      assert.ok(p.json.events.length <= 2);
      paged.push(...p.json.events);
      if (p.json.next_after === null) break;
      assert.equal(p.json.next_after, p.json.events[p.json.events.length - 1].seq);
      after = p.json.next_after;
    }
    assert.deepEqual(paged.map((e) => e.seq), ev.map((e) => e.seq));

    const only = await api('GET', `/v1/audit?sdkappid=${a.sdkappid}&action=key.rotate`);
    expectStatus(only, 200);
    assert.deepEqual(only.json.events.map((e) => e.action), ['key.rotate']);

    expectError(await api('GET', '/v1/audit?limit=0'), 400, 'invalid_param');
    expectError(await api('GET', '/v1/audit?after=x'), 400, 'invalid_param');

    const v = await api('GET', '/v1/audit/verify');
    expectStatus(v, 200);
    assert.equal(v.json.ok, true, show(v));
    assert.equal(v.json.problem, 'ok');
    assert.ok(v.json.last_seq >= ev[ev.length - 1].seq);
    assert.ok(v.json.checked >= ev.length);
    assert.match(v.json.last_mac, /^[0-9a-f]{64}$/);
  });

  test('`usersigd audit verify` prints ok and exits 0', () => {
    const r = usersigdCli(['audit', 'verify']);
    assert.equal(r.code, 0, `usersigd audit verify: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /\bok\b/);
  });

  test('the actor is named: a token\'s events carry its id and name', async () => {
    const name = `e2e-km-${newAppId()}`;
    const res = await api('POST', '/v1/tokens', { body: { name, role: 'key_manager' } });
    expectStatus(res, 201);
    const sdkappid = newAppId();
    await createApp(sdkappid, {}, { token: res.json.token });
    const ev = await api('GET', `/v1/audit?sdkappid=${sdkappid}&action=app.create`);
    expectStatus(ev, 200);
    assert.equal(ev.json.events.length, 1);
    assert.equal(ev.json.events[0].actor_id, res.json.id);
    assert.equal(ev.json.events[0].actor_name, name);
    const byActor = await api('GET', `/v1/audit?actor=${encodeURIComponent(name)}`);
    expectStatus(byActor, 200);
    assert.ok(byActor.json.events.length >= 1);
    assert.ok(byActor.json.events.every((e) => e.actor_name === name));
  });
});
