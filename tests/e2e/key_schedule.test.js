// Key schedules over HTTP: a retired version's verify_until (PATCH /v1/apps/{sdkappid}/keys/
// {version}) opens and closes its verify window, the verdict verify_window_closed (70009) once it
// has passed, on this server and on a second process on the same database at once, while the
// official Node library still finds the token's MAC good (it is the window that closed, not the
// token); every refusal; an app's rotate_every (PATCH /v1/apps/{sdkappid}) with the active key's
// age and past_rotate_every in the app, the key listing and /metrics (checked by promtool when
// it is installed); each change in the audit log.
'use strict';

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const {
  api, show, expectError, expectStatus, appWithKey, newSecret, sign, crossCheck, createToken,
  startServer, stopAll,
} = require('./lib');

const servers = [];
after(() => stopAll(servers));

const now = () => Math.floor(Date.now() / 1000);

async function verify(usersig, identifier, opts = {}) {
  const res = await api('POST', '/v1/usersigs/verify', Object.assign({ body: { usersig, identifier } }, opts));
  expectStatus(res, 200);
  return res.json;
}

async function lastEvent(sdkappid, action) {
  const res = await api('GET', `/v1/audit?sdkappid=${sdkappid}&action=${action}&limit=1000`);
  expectStatus(res, 200);
  return res.json.events[res.json.events.length - 1];
}

function sample(text, name, labels) {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = {};
    for (const l of m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) have[l[1]] = l[2];
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

test('verify_until closes a retired version\'s verify window', async () => {
  const other = await startServer('keysched');
  servers.push(other);
  const a = await appWithKey();
  const t1 = (await sign(a.sdkappid, { identifier: 'vera' })).usersig;
  crossCheck(t1, { sdkappid: a.sdkappid, secret: a.secret, identifier: 'vera' });
  const s2 = newSecret();
  const rot = await api('POST', `/v1/apps/${a.sdkappid}/keys/rotate`, { body: { secret: s2 } });
  expectStatus(rot, 200);
  assert.equal(rot.json.retired.version, 1);
  assert.equal(rot.json.retired.verify_until, null, show(rot));
  const t2 = (await sign(a.sdkappid, { identifier: 'vera' })).usersig;
  // Both processes have the app cached before the change.
  for (const base of [undefined, other.url]) {
    assert.equal((await verify(t1, 'vera', { base })).verdict, 'ok');
  }

  // An hour ahead: still open.
  const later = now() + 3600;
  let res = await api('PATCH', `/v1/apps/${a.sdkappid}/keys/1`, { body: { verify_until: later } });
  expectStatus(res, 200);
  assert.equal(res.json.verify_until, new Date(later * 1000).toISOString().replace('.000Z', '.000000Z'));
  assert.equal(res.json.state, 'retired');
  assert.equal((await verify(t1, 'vera')).verdict, 'ok');
  let ev = await lastEvent(a.sdkappid, 'key.update');
  assert.equal(ev.key_version, 1);
  assert.deepEqual(ev.details, { changed: { verify_until: { from: null, to: later } } });

  // Closed: a second ago.
  const past = now() - 1;
  res = await api('PATCH', `/v1/apps/${a.sdkappid}/keys/1`, { body: { verify_until: past } });
  expectStatus(res, 200);
  for (const base of [undefined, other.url]) {
    const v = await verify(t1, 'vera', { base });
    assert.equal(v.valid, false, JSON.stringify(v));
    assert.equal(v.verdict, 'verify_window_closed', JSON.stringify(v));
    assert.equal(v.tencent_code, 70009);
    assert.equal(v.key_version, 1);
    assert.match(v.message, /key version 1 .*retired.*verify_until/);
    assert.equal((await verify(t2, 'vera', { base })).verdict, 'ok', 'the active version verifies');
  }
  // The token itself is sound: the official library's MAC over it still matches version 1's key.
  crossCheck(t1, { sdkappid: a.sdkappid, secret: a.secret, identifier: 'vera' });
  ev = await lastEvent(a.sdkappid, 'key.update');
  assert.deepEqual(ev.details, { changed: { verify_until: { from: later, to: past } } });

  // The key listing shows it; null reopens it.
  res = await api('GET', `/v1/apps/${a.sdkappid}/keys`);
  expectStatus(res, 200);
  assert.notEqual(res.json.keys.find((k) => k.version === 1).verify_until, null, show(res));
  assert.equal(res.json.keys.find((k) => k.version === 2).verify_until, null);
  res = await api('PATCH', `/v1/apps/${a.sdkappid}/keys/1`, { body: { verify_until: null } });
  expectStatus(res, 200);
  assert.equal(res.json.verify_until, null);
  assert.equal((await verify(t1, 'vera')).verdict, 'ok');
  // The other process hears of the change through the database's notification: soon, not at
  // once (a bounded wait).
  let seen;
  for (let i = 0; i < 50 && seen !== 'ok'; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, 100));
    seen = (await verify(t1, 'vera', { base: other.url })).verdict;
  }
  assert.equal(seen, 'ok', 'the other process reopened the window within 5 s');

  // Refusals change nothing.
  const events = (await api('GET', `/v1/audit?sdkappid=${a.sdkappid}&limit=1000`)).json.events.length;
  expectError(await api('PATCH', `/v1/apps/${a.sdkappid}/keys/1`, { body: {} }), 400, 'missing_field',
    ['verify_until']);
  expectError(await api('PATCH', `/v1/apps/${a.sdkappid}/keys/1`, { body: { verify_until: 'soon' } }), 400,
    'invalid_field', ['verify_until']);
  expectError(await api('PATCH', `/v1/apps/${a.sdkappid}/keys/1`, { body: { verify_until: 0 } }), 400,
    'invalid_field', ['verify_until']);
  expectError(await api('PATCH', `/v1/apps/${a.sdkappid}/keys/1`, { body: { verify_until: 1, x: 1 } }), 400,
    'unknown_field');
  expectError(await api('PATCH', `/v1/apps/${a.sdkappid}/keys/9`, { body: { verify_until: past } }), 404,
    'key_not_found');
  const signer = await createToken('signer', [a.sdkappid]);
  expectError(await api('PATCH', `/v1/apps/${a.sdkappid}/keys/1`,
    { body: { verify_until: past }, token: signer }), 403, 'forbidden');
  assert.equal((await api('GET', `/v1/apps/${a.sdkappid}/keys`)).json.keys[0].verify_until, null);
  assert.equal((await api('GET', `/v1/audit?sdkappid=${a.sdkappid}&limit=1000`)).json.events.length, events);

  // A destroyed version has no window (refused and audited).
  expectStatus(await api('POST', `/v1/apps/${a.sdkappid}/keys/1/destroy`, { body: { reason: 'done' } }), 200);
  expectError(await api('PATCH', `/v1/apps/${a.sdkappid}/keys/1`, { body: { verify_until: past } }), 409,
    'invalid_state', ['destroyed']);
  assert.equal((await lastEvent(a.sdkappid, 'key.update')).outcome, 'invalid_state');
});

test('rotate_every: the active key\'s age against it, in the app, the key listing and /metrics', async () => {
  const a = await appWithKey();
  let res = await api('GET', `/v1/apps/${a.sdkappid}`);
  expectStatus(res, 200);
  assert.equal(res.json.rotate_every, null);
  assert.equal(res.json.past_rotate_every, null);
  assert.ok(res.json.active_key_age >= 0, show(res));

  expectError(await api('PATCH', `/v1/apps/${a.sdkappid}`, { body: { rotate_every: 0 } }), 400,
    'invalid_field', ['rotate_every']);
  expectError(await api('PATCH', `/v1/apps/${a.sdkappid}`, { body: { rotate_every: 315360001 } }), 400,
    'invalid_field', ['rotate_every']);
  res = await api('PATCH', `/v1/apps/${a.sdkappid}`, { body: { rotate_every: 7776000 } });
  expectStatus(res, 200);
  assert.equal(res.json.rotate_every, 7776000);
  assert.equal(res.json.past_rotate_every, false);
  let ev = await lastEvent(a.sdkappid, 'app.update');
  assert.deepEqual(ev.details, { changed: { rotate_every: { from: null, to: 7776000 } } });

  // One second: past it two seconds later.
  expectStatus(await api('PATCH', `/v1/apps/${a.sdkappid}`, { body: { rotate_every: 1 } }), 200);
  await new Promise((r) => setTimeout(r, 2200));
  res = await api('GET', `/v1/apps/${a.sdkappid}`);
  assert.equal(res.json.past_rotate_every, true, show(res));
  assert.ok(res.json.active_key_age >= 2, show(res));
  const list = await api('GET', '/v1/apps?limit=1000');
  assert.equal(list.json.apps.find((x) => x.sdkappid === a.sdkappid).past_rotate_every, true);
  res = await api('GET', `/v1/apps/${a.sdkappid}/keys`);
  expectStatus(res, 200);
  assert.equal(res.json.rotate_every, 1);
  assert.equal(res.json.past_rotate_every, true);
  assert.ok(res.json.active_key_age >= 2);

  const m = await api('GET', '/metrics');
  expectStatus(m, 200);
  const labels = { sdkappid: String(a.sdkappid), version: '1' };
  assert.equal(sample(m.text, 'usersigd_key_past_rotate_every', labels), 1, m.text.slice(0, 300));
  assert.ok(sample(m.text, 'usersigd_key_age_seconds', labels) >= 2);
  assert.equal(sample(m.text, 'usersigd_key_rotate_every_seconds', { sdkappid: String(a.sdkappid) }), 1);
  const promtool = spawnSync('promtool', ['check', 'metrics'], { input: m.text, encoding: 'utf8' });
  if (!promtool.error) assert.equal(promtool.status, 0, promtool.stdout + promtool.stderr);

  // A rotation resets the age; it is never done by usersigd itself.
  const keys = (await api('GET', `/v1/apps/${a.sdkappid}/keys`)).json.keys;
  assert.equal(keys.length, 1, 'nothing rotated by itself');
  expectStatus(await api('PATCH', `/v1/apps/${a.sdkappid}`, { body: { rotate_every: 3600 } }), 200);
  expectStatus(await api('POST', `/v1/apps/${a.sdkappid}/keys/rotate`, { body: { secret: newSecret() } }), 200);
  res = await api('GET', `/v1/apps/${a.sdkappid}`);
  assert.equal(res.json.active_key_version, 2);
  assert.equal(res.json.past_rotate_every, false);
  const m2 = await api('GET', '/metrics');
  assert.equal(sample(m2.text, 'usersigd_key_past_rotate_every', { sdkappid: String(a.sdkappid), version: '2' }), 0);

  res = await api('PATCH', `/v1/apps/${a.sdkappid}`, { body: { rotate_every: null } });
  expectStatus(res, 200);
  assert.equal(res.json.rotate_every, null);
  assert.equal(res.json.past_rotate_every, null);
  ev = await lastEvent(a.sdkappid, 'app.update');
  assert.deepEqual(ev.details, { changed: { rotate_every: { from: 3600, to: null } } });
});
