// Batch signing end to end (POST /v1/apps/{sdkappid}/usersigs/batch) against the real usersigd:
// every body format, NDJSON and CSV output, errors in place and order kept, batches of 0, 1 and
// 100,000, the summary's SHA-256 recomputed here, tokens verified by the server and by the Node
// side, the batches row, the two audit events and the key's sign_count; refusals before the
// stream; fail-closed when the start event cannot be written. On servers of their own:
// batch_server.test.js.
'use strict';

const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const {
  E2E, api, show, expectError, expectStatus, newAppId, newSecret, createApp, addKey, appWithKey,
  createToken, psqlOk, crossCheck, tokens,
} = require('./lib');
const {
  pause, batch, streamBatch, slowAudit, answersAtOnce, sha256, checkSummary, parseItems,
  verifyOnServer, signCount, auditEvents, checkRecorded,
} = require('./batch_lib');

describe('batch signing', () => {
  test('text/plain: 1 identifier, then 0; recorded, verified, counted', async () => {
    const a = await appWithKey();
    const one = await batch(a.sdkappid, 'alice\n');
    const s = checkSummary(one, { count: 1, signed: 1, keyVersion: a.version });
    const [item] = parseItems(one);
    assert.deepEqual(Object.keys(item), ['identifier', 'usersig']);
    assert.equal(item.identifier, 'alice');
    const j = crossCheck(item.usersig, { sdkappid: a.sdkappid, secret: a.secret,
      identifier: 'alice' });
    assert.equal(j['TLS.expire'], 15552000, 'the app\'s default expire');
    const v = await verifyOnServer(a.sdkappid, 'alice', item.usersig);
    assert.equal(v.key_version, a.version);
    const ev = await checkRecorded(a.sdkappid, s);
    assert.deepEqual(ev.started.details, { batch_id: s.batch_id, expire: 15552000, level: 6,
      format: 'text', output: 'ndjson' });
    assert.equal(await signCount(a.sdkappid, a.version), 1);

    const zero = await batch(a.sdkappid, '');
    const z = checkSummary(zero, { count: 0, signed: 0 });
    assert.equal(zero.lines.length, 1, 'only the summary');
    assert.equal(z.sha256, sha256(''));
    assert.notEqual(z.batch_id, s.batch_id);
    await checkRecorded(a.sdkappid, z);
    assert.equal(await signCount(a.sdkappid, a.version), 1);
  });

  test('100,000 identifiers, every 10th bad: errors in place, order kept, all counted',
    async () => {
      const a = await appWithKey();
      const n = 100000;
      const ids = [];
      for (let i = 0; i < n; i++) {
        if (i % 10 === 7) ids.push(['', 'x'.repeat(33), 'tab\there'][(i / 10 | 0) % 3]);
        else ids.push(`u${i}-${crypto.randomBytes(3).toString('hex')}`);
      }
      const before = await signCount(a.sdkappid, a.version);
      // /healthz answers while it runs.
      let done = false;
      const probes = [];
      const prober = (async () => {
        while (!done) {
          const t0 = Date.now();
          expectStatus(await api('GET', '/healthz', { token: null }), 200);
          probes.push(Date.now() - t0);
          await pause(20);
        }
      })();
      const res = await batch(a.sdkappid, ids.join('\r\n') + '\r\n', { query: 'expire=7200' });
      done = true;
      await prober;
      const bad = ids.filter((x, i) => i % 10 === 7).length;
      const s = checkSummary(res, { count: n, signed: n - bad });
      assert.equal(s.failed, bad);
      const items = parseItems(res);
      for (let i = 0; i < n; i++) {
        const it = items[i];
        if (it.identifier !== ids[i]) assert.fail(`line ${i} is ${it.identifier}, want ${ids[i]}`);
        if (i % 10 === 7) {
          if (!(it.error && it.error.code === 'bad_identifier' && it.usersig === undefined)) {
            assert.fail(`line ${i} should be a bad_identifier error: ${res.items[i]}`);
          }
        } else if (typeof it.usersig !== 'string' || it.error !== undefined) {
          assert.fail(`line ${i} should hold a token: ${res.items[i]}`);
        }
      }
      for (const i of [0, 1, 12345, 54321, n - 1]) {
        const j = crossCheck(items[i].usersig, { sdkappid: a.sdkappid, secret: a.secret,
          identifier: ids[i] });
        assert.equal(j['TLS.expire'], 7200);
        await verifyOnServer(a.sdkappid, ids[i], items[i].usersig);
      }
      await checkRecorded(a.sdkappid, s);
      assert.equal(await signCount(a.sdkappid, a.version), before + n - bad);
      probes.sort((x, y) => x - y);
      assert.ok(probes.length > 0 && probes[probes.length - 1] < 2000,
        `/healthz during the batch: ${probes.length} probes, max ${probes[probes.length - 1]} ms`);
    });

  test('text/plain edges: CRLF, a last line without newline, empty lines, odd bytes',
    async () => {
      const a = await appWithKey();
      const res = await batch(a.sdkappid, Buffer.from('a\r\n\nb c\n\r\n\xff\xfe\nlast', 'latin1'));
      checkSummary(res, { count: 6, signed: 3 });
      const items = parseItems(res);
      assert.deepEqual(items.map((x) => [x.identifier, x.error ? x.error.code : 'ok']), [
        ['a', 'ok'], ['', 'bad_identifier'], ['b c', 'ok'], ['', 'bad_identifier'],
        ['\ufffd\ufffd', 'bad_identifier'], ['last', 'ok']]);
      await verifyOnServer(a.sdkappid, 'b c', items[2].usersig);
    });

  test('application/x-ndjson: per-item expire, rooms, and bad lines in place', async () => {
    const a = await appWithKey({ max_expire: 86400 * 30, default_expire: 86400 });
    const lines = [
      { identifier: 'n1' },
      { identifier: 'n2', expire: 600 },
      { identifier: 'n3', room_id: 1234, privilege_map: 3 },
      { identifier: 'n4', room_str: 'lobby' },
      'not json',
      '["n5"]',
      { identifier: 'n6', colour: 'red' },
      { identifier: 7 },
      { expire: 60 },
      { identifier: 'n9', expire: 86400 * 31 },
      { identifier: 'n10', room_id: 1, room_str: 'x' },
      { identifier: 'n11', privilege_map: 1 },
      '',
      { identifier: 'n13' },
    ].map((x) => (typeof x === 'string' ? x : JSON.stringify(x)));
    const res = await batch(a.sdkappid, lines.join('\n') + '\n',
      { contentType: 'application/x-ndjson' });
    checkSummary(res, { count: lines.length, signed: 5 });
    const items = parseItems(res);
    assert.deepEqual(items.map((x) => [x.identifier, x.error ? x.error.code : 'ok']), [
      ['n1', 'ok'], ['n2', 'ok'], ['n3', 'ok'], ['n4', 'ok'], ['', 'bad_json'], ['', 'bad_json'],
      ['n6', 'unknown_field'], ['', 'invalid_field'], ['', 'missing_field'], ['n9', 'bad_expire'],
      ['n10', 'bad_room'], ['n11', 'bad_privilege'], ['', 'bad_json'], ['n13', 'ok']]);
    const d1 = tokens.decodeToken(items[0].usersig).json;
    assert.equal(d1['TLS.expire'], 86400);
    const d2 = crossCheck(items[1].usersig, { sdkappid: a.sdkappid, secret: a.secret,
      identifier: 'n2' });
    assert.equal(d2['TLS.expire'], 600);
    const d3 = crossCheck(items[2].usersig, { sdkappid: a.sdkappid, secret: a.secret,
      identifier: 'n3' });
    const ub = tokens.parseUserbuf(Buffer.from(d3['TLS.userbuf'], 'base64'));
    assert.equal(ub.room_id, 1234);
    assert.equal(ub.privilege_map, 3);
    for (const i of [0, 1, 2, 3, 13]) await verifyOnServer(a.sdkappid, items[i].identifier,
      items[i].usersig);
  });

  test('application/json: {identifiers, expire}; a non-string element is an error line',
    async () => {
      const a = await appWithKey();
      const body = `{"expire": 3600, "identifiers": ["j1", "j\\u0032", 3, {"x": [1, "]"]}, "",
        "j\\"q", "last"]}`;
      const res = await batch(a.sdkappid, body, { contentType: 'application/json' });
      const s = checkSummary(res, { count: 7, signed: 4 });
      const items = parseItems(res);
      assert.deepEqual(items.map((x) => [x.identifier, x.error ? x.error.code : 'ok']), [
        ['j1', 'ok'], ['j2', 'ok'], ['', 'invalid_field'], ['', 'invalid_field'],
        ['', 'bad_identifier'], ['j"q', 'ok'], ['last', 'ok']]);
      const d = crossCheck(items[5].usersig, { sdkappid: a.sdkappid, secret: a.secret,
        identifier: 'j"q' });
      assert.equal(d['TLS.expire'], 3600);
      const ev = await checkRecorded(a.sdkappid, s);
      assert.equal(ev.started.details.format, 'json');
      assert.equal(ev.started.details.expire, 3600);
      // Whitespace and an array split across lines; expire after the identifiers.
      const res2 = await batch(a.sdkappid, '\n{ "identifiers" :\n[\n"k1"\n,\n"k2"\n]\n,"expire":60 }\n',
        { contentType: 'application/json; charset=utf-8' });
      checkSummary(res2, { count: 2, signed: 2 });
      const d2 = tokens.decodeToken(parseItems(res2)[1].usersig).json;
      assert.equal(d2['TLS.identifier'], 'k2');
      assert.equal(d2['TLS.expire'], 60);
    });

  test('application/json refused before the stream: syntax, members, types', async () => {
    const a = await appWithKey();
    const cases = [
      ['{"identifiers": ["a", ]}', 'bad_json'],
      ['{"identifiers": ["a"]', 'bad_json'],
      ['["a"]', 'bad_json'],
      ['', 'bad_json'],
      ['{"identifiers": ["a"], "identifiers": []}', 'bad_json'],
      ['{"identifiers": ["a\u0001"]}', 'bad_json'],
      ['{"identifiers": ["a"]} x', 'bad_json'],
      ['{"identifiers": "a"}', 'invalid_field'],
      ['{"identifiers": [], "expire": "60"}', 'invalid_field'],
      ['{"identifiers": [], "expire": 1.5}', 'invalid_field'],
      ['{"identifiers": [], "other": 1}', 'unknown_field'],
      ['{}', 'missing_field'],
      ['{"identifiers": [], "identifier\\u0073": []}', 'unknown_field'],
      [Buffer.from('{"identifiers": [], "\xff\xfe": 1}', 'latin1'), 'unknown_field'],
    ];
    for (const [body, code] of cases) {
      const res = await batch(a.sdkappid, body, { contentType: 'application/json' });
      expectError(res, 400, code);
    }
    expectError(await batch(a.sdkappid, '{"identifiers": [], "expire": 60}',
      { contentType: 'application/json', query: 'expire=60' }), 400, 'invalid_field', ['expire']);
    assert.equal(psqlOk(`SELECT count(*) FROM batches WHERE sdkappid = ${a.sdkappid}`), '0');
    assert.equal((await auditEvents(a.sdkappid, 'usersig.batch')).length, 0);
  });

  test('Accept: text/csv: rows, errors as identifier,,code, quoting, #summary', async () => {
    const a = await appWithKey();
    const ids = ['c1', 'with,comma', '#hash', 'q"uote', '', 'c6'];
    const res = await batch(a.sdkappid, ids.join('\n'), { accept: 'text/csv' });
    expectStatus(res, 200);
    assert.match(res.headers.get('content-type') || '', /^text\/csv/);
    const m = /^#summary,batch_id=([0-9a-f]{32}),count=(\d+),signed=(\d+),failed=(\d+),key_version=(\d+),sha256=([0-9a-f]{64})$/
      .exec(res.lastText);
    assert.ok(m, `the last line is the CSV summary: ${res.lastText}`);
    const [, batchId, count, signed, failed, kv, sha] = m;
    assert.deepEqual([Number(count), Number(signed), Number(failed), Number(kv)],
      [6, 5, 1, a.version]);
    assert.equal(sha, sha256(res.body));
    const want = ['c1,', '"with,comma",', '"#hash",', '"q""uote",', ',,bad_identifier', 'c6,'];
    res.items.forEach((row, i) => assert.ok(row.startsWith(want[i]), `row ${i}: ${row}`));
    const tok = res.items[1].slice(want[1].length);
    assert.match(tok, /^[A-Za-z0-9*_-]+$/);
    await verifyOnServer(a.sdkappid, 'with,comma', tok);
    await checkRecorded(a.sdkappid, { batch_id: batchId, count: 6, signed: 5, failed: 1,
      key_version: a.version, sha256: sha });
  });

  test('levels 0 and 9 verify; query and media type refusals; scope; no key', async () => {
    const a = await appWithKey();
    for (const level of [0, 9]) {
      const res = await batch(a.sdkappid, 'lvl\n', { query: `level=${level}` });
      checkSummary(res, { count: 1, signed: 1 });
      await verifyOnServer(a.sdkappid, 'lvl', parseItems(res)[0].usersig);
    }
    expectError(await batch(a.sdkappid, 'x', { query: 'level=10' }), 400, 'invalid_param');
    expectError(await batch(a.sdkappid, 'x', { query: 'expire=abc' }), 400, 'invalid_param');
    expectError(await batch(a.sdkappid, 'x', { query: 'colour=red' }), 400, 'invalid_param');
    expectError(await batch(a.sdkappid, 'x', { query: '%ff%fe=1' }), 400, 'invalid_param');
    expectError(await batch(a.sdkappid, 'x', { query: 'expire=0' }), 400, 'bad_expire');
    expectError(await batch(a.sdkappid, 'x', { query: 'expire=315360001' }), 400, 'bad_expire');
    expectError(await batch(a.sdkappid, 'x', { contentType: 'text/csv' }), 415,
      'unsupported_media_type');
    // A Content-Type is one media type, not a list (an Accept is).
    for (const contentType of ['application/json, text/plain', 'text/plain,application/json']) {
      expectError(await batch(a.sdkappid, '{"identifiers":["x"]}', { contentType }), 415,
        'unsupported_media_type', ['text/plain']);
    }
    expectError(await batch(newAppId(), 'x'), 404, 'app_not_found');
    const noKey = newAppId();
    await createApp(noKey);
    expectError(await batch(noKey, 'x'), 409, 'invalid_state');
    const other = await appWithKey();
    const signer = await createToken('signer', [other.sdkappid]);
    expectError(await batch(a.sdkappid, 'x', { token: signer }), 403, 'forbidden');
    checkSummary(await batch(other.sdkappid, 'ok\n', { token: signer }), { count: 1, signed: 1 });
    const auditor = await createToken('auditor');
    expectError(await batch(a.sdkappid, 'x', { token: auditor }), 403, 'forbidden');
    const refusals = (await auditEvents(a.sdkappid, 'usersig.batch'))
      .filter((e) => e.outcome === 'bad_expire');
    assert.equal(refusals.length, 2, 'refusals are audited');
  });

  test('a rotation: the batch uses the version active at its start', async () => {
    const a = await appWithKey();
    const s2 = newSecret();
    const k2 = await addKey(a.sdkappid, s2); // a second key comes in pending
    assert.equal(k2.state, 'pending');
    expectStatus(await api('POST', `/v1/apps/${a.sdkappid}/keys/rotate`,
      { body: { version: k2.version } }), 200);
    const res = await batch(a.sdkappid, 'rot\n');
    const s = checkSummary(res, { count: 1, signed: 1, keyVersion: k2.version });
    crossCheck(parseItems(res)[0].usersig, { sdkappid: a.sdkappid, secret: s2, identifier: 'rot' });
    await checkRecorded(a.sdkappid, s);
  });

  test('fail-closed: no start event written, no token', async () => {
    const a = await appWithKey();
    const fn = `e2e_refuse_batch_${a.sdkappid}`;
    psqlOk(`CREATE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN ` +
      'RAISE EXCEPTION \'e2e: audit refused\'; END $$');
    psqlOk(`CREATE TRIGGER ${fn} BEFORE INSERT ON audit_log FOR EACH ROW WHEN ` +
      `(NEW.action = 'usersig.batch' AND NEW.sdkappid = ${a.sdkappid}) EXECUTE FUNCTION ${fn}()`);
    let res;
    try {
      res = await batch(a.sdkappid, 'alice\nbob\n');
    } finally {
      psqlOk(`DROP TRIGGER ${fn} ON audit_log`);
      psqlOk(`DROP FUNCTION ${fn}()`);
    }
    expectError(res, 503, 'unavailable');
    assert.ok(!res.text.includes('usersig"'), 'no token in the reply');
    assert.equal(psqlOk(`SELECT count(*) FROM batches WHERE sdkappid = ${a.sdkappid}`), '0');
    assert.equal(await signCount(a.sdkappid, a.version), 0);
    checkSummary(await batch(a.sdkappid, 'alice\n'), { count: 1, signed: 1 });
  });

  test('an end that cannot be recorded: an internal error line, then recorded once it can be',
    async () => {
      const a = await appWithKey();
      const fn = `e2e_refuse_finish_${a.sdkappid}`;
      const states = () =>
        psqlOk(`SELECT string_agg(state, ',') FROM batches WHERE sdkappid = ${a.sdkappid}`);
      psqlOk(`CREATE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN ` +
        'RAISE EXCEPTION \'e2e: audit refused\'; END $$');
      psqlOk(`CREATE TRIGGER ${fn} BEFORE INSERT ON audit_log FOR EACH ROW WHEN ` +
        `(NEW.action = 'usersig.batch.finish' AND NEW.sdkappid = ${a.sdkappid}) ` +
        `EXECUTE FUNCTION ${fn}()`);
      let res;
      let csv;
      try {
        res = await batch(a.sdkappid, 'alice\nbob\n');
        csv = await batch(a.sdkappid, 'carol\n', { accept: 'text/csv' });
        // While the end cannot be written (every retry meets the trigger too), the batches stay
        // running and their tokens are not counted.
        assert.equal(states(), 'running,running', 'the batches stay running: visible as incomplete');
        assert.equal(await signCount(a.sdkappid, a.version), 0);
      } finally {
        psqlOk(`DROP TRIGGER ${fn} ON audit_log`);
        psqlOk(`DROP FUNCTION ${fn}()`);
      }
      expectStatus(res, 200);
      assert.equal(res.items.length, 2);
      assert.deepEqual(Object.keys(res.last), ['error']);
      assert.equal(res.last.error.code, 'internal');
      assert.match(res.last.error.message, /stays running/);
      assert.match(csv.lastText, /^#error,code=internal,message=/);
      // The process kept both ends and records them once the database takes them (retried with
      // a backoff of at most 30 s).
      const deadline = Date.now() + 40000;
      while (states() !== 'complete,complete' && Date.now() < deadline) await pause(200);
      assert.equal(states(), 'complete,complete', 'the kept ends were recorded');
      assert.equal(await signCount(a.sdkappid, a.version), 3);
    });

  test('a start, a refusal and an end wait on database threads: the server answers meanwhile',
    async () => {
      const a = await appWithKey();
      const drop = slowAudit(a.sdkappid, ['usersig.batch', 'usersig.batch.finish'], 1.5);
      let res;
      let refused;
      let ms;
      try {
        const t0 = Date.now();
        const st = streamBatch(E2E.url, a.sdkappid, 'alice\nbob\n');
        const ref = batch(a.sdkappid, 'x', { query: 'expire=0' });
        await pause(500);
        await answersAtOnce('a batch start and a refusal are recorded');
        assert.equal(st.text(), '', 'no token before the start is recorded');
        await st.first;
        await answersAtOnce('a batch end is recorded');
        assert.ok(!st.text().includes('summary'), 'the summary waits for the end to be recorded');
        [res, refused] = await Promise.all([st.done, ref]);
        ms = Date.now() - t0;
      } finally {
        drop();
      }
      expectError(refused, 400, 'bad_expire');
      const s = checkSummary(res, { count: 2, signed: 2 });
      assert.ok(ms >= 2800, `the start and the end each waited 1.5 s: ${ms} ms in all`);
      await checkRecorded(a.sdkappid, s);
      assert.equal(await signCount(a.sdkappid, a.version), 2);
      const refusals = (await auditEvents(a.sdkappid, 'usersig.batch'))
        .filter((e) => e.outcome === 'bad_expire');
      assert.equal(refusals.length, 1, 'the refusal is audited');
    });

  test('a client that leaves while its start is recorded: aborted, nothing signed', async () => {
    const a = await appWithKey();
    const drop = slowAudit(a.sdkappid, ['usersig.batch'], 1);
    try {
      const st = streamBatch(E2E.url, a.sdkappid, 'alice\nbob\n');
      st.done.catch(() => {});
      await pause(300);
      st.leave();
      let row = '';
      for (let i = 0; i < 100; i++) {
        row = psqlOk(`SELECT batch_id, state, count, signed FROM batches WHERE sdkappid = ${a.sdkappid}`);
        if (row && !row.includes('|running|')) break;
        await pause(100);
      }
      const [batchId, state, count, signed] = row.split('|');
      assert.deepEqual([state, count, signed], ['aborted', '0', '0'], row);
      const finish = (await auditEvents(a.sdkappid, 'usersig.batch.finish'))
        .filter((e) => e.details.batch_id === batchId);
      assert.equal(finish.length, 1);
      assert.equal(finish[0].outcome, 'aborted');
      assert.equal(finish[0].details.count, 0);
    } finally {
      drop();
    }
    assert.equal(await signCount(a.sdkappid, a.version), 0);
    checkSummary(await batch(a.sdkappid, 'back\n'), { count: 1, signed: 1 });
  });

  test('batches, refusals and signs at once: every start and end recorded', async () => {
    const apps = [await appWithKey(), await appWithKey(), await appWithKey()];
    const body = (k) => Array.from({ length: 300 }, (_, i) => `c${k}-${i}`).join('\n');
    const batches = [];
    const refusals = [];
    const signs = [];
    // Five batches and three refusals: the eight batch requests batch_max_running (8) admits at
    // once, whatever the order they arrive in.
    for (let k = 0; k < 5; k++) batches.push(batch(apps[k % 3].sdkappid, body(k)));
    for (let k = 0; k < 3; k++) refusals.push(batch(apps[k].sdkappid, 'x', { query: 'expire=0' }));
    for (let k = 0; k < 20; k++) signs.push(api('POST', `/v1/apps/${apps[k % 3].sdkappid}/usersigs`,
      { body: { identifier: `s${k}` } }));
    const done = await Promise.all(batches);
    for (const r of await Promise.all(refusals)) expectError(r, 400, 'bad_expire');
    for (const r of await Promise.all(signs)) expectStatus(r, 200);
    for (let k = 0; k < 5; k++) {
      const s = checkSummary(done[k], { count: 300, signed: 300 });
      await checkRecorded(apps[k % 3].sdkappid, s);
    }
    for (const a of apps) {
      assert.equal(await signCount(a.sdkappid, a.version), a === apps[2] ? 300 + 6 : 2 * 300 + 7);
      const refused = (await auditEvents(a.sdkappid, 'usersig.batch'))
        .filter((e) => e.outcome === 'bad_expire');
      assert.equal(refused.length, 1);
    }
  });

  test('the audit chain still verifies', async () => {
    const res = await api('GET', '/v1/audit/verify');
    expectStatus(res, 200);
    assert.equal(res.json.ok, true, show(res));
  });
});

// ---- a server of its own: a small body limit, and clients that leave -------------------------
