// The web dashboard (/ui/, admin-api/ui/) in a real browser: headless Chromium driven by
// puppeteer-core against the real usersigd and PostgreSQL of tests/e2e/run.sh. As admin: sign
// in, create an app, import a key, rotate, verify a token made by the official Node library
// with another app's key (the 70009 explanation naming the app that signed it), the audit rows
// of those steps, a token created and shown once, a token revoked and then refused. As an
// auditor: the same pages without write actions, and a forced write showing the server's 403.
// Every request the pages make stays on the server's origin; every dashboard reply carries the
// strict headers. Screenshots of each page at 1280 px and 390 px go to
// E2E_UI_SCREENSHOTS (default: ui-screenshots/ beside the run's folder, build/tests/e2e/).
'use strict';

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const {
  E2E, api, expectStatus, newAppId, newSecret, createApp, addKey, sign, createToken, TLSSigAPIv2,
  startServer, stopAll,
} = require('./lib');

const puppeteer = require(path.join(__dirname, '..', 'node', 'node_modules', 'puppeteer-core'));

const CHROMIUM = process.env.E2E_CHROMIUM ||
  ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => fs.existsSync(p));
const SHOTS = process.env.E2E_UI_SCREENSHOTS || path.join(E2E.work, '..', 'ui-screenshots');
const WIDTHS = [
  { width: 1280, height: 900, deviceScaleFactor: 1 },
  // Not isMobile: changing it makes puppeteer reload the page (and lose what it shows).
  { width: 390, height: 844, deviceScaleFactor: 1 },
];
const STRICT = {
  'content-security-policy': "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cache-control': 'no-cache',
};

let browser;
const origin = new URL(E2E.url).origin;
const foreign = []; // requests to another origin (refused)
const uiReplies = []; // { url, status, headers } of every /ui reply
const pageErrors = [];

// An API token's secret: all after "usg_<id>_" (the secret's alphabet has "_" too, so not
// split('_')[2], which can be a piece short enough to be found anywhere).
function secretOf(token) {
  return token.slice(token.indexOf('_', 'usg_'.length) + 1);
}

// hold(req): a promise to wait for before the request goes (to answer requests out of order),
// or null.
async function newPage(context, { hold } = {}) {
  const page = await context.newPage();
  await page.setViewport(WIDTHS[0]);
  await page.setRequestInterception(true);
  page.on('request', async (req) => {
    const u = req.url();
    if (u.startsWith('data:') || new URL(u).origin === origin) {
      const wait = hold ? hold(req) : null;
      if (wait) await wait;
      req.continue();
    } else {
      foreign.push(u);
      req.abort();
    }
  });
  page.on('response', (res) => {
    const u = new URL(res.url());
    if (u.origin === origin && (u.pathname === '/ui' || u.pathname.startsWith('/ui/'))) {
      uiReplies.push({ url: res.url(), status: res.status(), headers: res.headers() });
    }
  });
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => {
    // A refused request (4xx) is logged by Chromium itself; scripts must log no error of theirs.
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) pageErrors.push(m.text());
  });
  return page;
}

// Screen-reader basics of the page as it is: landmarks, one h1, every control labelled, every
// button with a name, no link without an href.
async function a11y(page, name) {
  const r = await page.evaluate(() => {
    const named = (el) => (el.labels && el.labels.length > 0) || el.getAttribute('aria-label');
    return {
      landmarks: ['header', 'nav', 'main', 'footer'].filter((t) => !document.querySelector(t)),
      h1: document.querySelectorAll('main h1').length,
      unlabelled: [...document.querySelectorAll('main input, main select, main textarea')]
        .filter((el) => el.type !== 'hidden' && !named(el)).map((el) => el.name || el.id),
      nameless: [...document.querySelectorAll('button')].filter((b) => !b.textContent.trim() && !b.getAttribute('aria-label')).length,
      hrefless: document.querySelectorAll('a:not([href])').length,
    };
  });
  assert.deepEqual(r, { landmarks: [], h1: 1, unlabelled: [], nameless: 0, hrefless: 0 }, `${name}: ${JSON.stringify(r)}`);
}

// Both widths, full page; back to 1280 px after.
async function shoot(page, name) {
  await a11y(page, name);
  for (const vp of WIDTHS) {
    await page.setViewport(vp);
    await new Promise((r) => setTimeout(r, 150));
    await page.screenshot({ path: path.join(SHOTS, `${name}-${vp.width}.png`), fullPage: true });
  }
  await page.setViewport(WIDTHS[0]);
}

async function text(page, selector) {
  return page.$eval(selector, (el) => el.textContent);
}

async function go(page, hash, ready) {
  await page.evaluate((h) => { location.hash = h; }, hash);
  await page.waitForSelector(ready, { timeout: 10000 });
}

async function signIn(page, token) {
  await page.goto(`${E2E.url}/ui`, { waitUntil: 'domcontentloaded' });
  assert.equal(new URL(page.url()).pathname, '/ui/', 'GET /ui redirects to /ui/');
  await page.waitForSelector('input[name=token]');
  await page.type('input[name=token]', token);
  await page.click('form.signin button[type=submit]');
  await page.waitForSelector('#signout');
}

// A GET with the path exactly as given, no normalization.
function rawGet(p, base) {
  const u = new URL(base || E2E.url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path: p, method: 'GET', timeout: 10000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text: body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function errorText(page) {
  return page.$eval('#error', (el) => (el.hidden ? '' : el.textContent));
}

before(async () => {
  assert.ok(CHROMIUM, 'no chromium: apt-get install chromium (or set E2E_CHROMIUM)');
  fs.mkdirSync(SHOTS, { recursive: true });
  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    // As root Chromium needs --no-sandbox; the pages are our own, on loopback.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
  });
});

after(async () => {
  if (browser) await browser.close();
});

describe('dashboard', () => {
  const A = newAppId();
  const B = newAppId();
  const secret1 = newSecret();
  const secret2 = newSecret();
  // A name with markup in it: it must show as text, never become elements.
  const nameA = 'ui <b>app</b> & "one"';
  let auditorToken;

  test('as admin: sign in, create an app, import a key, rotate', async () => {
    const context = await browser.createBrowserContext();
    const page = await newPage(context);
    await page.goto(`${E2E.url}/ui/`, { waitUntil: 'domcontentloaded' });
    await page.waitForSelector('input[name=token]');
    await shoot(page, 'signin');
    await signIn(page, E2E.admin);
    // The token lives in this tab's sessionStorage only: not in the URL, not in localStorage.
    const stored = await page.evaluate(() => ({
      session: sessionStorage.getItem('usersigd.token'),
      local: localStorage.length,
      cookies: document.cookie,
      url: location.href,
    }));
    assert.equal(stored.session, E2E.admin);
    assert.equal(stored.local, 0);
    assert.equal(stored.cookies, '');
    assert.ok(!stored.url.includes(secretOf(E2E.admin)), 'no token in the URL');
    const nav = await page.$$eval('nav a', (as) => as.map((a) => a.textContent));
    assert.deepEqual(nav, ['Apps', 'Verify', 'Batches', 'Audit', 'Tokens', 'Activity']);
    // The keyboard: the skip link first, to the main content; focus is visible.
    // (A reload: signed in still, the tab's sessionStorage; the focus starts at the top.)
    await page.reload({ waitUntil: 'domcontentloaded' });
    await page.waitForSelector('#signout');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'skip');
    await page.keyboard.press('Tab');
    const focus = await page.evaluate(() => {
      const el = document.activeElement, st = getComputedStyle(el);
      return { text: el.textContent, outline: st.outlineStyle, width: st.outlineWidth };
    });
    assert.deepEqual(focus, { text: 'Apps', outline: 'solid', width: '3px' });
    await page.keyboard.down('Shift');
    await page.keyboard.press('Tab');
    await page.keyboard.up('Shift');
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'main');

    await go(page, '#/apps', '#create-app');
    await page.type('#create-app input[name=sdkappid]', String(A));
    await page.type('#create-app input[name=name]', nameA);
    await page.click('#create-app button[type=submit]');
    await page.waitForSelector('#import-key');
    assert.equal(new URL(page.url()).hash, `#/apps/${A}`);
    const h1 = await page.$eval('main h1', (el) => ({ text: el.textContent, bold: el.querySelectorAll('b').length }));
    assert.ok(h1.text.includes(nameA) && h1.bold === 0, `the name shows as text: ${JSON.stringify(h1)}`);

    await page.type('#import-key input[name=secret]', secret1);
    await page.click('#import-key button[type=submit]');
    await page.waitForSelector('#key-timeline li[data-version="1"].tl-active');
    assert.match(await text(page, '#status'), /Imported key version 1 \(active/);

    await page.type('#rotate-key input[name=secret]', secret2);
    await page.click('#rotate-key button[type=submit]');
    await page.waitForSelector('#key-timeline li[data-version="2"].tl-active');
    assert.ok(await page.$('#key-timeline li[data-version="1"].tl-retired'), 'version 1 retired');
    assert.match(await text(page, '#status'), /version 2 is active, version 1 retired/);
    // Destroy waits for the typed confirmation.
    const destroy = await page.$('#key-timeline li[data-version="1"] .destroy button[type=submit]');
    assert.ok(destroy && (await destroy.evaluate((b) => b.disabled)), 'destroy disabled until typed');
    await shoot(page, 'app');

    await go(page, '#/apps', '#apps-list table');
    const row = await page.$$eval('#apps-list tbody tr', (trs, id) => {
      const tr = trs.find((t) => t.cells[0].textContent === String(id));
      return tr ? [...tr.cells].map((c) => c.textContent) : null;
    }, A);
    assert.ok(row, 'the new app is listed');
    assert.equal(row[1], nameA);
    assert.equal(row[2], 'v2');
    await shoot(page, 'apps');
    await context.close();
  });

  test('as admin: verify a token signed with another app\'s key, the audit rows', async () => {
    await createApp(B);
    await addKey(B, newSecret());
    // A token for app B made by the official library with app A's active key.
    const wrong = new TLSSigAPIv2.Api(B, secret2).genUserSig('alice', 3600);
    const context = await browser.createBrowserContext();
    const page = await newPage(context);
    await signIn(page, E2E.admin);
    await go(page, '#/verify', '#verify-form');
    await page.type('#verify-form textarea[name=usersig]', wrong);
    await page.type('#verify-form input[name=identifier]', 'alice');
    await page.click('#verify-form button[type=submit]');
    await page.waitForSelector('#verify-signed-by');
    const result = await text(page, '#verify-result');
    assert.match(result, /signature_mismatch/);
    assert.match(result, /70009/);
    const signedBy = await text(page, '#verify-signed-by');
    assert.ok(signedBy.includes(`app ${A}`) && signedBy.includes('key version 2'), signedBy);
    assert.ok((await text(page, '#verify-message')).includes(String(A)), 'the message names the app');
    const doc = JSON.parse(await text(page, '#verify-doc'));
    assert.equal(doc['TLS.sdkappid'], B);
    assert.equal(doc['TLS.identifier'], 'alice');
    await shoot(page, 'verify');

    await go(page, '#/audit', '#audit-filter');
    await page.waitForSelector('#chain-status');
    assert.match(await text(page, '#chain-status'), /chain ok/);
    await page.type('#audit-filter input[name=sdkappid]', String(A));
    await page.click('#audit-filter button[type=submit]');
    await page.waitForFunction((id) => {
      const rows = [...document.querySelectorAll('#audit-result tbody tr')];
      return rows.length >= 3 && rows.every((r) => r.cells[4].textContent === String(id));
    }, { timeout: 10000 }, A);
    const actions = await page.$$eval('#audit-result tbody tr', (rows) => rows.map((r) => r.dataset.action));
    // A rotation to a new secret is its import and the rotation.
    assert.deepEqual(actions, ['app.create', 'key.import', 'key.import', 'key.rotate']);
    await shoot(page, 'audit');
    await context.close();
  });

  test('as admin: a token shown once, a revoked token refused', async () => {
    const context = await browser.createBrowserContext();
    const page = await newPage(context);
    await signIn(page, E2E.admin);
    await go(page, '#/tokens', '#create-token');
    await page.type('#create-token input[name=name]', 'ui signer');
    await page.select('#create-token select[name=role]', 'signer');
    await page.type('#create-token input[name=apps]', String(A));
    await page.type('#create-token input[name=ttl]', '1d');
    await page.click('#create-token button[type=submit]');
    await page.waitForSelector('#new-token');
    const made = await page.$eval('#new-token', (el) => el.value);
    assert.match(made, /^usg_\d+_[A-Za-z0-9_-]{43}$/);
    const id = Number(made.split('_')[1]);
    await page.waitForSelector(`#token-list tr[data-token-id="${id}"]`);
    const self = expectStatus(await api('GET', '/v1/tokens/self', { token: made }), 200);
    assert.equal(self.role, 'signer');
    assert.deepEqual(self.apps, [A]);
    assert.ok(self.operations.includes('signUserSig') && !self.operations.includes('createApp'));
    await shoot(page, 'tokens-created');

    // Shown once: the page again does not have it anywhere.
    await page.reload({ waitUntil: 'domcontentloaded' });
    await page.waitForSelector(`#token-list tr[data-token-id="${id}"]`);
    assert.equal(await page.$('#new-token'), null);
    const html = await page.content();
    assert.ok(!html.includes(secretOf(made)), 'the secret is not on the page any more');
    assert.ok(!(await page.evaluate(() => JSON.stringify(sessionStorage))).includes(secretOf(made)));

    // Revoke: two clicks (the second confirms); its next request is refused.
    const revoke = `#token-list tr[data-token-id="${id}"] button`;
    await page.click(revoke);
    assert.match(await text(page, revoke), /Confirm/);
    await page.click(revoke);
    await page.waitForFunction((sel) => /revoked/.test((document.querySelector(sel) || {}).textContent || ''),
      { timeout: 10000 }, `#token-list tr[data-token-id="${id}"]`);
    assert.match(await text(page, '#status'), new RegExp(`Token #${id} .* is revoked`));
    const refused = await api('GET', '/v1/tokens/self', { token: made });
    assert.equal(refused.status, 401);
    await shoot(page, 'tokens');
    await context.close();
  });

  test('as admin: batches and activity', async () => {
    // A batch of two for app A, and single signs: the counters the activity chart follows.
    const batch = await api('POST', `/v1/apps/${A}/usersigs/batch`, { raw: 'bob\ncarol\n', contentType: 'text/plain' });
    expectStatus(batch, 200);
    const context = await browser.createBrowserContext();
    const page = await newPage(context);
    await signIn(page, E2E.admin);
    await go(page, '#/batches', '#batches-filter');
    await page.select('#batches-filter select[name=sdkappid]', String(A));
    await page.select('#batches-filter select[name=state]', 'complete');
    await page.click('#batches-filter button[type=submit]');
    await page.waitForFunction(() => document.querySelectorAll('#batches-result tbody tr').length === 1, { timeout: 10000 });
    const cells = await page.$$eval('#batches-result tbody tr td', (tds) => tds.map((t) => t.textContent));
    assert.equal(cells[1], 'complete');
    assert.equal(cells[4], '2');
    await shoot(page, 'batches');

    await go(page, '#/activity', '#activity-now');
    for (let i = 0; i < 4; i++) await sign(A, { identifier: `u${i}` });
    // Two readings make a rate, three a line: each comes within the poll interval.
    await page.waitForFunction(() => {
      const r = document.getElementById('rate-signs');
      const line = document.querySelector('#activity-chart path.series-signs');
      return r && r.textContent !== '…' && line && line.getAttribute('d').includes('L');
    }, { timeout: 15000 });
    const signs = Number(await text(page, '#total-signs'));
    assert.ok(signs >= 6, `signs counted: ${signs}`);
    await shoot(page, 'activity');
    await context.close();
  });

  // The race the ticket in dom.js (newest()) closes, forced: the page's first load (the first
  // app, any state) is held until the filter's load (another choice) has been answered and
  // shown; its reply, coming last, must not replace the newer one.
  test('batches: a reply that a newer load superseded is dropped when it comes last', async () => {
    let release;
    const held = new Promise((r) => { release = r; });
    let firstUrl = null;
    let firstDone = false;
    const context = await browser.createBrowserContext();
    const page = await newPage(context, { hold: (req) => {
      if (firstUrl === null && /\/usersigs\/batches\?/.test(req.url())) {
        firstUrl = req.url();
        return held;
      }
      return null;
    } });
    page.on('requestfinished', (req) => { if (req.url() === firstUrl) firstDone = true; });
    try {
      await signIn(page, E2E.admin);
      await go(page, '#/batches', '#batches-filter');
      for (let i = 0; i < 100 && firstUrl === null; i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(firstUrl, 'the first load was asked for');
      const firstApp = new URL(firstUrl).pathname.split('/')[3];
      // Another choice than the first load's, whose answer differs from it: A's complete batches
      // (the test before made one), or, when the first load was A's own, A's aborted ones.
      const state = firstApp === String(A) ? 'aborted' : 'complete';
      const want = await api('GET', `/v1/apps/${A}/usersigs/batches?limit=50&state=${state}`);
      expectStatus(want, 200);
      const wantIds = want.json.batches.map((b) => b.batch_id);
      const u = new URL(firstUrl);
      const stale = await api('GET', u.pathname + u.search);
      expectStatus(stale, 200);
      assert.notDeepEqual(stale.json.batches.map((b) => b.batch_id), wantIds,
        'the held load and the newer one answer differently (else the test could not fail)');
      await page.select('#batches-filter select[name=sdkappid]', String(A));
      await page.select('#batches-filter select[name=state]', state);
      await page.click('#batches-filter button[type=submit]');
      const shown = () => page.$$eval('#batches-result tbody tr td:first-child', (tds) => tds.map((t) => t.textContent));
      await page.waitForFunction((n) => {
        const r = document.getElementById('batches-result');
        return r && r.textContent !== '' && r.querySelectorAll('tbody tr').length === n;
      }, { timeout: 10000 }, wantIds.length);
      const before = await shown();
      release();
      for (let i = 0; i < 100 && !firstDone; i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(firstDone, 'the held load was answered');
      await page.evaluate(() => new Promise((r) => setTimeout(r, 300))); // its reply handled
      assert.deepEqual(await shown(), before, 'the newer load\'s result stays');
      assert.equal(before.length, wantIds.length);
      for (const id of wantIds) assert.ok(before.some((t) => t.includes(id)), `batch ${id} shown`);
    } finally {
      release();
      await context.close();
    }
  });

  test('as an auditor: the same pages, no write action, a forced write shows the 403', async () => {
    auditorToken = await createToken('auditor', null, 'ui auditor');
    const context = await browser.createBrowserContext();
    const page = await newPage(context);
    await signIn(page, auditorToken);
    const nav = await page.$$eval('nav a', (as) => as.map((a) => a.textContent));
    assert.deepEqual(nav, ['Apps', 'Batches', 'Audit', 'Activity']);
    await go(page, '#/apps', '#apps-list');
    assert.equal(await page.$('#create-app'), null, 'no create form');
    await shoot(page, 'auditor-apps');

    await go(page, `#/apps/${A}`, '#key-timeline');
    for (const sel of ['#import-key', '#rotate-key', '#app-settings', '.destroy-box', '#key-timeline button']) {
      assert.equal(await page.$(sel), null, `an auditor is offered no ${sel}`);
    }
    const buttons = await page.$$eval('main button', (bs) => bs.map((b) => b.textContent));
    assert.deepEqual(buttons, []);
    await shoot(page, 'auditor-app');

    // A malformed escape in the hash: the server's refusal shown, the page still whole (the
    // script errors are checked at the end).
    await go(page, '#/apps/%E0', '#error:not([hidden])');
    assert.match(await errorText(page), /HTTP 4\d\d/);
    assert.equal(await page.$eval('main .crumbs a', (a) => a.getAttribute('href')), '#/apps');
    await go(page, `#/apps/${A}`, '#key-timeline');
    assert.equal(await errorText(page), '', 'the refusal gone with the next page');

    // A write forced through the page's own API module: the server's 403, shown as it came.
    await page.evaluate(async (id) => {
      const m = await import('/ui/api.js');
      await m.api('POST', `/v1/apps/${id}/keys/rotate`, { secret: 'x'.repeat(64) }).catch(() => {});
    }, A);
    const shown = await errorText(page);
    assert.match(shown, /HTTP 403 forbidden/);
    assert.match(shown, /role auditor may not POST/);
    await shoot(page, 'auditor-403');

    await go(page, '#/audit', '#audit-result table');
    await go(page, '#/batches', '#batches-filter');
    await go(page, '#/activity', '#activity-chart');
    // Pages the role cannot use are not offered: the hash of one lands on the first page.
    await page.evaluate(() => { location.hash = '#/tokens'; });
    await page.waitForFunction(() => location.hash === '#/apps');
    // Sign out forgets the token.
    await page.click('#signout');
    await page.waitForSelector('input[name=token]');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('usersigd.token')), null);
    await context.close();
  });

  test('with cors_origins set the page works on its own origin; ui_dir empty or missing', async () => {
    const servers = [];
    try {
      // CORS on for another origin: the page's own requests (a POST carries its Origin) pass.
      const cors = await startServer('ui-cors', { env: { USERSIGD_CORS_ORIGINS: 'https://dash.example' } });
      servers.push(cors);
      const context = await browser.createBrowserContext();
      const page = await context.newPage();
      const corsOrigin = new URL(cors.url).origin;
      await page.setRequestInterception(true);
      page.on('request', (req) => (new URL(req.url()).origin === corsOrigin ? req.continue() : req.abort()));
      await page.goto(`${cors.url}/ui/`, { waitUntil: 'domcontentloaded' });
      await page.waitForSelector('input[name=token]');
      await page.type('input[name=token]', E2E.admin);
      await page.click('form.signin button[type=submit]');
      await page.waitForSelector('#create-app');
      const C = newAppId();
      await page.type('#create-app input[name=sdkappid]', String(C));
      await page.type('#create-app input[name=name]', 'ui cors');
      await page.click('#create-app button[type=submit]');
      await page.waitForSelector('#import-key');
      assert.equal(await errorText(page), '');
      await context.close();

      // ui_dir = "": no dashboard, a JSON 404 with the same headers; the API as before.
      const off = await startServer('ui-off', { env: { USERSIGD_UI_DIR: '' } });
      servers.push(off);
      for (const p of ['/ui', '/ui/', '/ui/app.js']) {
        const res = await api('GET', p, { base: off.url, token: null });
        assert.equal(res.status, 404, p);
        assert.equal(res.json.error.code, 'not_found');
        assert.match(res.json.error.message, /ui_dir is empty/);
        assert.equal(res.headers.get('content-security-policy'), STRICT['content-security-policy']);
      }
      expectStatus(await api('GET', '/v1/apps', { base: off.url }), 200);
      assert.match(off.log(), /dashboard: off/);

      // SIGHUP reads the folder again; a folder gone bad keeps the files served before.
      const dir = path.join(E2E.work, `ui-copy-${process.pid}`);
      fs.mkdirSync(dir, { recursive: true });
      for (const f of fs.readdirSync(path.join(__dirname, '..', '..', 'admin-api', 'ui'))) {
        const src = path.join(__dirname, '..', '..', 'admin-api', 'ui', f);
        if (fs.statSync(src).isFile()) fs.copyFileSync(src, path.join(dir, f));
      }
      const hup = await startServer('ui-hup', { env: { USERSIGD_UI_DIR: dir } });
      servers.push(hup);
      assert.equal((await rawGet('/ui/extra.js', hup.url)).status, 404);
      fs.writeFileSync(path.join(dir, 'extra.js'), 'export const x = 1;\n');
      const logged = async (re) => {
        for (let i = 0; i < 100 && !re.test(hup.log()); i++) await new Promise((r) => setTimeout(r, 50));
        assert.match(hup.log(), re);
      };
      hup.proc.kill('SIGHUP');
      await logged(/SIGHUP: reloaded the dashboard's files/);
      const extra = await rawGet('/ui/extra.js', hup.url);
      assert.equal(extra.status, 200);
      assert.equal(extra.text, 'export const x = 1;\n');
      fs.unlinkSync(path.join(dir, 'index.html'));
      hup.proc.kill('SIGHUP');
      await logged(/SIGHUP: keeping the dashboard's files as they were: .*no index.html/);
      assert.equal((await rawGet('/ui/', hup.url)).status, 200, 'the files loaded before stay');

      // A folder that is not there stops serve at start, naming it.
      const bad = await startServer('ui-missing', {
        env: { USERSIGD_UI_DIR: path.join(E2E.work, 'no-such-ui') }, mayFail: true,
      });
      assert.ok(bad.failed !== undefined, 'serve refused to start');
      assert.match(bad.failed, /cannot open the dashboard folder .*no-such-ui/);
    } finally {
      await stopAll(servers);
    }
  });

  test('every request stayed on the server; every dashboard reply had the strict headers', async () => {
    assert.deepEqual(foreign, [], 'no request to another origin');
    assert.deepEqual(pageErrors, [], 'no script error');
    assert.ok(uiReplies.length >= 10, `dashboard replies seen: ${uiReplies.length}`);
    for (const r of uiReplies) {
      for (const [k, v] of Object.entries(STRICT)) assert.equal(r.headers[k], v, `${r.url}: ${k}`);
    }
    // A missing file and traversal attempts: JSON 404s with the same headers.
    // Sent as they are (fetch would resolve the dot segments first).
    for (const p of ['/ui/nothing.js', '/ui/..%2fopenapi.yaml', '/ui/%2e%2e', '/ui/%2E%2E%2Fopenapi.yaml',
      '/ui/.hidden.js', '/ui/screenshots', '/ui/index.html%00.js', '/ui/README.md']) {
      const res = await rawGet(p);
      assert.equal(res.status, 404, `${p}: ${res.text}`);
      assert.equal(JSON.parse(res.text).error.code, 'not_found', p);
      for (const [k, v] of Object.entries(STRICT)) assert.equal(res.headers[k], v, `${p}: ${k}`);
    }
    // Dot segments that reach the server as such leave /ui/ altogether (no route: 404).
    for (const p of ['/ui/../openapi.yaml', '/ui/./index.html', '/ui/../../etc/passwd']) {
      const res = await rawGet(p);
      assert.equal(res.status, 404, `${p}: ${res.text}`);
      assert.equal(JSON.parse(res.text).error.code, 'not_found', p);
    }
    assert.equal((await rawGet('/ui')).status, 301);
    assert.equal((await rawGet('/ui')).headers.location, '/ui/');
    // The page has no inline script or style (the CSP would refuse them).
    const index = await api('GET', '/ui/', { token: null });
    assert.equal(index.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.ok(!/<script(?![^>]*\bsrc=)/i.test(index.text) && !/<style|style=/i.test(index.text));
    const js = await api('GET', '/ui/app.js', { token: null });
    assert.equal(js.headers.get('content-type'), 'text/javascript; charset=utf-8');
    const shots = fs.readdirSync(SHOTS).filter((f) => f.endsWith('.png'));
    assert.ok(shots.length >= 20, `screenshots in ${SHOTS}: ${shots.length}`);
  });
});
