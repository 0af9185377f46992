// The audit log against its own database superuser: UPDATE, DELETE and TRUNCATE are refused by
// triggers; an edit made with the triggers disabled is found by `audit verify` (the API and the
// command line), which names the edited event. The edit is undone at the end so that the chain
// verifies again for whatever runs next.
'use strict';

const { test } = require('node:test');
const assert = require('node:assert/strict');
const {
  api, show, expectStatus, appWithKey, sign, usersigdCli, psql, psqlOk,
} = require('./lib');

test('UPDATE, DELETE and TRUNCATE of audit_log fail with the triggers on', async () => {
  // Any event will do: the first run's own events, or else those of a new app.
  let seq = psqlOk('SELECT min(seq) FROM audit_log');
  if (!/^\d+$/.test(seq)) {
    const a = await appWithKey();
    seq = psqlOk(`SELECT min(seq) FROM audit_log WHERE sdkappid = ${a.sdkappid}`);
  }
  assert.match(seq, /^\d+$/, 'the audit log is empty');
  for (const sql of [
    `UPDATE audit_log SET details = '{}' WHERE seq = ${seq}`,
    `DELETE FROM audit_log WHERE seq = ${seq}`,
    'TRUNCATE audit_log',
  ]) {
    const r = psql(sql);
    assert.notEqual(r.code, 0, `psql let this through: ${sql}`);
    assert.match(r.stderr, /append-only/, r.stderr);
  }
  assert.equal(psqlOk(`SELECT count(*) FROM audit_log WHERE seq = ${seq}`), '1');
});

test('an event edited behind the triggers is named by audit verify', async (t) => {
  const a = await appWithKey();
  await sign(a.sdkappid, { identifier: 'ivan' });
  const n = psqlOk(`SELECT seq FROM audit_log WHERE sdkappid = ${a.sdkappid} ` +
    `AND action = 'app.create'`);
  assert.match(n, /^\d+$/, `no app.create event for ${a.sdkappid}`);
  const original = psqlOk(`SELECT details FROM audit_log WHERE seq = ${n}`);
  const ok0 = await api('GET', '/v1/audit/verify');
  expectStatus(ok0, 200);
  assert.equal(ok0.json.ok, true, `the chain is broken before the edit: ${show(ok0)}`);

  const edit = (details) => psqlOk('BEGIN; ALTER TABLE audit_log DISABLE TRIGGER ALL; ' +
    `UPDATE audit_log SET details = ${details} WHERE seq = ${n}; ` +
    'ALTER TABLE audit_log ENABLE TRIGGER ALL; COMMIT;');
  edit(`'{"tampered":true}'`);
  // Whatever happens below, put the event back so the chain verifies again.
  t.after(() => edit(`(SELECT convert_from(decode('${Buffer.from(original).toString('hex')}', ` +
    `'hex'), 'UTF8'))`));

  const v = await api('GET', '/v1/audit/verify');
  expectStatus(v, 200);
  assert.equal(v.json.ok, false, show(v));
  assert.equal(v.json.problem, 'mac_mismatch', show(v));
  assert.equal(v.json.bad_seq, Number(n), show(v));
  assert.equal(v.json.last_seq, Number(n) - 1, show(v));

  const cli = usersigdCli(['audit', 'verify']);
  assert.notEqual(cli.code, 0, `usersigd audit verify passed a broken chain: ${cli.stdout}`);
  assert.match(cli.stdout + cli.stderr, new RegExp(`\\b${n}\\b`),
    `usersigd audit verify does not name seq ${n}: ${cli.stdout}${cli.stderr}`);

  // Put it back: the chain verifies again.
  edit(`(SELECT convert_from(decode('${Buffer.from(original).toString('hex')}', 'hex'), 'UTF8'))`);
  const v2 = await api('GET', '/v1/audit/verify');
  expectStatus(v2, 200);
  assert.equal(v2.json.ok, true, show(v2));
  const cli2 = usersigdCli(['audit', 'verify']);
  assert.equal(cli2.code, 0, `usersigd audit verify: ${cli2.stdout}${cli2.stderr}`);
});
