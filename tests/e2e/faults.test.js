// usersigd under a sign load while what it stands on fails: PostgreSQL stopped, PostgreSQL
// killed, usersigd itself killed. On a PostgreSQL cluster of this file's own (the run's shared
// cluster must not go down under the other tests), made by tests/pg/pgtest.sh and stopped,
// killed and started again here. What must hold:
// - PostgreSQL down: every sign gets a quick 503 {"error":{"code":"unavailable"}} with
//   Retry-After, /healthz stays 200 in milliseconds, and once PostgreSQL is back the same
//   server signs again by itself, within seconds.
// - after a crash of either, every UserSig a client received has its committed usersig.sign
//   audit row ("no audit row, no token"), and `usersigd audit verify` finds the chain intact.
// Each measured figure is printed as a "faults:" line (node:test diagnostics) for the record.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { performance } = require('node:perf_hooks');
const { spawnSync } = require('node:child_process');
const {
  E2E, show, expectStatus, newAppId, newSecret, createApp, addKey, api, usersigdCli,
  startServer, stopAll, masterKey,
} = require('./lib');

const pause = (ms) => new Promise((r) => setTimeout(r, ms));
const CONCURRENCY = 16;
const REPLY_503_MAX_MS = 2000; // each 503 while PostgreSQL is down arrives within this
const HEALTHZ_MAX_MS = 1000; // and every /healthz
const RECOVER_MAX_MS = 10000; // PostgreSQL back: the first 200 within this

function note(line) {
  // On stdout the spec reporter would drop it; stderr reaches node.out beside the verdicts.
  process.stderr.write(`faults: ${line}\n`);
}

function run(cmd, args, timeoutMs = 60000) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

// ---- a PostgreSQL cluster of this file's own --------------------------------------------------

const pgtest = path.join(__dirname, '..', 'pg', 'pgtest.sh');
const asRoot = process.getuid() === 0;

function pgBindir() {
  for (const d of ['/usr/lib/postgresql/15/bin', run('pg_config', ['--bindir']).stdout.trim()]) {
    if (d && fs.existsSync(path.join(d, 'pg_ctl'))) return d;
  }
  throw new Error('no pg_ctl: install postgresql-15');
}

// A server command as the cluster's owner (postgres when we are root, as pgtest.sh does).
function asOwner(cmd, args) {
  return asRoot ? run('runuser', ['-u', 'postgres', '--', cmd].concat(args)) : run(cmd, args);
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

function childrenOf(pid) {
  const out = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(name));
    } catch (e) { /* gone meanwhile */ }
  }
  return out;
}

class Cluster {
  constructor(dir) {
    this.dir = dir;
    this.bindir = pgBindir();
    const r = run('bash', [pgtest, 'start', dir], 120000);
    if (r.code !== 0) throw new Error(`pgtest.sh start failed:\n${r.stdout}${r.stderr}`);
    this.url = fs.readFileSync(path.join(dir, 'url'), 'utf8').trim();
    this.port = Number(/:(\d+)\//.exec(this.url)[1]);
    const dd = path.join(dir, 'datadir');
    this.data = path.join(fs.existsSync(dd) ? fs.readFileSync(dd, 'utf8').trim() : dir, 'data');
    // pgtest.sh turns synchronous_commit off for speed; a commit must survive the crash of
    // PostgreSQL's processes here (the OS stays up, so fsync may stay off).
    this.psqlOk("ALTER SYSTEM SET synchronous_commit = 'on'");
    this.psqlOk('SELECT pg_reload_conf()');
    assert.equal(this.psqlOk('SHOW synchronous_commit'), 'on');
  }

  dbUrl(db) {
    return this.url.replace(/\/[^/]*$/, `/${db}`);
  }

  psql(sql, db) {
    return run('psql', [db ? this.dbUrl(db) : this.url, '-X', '-q', '-A', '-t', '-v',
      'ON_ERROR_STOP=1', '-c', sql]);
  }

  psqlOk(sql, db) {
    const r = this.psql(sql, db);
    assert.equal(r.code, 0, `psql failed: ${sql}\n${r.stderr}`);
    return r.stdout.trim();
  }

  createDatabase(name) {
    this.psqlOk(`CREATE DATABASE ${name} TEMPLATE template0`);
    return this.dbUrl(name);
  }

  postmaster() {
    try {
      const pid = Number(fs.readFileSync(path.join(this.data, 'postmaster.pid'), 'utf8')
        .split('\n')[0]);
      return pid > 0 && alive(pid) ? pid : null;
    } catch (e) {
      if (e.code === 'ENOENT') return null;
      throw e;
    }
  }

  // pg_ctl stop -m MODE (fast: sessions ended, a clean shutdown).
  stop(mode = 'fast') {
    const r = asOwner(path.join(this.bindir, 'pg_ctl'), ['-D', this.data, '-m', mode, '-w',
      '-t', '30', 'stop']);
    assert.equal(r.code, 0, `pg_ctl stop: ${r.stdout}${r.stderr}`);
  }

  // SIGKILL to the postmaster and every process of the cluster, as a power cut does to them:
  // the next start runs crash recovery.
  kill() {
    const pm = this.postmaster();
    assert.ok(pm, 'no postmaster runs');
    const pids = [pm].concat(childrenOf(pm));
    for (const pid of pids) {
      try { process.kill(pid, 'SIGKILL'); } catch (e) { /* gone */ }
    }
    return pids;
  }

  async waitGone(pids, ms = 10000) {
    const deadline = Date.now() + ms;
    while (pids.some(alive) && Date.now() < deadline) await pause(20);
    assert.ok(!pids.some(alive), `processes of the cluster outlived SIGKILL: ${pids}`);
    // A killed postmaster leaves its lock files (postmaster.pid, the socket's .lock), which the
    // next start finds stale, unless nothing reaps orphans here: then its zombie looks alive to
    // that check, and the files go as a reboot would take them.
    if (fs.existsSync(`/proc/${pids[0]}`)) {
      const sock = path.join(path.dirname(this.data), 'sock');
      for (const f of [path.join(this.data, 'postmaster.pid'),
        path.join(sock, `.s.PGSQL.${this.port}.lock`)]) {
        fs.rmSync(f, { force: true });
      }
    }
  }

  start() {
    const r = asOwner(path.join(this.bindir, 'pg_ctl'), ['-D', this.data, '-l',
      path.join(this.data, 'server.log'), '-w', '-t', '60', '-o', `-p ${this.port}`, 'start']);
    assert.equal(r.code, 0, `pg_ctl start: ${r.stdout}${r.stderr}\n` +
      run('tail', ['-n', '30', path.join(this.data, 'server.log')]).stdout);
  }
}

// ---- a sign load --------------------------------------------------------------------------------

// One POST over agent; resolves to { t0, t1, ms, status, code, retryAfter, identifier, error }
// (error: the client-side failure, a reset or a timeout).
function signOnce(agent, base, token, sdkappid, identifier, timeoutMs) {
  const u = new URL(`${base}/v1/apps/${sdkappid}/usersigs`);
  const body = JSON.stringify({ identifier });
  const t0 = performance.now();
  return new Promise((resolve) => {
    let done = false;
    const finish = (r) => {
      if (done) return;
      done = true;
      const t1 = performance.now();
      resolve(Object.assign({ t0, t1, ms: t1 - t0, identifier }, r));
    };
    const req = http.request({
      agent, host: u.hostname, port: u.port, path: u.pathname, method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json',
        'content-length': Buffer.byteLength(body) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => {
        let json;
        try { json = JSON.parse(text); } catch (e) { json = undefined; }
        finish({ status: res.statusCode, json, text,
          code: json && json.error ? json.error.code : undefined,
          retryAfter: res.headers['retry-after'] });
      });
      res.on('error', (e) => finish({ error: e.code || e.message }));
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error('timeout')));
    req.on('error', (e) => finish({ error: e.code || e.message }));
    req.end(body);
  });
}

// CONCURRENCY workers signing in a loop over keep-alive connections, each identifier unique
// (tag-worker-n), until stop(). results holds every reply in the order they came.
function signLoad(base, token, sdkappid, tag, timeoutMs = 5000) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const results = [];
  let stopping = false;
  const worker = async (w) => {
    for (let n = 0; !stopping; n++) {
      const r = await signOnce(agent, base, token, sdkappid, `${tag}-${w}-${n}`, timeoutMs);
      results.push(r);
      if (r.error) await pause(20); // the server gone: do not spin
    }
  };
  const workers = [];
  for (let w = 0; w < CONCURRENCY; w++) workers.push(worker(w));
  return {
    results,
    async stop() {
      stopping = true;
      await Promise.all(workers);
      agent.destroy();
      return results;
    },
  };
}

// GET /healthz every 50 ms on a connection of its own, until stop().
function healthProbe(base) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const results = [];
  let stopping = false;
  const loop = (async () => {
    while (!stopping) {
      const t0 = performance.now();
      const r = await new Promise((resolve) => {
        const req = http.get(`${base}/healthz`, { agent }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode }));
        });
        req.setTimeout(5000, () => req.destroy(new Error('timeout')));
        req.on('error', (e) => resolve({ error: e.code || e.message }));
      });
      results.push(Object.assign({ t0, ms: performance.now() - t0 }, r));
      await pause(50);
    }
  })();
  return {
    async stop() {
      stopping = true;
      await loop;
      agent.destroy();
      return results;
    },
  };
}

function quantile(xs, q) {
  if (xs.length === 0) return NaN;
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

const fmt = (ms) => `${ms.toFixed(1)} ms`;

function describeLatency(xs) {
  return `n=${xs.length} p50 ${fmt(quantile(xs, 0.5))} p99 ${fmt(quantile(xs, 0.99))} ` +
    `max ${fmt(Math.max(...xs))}`;
}

async function waitUntil(what, fn, ms) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (fn()) return;
    await pause(20);
  }
  assert.fail(`timed out after ${ms} ms waiting for ${what}`);
}

// The identifiers whose usersig.sign event with outcome ok is committed for app sdkappid.
function auditedOk(cluster, db, sdkappid) {
  const out = cluster.psqlOk('SELECT details::json->>\'identifier\' FROM audit_log ' +
    `WHERE action = 'usersig.sign' AND outcome = 'ok' AND sdkappid = ${sdkappid}`, db);
  return new Set(out === '' ? [] : out.split('\n'));
}

// Every 200 the client holds has its audit row; returns the counts.
function assertAudited(cluster, db, sdkappid, results) {
  const ok = results.filter((r) => r.status === 200);
  for (const r of ok) assert.equal(typeof (r.json && r.json.usersig), 'string', r.text);
  const rows = auditedOk(cluster, db, sdkappid);
  const missing = ok.filter((r) => !rows.has(r.identifier)).map((r) => r.identifier);
  assert.deepEqual(missing, [], `UserSigs issued without a committed audit row: ${missing}`);
  assert.ok(ok.length <= rows.size);
  return { replies200: ok.length, rows: rows.size };
}

function assertChainIntact(url, key, what) {
  const r = usersigdCli(['audit', 'verify'], { env: { USERSIGD_DATABASE_URL: url,
    USERSIGD_MASTER_KEY_FILE: key } });
  assert.equal(r.code, 0, `usersigd audit verify after ${what}: ${r.stdout}${r.stderr}`);
  assert.match(r.stdout, /^ok: \d+ events/m, r.stdout);
  return r.stdout.trim();
}

function tally(results) {
  const t = {};
  for (const r of results) {
    const k = r.error ? `error ${r.error}` : `${r.status}${r.code ? ` ${r.code}` : ''}`;
    t[k] = (t[k] || 0) + 1;
  }
  return JSON.stringify(t);
}

// ---- the tests ----------------------------------------------------------------------------------

let cluster = null;
let clusterDir = null;
const servers = []; // stopped (and checked for a clean exit) at the end
const killed = []; // servers killed on purpose: only reaped
let dbCounter = 0;

// The postmaster runs in a session of its own, out of reach of a kill of this process group:
// it goes with this process however that ends (an exit, or the runner's SIGTERM or SIGINT).
function destroyCluster() {
  if (clusterDir === null) return;
  const dir = clusterDir;
  clusterDir = null;
  cluster = null;
  const r = run('bash', [pgtest, 'stop', dir], 60000);
  if (r.code !== 0) throw new Error(`pgtest.sh stop failed:\n${r.stdout}${r.stderr}`);
}
process.on('exit', () => {
  try { destroyCluster(); } catch (e) { /* exiting anyway */ }
});
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.once(sig, () => {
    try { destroyCluster(); } finally { process.exit(sig === 'SIGTERM' ? 143 : 130); }
  });
}

before(() => {
  clusterDir = path.join(E2E.work, `faults-pg-${process.pid}`);
  cluster = new Cluster(clusterDir);
});

after(async () => {
  try {
    for (const s of killed) await s.stop();
    await stopAll(servers.filter((s) => s.proc.exitCode === null && !s.proc.signalCode));
  } finally {
    destroyCluster();
  }
});

// A server on a new database of the cluster, with an app and its key:
// { server, url, token, db, dbUrl, key, sdkappid }.
async function setup(name, list = servers) {
  dbCounter += 1;
  const db = `faults_${dbCounter}`;
  const dbUrl = cluster.createDatabase(db);
  const key = masterKey();
  const server = await startServer(name, { dbUrl, masterKeyFile: key });
  list.push(server);
  const token = await server.adminToken();
  assert.ok(token, `no admin token printed on the first run:\n${server.log()}`);
  const sdkappid = newAppId();
  const opts = { base: server.url, token };
  await createApp(sdkappid, {}, opts);
  await addKey(sdkappid, newSecret(), {}, opts);
  return { server, url: server.url, token, db, dbUrl, key, sdkappid };
}

test('PostgreSQL stopped under a sign load: quick 503s with Retry-After, healthz 200, ' +
  'signs again by itself once it is back', async () => {
  const s = await setup('faults-stop');
  const load = signLoad(s.url, s.token, s.sdkappid, 'stop');
  const health = healthProbe(s.url);
  let pgDown = false;
  try {
    await pause(1500);
    const before = load.results.length;
    cluster.stop('fast');
    pgDown = true;
    const tStop = performance.now();
    await pause(2500);
    cluster.start();
    pgDown = false;
    const tStart = performance.now();
    await waitUntil('a 200 after PostgreSQL started again',
      () => load.results.some((r) => r.t0 >= tStart && r.status === 200), RECOVER_MAX_MS);
    await pause(1000);
    const results = await load.stop();
    const probes = await health.stop();

    const up = results.slice(0, before);
    assert.ok(up.filter((r) => r.status === 200).length >= CONCURRENCY,
      `few signs before PostgreSQL stopped: ${tally(up)}`);
    // Asked while it was down: all 503 unavailable with Retry-After, each quick.
    const down = results.filter((r) => r.t0 >= tStop && r.t1 <= tStart);
    assert.ok(down.length >= CONCURRENCY, `few requests while PostgreSQL was down: ${tally(down)}`);
    for (const r of down) {
      assert.equal(r.status, 503, `want 503 while PostgreSQL is down, got ${r.error || r.status} ` +
        `${r.text || ''}`);
      assert.equal(r.code, 'unavailable', r.text);
      assert.equal(typeof r.json.error.message, 'string', r.text);
      assert.equal(r.retryAfter, '1', `Retry-After: ${r.retryAfter}`);
      assert.ok(r.ms < REPLY_503_MAX_MS, `a 503 took ${fmt(r.ms)}`);
    }
    // Every reply is a 200 or a 503 unavailable; the client never lost a connection.
    for (const r of results) {
      assert.ok(r.status === 200 || (r.status === 503 && r.code === 'unavailable'),
        `unexpected reply ${r.error || r.status} ${r.text || ''}`);
    }
    // Back: the first 200 came by itself, and everything asked a moment later signs.
    const first = results.filter((r) => r.t0 >= tStart && r.status === 200)
      .reduce((a, b) => (a.t1 <= b.t1 ? a : b));
    const recoverMs = first.t1 - tStart;
    const settled = results.filter((r) => r.t0 >= first.t1 + 500);
    assert.ok(settled.length > 0);
    assert.deepEqual(settled.filter((r) => r.status !== 200).map((r) => r.status), [],
      `signs still failing once PostgreSQL was back: ${tally(settled)}`);
    // /healthz answered 200 quickly all along.
    assert.ok(probes.length >= 40, `few healthz probes: ${probes.length}`);
    for (const p of probes) {
      assert.equal(p.status, 200, `healthz: ${p.error || p.status}`);
      assert.ok(p.ms < HEALTHZ_MAX_MS, `healthz took ${fmt(p.ms)}`);
    }
    const downProbes = probes.filter((p) => p.t0 >= tStop && p.t0 <= tStart).map((p) => p.ms);

    const counts = assertAudited(cluster, s.db, s.sdkappid, results);
    note(`stop: replies ${tally(results)}`);
    note(`stop: 503 latency while down ${describeLatency(down.map((r) => r.ms))}`);
    note(`stop: 200 latency before the stop ${describeLatency(
      up.filter((r) => r.status === 200).map((r) => r.ms))}`);
    note(`stop: healthz while down ${describeLatency(downProbes)}, ` +
      `all ${describeLatency(probes.map((p) => p.ms))}`);
    note(`stop: first 200 ${fmt(recoverMs)} after pg_ctl start returned`);
    note(`stop: 200 replies ${counts.replies200}, ok audit rows ${counts.rows}`);
    note(`stop: ${assertChainIntact(s.dbUrl, s.key, 'the stop')}`);
    const v = await api('GET', '/v1/audit/verify', { base: s.url, token: s.token });
    assert.equal(v.json && v.json.ok, true, show(v));
    assert.equal(s.server.proc.exitCode, null, `the server exited:\n${s.server.log()}`);
  } finally {
    await load.stop();
    await health.stop();
    if (pgDown && !cluster.postmaster()) cluster.start();
  }
});

test('PostgreSQL killed (SIGKILL) under a sign load: every UserSig issued has its audit row, ' +
  'the chain is intact after crash recovery', async () => {
  const s = await setup('faults-pgkill');
  const load = signLoad(s.url, s.token, s.sdkappid, 'pgkill');
  let pgDown = false;
  try {
    await pause(1500);
    const pids = cluster.kill();
    pgDown = true;
    const tKill = performance.now();
    await cluster.waitGone(pids);
    await pause(1000);
    cluster.start();
    pgDown = false;
    const tStart = performance.now();
    await waitUntil('a 200 after PostgreSQL started again',
      () => load.results.some((r) => r.t0 >= tStart && r.status === 200), RECOVER_MAX_MS);
    await pause(500);
    const results = await load.stop();

    for (const r of results) {
      assert.ok(r.status === 200 || (r.status === 503 && r.code === 'unavailable'),
        `unexpected reply ${r.error || r.status} ${r.text || ''}`);
    }
    const down = results.filter((r) => r.t0 >= tKill + 100 && r.t1 <= tStart);
    for (const r of down) assert.ok(r.ms < REPLY_503_MAX_MS, `a 503 took ${fmt(r.ms)}`);
    const first = results.filter((r) => r.t0 >= tStart && r.status === 200)
      .reduce((a, b) => (a.t1 <= b.t1 ? a : b));
    const counts = assertAudited(cluster, s.db, s.sdkappid, results);
    assert.ok(counts.replies200 >= CONCURRENCY, tally(results));
    note(`pgkill: replies ${tally(results)}`);
    note(`pgkill: 503 latency while down ${describeLatency(down.map((r) => r.ms))}`);
    note(`pgkill: first 200 ${fmt(first.t1 - tStart)} after pg_ctl start returned`);
    note(`pgkill: 200 replies ${counts.replies200}, ok audit rows ${counts.rows}`);
    note(`pgkill: ${assertChainIntact(s.dbUrl, s.key, 'the kill of PostgreSQL')}`);
    assert.equal(s.server.proc.exitCode, null, `the server exited:\n${s.server.log()}`);
  } finally {
    await load.stop();
    if (pgDown && !cluster.postmaster()) cluster.start();
  }
});

test('usersigd killed (SIGKILL) under a sign load: every UserSig issued has its audit row, ' +
  'the chain is intact, a new process signs', async () => {
  const s = await setup('faults-kill', killed);
  const load = signLoad(s.url, s.token, s.sdkappid, 'kill');
  try {
    await pause(1500);
    s.server.proc.kill('SIGKILL');
    const r = await s.server.stop(); // reaps it
    assert.equal(r.signal, 'SIGKILL', JSON.stringify(r));
    const results = await load.stop();
    for (const x of results) {
      assert.ok(x.status === 200 || x.error, `unexpected reply ${x.status} ${x.text}`);
    }
    const counts = assertAudited(cluster, s.db, s.sdkappid, results);
    assert.ok(counts.replies200 >= CONCURRENCY, tally(results));
    note(`kill: replies ${tally(results)}`);
    note(`kill: 200 replies ${counts.replies200}, ok audit rows ${counts.rows}`);
    note(`kill: ${assertChainIntact(s.dbUrl, s.key, 'the kill of usersigd')}`);

    // A new process on the same database signs, and its event extends the same chain.
    const t0 = performance.now();
    const again = await startServer('faults-kill-2', { dbUrl: s.dbUrl, masterKeyFile: s.key });
    servers.push(again);
    const res = await api('POST', `/v1/apps/${s.sdkappid}/usersigs`,
      { base: again.url, token: s.token, body: { identifier: 'kill-after' } });
    expectStatus(res, 200);
    note(`kill: a new usersigd signed ${fmt(performance.now() - t0)} after its start`);
    assert.ok(auditedOk(cluster, s.db, s.sdkappid).has('kill-after'));
    assertChainIntact(s.dbUrl, s.key, 'the restart');
  } finally {
    await load.stop();
  }
});
