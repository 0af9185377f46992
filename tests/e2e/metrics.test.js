// Observability: the Prometheus scrape (/metrics) and the logs. A scrape after signs, verifies
// and errors shows each counted exactly (a sign adds one to its app's counter, a 404 shows
// under its route pattern and status), passes `promtool check metrics`, and is open to admin
// and auditor tokens only. A client's X-Request-Id is echoed and logged, a bad one replaced.
// The server's log never holds a secret: a key, an API token or a UserSig, in either format.
'use strict';

const { describe, test, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const {
  E2E, api, expectStatus, expectError, appWithKey, sign, createToken, startServer, stopAll, newSecret,
  newAppId, createApp, addKey,
} = require('./lib');

const servers = [];
after(() => stopAll(servers));

// The value of the sample name{labels...} (every label given must match), or 0 when absent.
function sample(text, name, labels = {}) {
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = {};
    for (const l of (m[3] || '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      have[l[1]] = l[2];
    }
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[4]);
  }
  return 0;
}

async function scrape(opts = {}) {
  const res = await api('GET', '/metrics', opts);
  expectStatus(res, 200);
  assert.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  return res.text;
}

function promtool() {
  return spawnSync('promtool', ['--version'], { encoding: 'utf8' }).status === 0;
}

describe('/metrics', () => {
  test('signs, verifies and errors are counted exactly; promtool accepts the scrape', async () => {
    const a = await appWithKey();
    const app = String(a.sdkappid);
    const before = await scrape();
    const signsBefore = sample(before, 'usersigd_signs_total', { sdkappid: app, outcome: 'ok' });
    const route = '/v1/apps/{sdkappid}';
    const nfBefore = sample(before, 'usersigd_http_requests_total',
      { method: 'GET', route, status: '404' });
    const unmatchedBefore = sample(before, 'usersigd_http_requests_total',
      { route: 'unmatched', status: '404' });
    const headBefore = sample(before, 'usersigd_http_requests_total',
      { method: 'HEAD', route, status: '404' });

    const t = await sign(a.sdkappid, { identifier: 'mia' });
    let mid = await scrape();
    assert.equal(sample(mid, 'usersigd_signs_total', { sdkappid: app, outcome: 'ok' }),
      signsBefore + 1, 'one sign, one more in its counter');

    const v = await api('POST', '/v1/usersigs/verify', { body: { usersig: t.usersig } });
    expectStatus(v, 200);
    const bad = await api('POST', `/v1/apps/${a.sdkappid}/usersigs`, { body: { identifier: '' } });
    assert.equal(bad.status, 400);
    expectError(await api('GET', `/v1/apps/${newAppId()}`), 404, 'app_not_found');
    assert.equal((await api('HEAD', `/v1/apps/${newAppId()}`)).status, 404);
    assert.equal((await api('GET', '/no/such/path')).status, 404);

    const after = await scrape();
    assert.equal(sample(after, 'usersigd_signs_total', { sdkappid: app, outcome: 'ok' }),
      signsBefore + 1);
    assert.equal(sample(after, 'usersigd_signs_total', { sdkappid: app, outcome: bad.json.error.code }), 1);
    assert.equal(sample(after, 'usersigd_verifies_total', { sdkappid: app, verdict: 'ok' }), 1);
    assert.equal(sample(after, 'usersigd_http_requests_total', { method: 'GET', route, status: '404' }),
      nfBefore + 1, 'the 404 under its route pattern, not its path');
    assert.equal(sample(after, 'usersigd_http_requests_total', { method: 'HEAD', route, status: '404' }),
      headBefore + 1, 'a HEAD under its own method, not the GET route\'s');
    assert.equal(sample(after, 'usersigd_http_requests_total', { route: 'unmatched', status: '404' }),
      unmatchedBefore + 1);
    assert.ok(!after.includes(`/v1/apps/${a.sdkappid}`), 'a path in a label');
    assert.ok(!after.includes('mia'), 'an identifier in the scrape');
    assert.ok(sample(after, 'usersigd_http_request_duration_seconds_count',
      { method: 'POST', route: '/v1/apps/{sdkappid}/usersigs' }) >= 2);
    assert.ok(sample(after, 'usersigd_audit_chain_length') > 0, 'the audit chain length');
    assert.equal(sample(after, 'usersigd_audit_chain_read_ok'), 1);
    assert.ok(sample(after, 'process_resident_memory_bytes') > 1e6);
    assert.ok(sample(after, 'usersigd_http_open_connections') >= 1);
    assert.ok(after.includes('usersigd_db_pool_queued_jobs '));
    // No sign is out while the scrape is answered: every batch worker may sign.
    assert.ok(sample(after, 'usersigd_batch_workers') >= 1);
    assert.equal(sample(after, 'usersigd_batch_workers_allowed'),
      sample(after, 'usersigd_batch_workers'), 'the batches keep a core back only while signs wait');
    assert.equal(sample(after, 'usersigd_batch_workers_signing'), 0);
    assert.equal(sample(after, 'usersigd_batch_workers_paused'), 0);
    assert.ok(after.includes('usersigd_cache_hits_total{kind="app"}'));
    assert.ok(after.includes('usersigd_sign_group_size_bucket{le="+Inf"}'));
    mid = null;
  });

  test('signs one after another: their groups go in one round trip, each group counted once', async () => {
    const a = await appWithKey();
    const before = await scrape();
    const trips = (text, n) => sample(text, 'usersigd_sign_groups_total', { round_trips: n });
    for (let i = 0; i < 6; i++) await sign(a.sdkappid, { identifier: `trip${i}` });
    const after = await scrape();
    const one = trips(after, '1') - trips(before, '1');
    const two = trips(after, '2') - trips(before, '2');
    const groups = sample(after, 'usersigd_sign_group_size_count') -
      sample(before, 'usersigd_sign_group_size_count');
    assert.equal(one + two, groups, 'each group under one of the two counts');
    assert.ok(groups >= 1 && groups <= 6, `6 signs in 1..6 groups: ${groups}`);
    // The first reads the head (and maybe a second, after another event); the rest need none.
    assert.ok(one >= 1, `one round trip once the head is this process's own: ${one} of ${groups}`);
    assert.ok(sample(after, 'usersigd_sign_group_head_moved_total') >=
      sample(before, 'usersigd_sign_group_head_moved_total'));
  });

  test('promtool check metrics accepts a scrape', {
    skip: !promtool() && 'promtool is not installed (Debian package prometheus; CI installs it)',
  }, async () => {
    const text = await scrape();
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(r.status, 0, `promtool check metrics:\n${r.stdout}${r.stderr}`);
    assert.equal(r.stdout + r.stderr, '', 'promtool has remarks');
  });

  test('an auditor token may scrape; a signer token or one scoped to some apps is 403, none is 401', async () => {
    const auditor = await createToken('auditor');
    await scrape({ token: auditor });
    // The scrape holds every app's series: a token that covers some apps only may not read it.
    const scoped = await createToken('auditor', [newAppId()]);
    const res = await api('GET', '/metrics', { token: scoped });
    expectError(res, 403, 'forbidden');
    assert.doesNotMatch(res.text, /usersigd_/);
    const signer = await createToken('signer');
    expectError(await api('GET', '/metrics', { token: signer }), 403, 'forbidden');
    expectError(await api('GET', '/metrics', { token: null }), 401, 'unauthorized');
  });
});

// One server of its own per format, so that its log can be read.
async function ownServer(name, format, env = {}) {
  const s = await startServer(name, { env: Object.assign({ USERSIGD_LOG_FORMAT: format }, env) });
  servers.push(s);
  return s;
}

async function waitFor(what, fn, ms = 5000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (fn()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`timed out waiting for ${what}`);
}

describe('X-Request-Id', () => {
  test('a client\'s id is echoed and logged; a bad one is replaced by a fresh one', async () => {
    // Debug: a 404 for no route is logged at that level.
    const s = await ownServer('reqid', 'text', { USERSIGD_LOG_LEVEL: 'debug' });
    const id = 'client-1.req_ABC';
    const ok = await api('GET', '/healthz', { base: s.url, headers: { 'x-request-id': id } });
    expectStatus(ok, 200);
    assert.equal(ok.headers.get('x-request-id'), id);
    const err = await api('GET', '/nope', { base: s.url, headers: { 'x-request-id': id } });
    assert.equal(err.status, 404);
    assert.equal(err.headers.get('x-request-id'), id, 'echoed on an error too');
    await waitFor('the access lines', () => s.log().includes(`[${id}] GET /nope 404`));
    assert.ok(s.log().includes(`[${id}] GET /healthz 200`), s.log().slice(-2000));
    for (const bad of ['x'.repeat(65), 'has space', 'semi;colon', 'a"quote', '']) {
      const r = await api('GET', '/healthz', { base: s.url, headers: { 'x-request-id': bad } });
      const got = r.headers.get('x-request-id');
      assert.match(got, /^[0-9a-f]{16}$/, `${JSON.stringify(bad)} replaced: ${got}`);
    }
    assert.match((await api('GET', '/healthz', { base: s.url })).headers.get('x-request-id'),
      /^[0-9a-f]{16}$/);
  });
});

// What a secret-holding session does: a key imported and rotated, tokens made and used, UserSigs
// signed and verified, requests refused; then the whole log is searched for each secret.
async function secretsThrough(s) {
  const opts = { base: s.url };
  const sdkappid = newAppId();
  const secrets = [newSecret(), newSecret()];
  await createApp(sdkappid, {}, opts);
  await addKey(sdkappid, secrets[0], {}, opts);
  expectStatus(await api('POST', `/v1/apps/${sdkappid}/keys/rotate`,
    Object.assign({ body: { secret: secrets[1] } }, opts)), 200);
  const made = await api('POST', '/v1/tokens',
    Object.assign({ body: { name: 'log scan signer', role: 'signer' } }, opts));
  expectStatus(made, 201);
  const token = made.json.token;
  const t = await sign(sdkappid, { identifier: 'scan' }, { base: s.url, token });
  expectStatus(await api('POST', '/v1/usersigs/verify',
    { base: s.url, token, body: { usersig: t.usersig } }), 200);
  // Refusals: a token with its secret altered, a key in the wrong field, a bad body.
  const wrong = token.slice(0, -4) + (token.endsWith('AAAA') ? 'BBBB' : 'AAAA');
  assert.equal((await api('GET', '/v1/apps', { base: s.url, token: wrong })).status, 401);
  assert.equal((await api('POST', `/v1/apps/${sdkappid}/keys`,
    Object.assign({ body: { secret: secrets[0], nope: secrets[1] } }, opts))).status, 400);
  assert.equal((await api('POST', `/v1/apps/${sdkappid}/usersigs`,
    { base: s.url, token, raw: `{"identifier":"${secrets[0]}"` })).status, 400);
  // The token's secret part alone too (the text after its second '_'; a secret may hold '_'
  // itself, so it is all of that text, never a short piece that could appear by chance).
  return [...secrets, token, wrong, token.split('_').slice(2).join('_'), E2E.admin, t.usersig];
}

describe('no secret in the server log', () => {
  for (const format of ['text', 'json']) {
    test(`log_format=${format}`, async () => {
      const s = await ownServer(`scan-${format}`, format);
      const secrets = await secretsThrough(s);
      await waitFor('the last access line', () => /POST \/v1\/apps\/\d+\/usersigs 400|"status":400/.test(s.log()));
      const log = s.log();
      for (const secret of secrets) {
        assert.ok(!log.includes(secret), `a secret (${secret.length} characters) is in the log`);
      }
      if (format === 'json') {
        const lines = log.split('\n').filter((l) => l.startsWith('{'));
        assert.ok(lines.length > 5, `JSON lines in the log:\n${log.slice(-2000)}`);
        for (const l of lines) {
          const o = JSON.parse(l);
          assert.ok(o.time && o.level, l);
        }
        const access = lines.map((l) => JSON.parse(l)).find((o) => o.route === '/v1/apps/{sdkappid}/usersigs' && o.status === 200);
        assert.ok(access, 'an access line of a sign');
        assert.equal(access.actor, 'log scan signer');
        assert.equal(typeof access.duration_ms, 'number');
        assert.match(access.request_id, /^[0-9a-f]{16}$/);
      }
    });
  }
});
