// Generates cross-check cases with the official Node library tls-sig-api-v2 (pinned in package.json):
// UserSigs and TRTC PrivateMapKeys (numeric and string room id) over seeded pseudo-random inputs,
// each with the official token and its decoded JSON, one JSON object a line.
// Usage: node gen_cases.js COUNT SEED > cases.jsonl   (same COUNT and SEED give the same output)
'use strict';

const TLSSigAPIv2 = require('tls-sig-api-v2');
const { decodeToken, parseUserbuf, specSig } = require('./verify_tokens');

// ---- Seeded PRNG: sfc32 seeded through splitmix32 from the SEED argument (never Math.random). ----

function splitmix32(state) {
  return function () {
    state = (state + 0x9e3779b9) | 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

function makeRng(seedText) {
  // FNV-1a over the seed's text, so any seed string (usually a number) works.
  let h = 0x811c9dc5;
  for (const ch of Buffer.from(String(seedText), 'utf8')) {
    h = Math.imul(h ^ ch, 0x01000193) >>> 0;
  }
  const sm = splitmix32(h);
  let a = sm(), b = sm(), c = sm(), d = sm();
  const next32 = function () {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  };
  for (let i = 0; i < 16; i++) next32(); // discard the warm-up outputs
  const rng = {
    u32: next32,
    // Uniform integer in [lo, hi] (inclusive), with 53 random bits so ranges up to 2^32 are fine.
    int(lo, hi) {
      const x = (next32() >>> 5) * 67108864 + (next32() >>> 6); // 0 .. 2^53-1
      return lo + Math.floor((x / 9007199254740992) * (hi - lo + 1));
    },
    pick(arr) { return arr[rng.int(0, arr.length - 1)]; },
    chance(p) { return rng.int(0, 999999) < p * 1000000; },
  };
  return rng;
}

// ---- Input generators. ----

const STRICT = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-';
const PRINTABLE = Array.from({ length: 0x7f - 0x20 }, (_, i) => String.fromCharCode(0x20 + i)).join('');
const JSON_NASTY = ['"', '\\', '/', ' '];

function randString(rng, alphabet, len) {
  let s = '';
  for (let i = 0; i < len; i++) s += alphabet[rng.int(0, alphabet.length - 1)];
  return s;
}

function genSdkappid(rng) {
  switch (rng.int(0, 5)) {
    case 0: return rng.int(1400000000, 1400999999);   // IM apps
    case 1: return rng.int(1600000000, 1600099999);   // newer TRTC/IM apps
    case 2: return rng.int(20000000, 20009999);       // 8-digit 2000xxxx
    case 3: return rng.pick([1, 4294967295, 1400000000, 2147483647, 2147483648]); // extremes
    default: return rng.int(1, 4294967295);           // any non-zero uint32
  }
}

function genIdentifier(rng) {
  const len = rng.chance(0.1) ? rng.pick([1, 32]) : rng.int(1, 32);
  switch (rng.int(0, 3)) {
    case 0: // strict set the official libraries advise
      return randString(rng, STRICT, len);
    case 1: // a plain name such as a real deployment uses
      return ('user_' + randString(rng, STRICT, len)).slice(0, len);
    case 2: // all printable ASCII
      return randString(rng, PRINTABLE, len);
    default: { // printable ASCII with at least one of " \ / and space, to exercise JSON escaping
      const chars = randString(rng, PRINTABLE, len).split('');
      const n = rng.int(1, Math.min(3, len));
      for (let i = 0; i < n; i++) chars[rng.int(0, len - 1)] = rng.pick(JSON_NASTY);
      return chars.join('');
    }
  }
}

function genExpire(rng) {
  if (rng.chance(0.25)) return rng.pick([1, 300, 86400, 5184000, 15552000, 315360000]);
  return rng.int(1, 315360000);
}

function genTime(rng) {
  if (rng.chance(0.15)) return rng.pick([1, 1700000000, 2000000000, 2147483647 - 315360000]);
  return rng.int(1, 2000000000);
}

// ---- Signing with the clock fixed. ----

// The library reads the clock only through Date.now(): genSig takes Math.floor(Date.now() / 1000)
// for TLS.time, and _genUserbuf takes Date.now() / 1000 + expire for the userbuf's expire_at.
// Stubbing Date.now for the duration of one call pins both to the case's time.
function withClock(seconds, fn) {
  const realNow = Date.now;
  Date.now = () => seconds * 1000;
  try {
    return fn();
  } finally {
    Date.now = realNow;
  }
}

function fail(msg, c) {
  throw new Error(msg + ': ' + JSON.stringify(c));
}

// Checks the official token against SPEC.md, so a quirk of the library or of the clock stub is
// reported here instead of silently becoming a "vector".
function selfCheck(c, json) {
  if (json['TLS.ver'] !== '2.0') fail('TLS.ver', c);
  if (json['TLS.identifier'] !== c.identifier) fail('TLS.identifier differs', c);
  if (json['TLS.sdkappid'] !== c.sdkappid) fail('TLS.sdkappid differs', c);
  if (json['TLS.time'] !== c.time) fail('TLS.time is not the fixed clock', c);
  if (json['TLS.expire'] !== c.expire) fail('TLS.expire differs', c);
  const userbuf = json['TLS.userbuf'];
  if ((userbuf !== undefined) !== (c.privilege_map !== undefined)) fail('TLS.userbuf presence', c);
  if (userbuf !== undefined) {
    const ub = parseUserbuf(Buffer.from(userbuf, 'base64'));
    const want = {
      version: c.room_str !== undefined ? 1 : 0,
      account: c.identifier,
      sdkappid: c.sdkappid,
      room_id: c.room_id !== undefined ? c.room_id : 0,
      expire_at: c.time + c.expire,
      privilege_map: c.privilege_map,
      account_type: 0,
      room_str: c.room_str,
    };
    for (const k of Object.keys(want)) {
      if (ub[k] !== want[k]) fail(`userbuf ${k} is ${ub[k]}, expected ${want[k]}`, c);
    }
  }
  const sig = specSig(c.key, c.identifier, c.sdkappid, c.time, c.expire, userbuf);
  if (json['TLS.sig'] !== sig) fail('TLS.sig differs from SPEC.md HMAC', c);
}

function genCase(rng) {
  const c = {
    sdkappid: genSdkappid(rng),
    key: randString(rng, '0123456789abcdef', 64),
    identifier: genIdentifier(rng),
    expire: genExpire(rng),
    time: genTime(rng),
  };
  if (c.time + c.expire > 4294967295) fail('time + expire beyond u32', c);

  const api = new TLSSigAPIv2.Api(c.sdkappid, c.key);
  const kind = rng.int(0, 9); // 0..5 UserSig (60%), 6..7 numeric room (20%), 8..9 string room (20%)
  let token;
  if (kind <= 5) {
    token = withClock(c.time, () => api.genUserSig(c.identifier, c.expire));
  } else if (kind <= 7) {
    c.room_id = rng.chance(0.1) ? rng.pick([1, 2147483648, 4294967295]) : rng.int(1, 4294967295);
    c.privilege_map = rng.int(0, 255);
    token = withClock(c.time, () =>
      api.genPrivateMapKey(c.identifier, c.expire, c.room_id, c.privilege_map));
  } else {
    c.room_str = randString(rng, STRICT, rng.chance(0.1) ? rng.pick([1, 64]) : rng.int(1, 64));
    c.privilege_map = rng.int(0, 255);
    token = withClock(c.time, () =>
      api.genPrivateMapKeyWithStringRoomID(c.identifier, c.expire, c.room_str, c.privilege_map));
  }
  c.token = token;
  c.json = decodeToken(token).json;
  selfCheck(c, c.json);
  return c;
}

function main() {
  const [countArg, seedArg] = process.argv.slice(2);
  const count = Number(countArg);
  if (!Number.isInteger(count) || count < 0 || seedArg === undefined) {
    process.stderr.write('usage: node gen_cases.js COUNT SEED > cases.jsonl\n');
    process.exit(2);
  }
  const rng = makeRng(seedArg);
  const lines = [];
  for (let i = 0; i < count; i++) {
    lines.push(JSON.stringify(genCase(rng)));
    if (lines.length === 1000) {
      process.stdout.write(lines.join('\n') + '\n');
      lines.length = 0;
    }
  }
  if (lines.length) process.stdout.write(lines.join('\n') + '\n');
}

main();
