// usersigd's command line and life cycle: --version, exact options given once, --help-config
// naming every environment variable read, a start-up that fails before creating anything when
// the port is taken, SIGHUP re-reading the settings live, and every stop signal taking the
// embedded PostgreSQL down with the server.
'use strict';

const { describe, test, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { E2E, api, expectStatus, startServer, stopAll, embeddedPostmaster } = require('./lib');

const servers = [];
after(() => stopAll(servers.filter((s) => s.proc.exitCode === null && !s.proc.signalCode)));

const SECRET = 'hunter2-not-for-logs';
const srcDir = path.join(__dirname, '..', '..');

// usersigd ARGS with no database or data settings from the run, so that nothing can start.
function usersigd(args, env = {}) {
  const e = Object.assign({}, process.env, env);
  for (const k of Object.keys(e)) if (k.startsWith('USERSIGD_') && !(k in env)) delete e[k];
  return new Promise((resolve, reject) => {
    const p = spawn(E2E.usersigd, args, { env: e, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (b) => { stdout += b; });
    p.stderr.on('data', (b) => { stderr += b; });
    const t = setTimeout(() => p.kill('SIGKILL'), 60000);
    p.on('error', reject);
    p.on('close', (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

function exited(proc) {
  if (proc.exitCode !== null || proc.signalCode !== null) {
    return Promise.resolve({ code: proc.exitCode, signal: proc.signalCode });
  }
  return new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
}

async function waitFor(what, fn, ms = 15000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (fn()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`timed out waiting for ${what}`);
}

// A serve on its own embedded PostgreSQL (no database URL; its master key in its data dir).
async function embedded(name, opts = {}) {
  const s = await startServer(name, Object.assign({}, opts, {
    env: Object.assign({ USERSIGD_DATABASE_URL: '', USERSIGD_MASTER_KEY_FILE: '' }, opts.env),
  }));
  servers.push(s);
  const pid = embeddedPostmaster(s.dataDir);
  assert.ok(pid, `no embedded PostgreSQL runs for ${s.dataDir}:\n${s.log()}`);
  return { s, pid };
}

// Whether pid is a live process (a zombie is not).
function alive(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch (e) {
    if (e.code === 'ENOENT') return false;
    throw e;
  }
}

// usersigd exited 0 on sig, and the postmaster it ran is gone: pg_ctl stop -w returns once
// postmaster.pid is removed, which the postmaster does just before it exits.
async function assertStopped(s, pid, r, sig) {
  assert.equal(r.code, 0, `usersigd exited ${JSON.stringify(r)} on ${sig}:\n${s.log().slice(-3000)}`);
  assert.equal(embeddedPostmaster(s.dataDir), null, `the embedded PostgreSQL runs after ${sig}`);
  const deadline = Date.now() + 5000;
  while (alive(pid) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
  assert.equal(alive(pid), false, `postmaster ${pid} still alive after ${sig}`);
  assert.match(s.log(), /embedded PostgreSQL: stopped/);
}

describe('command line', () => {
  test('--version names the release, the commit and the token formats', async () => {
    const r = await usersigd(['--version']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0], /^usersigd \d+\.\d+\.\d+ \(commit ([0-9a-f]{7,40}(-modified)?|unknown)\)$/);
    assert.match(lines[1], /^libusersig \d+\.\d+\.\d+; UserSig formats: v2 \(TLS\.ver 2\.0.*v1 \(/);
    const cmake = fs.readFileSync(path.join(srcDir, 'CMakeLists.txt'), 'utf8');
    const v = /project\(\s*\w+\s+VERSION\s+(\d+\.\d+\.\d+)/.exec(cmake);
    assert.ok(v, 'the version in CMakeLists.txt');
    assert.ok(lines[0].startsWith(`usersigd ${v[1]} `), lines[0]);
    const help = await usersigd(['--help']);
    assert.match(help.stdout, /--version/);
  });

  test('an unknown or abbreviated option is refused by name, its value never shown', async () => {
    for (const args of [['serve', `--conf=${SECRET}`], ['serve', '--conf', SECRET],
      [`--configg=${SECRET}`, 'serve'], ['token', 'create', '--nam', SECRET, '--role', 'admin'],
      ['rewrap', `--new-master-key=${SECRET}`], ['migrate', '--verbose']]) {
      const r = await usersigd(args);
      const bad = args.find((a) => a.startsWith('--') && !['--role'].includes(a));
      const name = bad.split('=')[0];
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.ok(r.stderr.includes(`unknown option "${name}"`), `${args.join(' ')}: ${r.stderr}`);
      assert.ok(!(r.stdout + r.stderr).includes(SECRET), `the value is echoed: ${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
    // A stray argument is refused without being shown either.
    const r = await usersigd(['audit', 'verify', SECRET]);
    assert.equal(r.code, 2);
    assert.ok(!r.stderr.includes(SECRET), r.stderr);
  });

  test('a single-value option given twice is refused', async () => {
    for (const [args, name] of [
      [['--config', 'a.conf', 'serve', '--config', 'b.conf'], '--config'],
      [['--config=a.conf', '--config=b.conf', 'migrate'], '--config'],
      [['token', 'create', '--name', 'a', '--role', 'admin', '--name', 'b'], '--name'],
      [['token', 'create', '--name', 'a', '--role', 'admin', '--role', 'signer'], '--role'],
      [['token', 'create', '--name', 'a', '--role', 'admin', '--ttl', '1d', '--ttl=2d'], '--ttl'],
      [['token', 'create', '--name', 'a', '--role', 'admin', '--apps', '1', '--apps', '2'],
        '--apps'],
      [['rewrap', '--new-master-key-file', 'x', '--new-master-key-file', 'y'],
        '--new-master-key-file'],
    ]) {
      const r = await usersigd(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.ok(r.stderr.includes(`"${name}" is given twice`), `${args.join(' ')}: ${r.stderr}`);
    }
  });

  test('--help-config lists every setting\'s variable and every other variable read', async () => {
    const r = await usersigd(['--help-config']);
    assert.equal(r.code, 0, r.stderr);
    const conf = fs.readFileSync(path.join(srcDir, 'server', 'base', 'config.c'), 'utf8');
    const table = conf.slice(conf.indexOf('SETTINGS[] = {'), conf.indexOf('#define N_SETTINGS'));
    const vars = [...table.matchAll(/"(USERSIGD_[A-Z_]+)"/g)].map((m) => m[1]);
    assert.ok(vars.length >= 10, `the table's variables: ${vars}`);
    assert.ok(vars.includes('USERSIGD_MIGRATIONS_DIR'));
    for (const v of vars) assert.ok(r.stdout.includes(`(environment ${v})`), `${v} not listed`);
    assert.match(r.stdout, /\n#migrations_dir = \/\S+/);
    // Every getenv() of the daemon's sources names a variable the text lists.
    const daemonDirs = ['base', 'store', 'keyring', 'pipeline', 'pgembed', 'core', 'daemon']
      .map((d) => path.join(srcDir, 'server', d)).concat([path.join(srcDir, 'admin-api')]);
    let seen = 0;
    for (const dir of daemonDirs) {
      for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.c'))) {
        const text = fs.readFileSync(path.join(dir, f), 'utf8');
        for (const m of text.matchAll(/getenv\("([A-Z_]+)"\)/g)) {
          seen += 1;
          assert.match(r.stdout, new RegExp(`\\b${m[1]}\\b`), `${f} reads ${m[1]}, not listed`);
        }
      }
    }
    assert.ok(seen >= 2, 'found the getenv calls');
  });
});

describe('start-up checks', () => {
  test('a taken port fails a first run at once, with one message, creating nothing', async () => {
    const blocker = net.createServer();
    await new Promise((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = blocker.address().port;
    try {
      for (const fresh of ['missing', 'empty']) {
        const dataDir = path.join(E2E.work, `taken-${fresh}-${process.pid}`);
        if (fresh === 'empty') fs.mkdirSync(dataDir, { mode: 0o700 });
        const r = await usersigd(['serve'], {
          USERSIGD_LISTEN: `127.0.0.1:${port}`, USERSIGD_DATA_DIR: dataDir,
        });
        assert.equal(r.code, 1, r.stderr);
        const want = `cannot listen on 127.0.0.1:${port}: address already in use; stop the ` +
          'other server or set USERSIGD_LISTEN';
        const errors = r.stderr.split('\n').filter((l) => / ERROR /.test(l));
        assert.equal(errors.length, 1, r.stderr);
        assert.ok(errors[0].includes(want), r.stderr);
        assert.equal(r.stderr.split('cannot listen').length - 1, 1, r.stderr);
        assert.equal(r.stdout, '', 'no admin token printed');
        if (fresh === 'missing') {
          assert.equal(fs.existsSync(dataDir), false, 'the data directory was created');
        } else {
          assert.deepEqual(fs.readdirSync(dataDir), [], 'something was created in the data dir');
        }
      }
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  test('an unwritable master key directory fails before the cluster is made', async () => {
    const dataDir = path.join(E2E.work, `nokeydir-${process.pid}`);
    const r = await usersigd(['serve'], {
      USERSIGD_LISTEN: '127.0.0.1:0', USERSIGD_DATA_DIR: dataDir,
      USERSIGD_MASTER_KEY_FILE: path.join(E2E.work, `no-such-dir-${process.pid}`, 'master.key'),
    });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /cannot create the master key file .*does not exist; create the directory or set USERSIGD_MASTER_KEY_FILE/);
    assert.equal(fs.existsSync(dataDir), false, 'the data directory was created');
  });
});

describe('signals', () => {
  test('SIGHUP re-reads the settings, changes the log level live and keeps serving', async () => {
    const conf = path.join(E2E.work, `hup-${process.pid}.conf`);
    fs.writeFileSync(conf, 'log_level = info\n');
    const { s, pid } = await embedded('hup', { args: ['--config', conf] });
    assert.doesNotMatch(s.log(), / DEBUG /);

    fs.writeFileSync(conf, 'log_level = debug\nworkers = 3\n');
    s.proc.kill('SIGHUP');
    await waitFor('the re-read line', () => /SIGHUP: re-read the settings .*log level debug/.test(s.log()));
    assert.match(s.log(), / WARN SIGHUP: changed but applied only on a restart.*: workers/);
    assert.match(s.log(), / DEBUG /, 'no debug line after the level went to debug');
    expectStatus(await api('GET', '/healthz', { base: s.url, token: null }), 200);
    assert.equal(s.proc.exitCode, null, 'SIGHUP stopped the server');
    assert.equal(embeddedPostmaster(s.dataDir), pid, 'the embedded PostgreSQL changed');

    fs.writeFileSync(conf, 'log_level = warn\nworkers = 3\n');
    s.proc.kill('SIGHUP');
    await waitFor('the second re-read', () => /log level warn/.test(s.log()));
    const mark = s.log().length;
    expectStatus(await api('GET', '/healthz', { base: s.url, token: null }), 200);
    await new Promise((r) => setTimeout(r, 200));
    assert.doesNotMatch(s.log().slice(mark), / (INFO|DEBUG) /, 'info lines at level warn');

    // A file that no longer parses keeps the current settings.
    fs.writeFileSync(conf, 'log_level = loud\n');
    s.proc.kill('SIGHUP');
    await waitFor('the refusal', () => /SIGHUP: cannot re-read the settings, keeping the current ones/.test(s.log()));
    expectStatus(await api('GET', '/healthz', { base: s.url, token: null }), 200);

    fs.writeFileSync(conf, 'log_level = info\n');
    s.proc.kill('SIGHUP');
    await waitFor('the level back to info', () => /log level info/.test(s.log()));
    s.proc.kill('SIGTERM');
    await assertStopped(s, pid, await exited(s.proc), 'SIGTERM');
  });

  for (const sig of ['SIGINT', 'SIGQUIT']) {
    test(`${sig} stops the server and its embedded PostgreSQL`, async () => {
      const { s, pid } = await embedded(`sig-${sig}`);
      s.proc.kill(sig);
      await assertStopped(s, pid, await exited(s.proc), sig);
      assert.match(s.log(), new RegExp(`${sig}: stopping`));
    });
  }

  test('SIGTERM during start-up stops the embedded PostgreSQL it started', async () => {
    const dataDir = path.join(E2E.work, `early-${process.pid}`);
    const env = Object.assign({}, process.env, {
      USERSIGD_DATABASE_URL: '', USERSIGD_MASTER_KEY_FILE: '', USERSIGD_LISTEN: '127.0.0.1:0',
      USERSIGD_DATA_DIR: dataDir,
    });
    const proc = spawn(E2E.usersigd, ['serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout.on('data', (b) => { out += b; });
    proc.stderr.on('data', (b) => { out += b; });
    const s = { proc, dataDir, log: () => out };
    try {
      await waitFor('the embedded PostgreSQL to start',
        () => /embedded PostgreSQL: started.*pid (\d+)/.test(out), 60000);
      const pid = Number(/embedded PostgreSQL: started.*pid (\d+)/.exec(out)[1]);
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 30000);
      const r = await exited(proc);
      clearTimeout(t);
      await assertStopped(s, pid, r, 'SIGTERM');
    } finally {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM'); // it stops its PostgreSQL
        await exited(proc);
      }
    }
  });
});
