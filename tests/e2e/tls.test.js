// TLS on the listener, checked by clients independent of the server: the curl and openssl
// commands (never node's TLS). Certificates are made here with openssl: a CA, a server
// certificate for 127.0.0.1 and localhost, an expired one, a second CA, a client certificate.
// Each case starts its own `usersigd serve` on the run's database with TLS settings in the
// environment: HTTPS with the right and a wrong CA, an expired certificate, TLS 1.1, a reload on
// SIGHUP with a keep-alive connection open, mutual TLS, and the plain-HTTP rules at start.
'use strict';

const { describe, test, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');

const { E2E, newAppId, newSecret, crossCheck, stopAll } = require('./lib.js');

const dir = path.join(E2E.work, `tls-${process.pid}`);
fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
const file = (name) => path.join(dir, name);

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, {
    cwd: dir, input: opts.input, encoding: 'utf8', timeout: opts.timeoutMs || 30000,
  });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function shOk(cmd, args, opts) {
  const r = sh(cmd, args, opts);
  assert.equal(r.code, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

// ---- certificates ---------------------------------------------------------------------------

function makeCa(name, cn) {
  shOk('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
    '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '30', '-subj', `/CN=${cn}`,
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  fs.mkdirSync(file(`${name}-db`), { mode: 0o700 });
  fs.writeFileSync(file(`${name}-db/index.txt`), '');
  fs.writeFileSync(file(`${name}.cnf`), [
    '[ca]', 'default_ca = d', '[d]',
    `database = ${file(`${name}-db/index.txt`)}`, `new_certs_dir = ${file(`${name}-db`)}`,
    `serial = ${file(`${name}-db/serial`)}`, 'default_md = sha256', 'policy = p',
    'unique_subject = no', '[p]', 'commonName = supplied',
    '[server]', 'subjectAltName = IP:127.0.0.1,DNS:localhost', 'basicConstraints = CA:FALSE',
    'extendedKeyUsage = serverAuth',
    '[client]', 'basicConstraints = CA:FALSE', 'extendedKeyUsage = clientAuth', '',
  ].join('\n'));
}

// A key and a certificate `name`.pem/.key issued by ca with the given serial (hex), valid for a
// week from now, or between opts.start and opts.end (YYYYMMDDHHMMSSZ).
function issue(ca, name, serial, opts = {}) {
  fs.writeFileSync(file(`${ca}-db/serial`), `${serial}\n`);
  shOk('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
    '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${opts.cn || 'localhost'}`]);
  const dates = opts.start ? ['-startdate', opts.start, '-enddate', opts.end] : ['-days', '7'];
  shOk('openssl', ['ca', '-batch', '-config', `${ca}.cnf`, '-cert', `${ca}.pem`, '-keyfile',
    `${ca}.key`, '-in', `${name}.csr`, '-out', `${name}.pem`, '-extensions',
    opts.ext || 'server', '-notext'].concat(dates));
  fs.chmodSync(file(`${name}.key`), 0o600);
}

makeCa('ca', 'usersigd e2e CA');
makeCa('ca2', 'another CA');
issue('ca', 'server', '1001');
issue('ca', 'server2', '2002');
issue('ca', 'expired', '3003', { start: '20200101000000Z', end: '20200201000000Z' });
issue('ca', 'client', '4004', { cn: 'e2e client', ext: 'client' });
issue('ca2', 'client2', '5005', { cn: 'stranger', ext: 'client' });

// ---- servers --------------------------------------------------------------------------------

const servers = [];
after(() => stopAll(servers));

// `usersigd serve` on listen with env (USERSIGD_TLS_* ...). Resolves once it logs its port and,
// unless opts.noHealth, /healthz answers 200 to curl: --cacert ca.pem (and the client
// certificate opts.clientCert), or plain http:// with opts.plain. Resolves to
// { port, https, proc, log(), stop() }, or, when it exits first, to { exited, out }.
async function serve(name, env, opts = {}) {
  const dataDir = path.join(E2E.work, `tls-srv-${name}-${process.pid}`);
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const proc = spawn(E2E.usersigd, ['serve'], {
    env: Object.assign({}, process.env, {
      USERSIGD_DATABASE_URL: E2E.dbUrl,
      USERSIGD_MASTER_KEY_FILE: E2E.masterKeyFile,
      USERSIGD_LISTEN: opts.listen || '127.0.0.1:0',
      USERSIGD_DATA_DIR: dataDir,
    }, env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout.on('data', (b) => { out += b.toString('utf8'); });
  proc.stderr.on('data', (b) => { out += b.toString('utf8'); });
  let exited = null;
  const exitPromise = new Promise((resolve) => {
    proc.on('exit', (code, signal) => { exited = { code, signal }; resolve(exited); });
  });
  const s = {
    proc,
    log: () => out,
    stop: async () => {
      if (exited) return exited;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 10000);
      const r = await exitPromise;
      clearTimeout(t);
      return r;
    },
  };
  const deadline = Date.now() + 60000;
  while (Date.now() < deadline && !exited) {
    const m = /listening on \S+:(\d+)/.exec(out);
    if (m) {
      s.port = Number(m[1]);
      s.https = `https://127.0.0.1:${s.port}`;
      if (opts.noHealth) {
        servers.push(s);
        return s;
      }
      const r = opts.plain ? sh('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-m', '2',
        `http://127.0.0.1:${s.port}/healthz`])
        : curl(s, '/healthz', { cert: opts.clientCert });
      if (r.stdout.endsWith('200')) {
        servers.push(s);
        return s;
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  if (!exited) {
    await s.stop();
    throw new Error(`usersigd serve (${name}) did not come up\n--- its output ---\n${out}`);
  }
  await new Promise((r) => setTimeout(r, 50)); // the last output
  return { exited, out };
}

// curl to the server s: --cacert (default ca.pem), optionally a client certificate (name of a
// .pem/.key pair), a bearer token, a JSON body, extra arguments. Output: the body, then the
// status on the last line. Returns { code, stdout, stderr, status, json }.
function curl(s, urlPath, opts = {}) {
  const args = ['-s', '-S', '-m', '10', '--cacert', opts.cacert || 'ca.pem',
    '-w', '\n%{http_code}'];
  if (opts.cert) args.push('--cert', `${opts.cert}.pem`, '--key', `${opts.cert}.key`);
  if (opts.token) args.push('-H', `Authorization: Bearer ${opts.token}`);
  if (opts.body !== undefined) {
    args.push('-H', 'Content-Type: application/json', '--data-binary', JSON.stringify(opts.body));
  }
  const r = sh('curl', args.concat(opts.args || [], [`https://${opts.host || '127.0.0.1'}:${s.port}${urlPath}`]));
  const nl = r.stdout.lastIndexOf('\n');
  r.status = Number(r.stdout.slice(nl + 1));
  r.text = r.stdout.slice(0, Math.max(nl, 0));
  try { r.json = JSON.parse(r.text); } catch (e) { r.json = undefined; }
  return r;
}

// The serial (hex, upper case) of the certificate a new TLS connection to s is shown.
function servedSerial(s) {
  const r = sh('openssl', ['s_client', '-connect', `127.0.0.1:${s.port}`, '-servername',
    'localhost', '-CAfile', 'ca.pem', '-verify_return_error'], { input: '' });
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(r.stdout);
  assert.ok(pem, `s_client showed no certificate: ${r.stdout}\n${r.stderr}`);
  return shOk('openssl', ['x509', '-noout', '-serial'], { input: pem[0] }).trim()
    .replace(/^serial=/, '').toUpperCase();
}

const tlsEnv = (cert = 'server', extra = {}) => Object.assign({
  USERSIGD_TLS_CERT_FILE: file(`${cert}.pem`),
  USERSIGD_TLS_KEY_FILE: file(`${cert}.key`),
}, extra);

describe('TLS on the listener', () => {
  let s;

  test('HTTPS with the right CA: /healthz 200 with JSON, over TLS 1.2 and 1.3', async () => {
    s = await serve('main', tlsEnv());
    assert.ok(s.port, `no server: ${JSON.stringify(s)}`);
    assert.match(s.log(), /listening on 127\.0\.0\.1:\d+ \(TLS\)/);
    for (const v of [['--tlsv1.3'], ['--tlsv1.2', '--tls-max', '1.2']]) {
      const r = curl(s, '/healthz', { args: v });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.status, 200, r.stdout);
      assert.equal(typeof r.json, 'object', r.text);
    }
    // The name in the certificate works too (subjectAltName DNS:localhost).
    const r = sh('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', 'ca.pem',
      '--resolve', `localhost:${s.port}:127.0.0.1`, `https://localhost:${s.port}/healthz`]);
    assert.equal(r.stdout, '200', r.stderr);
  });

  test('a wrong CA is refused by curl (exit 60)', () => {
    const r = curl(s, '/healthz', { cacert: 'ca2.pem' });
    assert.equal(r.code, 60, `curl exit ${r.code}: ${r.stderr}`);
  });

  test('plain HTTP on the TLS port gets no reply', () => {
    const r = sh('curl', ['-s', '-m', '5', '-o', '/dev/null', '-w', '%{http_code}',
      `http://127.0.0.1:${s.port}/healthz`]);
    assert.notEqual(r.code, 0);
    assert.notEqual(r.stdout, '200');
  });

  test('TLS 1.1 and a TLS 1.2 CBC suite are refused by the server', () => {
    const r = curl(s, '/healthz', { args: ['--tlsv1', '--tls-max', '1.1'] });
    assert.notEqual(r.code, 0, `curl --tls-max 1.1 connected: ${r.stdout}`);
    // openssl s_client really offering TLS 1.1 (security level 0 lets it): the server refuses.
    const o = sh('openssl', ['s_client', '-connect', `127.0.0.1:${s.port}`, '-tls1_1', '-cipher',
      'DEFAULT:@SECLEVEL=0'], { input: '' });
    assert.notEqual(o.code, 0, o.stdout);
    assert.doesNotMatch(o.stdout, /BEGIN CERTIFICATE/);
    assert.match(o.stderr, /alert protocol version/, o.stderr); // the server's alert 70
    const c = sh('openssl', ['s_client', '-connect', `127.0.0.1:${s.port}`, '-tls1_2', '-cipher',
      'ECDHE-ECDSA-AES128-SHA'], { input: '' });
    assert.notEqual(c.code, 0, c.stdout);
    assert.match(c.stderr, /alert handshake failure/, c.stderr); // no shared suite: alert 40
  });

  test('an authenticated call over TLS: POST /v1/apps with the admin token', () => {
    const sdkappid = newAppId();
    const r = curl(s, '/v1/apps', { token: E2E.admin,
      body: { sdkappid, name: `tls app ${sdkappid}` } });
    assert.equal(r.status, 201, r.stdout);
    assert.equal(r.json.sdkappid, sdkappid);
    const g = curl(s, `/v1/apps/${sdkappid}`, { token: E2E.admin });
    assert.equal(g.status, 200, g.stdout);
    // Without the token: 401, as over plain HTTP.
    assert.equal(curl(s, `/v1/apps/${sdkappid}`).status, 401);
  });

  test('an expired certificate is refused by curl', async () => {
    const e = await serve('expired', tlsEnv('expired'), { noHealth: true });
    assert.ok(e.port, JSON.stringify(e));
    const r = curl(e, '/healthz');
    assert.equal(r.code, 60, `curl exit ${r.code}: ${r.stderr}`);
    assert.match(r.stderr, /expired/i);
  });

  test('SIGHUP: new connections get the new certificate, an open one keeps working', async () => {
    fs.copyFileSync(file('server.pem'), file('live.pem'));
    fs.copyFileSync(file('server.key'), file('live.key'));
    const r1 = await serve('reload', tlsEnv('live'));
    assert.ok(r1.port, JSON.stringify(r1));
    assert.equal(servedSerial(r1), '1001');
    // A keep-alive connection opened before the reload (openssl s_client, HTTP/1.1 by hand).
    const ka = keepAlive(r1.port);
    try {
      await ka.request('/healthz');
      assert.match(ka.out(), /-----BEGIN CERTIFICATE-----/);
      fs.copyFileSync(file('server2.pem'), file('live.pem'));
      fs.copyFileSync(file('server2.key'), file('live.key'));
      const before = r1.log().length;
      r1.proc.kill('SIGHUP');
      await waitFor(() => /SIGHUP: reloaded the TLS certificate/.test(r1.log().slice(before)),
        r1.log);
      assert.equal(servedSerial(r1), '2002');
      assert.equal(curl(r1, '/healthz').status, 200);
      // The connection from before answers on, on its own handshake.
      await ka.request('/healthz');
      assert.equal((ka.out().match(/HTTP\/1\.1 200/g) || []).length, 2, ka.out());
      assert.equal(ka.handshakes(), 1);
    } finally {
      ka.close();
    }
    // A broken file on reload keeps the certificate in force.
    fs.writeFileSync(file('live.pem'), 'not a certificate\n');
    const before = r1.log().length;
    r1.proc.kill('SIGHUP');
    await waitFor(() => /SIGHUP: keeping the current TLS certificate: TLS: cannot load the certificate chain file/
      .test(r1.log().slice(before)), r1.log);
    assert.equal(servedSerial(r1), '2002');
    assert.equal(curl(r1, '/healthz').status, 200);
  });

  test('mTLS: no client certificate refused, one from another CA refused, one from the CA signs',
    async () => {
      const m = await serve('mtls', tlsEnv('server', { USERSIGD_TLS_CLIENT_CA_FILE: file('ca.pem') }),
        { clientCert: 'client' });
      assert.ok(m.port, JSON.stringify(m));
      assert.match(m.log(), /\(TLS, client certificates required\)/);
      const none = curl(m, '/healthz');
      assert.notEqual(none.code, 0, `no client certificate, yet: ${none.stdout}`);
      assert.notEqual(none.status, 200);
      const stranger = curl(m, '/healthz', { cert: 'client2' });
      assert.notEqual(stranger.code, 0, `a stranger's certificate, yet: ${stranger.stdout}`);
      // The CA's client: an app, a key and a UserSig through the API, with the admin token.
      const sdkappid = newAppId();
      const secret = newSecret();
      const opts = { cert: 'client', token: E2E.admin };
      assert.equal(curl(m, '/v1/apps', Object.assign({
        body: { sdkappid, name: `mtls ${sdkappid}` } }, opts)).status, 201);
      assert.equal(curl(m, `/v1/apps/${sdkappid}/keys`, Object.assign({ body: { secret } }, opts))
        .status, 201);
      const signed = curl(m, `/v1/apps/${sdkappid}/usersigs`,
        Object.assign({ body: { identifier: 'mtls-alice' } }, opts));
      assert.equal(signed.status, 200, signed.stdout);
      crossCheck(signed.json.usersig, { sdkappid, secret, identifier: 'mtls-alice' });
      // The certificate does not stand in for the token.
      assert.equal(curl(m, `/v1/apps/${sdkappid}`, { cert: 'client' }).status, 401);
    });
});

describe('plain HTTP and bad TLS settings at start', () => {
  test('plain HTTP on 0.0.0.0 without allow_plain_http: serve exits non-zero, saying why',
    async () => {
      const r = await serve('plain-any', {}, { listen: '0.0.0.0:0', plain: true });
      assert.ok(r.exited, `it started: ${r.log && r.log()}`);
      assert.notEqual(r.exited.code, 0);
      assert.match(r.out, /refusing plain HTTP on 0\.0\.0\.0:0, which is not a loopback address/);
      assert.match(r.out, /allow_plain_http/);
      assert.match(r.out, /USERSIGD_TLS_CERT_FILE/);
    });

  test('with allow_plain_http it starts in plain HTTP', async () => {
    const r = await serve('plain-allowed', { USERSIGD_ALLOW_PLAIN_HTTP: 'true' },
      { listen: '0.0.0.0:0', plain: true });
    assert.ok(r.port, JSON.stringify(r));
    assert.match(r.log(), /listening on 0\.0\.0\.0:\d+ \(plain HTTP\)/);
  });

  test('a certificate without its key, the reverse, a key of another certificate: refused',
    async () => {
      const cases = [
        [{ USERSIGD_TLS_CERT_FILE: file('server.pem') }, /tls_cert_file is set but tls_key_file is not/],
        [{ USERSIGD_TLS_KEY_FILE: file('server.key') }, /tls_key_file is set but tls_cert_file is not/],
        [{ USERSIGD_TLS_CERT_FILE: file('server.pem'), USERSIGD_TLS_KEY_FILE: file('server2.key') },
          /does not match the certificate/],
        [tlsEnv('server', { USERSIGD_TLS_CLIENT_CA_FILE: file('missing.pem') }),
          /cannot load the client CA file/],
      ];
      for (const [env, want] of cases) {
        const r = await serve('bad-tls', env);
        assert.ok(r.exited, `it started with ${JSON.stringify(env)}`);
        assert.notEqual(r.exited.code, 0);
        assert.match(r.out, want);
      }
    });
});

// ---- helpers of the cases above -------------------------------------------------------------

async function waitFor(cond, log, ms = 10000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out; the server's output:\n${log()}`);
}

// One TLS connection held open by openssl s_client; request(path) sends an HTTP/1.1 request on
// it and waits for the next reply's end. handshakes(): how many certificate chains it was shown.
function keepAlive(port) {
  const proc = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername',
    'localhost', '-CAfile', file('ca.pem'), '-verify_return_error', '-ign_eof'],
  { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let replies = 0;
  proc.stdout.on('data', (b) => { out += b.toString('utf8'); });
  proc.stderr.on('data', () => {});
  return {
    out: () => out,
    handshakes: () => (out.match(/-----BEGIN CERTIFICATE-----/g) || []).length,
    request: async (p) => {
      replies += 1;
      proc.stdin.write(`GET ${p} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
      await waitFor(() => (out.match(/HTTP\/1\.1 \d{3}[\s\S]*?\r\n\r\n[^\r\n]*\}/g) || []).length >= replies,
        () => out);
    },
    close: () => { proc.stdin.end(); proc.kill('SIGTERM'); },
  };
}
