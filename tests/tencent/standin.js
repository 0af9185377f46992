#!/usr/bin/env node
// A stand-in for Tencent Cloud Chat's server-side REST API, for the tests only: HTTPS with a test
// CA (tests/tencent/make_ca.sh), strict about the URL parameters, the admin UserSig (verified here
// with the app's key: its own decoding, inflate, JSON and HMAC-SHA256, not the official library),
// the four account commands of im_open_login_svc with Tencent's limits and reply shapes, and the
// per-second call limits per app and command. Everything is in memory. Node's standard library only.
//
// Usage: node standin.js --config FILE | --config-json TEXT  [--tls-dir DIR | --http] [--port N]
//                         [--host 127.0.0.1]
//   (STANDIN_CONFIG / STANDIN_CONFIG_JSON / STANDIN_TLS_DIR / STANDIN_PORT in the environment too)
// Prints {"port":N} on stdout once listening (--port 0: a free port). Ends on SIGTERM or SIGINT.
// With DIR/wrong-name.pem and .key (make_ca.sh), a client asking for "localhost" by SNI gets that
// certificate, made for another name: what a client that checks host names must refuse.
//
// Config: {"apps": {"<sdkappid>": {"key": "<the app's secret>", "admins": ["administrator"]}},
//          "limits": {"im_open_login_svc/account_import": 200, ...},  (calls/s; 0 or null: off)
//          "app_limit": null,                    (calls/s of one app over every command: 60011)
//          "now": null,                           (fixed Unix seconds for expiry checks; tests)
//          "verify_fail_limit": 10,               (failed admin UserSigs of one app and
//          "verify_hold_ms": 60000}                identifier in 60 s before 70050, and its hold)
// The limits default to Tencent's documented ones (200/s account_import, 100/s the others).
// Tencent documents 70050 ("UserSig verification failed and the request frequency exceeded:
// check the UserSig and verify again after 1 minute") but not how many failures it takes: that
// is the stand-in's own choice, 10 a minute per app and identifier unless set. While held, every
// call of that identifier gets 70050 before its UserSig is looked at, a good one included.
//
// Test-only endpoints (no authentication: this is a test double):
//   GET  /__standin/accounts?sdkappid=N   {"accounts":[{"UserID","Nick","FaceUrl"}]}, sorted
//   GET  /__standin/counters[?sdkappid=N] {"<sdkappid>":{"<svc>/<cmd>":{"calls","limited","ok"}}}
//   POST /__standin/config                {"limits":{...},"app_limit":N,"now":N,
//                                          "verify_fail_limit":N,"verify_hold_ms":N} merged in
//   POST /__standin/inject                {"sdkappid","command":"svc/cmd","replies":[{...}]}
//        the next calls of that command (after the URL and UserSig checks) get these replies,
//        one each, in order; a reply may carry "delay_ms", "pad_bytes" (a "Pad" string of that
//        many bytes) and "http_status" besides the body's fields.
//   POST /__standin/reset                 forgets accounts, counters, injected replies and holds
// Query knobs on any REST call (tests): __delay=<ms> delays the reply, __pad=<bytes> pads it.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const https = require('https');
const path = require('path');
const zlib = require('zlib');

const MAX_BODY = 1 << 20; // bytes of a request body
const MAX_ITEMS = 100; // accounts per multiaccount_import / account_check / account_delete
const MAX_ADMINS = 10; // administrator accounts an app may have
const MAX_USERID = 32; // bytes
const MAX_INFLATE = 64 << 10; // bytes a UserSig may inflate to

// Tencent's documented per-command frequency limits (calls per second).
const DEFAULT_LIMITS = {
  'im_open_login_svc/account_import': 200,
  'im_open_login_svc/multiaccount_import': 100,
  'im_open_login_svc/account_check': 100,
  'im_open_login_svc/account_delete': 100,
};

// Error codes and texts as Tencent documents them (REST API public codes, account codes).
const E = {
  HTTP_PARSE: [60002, 'HTTP parse error, please check the HTTP request URL format'],
  JSON_PARSE: [60003, 'HTTP request JSON parse error, please check the JSON format'],
  ACCOUNT: [60004, 'account or signature error in the request URL or JSON body'],
  RATE: [60007, 'REST API call frequency exceeds the limit, please reduce the request frequency'],
  RESOURCE: [60009, 'request resource error, please check the request URL'],
  ADMIN: [60010, 'the request requires App administrator permission'],
  APP_RATE: [60011, 'SDKAppID request frequency exceeds the limit, please reduce the frequency'],
  NO_SDKAPPID: [60012, 'REST API requires SDKAppID, please check the SDKAppID in the request URL'],
  SIG_EXPIRED: [70001, 'UserSig has expired, please generate a new one'],
  SIG_EMPTY: [70002, 'UserSig is empty'],
  SIG_MALFORMED: [70003, 'UserSig is invalid: it failed to parse'],
  SIG_MISMATCH: [70009, 'UserSig verification failed: signed with another SDKAppID\'s key?'],
  SIG_IDENTIFIER: [70013, 'the UserID in the request does not match the UserID in the UserSig'],
  SIG_SDKAPPID: [70014, 'the SDKAppID in the request does not match the SDKAppID in the UserSig'],
  NO_APP: [70020, 'SDKAppID does not exist, UserSig verification failed'],
  VERIFY_HOLD: [70050, 'UserSig verification failed and the request frequency exceeded the ' +
    'limit: check the UserSig and verify again after 1 minute'],
  PARAM: [70402, 'invalid parameter, please check the required fields and their format'],
};
const NOT_EXIST = [70107, 'Err_TLS_PT_Open_Login_Account_Not_Exist'];

function parseArgs(argv) {
  const opt = {
    config: process.env.STANDIN_CONFIG || null,
    configJson: process.env.STANDIN_CONFIG_JSON || null,
    tlsDir: process.env.STANDIN_TLS_DIR || null,
    port: Number(process.env.STANDIN_PORT || 0),
    host: '127.0.0.1',
    http: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--config') opt.config = v();
    else if (a === '--config-json') opt.configJson = v();
    else if (a === '--tls-dir') opt.tlsDir = v();
    else if (a === '--port') opt.port = Number(v());
    else if (a === '--host') opt.host = v();
    else if (a === '--http') opt.http = true;
    else throw new Error(`unknown option ${a}`);
  }
  if (!Number.isInteger(opt.port) || opt.port < 0 || opt.port > 65535) throw new Error('bad port');
  if (!opt.http && !opt.tlsDir) throw new Error('--tls-dir DIR (or --http) is required');
  return opt;
}

// ---- state -------------------------------------------------------------------------------------

class Standin {
  constructor(config) {
    this.apps = new Map(); // sdkappid (string) -> {key, admins:Set}
    this.limits = { ...DEFAULT_LIMITS };
    this.appLimit = null;
    this.now = null;
    this.accounts = new Map(); // sdkappid -> Map(UserID -> {UserID, Nick, FaceUrl})
    this.counters = new Map(); // sdkappid -> Map(cmd -> {calls, limited, ok})
    this.windows = new Map(); // `${sdkappid} ${cmd}` -> [timestamps ms] of the last second
    this.injected = new Map(); // `${sdkappid} ${cmd}` -> [replies]
    this.verifyFailLimit = 10;
    this.verifyHoldMs = 60000;
    this.sigFails = new Map(); // `${sdkappid} ${identifier}` -> {fails: [ms], heldUntil: ms}
    this.configure(config);
  }

  configure(c) {
    if (c === null || typeof c !== 'object') throw new Error('config: not an object');
    if (c.apps !== undefined) {
      for (const [id, app] of Object.entries(c.apps)) {
        if (!/^[0-9]{1,10}$/.test(id) || Number(id) > 0xffffffff) throw new Error(`app ${id}`);
        if (typeof app.key !== 'string' || app.key === '') throw new Error(`app ${id}: key`);
        const admins = app.admins || [];
        if (!Array.isArray(admins) || admins.length > MAX_ADMINS ||
            !admins.every((a) => typeof a === 'string' && validUserId(a))) {
          throw new Error(`app ${id}: admins (1 to ${MAX_ADMINS} valid UserIDs)`);
        }
        this.apps.set(id, { key: app.key, admins: new Set(admins) });
      }
    }
    if (c.limits !== undefined) {
      for (const [cmd, n] of Object.entries(c.limits)) {
        if (n !== null && !(Number.isInteger(n) && n >= 0)) throw new Error(`limit ${cmd}`);
        this.limits[cmd] = n;
      }
    }
    if (c.app_limit !== undefined) {
      if (c.app_limit !== null && !(Number.isInteger(c.app_limit) && c.app_limit >= 0)) {
        throw new Error('app_limit');
      }
      this.appLimit = c.app_limit;
    }
    if (c.now !== undefined) {
      if (c.now !== null && !Number.isInteger(c.now)) throw new Error('now');
      this.now = c.now;
    }
    for (const [k, field] of [['verify_fail_limit', 'verifyFailLimit'],
      ['verify_hold_ms', 'verifyHoldMs']]) {
      if (c[k] === undefined) continue;
      if (!(Number.isInteger(c[k]) && c[k] > 0)) throw new Error(k);
      this[field] = c[k];
    }
  }

  // The 70050 hold of (sdkappid, identifier): true while it lasts.
  held(key, nowMs) {
    const f = this.sigFails.get(key);
    return f !== undefined && nowMs < f.heldUntil;
  }

  // One failed admin UserSig of (sdkappid, identifier); the limit reached starts the hold.
  sigFailed(key, nowMs) {
    let f = this.sigFails.get(key);
    if (!f) this.sigFails.set(key, (f = { fails: [], heldUntil: 0 }));
    while (f.fails.length > 0 && f.fails[0] <= nowMs - 60000) f.fails.shift();
    f.fails.push(nowMs);
    if (f.fails.length >= this.verifyFailLimit) {
      f.heldUntil = nowMs + this.verifyHoldMs;
      f.fails = [];
    }
  }

  counter(sdkappid, cmd) {
    if (!this.counters.has(sdkappid)) this.counters.set(sdkappid, new Map());
    const m = this.counters.get(sdkappid);
    if (!m.has(cmd)) m.set(cmd, { calls: 0, limited: 0, ok: 0 });
    return m.get(cmd);
  }

  // true when one more call of this window fits in `limit` calls over the last 1000 ms (and
  // records it); a call refused is not recorded, as Tencent counts what it served.
  take(key, limit, nowMs) {
    if (limit === null || limit === undefined || limit === 0) return true;
    let w = this.windows.get(key);
    if (!w) this.windows.set(key, (w = []));
    while (w.length > 0 && w[0] <= nowMs - 1000) w.shift();
    if (w.length >= limit) return false;
    w.push(nowMs);
    return true;
  }

  accountsOf(sdkappid) {
    if (!this.accounts.has(sdkappid)) this.accounts.set(sdkappid, new Map());
    return this.accounts.get(sdkappid);
  }
}

// ---- UserSig verification (SPEC.md "Verification"), independent of the official library ----

// Tencent's base64 variant: '*' for '+', '-' for '/', '_' for '=' (padding kept).
function base64urlTencentDecode(s) {
  const std = s.replace(/\*/g, '+').replace(/-/g, '/').replace(/_/g, '=');
  if (std.length === 0 || std.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(std)) return null;
  return Buffer.from(std, 'base64');
}

// Returns null when the token is valid for (sdkappid, identifier) with key at nowSec, else the
// error [code, info].
function verifyUserSig(token, sdkappid, identifier, key, nowSec) {
  if (token.length === 0) return E.SIG_EMPTY;
  const raw = base64urlTencentDecode(token.replace(/\s+/g, ''));
  if (!raw) return E.SIG_MALFORMED;
  let json;
  try {
    json = JSON.parse(zlib.inflateSync(raw, { maxOutputLength: MAX_INFLATE }).toString('utf8'));
  } catch (e) {
    return E.SIG_MALFORMED;
  }
  const isInt = (v) => Number.isSafeInteger(v) && v >= 0;
  if (json === null || typeof json !== 'object' || json['TLS.ver'] !== '2.0' ||
      typeof json['TLS.identifier'] !== 'string' || !isInt(json['TLS.sdkappid']) ||
      !isInt(json['TLS.time']) || !isInt(json['TLS.expire']) ||
      typeof json['TLS.sig'] !== 'string' ||
      (json['TLS.userbuf'] !== undefined && typeof json['TLS.userbuf'] !== 'string')) {
    return E.SIG_MALFORMED;
  }
  if (json['TLS.identifier'] !== identifier) return E.SIG_IDENTIFIER;
  if (String(json['TLS.sdkappid']) !== sdkappid) return E.SIG_SDKAPPID;
  if (nowSec > json['TLS.time'] + json['TLS.expire']) return E.SIG_EXPIRED;
  let content = `TLS.identifier:${json['TLS.identifier']}\nTLS.sdkappid:${json['TLS.sdkappid']}\n` +
    `TLS.time:${json['TLS.time']}\nTLS.expire:${json['TLS.expire']}\n`;
  if (json['TLS.userbuf'] !== undefined) content += `TLS.userbuf:${json['TLS.userbuf']}\n`;
  const want = crypto.createHmac('sha256', Buffer.from(key, 'utf8')).update(content).digest();
  const got = Buffer.from(json['TLS.sig'], 'base64');
  if (got.length !== want.length || !crypto.timingSafeEqual(got, want)) return E.SIG_MISMATCH;
  return null;
}

// ---- the REST commands -------------------------------------------------------------------------

// A UserID Tencent takes: 1 to 32 bytes of printable ASCII (0x20-0x7e).
function validUserId(u) {
  return typeof u === 'string' && u.length > 0 && Buffer.byteLength(u, 'utf8') <= MAX_USERID &&
    /^[\x20-\x7e]+$/.test(u);
}

function ok(extra) {
  return { ActionStatus: 'OK', ErrorCode: 0, ErrorInfo: '', ...extra };
}

function fail(err) {
  return { ActionStatus: 'FAIL', ErrorCode: err[0], ErrorInfo: err[1] };
}

function profile(item) {
  const p = { UserID: item.UserID, Nick: '', FaceUrl: '' };
  if (typeof item.Nick === 'string') p.Nick = item.Nick;
  if (typeof item.FaceUrl === 'string') p.FaceUrl = item.FaceUrl;
  return p;
}

function itemList(body, field) {
  const list = body[field];
  if (!Array.isArray(list) || list.length === 0) return { err: E.PARAM };
  if (list.length > MAX_ITEMS) {
    return { err: [E.PARAM[0], `${field} has ${list.length} items, at most ${MAX_ITEMS}`] };
  }
  return { list };
}

const COMMANDS = {
  'im_open_login_svc/account_import': (s, app, body) => {
    if (!validUserId(body.UserID) || (body.Nick !== undefined && typeof body.Nick !== 'string') ||
        (body.FaceUrl !== undefined && typeof body.FaceUrl !== 'string')) {
      return fail(E.PARAM);
    }
    s.accountsOf(app).set(body.UserID, profile(body));
    return ok();
  },
  'im_open_login_svc/multiaccount_import': (s, app, body) => {
    // The current form (AccountList of objects) and the older one (Accounts of strings).
    const field = body.AccountList !== undefined ? 'AccountList' : 'Accounts';
    const { list, err } = itemList(body, field);
    if (err) return fail(err);
    const FailAccounts = [];
    const accounts = s.accountsOf(app);
    for (const raw of list) {
      const item = field === 'Accounts' ? { UserID: raw } : raw;
      if (item === null || typeof item !== 'object' || !validUserId(item.UserID) ||
          (item.Nick !== undefined && typeof item.Nick !== 'string') ||
          (item.FaceUrl !== undefined && typeof item.FaceUrl !== 'string')) {
        FailAccounts.push(item && typeof item.UserID === 'string' ? item.UserID : String(raw));
        continue;
      }
      accounts.set(item.UserID, profile(item)); // importing again updates the profile
    }
    return ok({ FailAccounts });
  },
  'im_open_login_svc/account_check': (s, app, body) => {
    const { list, err } = itemList(body, 'CheckItem');
    if (err) return fail(err);
    const accounts = s.accountsOf(app);
    const ResultItem = [];
    for (const item of list) {
      if (item === null || typeof item !== 'object' || typeof item.UserID !== 'string') {
        return fail(E.PARAM);
      }
      ResultItem.push({
        UserID: item.UserID, ResultCode: 0, ResultInfo: '',
        AccountStatus: accounts.has(item.UserID) ? 'Imported' : 'NotImported',
      });
    }
    return ok({ ResultItem });
  },
  'im_open_login_svc/account_delete': (s, app, body) => {
    const { list, err } = itemList(body, 'DeleteItem');
    if (err) return fail(err);
    const accounts = s.accountsOf(app);
    const ResultItem = [];
    for (const item of list) {
      if (item === null || typeof item !== 'object' || typeof item.UserID !== 'string') {
        return fail(E.PARAM);
      }
      if (accounts.delete(item.UserID)) {
        ResultItem.push({ ResultCode: 0, ResultInfo: '', UserID: item.UserID });
      } else {
        ResultItem.push({ ResultCode: NOT_EXIST[0], ResultInfo: NOT_EXIST[1], UserID: item.UserID });
      }
    }
    return ok({ ResultItem });
  },
};

// The URL's query, strictly: each parameter at most once.
function parseQuery(search) {
  const q = new Map();
  for (const [k, v] of new URLSearchParams(search)) {
    if (q.has(k)) return null;
    q.set(k, v);
  }
  return q;
}

// One REST call: {status, body (object), delayMs}. `raw` is the request body (Buffer).
function handleRest(s, method, url, raw) {
  const m = /^\/v4\/([^/]+)\/([^/]+)$/.exec(url.pathname);
  const q = parseQuery(url.search);
  const knobs = { delayMs: 0, pad: 0 };
  if (q) {
    if (q.has('__delay')) knobs.delayMs = Math.min(Number(q.get('__delay')) || 0, 60000);
    if (q.has('__pad')) knobs.pad = Math.min(Number(q.get('__pad')) || 0, 64 << 20);
  }
  const reply = (body) => ({ status: 200, body, ...knobs });
  if (method !== 'POST' || !q) return reply(fail(E.HTTP_PARSE));
  const sdkappid = q.get('sdkappid');
  if (sdkappid === undefined || !/^[0-9]{1,10}$/.test(sdkappid) || Number(sdkappid) > 0xffffffff) {
    return reply(fail(E.NO_SDKAPPID));
  }
  const random = q.get('random');
  if (random === undefined || !/^[0-9]{1,10}$/.test(random) || Number(random) > 0xffffffff ||
      q.get('contenttype') !== 'json') {
    return reply(fail(E.HTTP_PARSE));
  }
  const identifier = q.get('identifier');
  if (identifier === undefined || identifier === '') return reply(fail(E.ACCOUNT));
  const usersig = q.get('usersig');
  if (usersig === undefined || usersig === '') return reply(fail(E.SIG_EMPTY));
  if (!m || !/^[a-z0-9_]{1,64}$/.test(m[1]) || !/^[a-z0-9_]{1,64}$/.test(m[2])) {
    return reply(fail(E.RESOURCE));
  }
  const cmd = `${m[1]}/${m[2]}`;
  const counter = s.counter(sdkappid, cmd);
  counter.calls += 1;
  const nowMs = Date.now();
  if (!s.take(`${sdkappid} *`, s.appLimit, nowMs)) {
    counter.limited += 1;
    return reply(fail(E.APP_RATE));
  }
  if (!s.take(`${sdkappid} ${cmd}`, s.limits[cmd], nowMs)) {
    counter.limited += 1;
    return reply(fail(E.RATE));
  }
  const app = s.apps.get(sdkappid);
  if (!app) return reply(fail(E.NO_APP));
  const nowSec = s.now !== null ? s.now : Math.floor(nowMs / 1000);
  const who = `${sdkappid} ${identifier}`;
  if (s.held(who, nowMs)) return reply(fail(E.VERIFY_HOLD));
  const sigErr = verifyUserSig(usersig, sdkappid, identifier, app.key, nowSec);
  if (sigErr) {
    s.sigFailed(who, nowMs);
    return reply(fail(sigErr));
  }
  if (!app.admins.has(identifier)) return reply(fail(E.ADMIN));
  if (!COMMANDS[cmd]) return reply(fail(E.RESOURCE));
  const inj = s.injected.get(`${sdkappid} ${cmd}`);
  if (inj && inj.length > 0) {
    const r = { ...inj.shift() };
    const out = { status: r.http_status || 200, delayMs: r.delay_ms || knobs.delayMs,
      pad: r.pad_bytes || knobs.pad };
    delete r.http_status;
    delete r.delay_ms;
    delete r.pad_bytes;
    out.body = { ActionStatus: r.ErrorCode ? 'FAIL' : 'OK', ErrorCode: 0, ErrorInfo: '', ...r };
    if (!out.body.ErrorCode) counter.ok += 1;
    return out;
  }
  let body;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch (e) {
    return reply(fail(E.JSON_PARSE));
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    return reply(fail(E.JSON_PARSE));
  }
  const out = COMMANDS[cmd](s, sdkappid, body);
  if (out.ErrorCode === 0) counter.ok += 1;
  return reply(out);
}

function handleTest(s, method, url, raw) {
  const q = new URLSearchParams(url.search);
  const json = () => JSON.parse(raw.toString('utf8') || '{}');
  switch (`${method} ${url.pathname}`) {
    case 'GET /__standin/accounts': {
      const list = [...s.accountsOf(q.get('sdkappid') || '').values()];
      list.sort((a, b) => (a.UserID < b.UserID ? -1 : a.UserID > b.UserID ? 1 : 0));
      return { status: 200, body: { accounts: list } };
    }
    case 'GET /__standin/counters': {
      const out = {};
      for (const [app, m] of s.counters) {
        if (q.has('sdkappid') && q.get('sdkappid') !== app) continue;
        out[app] = Object.fromEntries(m);
      }
      return { status: 200, body: out };
    }
    case 'POST /__standin/config':
      s.configure(json());
      return { status: 200, body: { limits: s.limits, app_limit: s.appLimit, now: s.now,
        verify_fail_limit: s.verifyFailLimit, verify_hold_ms: s.verifyHoldMs } };
    case 'POST /__standin/inject': {
      const b = json();
      if (typeof b.command !== 'string' || !Array.isArray(b.replies)) throw new Error('inject');
      const key = `${b.sdkappid} ${b.command}`;
      s.injected.set(key, (s.injected.get(key) || []).concat(b.replies));
      return { status: 200, body: { queued: s.injected.get(key).length } };
    }
    case 'POST /__standin/reset':
      s.accounts.clear();
      s.counters.clear();
      s.windows.clear();
      s.injected.clear();
      s.sigFails.clear();
      return { status: 200, body: {} };
    default:
      return { status: 404, body: { error: 'no such test endpoint' } };
  }
}

function serve(s, req, res) {
  const chunks = [];
  let size = 0;
  let tooBig = false;
  req.on('data', (c) => {
    size += c.length;
    if (size > MAX_BODY) tooBig = true;
    else chunks.push(c);
  });
  req.on('end', () => {
    const url = new URL(req.url, 'https://standin.invalid');
    const raw = Buffer.concat(chunks);
    let r;
    try {
      if (url.pathname.startsWith('/__standin/')) r = handleTest(s, req.method, url, raw);
      else if (tooBig) r = { status: 200, body: fail(E.JSON_PARSE) };
      else r = handleRest(s, req.method, url, raw);
    } catch (e) {
      r = { status: 400, body: { error: String(e.message || e) } };
    }
    if (r.pad) r.body = { ...r.body, Pad: 'x'.repeat(r.pad) };
    const text = JSON.stringify(r.body);
    const send = () => {
      if (res.destroyed) return;
      res.writeHead(r.status, { 'Content-Type': 'application/json',
        'Content-Length': Buffer.byteLength(text) });
      res.end(text);
    };
    if (r.delayMs > 0) setTimeout(send, r.delayMs);
    else send();
  });
}

function main() {
  const opt = parseArgs(process.argv.slice(2));
  const text = opt.configJson !== null ? opt.configJson : fs.readFileSync(opt.config, 'utf8');
  const s = new Standin(JSON.parse(text));
  const handler = (req, res) => serve(s, req, res);
  let tls = null;
  if (!opt.http) {
    const file = (n) => path.join(opt.tlsDir, n);
    tls = { key: fs.readFileSync(file('server.key')), cert: fs.readFileSync(file('server.pem')),
      minVersion: 'TLSv1.2' };
    if (fs.existsSync(file('wrong-name.pem'))) {
      const wrong = require('tls').createSecureContext({ key: fs.readFileSync(file('wrong-name.key')),
        cert: fs.readFileSync(file('wrong-name.pem')) });
      tls.SNICallback = (name, cb) => cb(null, name === 'localhost' ? wrong : undefined);
    }
  }
  const server = opt.http ? http.createServer(handler) : https.createServer(tls, handler);
  server.keepAliveTimeout = 5000;
  server.listen(opt.port, opt.host, () => {
    process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
  });
  const stop = () => server.close(() => process.exit(0)) && setTimeout(() => process.exit(0), 500);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (require.main === module) {
  try {
    main();
  } catch (e) {
    process.stderr.write(`standin: ${e.message}\n`);
    process.exit(2);
  }
}

module.exports = { verifyUserSig, validUserId, Standin, handleRest };
