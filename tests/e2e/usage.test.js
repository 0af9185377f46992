// Verify counts per key version: a second `usersigd serve` on the run's database (flushing its
// counts every second) verifies tokens with each verdict the key listing can show (ok, expired,
// identifier_mismatch, key_pending, key_disabled, and signature_mismatch under no version),
// first through a database thread, then from the cache on the loop thread; the counts appear in
// GET /v1/apps/{sdkappid}/keys once flushed, summed with another process's, and in that
// process's /metrics as usersigd_key_verifies_total{sdkappid, version, verdict}, which promtool
// accepts.
'use strict';

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const {
  E2E, api, show, expectStatus, appWithKey, addKey, newSecret, sign, usersig, keyFile, startServer,
  stopAll,
} = require('./lib');

const servers = [];
after(() => stopAll(servers));

function offline(sdkappid, secret, identifier, extra = []) {
  const r = usersig(['sign', '--sdkappid', String(sdkappid), '--key-file', keyFile(secret),
    '--identifier', identifier, ...extra]);
  assert.equal(r.code, 0, `usersig sign: ${r.stderr}`);
  return r.stdout.trim();
}

function sample(text, name, labels) {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = {};
    for (const l of m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) have[l[1]] = l[2];
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return 0;
}

// Polls the key listing until want(json) holds (at most ms); returns the last listing.
async function waitListing(sdkappid, want, ms = 15000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const res = await api('GET', `/v1/apps/${sdkappid}/keys`);
    expectStatus(res, 200);
    if (want(res.json)) return res.json;
    if (Date.now() > deadline) throw new Error(`the counts did not arrive: ${show(res)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

test('verifies counted per key version and verdict, in the key listing and /metrics', async () => {
  const srv = await startServer('usage', { env: { USERSIGD_VERIFY_COUNTS_FLUSH_SECONDS: '1' } });
  servers.push(srv);
  const opts = { base: srv.url };
  const verify = async (body, o = opts) => {
    const res = await api('POST', '/v1/usersigs/verify', Object.assign({ body }, o));
    expectStatus(res, 200);
    return res.json;
  };

  const a = await appWithKey();
  const none = await api('GET', `/v1/apps/${a.sdkappid}/keys`);
  expectStatus(none, 200);
  assert.deepEqual(none.json.keys[0].verify_counts, {}, show(none));
  assert.deepEqual(none.json.unmatched_verify_counts, {}, show(none));

  const t1 = (await sign(a.sdkappid, { identifier: 'una' })).usersig;
  const s2 = newSecret();
  await addKey(a.sdkappid, s2); // version 2, pending
  const want = [
    [{ usersig: t1, identifier: 'una' }, 'ok', 1],
    [{ usersig: t1, identifier: 'una' }, 'ok', 1],
    [{ usersig: t1, identifier: 'ulla' }, 'identifier_mismatch', 1],
    [{ usersig: offline(a.sdkappid, a.secret, 'una', ['--time', String(Math.floor(Date.now() / 1000) - 7200), '--expire', '60']) },
      'expired', 1],
    [{ usersig: offline(a.sdkappid, newSecret(), 'una') }, 'signature_mismatch', null],
    [{ usersig: offline(a.sdkappid, s2, 'una') }, 'key_pending', 2],
  ];
  for (const [body, verdict, version] of want) {
    const v = await verify(body);
    assert.equal(v.verdict, verdict, show({ status: 200, text: JSON.stringify(v) }));
    assert.equal(v.key_version, version);
  }
  // Changes through the process that verifies next: it evicts its cache at once (another one
  // follows on the notification, a moment later).
  expectStatus(await api('POST', `/v1/apps/${a.sdkappid}/keys/rotate`,
    Object.assign({ body: { version: 2 } }, opts)), 200);
  expectStatus(await api('POST', `/v1/apps/${a.sdkappid}/keys/1/disable`, opts), 200);
  assert.equal((await verify({ usersig: t1, identifier: 'una' })).verdict, 'key_disabled');
  // One more through the suite's own server: the listing sums every process's counts.
  expectStatus(await api('POST', `/v1/apps/${a.sdkappid}/keys/1/enable`, {}), 200);
  assert.equal((await verify({ usersig: t1 }, {})).verdict, 'ok');

  const listing = await waitListing(a.sdkappid, (j) => (j.keys[0].verify_counts.ok || 0) === 3 &&
    j.keys[0].verify_counts.key_disabled === 1);
  assert.deepEqual(listing.keys[0].verify_counts,
    { ok: 3, identifier_mismatch: 1, expired: 1, key_disabled: 1 }, JSON.stringify(listing));
  assert.deepEqual(listing.keys[1].verify_counts, { key_pending: 1 }, JSON.stringify(listing));
  assert.deepEqual(listing.unmatched_verify_counts, { signature_mismatch: 1 },
    JSON.stringify(listing));
  assert.equal(listing.keys[0].sign_count, 1, 'signs are counted apart');

  const m = await api('GET', '/metrics', opts);
  expectStatus(m, 200);
  const app = String(a.sdkappid);
  const name = 'usersigd_key_verifies_total';
  assert.equal(sample(m.text, name, { sdkappid: app, version: '1', verdict: 'ok' }), 2, m.text);
  assert.equal(sample(m.text, name, { sdkappid: app, version: '1', verdict: 'expired' }), 1);
  assert.equal(sample(m.text, name, { sdkappid: app, version: '1', verdict: 'identifier_mismatch' }), 1);
  assert.equal(sample(m.text, name, { sdkappid: app, version: '1', verdict: 'key_disabled' }), 1);
  assert.equal(sample(m.text, name, { sdkappid: app, version: '2', verdict: 'key_pending' }), 1);
  assert.equal(sample(m.text, name, { sdkappid: app, version: 'none', verdict: 'signature_mismatch' }), 1);
  assert.match(m.text, /# TYPE usersigd_key_verifies_total counter/);
  const p = spawnSync('promtool', ['check', 'metrics'], { input: m.text, encoding: 'utf8' });
  if (p.error && p.error.code === 'ENOENT') {
    assert.fail('promtool is not installed (Debian package prometheus; CI installs it)');
  }
  assert.equal(p.status, 0, `promtool check metrics:\n${p.stdout}${p.stderr}`);
  assert.equal(p.stdout + p.stderr, '', 'promtool has remarks');
  assert.ok(E2E.url);
});
