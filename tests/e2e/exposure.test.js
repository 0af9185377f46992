// Exposure and re-issue over HTTP: GET /v1/apps/{sdkappid}/keys/{version}/exposure counts the
// unexpired UserSigs of a version (single signs apart from batches, by day of expiry, the
// batches listed with their id, count, expiry and actor), checked against the audit log read
// through the API; POST /v1/apps/{sdkappid}/keys/reissue re-signs the identifiers still live on
// the old version with the active one as one streamed batch (its manifest and audit events),
// each token checked with the official Node library and by the server's verify, expiring_after
// honoured, the refusals; and the whole rotation: the old version's verify window closed, the
// old tokens refused, the re-issued ones valid.
'use strict';

const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const {
  E2E, api, show, expectError, expectStatus, appWithKey, newSecret, sign, crossCheck, createToken, psqlOk,
} = require('./lib');

const now = () => Math.floor(Date.now() / 1000);
const day = (t) => new Date(t * 1000).toISOString().slice(0, 10);
const sha256 = (s) => crypto.createHash('sha256').update(s).digest('hex');

async function post(path, body, opts = {}) {
  const headers = { 'content-type': opts.contentType || 'application/json',
    authorization: `Bearer ${opts.token || E2E.admin}` };
  if (opts.accept) headers.accept = opts.accept;
  const res = await fetch(E2E.url + path, { method: 'POST', headers,
    body: typeof body === 'string' ? body : JSON.stringify(body), signal: AbortSignal.timeout(60000) });
  const text = await res.text();
  const out = { status: res.status, headers: res.headers, text, req: `POST ${path}` };
  try { out.json = JSON.parse(text); } catch (e) { /* a stream */ }
  if (res.status === 200 && !opts.accept) {
    out.lines = text.slice(0, -1).split('\n').map((l) => JSON.parse(l));
    out.items = out.lines.slice(0, -1);
    out.summary = out.lines[out.lines.length - 1].summary;
    out.body = text.slice(0, text.length - (text.slice(0, -1).split('\n').pop().length + 1));
  }
  return out;
}

async function exposure(sdkappid, version, opts = {}) {
  const res = await api('GET', `/v1/apps/${sdkappid}/keys/${version}/exposure`, opts);
  expectStatus(res, 200);
  return res.json;
}

test('exposure of a version, and its re-issue with the active one', async () => {
  const a = await appWithKey({ default_expire: 86400 });
  const t0 = now();
  const singles = [
    await sign(a.sdkappid, { identifier: 'alice', expire: 3600 }),
    await sign(a.sdkappid, { identifier: 'alice', expire: 7200 }),
    await sign(a.sdkappid, { identifier: 'bob' }),
    await sign(a.sdkappid, { identifier: 'carol', expire: 3 * 86400 }),
    await sign(a.sdkappid, { identifier: 'dave', room_id: 1234, privilege_map: 255 }),
  ];
  // A refused sign is no exposure.
  expectError(await api('POST', `/v1/apps/${a.sdkappid}/usersigs`, { body: { identifier: 'x', expire: 0 } }),
    400, 'bad_expire');
  const b = await post(`/v1/apps/${a.sdkappid}/usersigs/batch?expire=172800`, 'b1\nb2\nb3\nb4\nb5\n',
    { contentType: 'text/plain' });
  expectStatus(b, 200);
  assert.equal(b.summary.signed, 5);

  let e = await exposure(a.sdkappid, 1);
  assert.equal(e.state, 'active');
  assert.deepEqual(e.live, { single: 5, batch: 5, total: 10 }, JSON.stringify(e));
  // The same as the audit log says, read through the API.
  const audit = await api('GET', `/v1/audit?sdkappid=${a.sdkappid}&action=usersig.sign&limit=1000`);
  const ok = audit.json.events.filter((x) => x.outcome === 'ok' && x.key_version === 1);
  assert.equal(ok.length, e.live.single);
  const byDay = {};
  for (const x of ok) {
    const d = day(x.details.expire_at);
    byDay[d] = (byDay[d] || 0) + 1;
  }
  for (const d of e.days) assert.equal(d.single, byDay[d.date] || 0, `${d.date}: ${JSON.stringify(e.days)}`);
  assert.equal(e.days.reduce((n, d) => n + d.single, 0), 5);
  assert.equal(e.days.reduce((n, d) => n + d.batch, 0), 5);
  const batchDay = e.days.find((d) => d.batch === 5);
  assert.ok(batchDay && [day(t0 + 172800), day(t0 + 172800 + 5)].includes(batchDay.date), JSON.stringify(e.days));
  assert.equal(e.batches.length, 1);
  assert.equal(e.batches[0].batch_id, b.summary.batch_id);
  assert.equal(e.batches[0].count, 5);
  assert.equal(e.batches[0].expire, 172800);
  assert.equal(e.batches[0].state, 'complete');
  assert.equal(typeof e.batches[0].actor_name, 'string');
  assert.ok(Date.parse(e.batches[0].expire_at) / 1000 >= t0 + 172800);
  assert.equal(e.batches_more, false);

  // Rotate: v1 retired; nothing on v2 yet.
  const s2 = newSecret();
  expectStatus(await api('POST', `/v1/apps/${a.sdkappid}/keys/rotate`, { body: { secret: s2 } }), 200);
  e = await exposure(a.sdkappid, 2);
  assert.deepEqual(e.live, { single: 0, batch: 0, total: 0 });
  assert.deepEqual(e.days, []);
  e = await exposure(a.sdkappid, 1);
  assert.equal(e.state, 'retired');
  assert.equal(e.live.total, 10);

  // Who may read it, and the refusals.
  const auditor = await createToken('auditor', [a.sdkappid]);
  assert.equal((await exposure(a.sdkappid, 1, { token: auditor })).live.total, 10);
  const signer = await createToken('signer', [a.sdkappid]);
  expectError(await api('GET', `/v1/apps/${a.sdkappid}/keys/1/exposure`, { token: signer }), 403, 'forbidden');
  expectError(await api('GET', `/v1/apps/${a.sdkappid}/keys/7/exposure`), 404, 'key_not_found');
  expectError(await api('GET', `/v1/apps/${a.sdkappid}/keys/1/exposure?x=1`), 400, 'invalid_param');

  // Re-issue: the plain UserSigs' identifiers (not dave's PrivateMapKey), each once.
  const events = (await api('GET', `/v1/audit?sdkappid=${a.sdkappid}&limit=1000`)).json.events.length;
  expectError(await post(`/v1/apps/${a.sdkappid}/keys/reissue`, { from_version: 2 }), 400, 'invalid_field',
    ['active']);
  expectError(await post(`/v1/apps/${a.sdkappid}/keys/reissue`, { from_version: 9 }), 404, 'key_not_found');
  expectError(await post(`/v1/apps/${a.sdkappid}/keys/reissue`, { from_version: 1, nope: 1 }), 400, 'unknown_field');
  expectError(await post(`/v1/apps/${a.sdkappid}/keys/reissue`, {}), 400, 'missing_field');
  expectError(await post(`/v1/apps/${a.sdkappid}/keys/reissue`, { from_version: 1 }, { token: auditor }), 403,
    'forbidden');
  const after = (await api('GET', `/v1/audit?sdkappid=${a.sdkappid}&limit=1000`)).json.events;
  assert.equal(after.length, events + 2, 'the two audited refusals (invalid_field, key_not_found)');

  const r = await post(`/v1/apps/${a.sdkappid}/keys/reissue`, { from_version: 1 });
  expectStatus(r, 200);
  assert.deepEqual(r.items.map((x) => x.identifier), ['alice', 'bob', 'carol']);
  assert.equal(r.summary.key_version, 2);
  assert.equal(r.summary.signed, 3);
  assert.equal(r.summary.sha256, sha256(r.body));
  for (const x of r.items) {
    const j = crossCheck(x.usersig, { sdkappid: a.sdkappid, secret: s2, identifier: x.identifier });
    assert.equal(j['TLS.expire'], 86400, 'the app\'s default_expire');
    const v = await api('POST', '/v1/usersigs/verify', { body: { usersig: x.usersig, identifier: x.identifier } });
    assert.equal(v.json.verdict, 'ok');
    assert.equal(v.json.key_version, 2);
  }
  const started = (await api('GET', `/v1/audit?sdkappid=${a.sdkappid}&action=usersig.batch&limit=1000`)).json.events
    .find((x) => x.details.batch_id === r.summary.batch_id);
  assert.ok(started, 'the start event');
  assert.equal(started.key_version, 2);
  assert.equal(started.details.reissue.from_version, 1);
  const fin = (await api('GET', `/v1/audit?sdkappid=${a.sdkappid}&action=usersig.batch.finish&limit=1000`)).json
    .events.find((x) => x.details.batch_id === r.summary.batch_id);
  assert.ok(fin && fin.outcome === 'complete', show({ req: 'finish', status: 0, text: JSON.stringify(fin) }));
  e = await exposure(a.sdkappid, 2);
  assert.deepEqual(e.live, { single: 0, batch: 3, total: 3 });
  assert.equal(e.batches[0].batch_id, r.summary.batch_id);

  // expiring_after: only carol's 3-day UserSig outlives 28 hours (alice's latest is 2 hours,
  // bob's the app's day).
  const late = await post(`/v1/apps/${a.sdkappid}/keys/reissue`,
    { from_version: 1, expiring_after: now() + 100800, expire: 600 }, { accept: 'text/csv' });
  expectStatus(late, 200);
  const rows = late.text.trim().split('\n');
  assert.deepEqual(rows.slice(0, -1).map((l) => l.split(',')[0]), ['carol']);
  assert.match(rows[rows.length - 1], /^#summary,.*count=1,signed=1,failed=0,key_version=2,/);
  const early = await post(`/v1/apps/${a.sdkappid}/keys/reissue`,
    { from_version: 1, expiring_after: now() + 5400 });
  assert.deepEqual(early.items.map((x) => x.identifier), ['alice', 'bob', 'carol']);

  // The rotation finished: v1's verify window closed; the old tokens refused, the new ones valid.
  expectStatus(await api('PATCH', `/v1/apps/${a.sdkappid}/keys/1`, { body: { verify_until: now() - 1 } }), 200);
  const old = await api('POST', '/v1/usersigs/verify', { body: { usersig: singles[2].usersig, identifier: 'bob' } });
  assert.equal(old.json.verdict, 'verify_window_closed');
  const bob = r.items.find((x) => x.identifier === 'bob');
  assert.equal((await api('POST', '/v1/usersigs/verify', { body: { usersig: bob.usersig, identifier: 'bob' } }))
    .json.verdict, 'ok');
});

test('a re-issue reads its identifiers page by page (4096 a page) while it streams', async () => {
  const a = await appWithKey();
  expectStatus(await api('POST', `/v1/apps/${a.sdkappid}/keys/rotate`, { body: { secret: newSecret() } }), 200);
  // 10,000 live identifiers on version 1, as the audit log's trigger would have left them (the
  // log itself is left alone: the other files of the run verify its chain).
  psqlOk(`INSERT INTO key_live_identifiers (sdkappid, version, identifier, expire_at)
          SELECT ${a.sdkappid}, 1, 'u' || lpad(g::text, 5, '0'), ${now() + 3600} + g
          FROM generate_series(1, 10000) g`);
  const r = await post(`/v1/apps/${a.sdkappid}/keys/reissue`, { from_version: 1, level: 0 });
  expectStatus(r, 200);
  assert.equal(r.items.length, 10000);
  assert.equal(r.summary.signed, 10000);
  const ids = r.items.map((x) => x.identifier);
  assert.deepEqual(ids, [...ids].sort(), 'in identifier order');
  assert.equal(new Set(ids).size, 10000, 'each once');
  assert.equal(ids[0], 'u00001');
  assert.equal(ids[9999], 'u10000');
  const half = await post(`/v1/apps/${a.sdkappid}/keys/reissue`,
    { from_version: 1, expiring_after: now() + 3600 + 5000 });
  assert.ok(Math.abs(half.items.length - 5000) <= 5, `${half.items.length} live after the cut`);
  const e = await exposure(a.sdkappid, 2);
  assert.equal(e.batches.length, 2);
  assert.equal(e.live.batch, 10000 + half.items.length);
});
