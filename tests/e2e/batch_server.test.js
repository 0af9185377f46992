// Batch signing on servers of their own (tests/e2e/batch.test.js has the rest): the body limit
// (a server with a small one), a client that leaves halfway (aborted, audited, the server healthy,
// its workers idle again), SIGTERM and SIGQUIT during a batch.
'use strict';

const { describe, test, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const fs = require('node:fs');
const {
  E2E, api, expectError, expectStatus, appWithKey, psqlOk, startServer, stopAll, batchAndLeave,
} = require('./lib');
const {
  pause, batch, streamBatch, slowAudit, sha256, checkSummary, signCount, auditEvents,
} = require('./batch_lib');

const servers = [];
after(async () => { await stopAll(servers); });

function procStatus(pid) {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return { threads: Number(/Threads:\s+(\d+)/.exec(s)[1]) };
}

function cpuTicks(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime (fields 14 and 15)
}

describe('batch signing on a server of its own', () => {
  let own;
  const limit = 64 * 1024;

  test('start a server with batch_max_body_size = 64k', async () => {
    // The batch limit is never below the other routes' (max_body_size): lower that one too.
    const env = { USERSIGD_BATCH_MAX_BODY_SIZE: '64k', USERSIGD_MAX_BODY_SIZE: '16k',
      USERSIGD_WORKERS: '2' };
    Object.assign(process.env, env);
    try {
      own = await startServer('batch');
    } finally {
      for (const k of Object.keys(env)) delete process.env[k];
    }
    servers.push(own);
    assert.match(own.log(), /2 worker threads/);
  });

  test('application/json: 413 body_too_large past the limit, with a hint to split; under it, ' +
    '200; text/plain streams past it', async () => {
    const a = await appWithKey();
    const id = '"abcdefghijklmno"';
    const json = (n) => `{"identifiers":[${Array(n).fill(id).join(',')}]}`;
    const over = json(Math.ceil((limit + 100) / (id.length + 1)));
    const res = await batch(a.sdkappid, over, { base: own.url, contentType: 'application/json' });
    expectError(res, 413, 'body_too_large', ['split', String(limit)]);
    const nUnder = Math.floor((limit - 100) / (id.length + 1));
    checkSummary(await batch(a.sdkappid, json(nUnder),
      { base: own.url, contentType: 'application/json' }), { count: nUnder });
    // A text/plain body is read as it streams: the limit is not its own.
    const line = 'abcdefghijklmno\n';
    const text = line.repeat(Math.ceil((4 * limit) / line.length));
    const big = await batch(a.sdkappid, text, { base: own.url });
    checkSummary(big, { count: text.length / line.length });
    assert.equal(big.headers.get('connection'), 'close');
  });

  test('a client that leaves halfway: aborted, audited, the server healthy, workers idle',
    async () => {
      const a = await appWithKey();
      const pid = own.proc.pid;
      const before = procStatus(pid);
      // Under 64k of body, yet several blocks: 16,000 short lines.
      const ids = [];
      for (let i = 0; i < 16000; i++) ids.push(i.toString(36));
      const body = ids.join('\n');
      assert.ok(body.length < limit);
      const n = ids.length;
      const countBefore = await signCount(a.sdkappid, a.version);
      const r = await batchAndLeave(own.url, a.sdkappid, body, 2000);
      assert.equal(r.status, 200);
      // The row turns aborted once the server notices.
      let rows = '';
      for (let i = 0; i < 100; i++) {
        rows = psqlOk(`SELECT batch_id, state, count, signed FROM batches WHERE sdkappid = ${a.sdkappid}`);
        if (rows && !rows.includes('|running|')) break;
        await pause(100);
      }
      const [batchId, state, count, signed] = rows.split('|');
      // A fast server may have sent everything before it saw the client go: then it is complete.
      assert.ok(state === 'aborted' || (state === 'complete' && Number(count) === n),
        `state ${state}, count ${count} of ${n}`);
      const finish = (await auditEvents(a.sdkappid, 'usersig.batch.finish'))
        .filter((e) => e.details.batch_id === batchId);
      assert.equal(finish.length, 1);
      assert.equal(finish[0].details.state, state);
      assert.equal(finish[0].outcome, state);
      assert.equal(finish[0].details.count, Number(count));
      assert.equal(await signCount(a.sdkappid, a.version), countBefore + Number(signed));
      expectStatus(await api('GET', '/healthz', { base: own.url, token: null }), 200);
      // The workers go idle (the blocks they held when the client left are finished, then
      // dropped: allow a slow sanitizer build a few seconds) and none was added or lost.
      const busy = [];
      for (let i = 0; i < 10; i++) {
        const t0 = cpuTicks(pid);
        await pause(1000);
        busy.push(cpuTicks(pid) - t0);
        if (busy[busy.length - 1] <= 20) break;
      }
      assert.ok(busy[busy.length - 1] <= 20,
        `the server keeps working after the client left: ticks a second ${busy.join(', ')}`);
      assert.equal(procStatus(pid).threads, before.threads, 'thread count unchanged');
      checkSummary(await batch(a.sdkappid, 'after\n', { base: own.url }), { count: 1, signed: 1 });
    });

  test('a bigger batch whose client leaves at once: aborted with nothing lost', async () => {
    // The main server takes 64 MiB: 300,000 identifiers, gone after the first bytes.
    const a = await appWithKey();
    const ids = [];
    for (let i = 0; i < 300000; i++) ids.push(`early-${i}`);
    const r = await batchAndLeave(E2E.url, a.sdkappid, ids.join('\n'), 1);
    assert.equal(r.status, 200);
    let row = '';
    for (let i = 0; i < 100; i++) {
      row = psqlOk(`SELECT state, count, signed, failed FROM batches WHERE sdkappid = ${a.sdkappid}`);
      if (row && !row.startsWith('running')) break;
      await pause(100);
    }
    const [state, count, signed, failed] = row.split('|').map((x, i) => (i ? Number(x) : x));
    assert.equal(state, 'aborted', row);
    assert.ok(count < 300000 && signed === count && failed === 0, row);
    assert.equal(await signCount(a.sdkappid, a.version), signed);
    expectStatus(await api('GET', '/healthz', { token: null }), 200);
    checkSummary(await batch(a.sdkappid, 'again\n'), { count: 1, signed: 1 });
  });

  test('SIGTERM during a batch: the server stops cleanly, the batch is closed', async () => {
    const a = await appWithKey();
    const ids = [];
    for (let i = 0; i < 16000; i++) ids.push(i.toString(36));
    const body = ids.join('\n');
    // A reader that takes its time, so the batch is still running at the signal.
    const u = new URL(`${own.url}/v1/apps/${a.sdkappid}/usersigs/batch`);
    const got = await new Promise((resolve, reject) => {
      const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST',
        headers: { authorization: `Bearer ${E2E.admin}`, 'content-type': 'text/plain',
          'content-length': Buffer.byteLength(body) } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.once('data', (c) => {
          text += c;
          res.pause();
          own.proc.kill('SIGTERM');
          setTimeout(() => res.resume(), 300);
        });
        res.on('data', (c) => { text += c; });
        res.on('end', () => resolve(text));
        res.on('error', () => resolve(text));
      });
      req.on('error', reject);
      req.end(body);
    });
    // The signal was sent once: wait for the exit it brings (stop() would signal again).
    const r = own.proc.exitCode !== null ? { code: own.proc.exitCode }
      : await Promise.race([
        new Promise((resolve) => own.proc.once('exit', (code, signal) => resolve({ code, signal }))),
        pause(20000).then(() => own.stop()),
      ]);
    servers.splice(servers.indexOf(own), 1);
    assert.equal(r.code, 0, `exit ${JSON.stringify(r)}:\n${own.log().slice(-3000)}`);
    const row = psqlOk(`SELECT state FROM batches WHERE sdkappid = ${a.sdkappid}`);
    assert.ok(row === 'complete' || row === 'aborted', `batch state after SIGTERM: ${row}`);
    assert.ok(got.length > 0 && got.startsWith('{"identifier":"0","usersig":'),
      'the stream had begun');
    const finish = psqlOk('SELECT count(*) FROM audit_log WHERE action = ' +
      `'usersig.batch.finish' AND sdkappid = ${a.sdkappid} AND outcome = '${row}'`);
    assert.equal(finish, '1', 'the batch was closed in the audit log before the exit');
  });
});

// ---- a server of its own with one database connection, stopped at once -----------------------

describe('batch signing while the server stops at once', () => {
  test('SIGQUIT with a batch end queued for the database: recorded on the main connection',
    async () => {
      Object.assign(process.env, { USERSIGD_DB_CONNECTIONS: '1' });
      let own;
      try {
        own = await startServer('batch-quit');
      } finally {
        delete process.env.USERSIGD_DB_CONNECTIONS;
      }
      servers.push(own);
      assert.match(own.log(), /database pool: 1 connections/);
      const a = await appWithKey();
      const c = await appWithKey();
      const ids = [];
      for (let i = 0; i < 40000; i++) ids.push(i.toString(36));
      // A: streaming, its reader paused, so its signing waits for the client.
      const sa = streamBatch(own.url, a.sdkappid, ids.join('\n'), { paused: true });
      sa.done.catch(() => {});
      await sa.first;
      // C: its start holds the one database thread for a while.
      const drop = slowAudit(c.sdkappid, ['usersig.batch'], 8);
      let r;
      try {
        const sc = streamBatch(own.url, c.sdkappid, 'carol\n');
        sc.done.catch(() => {});
        await pause(500);
        // A runs to its end; its end waits behind C's start. Then stop at once.
        sa.resume();
        for (let i = 0; i < 120 && sa.text().split('\n').length <= ids.length; i++) await pause(50);
        assert.equal(sa.text().split('\n').length - 1, ids.length, 'every line of A came');
        await pause(200);
        const exit = new Promise((resolve) => own.proc.once('exit', (code, signal) =>
          resolve({ code, signal })));
        own.proc.kill('SIGQUIT');
        r = await Promise.race([exit, pause(30000).then(() => own.stop())]);
        servers.splice(servers.indexOf(own), 1);
      } finally {
        drop();
      }
      assert.equal(r.code, 0, `exit ${JSON.stringify(r)}:\n${own.log().slice(-3000)}`);
      assert.match(own.log(), /the server is stopping; recording its end on the main connection/);
      const row = psqlOk('SELECT state, count, signed, sha256 IS NOT NULL FROM batches WHERE ' +
        `sdkappid = ${a.sdkappid}`);
      assert.equal(row, `complete|${ids.length}|${ids.length}|t`, 'A is closed as complete');
      assert.equal(psqlOk('SELECT count(*) FROM audit_log WHERE action = ' +
        `'usersig.batch.finish' AND sdkappid = ${a.sdkappid} AND outcome = 'complete'`), '1');
      // C's start committed while the server stopped: closed as aborted, nothing signed.
      assert.equal(psqlOk(`SELECT state, count FROM batches WHERE sdkappid = ${c.sdkappid}`),
        'aborted|0');
      assert.equal(psqlOk('SELECT count(*) FROM audit_log WHERE action = ' +
        `'usersig.batch.finish' AND sdkappid = ${c.sdkappid} AND outcome = 'aborted'`), '1');
    });
});
