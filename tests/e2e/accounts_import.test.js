// Bulk account import and check (POST /v1/apps/{sdkappid}/accounts/import, /accounts/check)
// against the Tencent stand-in over HTTPS with its test CA: text and NDJSON bodies answered in
// input order with a summary whose SHA-256 covers the lines; the stand-in holds exactly the
// accounts imported (nick and face URL too) and account_check agrees; 100 accounts a call; an
// invalid UserID that Tencent lists in FailAccounts fails in place while an injected FailAccounts
// entry is sent again and imported; Tencent's per-second limit (60007) and a stand-in restart are
// ridden out with retries; Tencent's 70050 (too many failed admin UserSigs) ends the rest of the
// job at once, unsent; the manifest (accounts.import, accounts.import.finish) in the audit
// log; a rest_caller without the command and a wrong content type refused; a server stopped
// (SIGQUIT) with calls in flight and chunks waiting exits cleanly. `usersig import`
// (the CLI) against the same server: a file of accounts imported in order with its summary
// checked, --check, a bad identifier failed in place (exit 1), tokens refused (exit 2), NDJSON.
'use strict';

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const {
  E2E, api, expectError, expectStatus, newAppId, newSecret, createApp, addKey, startServer,
  stopAll, standinCall, standinCA, startStandin, postLines,
} = require('./lib');

const servers = [];
let standin;
let standinPort;
let ca;
let work;
let own;
const app = { sdkappid: newAppId(), secret: newSecret() };
const stopApp = { sdkappid: newAppId(), secret: newSecret() }; // the stop test's replies alone
const heldApp = { sdkappid: newAppId(), secret: newSecret() }; // another key at the stand-in
let config;

// The stand-in on port (0: a free one), again on the same port after a restart.
async function startStandinHere(port) {
  const s = await startStandin(config, work, port);
  standin = s.proc;
  return s.port;
}

function standinRequest(method, p, body) {
  return standinCall(standinPort, ca, method, p, body);
}

async function accounts(kind, body, opts = {}) {
  const res = await postLines(own.url, `/v1/apps/${app.sdkappid}/accounts/${kind}`, body, opts);
  if (res.status !== 200) return res;
  const { lines } = res;
  const items = lines.slice(0, -1).map((l) => JSON.parse(l));
  const last = JSON.parse(lines[lines.length - 1]);
  const sha = crypto.createHash('sha256')
    .update(lines.slice(0, -1).map((l) => `${l}\n`).join('')).digest('hex');
  return { status: 200, items, last, sha };
}

async function standinAccounts() {
  return (await standinRequest('GET', `/__standin/accounts?sdkappid=${app.sdkappid}`)).accounts;
}

before(async () => {
  work = fs.mkdtempSync(path.join(E2E.work, 'imp-'));
  ca = standinCA(work);
  config = { apps: { [app.sdkappid]: { key: app.secret, admins: ['administrator'] },
    [stopApp.sdkappid]: { key: stopApp.secret, admins: ['administrator'] },
    [heldApp.sdkappid]: { key: newSecret(), admins: ['administrator'] } } };
  standinPort = await startStandinHere(0);
  own = await startServer('imp', { env: { USERSIGD_TENCENT_CA_FILE: path.join(work, 'ca.pem'),
    USERSIGD_TENCENT_ALLOW_INSECURE_BASE_URL: 'true', USERSIGD_TENCENT_RATE: '1000' } });
  servers.push(own);
  for (const a of [app, heldApp]) {
    await createApp(a.sdkappid);
    await addKey(a.sdkappid, a.secret);
    expectStatus(await api('PATCH', `/v1/apps/${a.sdkappid}`, { base: own.url, body: {
      admin_identifiers: ['administrator'], gateway_identifier: 'administrator',
      tencent_base_url: `https://127.0.0.1:${standinPort}` } }), 200);
  }
});

after(async () => {
  try {
    const log = own.log;
    await stopAll(servers);
    // Every reply of the jobs above was written out or lost with its client: none is left
    // for the shutdown to wait on (a reply's end lost with its connection was once counted
    // as waiting, and held the stop for its whole grace period).
    assert.doesNotMatch(log(), /replies unfinished/);
  } finally {
    if (standin) standin.kill('SIGTERM'); // else the file waits on it until its timeout
  }
});

describe('account import and check', () => {
  test('text: 250 accounts in order, 3 calls, a bad line in place; check agrees', async () => {
    const ids = Array.from({ length: 250 }, (_, i) => `user_${String(i).padStart(4, '0')}`);
    ids.splice(120, 0, 'x'.repeat(33));
    const r = await accounts('import', `${ids.join('\r\n')}\n`);
    assert.equal(r.status, 200);
    assert.deepEqual(r.items.map((i) => i.identifier), ids);
    assert.equal(r.items[120].status, 'failed');
    assert.equal(r.items[120].error.code, 'bad_identifier');
    assert.ok(r.items.filter((_, i) => i !== 120).every((i) => i.status === 'imported'));
    assert.equal(r.last.summary.count, 251);
    assert.equal(r.last.summary.imported, 250);
    assert.equal(r.last.summary.failed, 1);
    assert.equal(r.last.summary.state, 'complete');
    assert.equal(r.last.summary.sha256, r.sha);
    assert.ok(r.last.summary.calls >= 3);
    const have = (await standinAccounts()).map((a) => a.UserID);
    assert.deepEqual(have, ids.filter((_, i) => i !== 120).sort());
    const counters = await standinRequest('GET', `/__standin/counters?sdkappid=${app.sdkappid}`);
    assert.equal(counters[app.sdkappid]['im_open_login_svc/multiaccount_import'].calls, 3);

    const c = await accounts('check', 'user_0000\nnobody\nuser_0249\n');
    assert.deepEqual(c.items.map((i) => [i.identifier, i.status]),
      [['user_0000', 'imported'], ['nobody', 'not_imported'], ['user_0249', 'imported']]);
    assert.equal(c.last.summary.not_imported, 1);
    assert.equal(c.last.summary.sha256, c.sha);

    const ev = await api('GET', `/v1/audit?sdkappid=${app.sdkappid}&limit=1000`);
    expectStatus(ev, 200);
    const start = ev.json.events.find((e) => e.action === 'accounts.import');
    const fin = ev.json.events.find((e) => e.action === 'accounts.import.finish');
    assert.equal(start.outcome, 'started');
    assert.equal(fin.outcome, 'complete');
    assert.equal(fin.details.job_id, start.details.job_id);
    assert.equal(fin.details.job_id, r.last.summary.job_id);
    assert.equal(fin.details.count, 251);
    assert.equal(fin.details.sha256, r.sha);
    assert.ok(ev.json.events.some((e) => e.action === 'accounts.check.finish'));
  });

  test('NDJSON with nick and face_url; Tencent\'s FailAccounts: sent again, or failed in place',
    async () => {
      await standinRequest('POST', '/__standin/inject', { sdkappid: app.sdkappid,
        command: 'im_open_login_svc/multiaccount_import',
        replies: [{ FailAccounts: ['nd_b', 'josé'] }] });
      // The injected reply imports nothing: the accounts not listed are taken as imported by
      // that reply, so the stand-in's own list is checked only for the ones sent again.
      const lines = [
        { identifier: 'nd_a', nick: 'A', face_url: 'https://example.com/a.png' },
        { identifier: 'nd_b', nick: 'B' },
        { identifier: 'josé' }, // UTF-8: sent, and the stand-in's rule lists it in FailAccounts
        { identifier: 'nd_c', color: 'red' },
        'not json',
      ].map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n');
      const r = await accounts('import', lines, { contentType: 'application/x-ndjson' });
      assert.equal(r.status, 200);
      assert.deepEqual(r.items.map((i) => i.status),
        ['imported', 'imported', 'failed', 'failed', 'failed']);
      assert.equal(r.items[2].identifier, 'josé');
      assert.equal(r.items[2].error.code, 'fail_account');
      assert.equal(r.items[3].error.code, 'unknown_field');
      assert.equal(r.items[4].error.code, 'bad_json');
      const have = await standinAccounts();
      const b = have.find((a) => a.UserID === 'nd_b');
      assert.ok(b, 'nd_b was sent again and imported');
      assert.equal(b.Nick, 'B');
      assert.ok(!have.some((a) => a.UserID === 'josé'));
    });

  test('Tencent\'s per-second limit (60007) is ridden out', async () => {
    await standinRequest('POST', '/__standin/config',
      { limits: { 'im_open_login_svc/multiaccount_import': 2 } });
    try {
      const ids = Array.from({ length: 800 }, (_, i) => `lim_${i}`);
      const r = await accounts('import', ids.join('\n'));
      assert.equal(r.last.summary.imported, 800, JSON.stringify(r.last));
      const counters = await standinRequest('GET', `/__standin/counters?sdkappid=${app.sdkappid}`);
      assert.ok(counters[app.sdkappid]['im_open_login_svc/multiaccount_import'].limited > 0,
        'the stand-in did refuse some calls');
    } finally {
      await standinRequest('POST', '/__standin/config',
        { limits: { 'im_open_login_svc/multiaccount_import': 100 } });
    }
  });

  test('Tencent\'s 70050 ends the rest of the job at once, nothing more sent', async () => {
    await standinRequest('POST', '/__standin/config', { verify_fail_limit: 2 });
    try {
      const ids = Array.from({ length: 3000 }, (_, i) => `held_${i}`);
      const res = await postLines(own.url, `/v1/apps/${heldApp.sdkappid}/accounts/import`,
        ids.join('\n'));
      assert.equal(res.status, 200, res.text);
      const items = res.lines.slice(0, -1).map((l) => JSON.parse(l));
      const summary = JSON.parse(res.lines[res.lines.length - 1]).summary;
      assert.equal(summary.failed, 3000, JSON.stringify(summary));
      assert.equal(summary.state, 'complete');
      const codes = new Set(items.map((i) => `${i.error.code} ${i.error.tencent_code}`));
      assert.ok(codes.has('tencent_error 70009'), [...codes].join(', '));
      assert.ok(codes.has('tencent_rate_limited 70050'), [...codes].join(', '));
      const held = items.find((i) => i.error.code === 'tencent_rate_limited');
      assert.match(held.error.message, /70050/);
      const c = await standinRequest('GET', `/__standin/counters?sdkappid=${heldApp.sdkappid}`);
      const sent = c[heldApp.sdkappid]['im_open_login_svc/multiaccount_import'].calls;
      assert.ok(sent < 30, `${sent} of 30 calls sent: the held ones were not`);
    } finally {
      await standinRequest('POST', '/__standin/config', { verify_fail_limit: 10 });
    }
  });

  test('a stand-in restart mid-job: the calls are retried and every account lands', async () => {
    const ids = Array.from({ length: 600 }, (_, i) => `rs_${i}`);
    // A slow upload: the stand-in goes down after the first lines and comes back on its port.
    const body = new ReadableStream({
      async start(ctl) {
        const enc = new TextEncoder();
        ctl.enqueue(enc.encode(`${ids.slice(0, 200).join('\n')}\n`));
        await new Promise((r) => setTimeout(r, 300));
        standin.kill('SIGKILL');
        await new Promise((r) => setTimeout(r, 200));
        ctl.enqueue(enc.encode(`${ids.slice(200).join('\n')}\n`));
        await new Promise((r) => setTimeout(r, 1000));
        await startStandinHere(standinPort);
        ctl.close();
      },
    });
    const res = await fetch(`${own.url}/v1/apps/${app.sdkappid}/accounts/import`, {
      method: 'POST', body, duplex: 'half',
      headers: { authorization: `Bearer ${E2E.admin}`, 'content-type': 'text/plain' },
      signal: AbortSignal.timeout(120000),
    });
    const text = await res.text();
    const lines = text.trim().split('\n').map((l) => JSON.parse(l));
    const sum = lines.pop().summary;
    assert.deepEqual(lines.map((l) => l.identifier), ids);
    assert.equal(sum.imported, 600, JSON.stringify(lines.filter((l) => l.status !== 'imported')
      .slice(0, 3)));
    const have = new Set((await standinAccounts()).map((a) => a.UserID));
    // The stand-in lost what it held before its restart: the accounts sent after it are there.
    assert.ok(ids.slice(200).every((i) => have.has(i)));
  });

  test('a client that leaves mid-job: the job ends aborted in the audit log', async () => {
    const ctl = new AbortController();
    const body = new ReadableStream({
      async start(c) {
        c.enqueue(new TextEncoder().encode('gone_1\ngone_2\n'));
        await new Promise((r) => setTimeout(r, 600));
        ctl.abort();
      },
    });
    await assert.rejects(fetch(`${own.url}/v1/apps/${app.sdkappid}/accounts/import`, {
      method: 'POST', body, duplex: 'half', signal: ctl.signal,
      headers: { authorization: `Bearer ${E2E.admin}`, 'content-type': 'text/plain' },
    }).then((res) => res.text()));
    let fin;
    for (let i = 0; i < 50 && !fin; i++) {
      const ev = await api('GET', `/v1/audit?sdkappid=${app.sdkappid}&action=accounts.import.finish&limit=1000`);
      fin = ev.json.events.find((e) => e.outcome === 'aborted');
      if (!fin) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(fin, 'the aborted job is recorded');
    assert.equal(fin.details.state, 'aborted');
    expectStatus(await api('GET', '/healthz', { base: own.url }), 200);
  });

  test('refusals: a rest_caller without the command, a wrong content type', async () => {
    const t = await api('POST', '/v1/tokens', { body: { name: `imp rc ${crypto.randomUUID()}`,
      role: 'rest_caller', rest_allow: ['im_open_login_svc/account_check'] } });
    expectStatus(t, 201);
    const r = await accounts('import', 'a\n', { token: t.json.token });
    expectError({ status: r.status, json: r.json, text: r.text, req: 'import' }, 403,
      'rest_not_allowed', ['multiaccount_import']);
    const ok = await accounts('check', 'a\n', { token: t.json.token });
    assert.equal(ok.status, 200);
    const s = await api('POST', '/v1/tokens', { body: { name: `imp s ${crypto.randomUUID()}`,
      role: 'signer' } });
    const f = await accounts('check', 'a\n', { token: s.json.token });
    assert.equal(f.status, 403);
    const ct = await accounts('import', '{"a":1}', { contentType: 'application/json' });
    assert.equal(ct.status, 415);
  });

  test('a stop (SIGQUIT) with calls in flight and chunks waiting: the server exits cleanly',
    async () => {
      // Once, the calls tim_free cancelled dispatched the next chunks into the client being
      // freed (a heap use-after-free under AddressSanitizer). 5 calls a second (a burst of 1):
      // one call is in flight, the next ones wait at the app's bucket when the stop comes.
      const srv = await startServer('imp-stop', { env: {
        USERSIGD_TENCENT_CA_FILE: path.join(work, 'ca.pem'),
        USERSIGD_TENCENT_ALLOW_INSECURE_BASE_URL: 'true', USERSIGD_TENCENT_RATE: '5' } });
      const exited = new Promise((resolve) => srv.proc.on('exit', (code, signal) => resolve({ code, signal })));
      try {
        await createApp(stopApp.sdkappid, {}, { base: srv.url });
        await addKey(stopApp.sdkappid, stopApp.secret, {}, { base: srv.url });
        expectStatus(await api('PATCH', `/v1/apps/${stopApp.sdkappid}`, { base: srv.url, body: {
          admin_identifiers: ['administrator'], gateway_identifier: 'administrator',
          tencent_base_url: `https://127.0.0.1:${standinPort}` } }), 200);
        await standinRequest('POST', '/__standin/inject', { sdkappid: stopApp.sdkappid,
          command: 'im_open_login_svc/multiaccount_import',
          replies: Array.from({ length: 20 }, () => ({ delay_ms: 30000 })) });
        const ids = Array.from({ length: 1000 }, (_, i) => `stop_${i}`);
        const job = postLines(srv.url, `/v1/apps/${stopApp.sdkappid}/accounts/import`,
          `${ids.join('\n')}\n`).catch((e) => e);
        let calls = 0;
        for (let i = 0; i < 100 && calls === 0; i++) {
          const c = await standinRequest('GET', `/__standin/counters?sdkappid=${stopApp.sdkappid}`);
          const k = c[stopApp.sdkappid] && c[stopApp.sdkappid]['im_open_login_svc/multiaccount_import'];
          calls = k ? k.calls : 0;
          if (calls === 0) await new Promise((r) => setTimeout(r, 50));
        }
        assert.ok(calls > 0, 'a call reached the stand-in');
        srv.proc.kill('SIGQUIT');
        const r = await exited;
        assert.deepEqual(r, { code: 0, signal: null }, srv.log().slice(-4000));
        assert.doesNotMatch(srv.log(), /AddressSanitizer|LeakSanitizer|runtime error/);
        await job; // cut off with the server: its outcome is not the point
      } finally {
        await srv.stop();
      }
    });
});

// `usersig import` (the batch client's transport at the accounts endpoints) against this server
// and the stand-in. Run asynchronously: the server's output pipes are read in this process.
function importCli(args, opts = {}) {
  const stdinFd = opts.file !== undefined ? fs.openSync(opts.file, 'r') : 'pipe';
  const child = spawn(E2E.usersig, ['import', '--server', own.url, '--sdkappid',
    String(app.sdkappid)].concat(args), {
    env: Object.assign({}, process.env, { USERSIGD_TOKEN: opts.token || E2E.admin }),
    stdio: [stdinFd, 'pipe', 'pipe'],
  });
  if (typeof stdinFd === 'number') fs.closeSync(stdinFd);
  else child.stdin.end(opts.input || '');
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => { stderr += d; });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 120000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const lines = stdout === '' ? [] : stdout.replace(/\n$/, '').split('\n');
      const sha = crypto.createHash('sha256').update(stdout).digest('hex');
      resolve({ code, stdout, stderr, items: lines.map((l) => JSON.parse(l)), sha });
    });
  });
}

describe('usersig import', () => {
  const ids = Array.from({ length: 230 }, (_, i) => `cli_${String(i).padStart(4, '0')}`);

  test('a file of 230 accounts: stdout in order, the stand-in holds them, the summary on stderr',
    async () => {
      const file = path.join(work, 'cli-ids.txt');
      fs.writeFileSync(file, `${ids.join('\n')}\n`);
      const r = await importCli([], { file });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.items.map((i) => [i.identifier, i.status]),
        ids.map((id) => [id, 'imported']));
      const m = r.stderr.match(
        /^import ([0-9a-f]{32}): 230 imported 230 failed 0 calls (\d+) sha256 ([0-9a-f]{64})$/m);
      assert.ok(m, r.stderr);
      assert.ok(Number(m[2]) >= 3, r.stderr); // 100 accounts a call
      assert.equal(m[3], r.sha); // the summary's SHA-256 is over the lines on stdout
      const have = new Set((await standinAccounts()).map((a) => a.UserID));
      assert.deepEqual(ids.filter((id) => !have.has(id)), []);
      const ev = await api('GET',
        `/v1/audit?sdkappid=${app.sdkappid}&action=accounts.import.finish&limit=1000`);
      expectStatus(ev, 200);
      const fin = ev.json.events.find((e) => e.details.job_id === m[1]);
      assert.ok(fin, 'the job is in the audit log');
      assert.equal(fin.details.count, 230);
      assert.equal(fin.details.sha256, r.sha);
    });

  test('--check agrees: imported and not_imported in input order, exit 0', async () => {
    const input = ['cli_0000', 'cli_never_1', 'cli_0229', '', 'cli_never_2', 'cli_0100'];
    const r = await importCli(['--check'], { input: `${input.join('\r\n')}\r\n` });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.items.map((i) => [i.identifier, i.status]), [
      ['cli_0000', 'imported'], ['cli_never_1', 'not_imported'], ['cli_0229', 'imported'],
      ['cli_never_2', 'not_imported'], ['cli_0100', 'imported']]);
    assert.match(r.stderr, new RegExp('^check [0-9a-f]{32}: 5 imported 3 not_imported 2 ' +
      `failed 0 calls 1 sha256 ${r.sha}$`, 'm'));
    const have = new Set((await standinAccounts()).map((a) => a.UserID));
    assert.ok(!have.has('cli_never_1') && !have.has('cli_never_2'), 'a check imports nothing');
  });

  test('a 33-byte identifier fails in place, named by its input line: exit 1', async () => {
    const bad = 'y'.repeat(33);
    const input = ['cli_f_1', '', 'cli_f_2', bad, 'cli_f_3'];
    const r = await importCli([], { input: `${input.join('\n')}\n` });
    assert.equal(r.code, 1, r.stderr);
    assert.deepEqual(r.items.map((i) => [i.identifier, i.status]), [
      ['cli_f_1', 'imported'], ['cli_f_2', 'imported'], [bad, 'failed'], ['cli_f_3', 'imported']]);
    assert.equal(r.items[2].error.code, 'bad_identifier');
    assert.match(r.stderr, /: 4 imported 3 failed 1 calls 1 sha256 /);
    // Input line 4 (the blank line 2 is skipped, not sent, but counted).
    assert.match(r.stderr, /usersig: 1 of 4 accounts failed, at input line 4 \(bad_identifier\)/);
    const have = new Set((await standinAccounts()).map((a) => a.UserID));
    assert.ok(['cli_f_1', 'cli_f_2', 'cli_f_3'].every((i) => have.has(i)));
    assert.ok(!have.has(bad));
  });

  test('a token without the role or the command: exit 2 with the server\'s message', async () => {
    const t = await api('POST', '/v1/tokens', { body: { name: `imp cli ${crypto.randomUUID()}`,
      role: 'rest_caller', rest_allow: ['im_open_login_svc/account_check'] } });
    expectStatus(t, 201);
    const r = await importCli([], { input: 'cli_denied\n', token: t.json.token });
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, new RegExp('HTTP 403: rest_not_allowed: this token\'s rest_allow ' +
      'does not cover im_open_login_svc/multiaccount_import'));
    const c = await importCli(['--check'], { input: 'cli_denied\n', token: t.json.token });
    assert.equal(c.code, 0, c.stderr);
    assert.deepEqual(c.items.map((i) => i.status), ['not_imported']);
    const s = await api('POST', '/v1/tokens', { body: { name: `imp cli s ${crypto.randomUUID()}`,
      role: 'signer' } });
    expectStatus(s, 201);
    const f = await importCli(['--check'], { input: 'cli_denied\n', token: s.json.token });
    assert.equal(f.code, 2, f.stderr);
    assert.match(f.stderr, /usersig: the server answered HTTP 403: forbidden: /);
    assert.ok(!(await standinAccounts()).some((a) => a.UserID === 'cli_denied'));
  });

  test('--ndjson: nick and face_url reach the stand-in; escapes and a bad line', async () => {
    const lines = [
      JSON.stringify({ identifier: 'cli_nd_1', nick: 'One', face_url: 'https://example.com/1.png' }),
      '{"identifier":"cli\\u005fnd\\u005f2","nick":"Two"}', // the answer's identifier: cli_nd_2
      JSON.stringify({ identifier: 'cli_nd_3', colour: 'red' }),
      JSON.stringify({ identifier: 'cli_nd_4' }),
    ];
    const r = await importCli(['--ndjson'], { input: `${lines.join('\n')}\n` });
    assert.equal(r.code, 1, r.stderr);
    assert.deepEqual(r.items.map((i) => [i.identifier, i.status]), [
      ['cli_nd_1', 'imported'], ['cli_nd_2', 'imported'], ['cli_nd_3', 'failed'],
      ['cli_nd_4', 'imported']]);
    assert.match(r.stderr, /at input line 3 \(unknown_field\)/);
    const have = new Map((await standinAccounts()).map((a) => [a.UserID, a]));
    assert.equal(have.get('cli_nd_1').Nick, 'One');
    assert.equal(have.get('cli_nd_1').FaceUrl, 'https://example.com/1.png');
    assert.equal(have.get('cli_nd_2').Nick, 'Two');
    assert.ok(have.has('cli_nd_4') && !have.has('cli_nd_3'));
    const c = await importCli(['--check', '--ndjson'],
      { input: '{"identifier":"cli_nd_4"}\n{"identifier":"cli_nd_3"}\n' });
    assert.equal(c.code, 0, c.stderr);
    assert.deepEqual(c.items.map((i) => i.status), ['imported', 'not_imported']);
  });
});
