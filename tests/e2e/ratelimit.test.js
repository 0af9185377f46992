// Rate limits against the real server and PostgreSQL: an API token's and an app's
// signs_per_second (429 token_signs_per_second / app_signs_per_second with Retry-After, a refused
// sign not audited and not issued), set at token creation, by PATCH /v1/tokens/{id} and PATCH
// /v1/apps/{sdkappid}/limits (audited as from/to, bounds refused with nothing changed); and
// batch_tokens_per_day: lines past a batch's allowance refused in place (batch_quota), the next
// batch 429 with Retry-After until 00:00 UTC, counted in the database so that a second process
// sees the same day's total; rate_limit_processes divides a process's share.
'use strict';

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const {
  E2E, api, show, expectError, expectStatus, appWithKey, psqlOk, startServer, stopAll, crossCheck,
} = require('./lib');

const servers = [];
after(() => stopAll(servers));

async function tokenWith(role, apps, extra) {
  const res = await api('POST', '/v1/tokens', {
    body: Object.assign({ name: `ratelimit ${role} ${Date.now()}`, role, apps }, extra),
  });
  expectStatus(res, 201);
  return res.json;
}

function signEvents(sdkappid, actorName) {
  return Number(psqlOk(`SELECT count(*) FROM audit_log WHERE action = 'usersig.sign' AND sdkappid = ` +
    `${sdkappid} AND actor_name = '${actorName.replace(/'/g, "''")}'`));
}

async function burst(sdkappid, n, token, base) {
  return Promise.all(Array.from({ length: n }, (_, i) => api('POST', `/v1/apps/${sdkappid}/usersigs`,
    { body: { identifier: `u${i}` }, token, base })));
}

async function batchText(sdkappid, lines, token) {
  const res = await fetch(`${E2E.url}/v1/apps/${sdkappid}/usersigs/batch`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'text/plain' },
    body: lines.join('\n') + '\n',
    signal: AbortSignal.timeout(20000),
  });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch (e) { /* a stream */ }
  return { status: res.status, headers: res.headers, text, json, req: `batch ${sdkappid}` };
}

test('a token\'s signs_per_second: 429 with Retry-After, refused signs neither issued nor audited',
  async () => {
    const { sdkappid, secret } = await appWithKey();
    const t = await tokenWith('signer', [sdkappid], { signs_per_second: 3 });
    assert.equal(t.signs_per_second, 3);
    assert.equal(t.batch_tokens_per_day, null);
    const replies = await burst(sdkappid, 12, t.token);
    const ok = replies.filter((r) => r.status === 200);
    const refused = replies.filter((r) => r.status !== 200);
    // A burst of one second's worth; a few ms of refill may add one at most.
    assert.ok(ok.length >= 3 && ok.length <= 4, `3 (or 4) signed of 12: ${ok.length}`);
    for (const r of refused) {
      expectError(r, 429, 'token_signs_per_second', ['signs_per_second']);
      const ra = Number(r.headers.get('retry-after'));
      assert.ok(Number.isInteger(ra) && ra >= 1 && ra <= 1, `Retry-After 1 s: ${ra}`);
      assert.equal(r.json.usersig, undefined);
    }
    for (const r of ok) crossCheck(r.json.usersig, { sdkappid, secret, identifier: r.json.identifier });
    assert.equal(signEvents(sdkappid, t.name), ok.length, 'one audit event per UserSig issued only');
    // After a second the bucket is full again.
    await new Promise((r) => setTimeout(r, 1100));
    const again = await burst(sdkappid, 3, t.token);
    assert.deepEqual(again.map((r) => r.status), [200, 200, 200], again.map(show).join('\n'));

    // PATCH: lowered, cleared; bounds refused with nothing changed; audited from/to.
    let res = await api('PATCH', `/v1/tokens/${t.id}`, { body: { signs_per_second: 0 } });
    expectError(res, 400, 'invalid_field', ['signs_per_second']);
    res = await api('PATCH', `/v1/tokens/${t.id}`, { body: { name: 'x' } });
    expectError(res, 400, 'unknown_field', ['name']);
    res = await api('PATCH', `/v1/tokens/${t.id}`, { body: {} });
    expectError(res, 400, 'missing_field');
    res = await api('PATCH', '/v1/tokens/999999999', { body: { signs_per_second: 5 } });
    expectError(res, 404, 'token_not_found');
    res = await api('PATCH', `/v1/tokens/${t.id}`, { body: { signs_per_second: null, batch_tokens_per_day: 10 } });
    expectStatus(res, 200);
    assert.equal(res.json.signs_per_second, null);
    assert.equal(res.json.batch_tokens_per_day, 10);
    const ev = JSON.parse(psqlOk(`SELECT details FROM audit_log WHERE action = 'token.limits.update' ` +
      `AND details::jsonb ->> 'token_id' = '${t.id}' ORDER BY seq DESC LIMIT 1`));
    assert.deepEqual(ev.changed, {
      signs_per_second: { from: 3, to: null }, batch_tokens_per_day: { from: null, to: 10 },
    });
    const many = await burst(sdkappid, 12, t.token);
    assert.ok(many.every((r) => r.status === 200), 'no limit any more: ' + many.map(show).join('\n'));
  });

test('PATCHes of one token at once: each audited from the value the one before it left', async () => {
  const { sdkappid } = await appWithKey();
  const t = await tokenWith('signer', [sdkappid]);
  const values = Array.from({ length: 12 }, (_, i) => 10 * (i + 1));
  const res = await Promise.all(values.map((v) =>
    api('PATCH', `/v1/tokens/${t.id}`, { body: { signs_per_second: v } })));
  for (const r of res) expectStatus(r, 200);
  const rows = psqlOk(`SELECT details FROM audit_log WHERE action = 'token.limits.update' ` +
    `AND details::jsonb ->> 'token_id' = '${t.id}' ORDER BY seq`).split('\n').filter(Boolean)
    .map((l) => JSON.parse(l).changed.signs_per_second);
  assert.equal(rows.length, values.length);
  let was = null;
  for (const c of rows) {
    assert.equal(c.from, was, JSON.stringify(rows));
    was = c.to;
  }
  assert.deepEqual(rows.map((c) => c.to).sort((a, b) => a - b), values);
  assert.equal(Number(psqlOk(`SELECT signs_per_second FROM api_tokens WHERE id = ${t.id}`)), was);
});

test('revokes of one token at once: one audited as the revoke, the others as already revoked', async () => {
  const t = await tokenWith('auditor', undefined);
  const res = await Promise.all(Array.from({ length: 8 }, () => api('DELETE', `/v1/tokens/${t.id}`)));
  for (const r of res) expectStatus(r, 200);
  const already = psqlOk(`SELECT details::jsonb ->> 'already_revoked' FROM audit_log WHERE action = 'token.revoke' ` +
    `AND outcome = 'ok' AND details::jsonb ->> 'token_id' = '${t.id}' ORDER BY seq`).split('\n').filter(Boolean);
  assert.deepEqual(already, ['false', 'true', 'true', 'true', 'true', 'true', 'true', 'true']);
});

test('an app\'s signs_per_second holds for every token together', async () => {
  const { sdkappid } = await appWithKey();
  let res = await api('GET', `/v1/apps/${sdkappid}/limits`);
  assert.deepEqual(expectStatus(res, 200),
    { sdkappid, signs_per_second: null, batch_tokens_per_day: null });
  res = await api('PATCH', `/v1/apps/${sdkappid}/limits`, { body: { signs_per_second: 1000001 } });
  expectError(res, 400, 'invalid_field', ['signs_per_second']);
  res = await api('PATCH', `/v1/apps/${sdkappid}/limits`, { body: { signs_per_second: 'x' } });
  expectError(res, 400, 'invalid_field', ['signs_per_second']);
  res = await api('GET', `/v1/apps/${sdkappid}/limits`);
  assert.equal(res.json.signs_per_second, null, 'a refused change changed nothing');
  res = await api('PATCH', `/v1/apps/${sdkappid}/limits`, { body: { signs_per_second: 2 } });
  assert.deepEqual(expectStatus(res, 200),
    { sdkappid, signs_per_second: 2, batch_tokens_per_day: null });
  const a = await tokenWith('signer', [sdkappid]);
  const b = await tokenWith('signer', [sdkappid]);
  const replies = [...await burst(sdkappid, 4, a.token), ...await burst(sdkappid, 4, b.token)];
  const ok = replies.filter((r) => r.status === 200).length;
  assert.ok(ok >= 2 && ok <= 3, `2 (or 3) of 8 across two tokens: ${ok}`);
  for (const r of replies.filter((x) => x.status !== 200)) {
    expectError(r, 429, 'app_signs_per_second', [String(sdkappid)]);
    assert.ok(Number(r.headers.get('retry-after')) >= 1);
  }
  const ev = JSON.parse(psqlOk(`SELECT details FROM audit_log WHERE action = 'app.limits.update' AND ` +
    `sdkappid = ${sdkappid} ORDER BY seq DESC LIMIT 1`));
  assert.deepEqual(ev.changed, { signs_per_second: { from: null, to: 2 } });
  res = await api('GET', `/v1/apps/999999/limits`);
  expectError(res, 404, 'app_not_found');
  // An auditor reads, does not change.
  const aud = await tokenWith('auditor');
  res = await api('GET', `/v1/apps/${sdkappid}/limits`, { token: aud.token });
  expectStatus(res, 200);
  res = await api('PATCH', `/v1/apps/${sdkappid}/limits`, { token: aud.token, body: { signs_per_second: 9 } });
  expectError(res, 403, 'forbidden');
});

test('rate_limit_processes: each process takes its share of the rate', async () => {
  const { sdkappid } = await appWithKey();
  const t = await tokenWith('signer', [sdkappid], { signs_per_second: 8 });
  const srv = await startServer('ratelimit-share', { env: { USERSIGD_RATE_LIMIT_PROCESSES: '4' } });
  servers.push(srv);
  const replies = await burst(sdkappid, 10, t.token, srv.url);
  const ok = replies.filter((r) => r.status === 200).length;
  assert.ok(ok >= 2 && ok <= 3, `8 a second over 4 processes: 2 (or 3) here, got ${ok}`);
});

test('batch_tokens_per_day: lines past the allowance refused in place, the next batch 429',
  async () => {
    const { sdkappid } = await appWithKey();
    const t = await tokenWith('signer', [sdkappid], { batch_tokens_per_day: 5 });
    let res = await batchText(sdkappid, ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'], t.token);
    expectStatus(res, 200);
    const lines = res.text.trim().split('\n').map((l) => JSON.parse(l));
    const summary = lines.pop().summary;
    assert.equal(summary.count, 8);
    assert.equal(summary.signed, 5);
    assert.equal(summary.failed, 3);
    assert.deepEqual(lines.map((l) => (l.usersig ? 'ok' : l.error.code)),
      ['ok', 'ok', 'ok', 'ok', 'ok', 'batch_quota', 'batch_quota', 'batch_quota']);
    assert.deepEqual(lines.slice(5).map((l) => l.identifier), ['f', 'g', 'h']);
    const fin = JSON.parse(psqlOk(`SELECT details FROM audit_log WHERE action = 'usersig.batch.finish' ` +
      `AND sdkappid = ${sdkappid} ORDER BY seq DESC LIMIT 1`));
    assert.equal(fin.batch_quota, 3);
    assert.equal(psqlOk(`SELECT allowance FROM batches WHERE batch_id = '${summary.batch_id}'`), '5');

    res = await batchText(sdkappid, ['x'], t.token);
    expectError(res, 429, 'token_batch_tokens_per_day', ['batch_tokens_per_day', '5 signed today']);
    const ra = Number(res.headers.get('retry-after'));
    const now = new Date();
    const toMidnight = 86400 - (now.getUTCHours() * 3600 + now.getUTCMinutes() * 60 + now.getUTCSeconds());
    assert.ok(Math.abs(ra - toMidnight) <= 5, `Retry-After until 00:00 UTC: ${ra} vs ${toMidnight}`);
    assert.equal(Number(psqlOk(`SELECT count(*) FROM audit_log WHERE action = 'usersig.batch' AND ` +
      `sdkappid = ${sdkappid} AND outcome <> 'started'`)), 0, 'the refusal is not audited');

    // Raised: the rest of the day is what is left after the 5 signed.
    res = await api('PATCH', `/v1/tokens/${t.id}`, { body: { batch_tokens_per_day: 7 } });
    expectStatus(res, 200);
    res = await batchText(sdkappid, ['p', 'q', 'r'], t.token);
    expectStatus(res, 200);
    const s2 = JSON.parse(res.text.trim().split('\n').pop()).summary;
    assert.equal(s2.signed, 2);

    // The app's own limit, across tokens, seen by another process too.
    const { sdkappid: app2 } = await appWithKey();
    res = await api('PATCH', `/v1/apps/${app2}/limits`, { body: { batch_tokens_per_day: 4 } });
    expectStatus(res, 200);
    const u = await tokenWith('signer', [app2]);
    res = await batchText(app2, ['a', 'b', 'c'], u.token);
    expectStatus(res, 200);
    const srv = await startServer('ratelimit-batch');
    servers.push(srv);
    const other = await fetch(`${srv.url}/v1/apps/${app2}/usersigs/batch`, {
      method: 'POST',
      headers: { authorization: `Bearer ${E2E.admin}`, 'content-type': 'text/plain' },
      body: 'd\ne\n',
    });
    const otherText = await other.text();
    assert.equal(other.status, 200, otherText);
    const s3 = JSON.parse(otherText.trim().split('\n').pop()).summary;
    assert.equal(s3.signed, 1, 'the other process knew 3 of 4 were used');
    res = await batchText(app2, ['z'], u.token);
    expectError(res, 429, 'app_batch_tokens_per_day', [String(app2)]);
  });
