// Checks UserSig tokens (e.g. made by our C signer) on the Node side, one JSON object per stdin line:
//   {"sdkappid":N,"key":"...","identifier":"...","token":"...","now":N}   ("usersig" is accepted for "token")
// and prints one line per input, "ok" or "fail <reason>" (reasons named as in SPEC.md "Verification");
// exits 1 if any failed. Usage: node verify_tokens.js < file. Also exports the decoding helpers.
//
// How it checks: tls-sig-api-v2 1.0.2 has NO verify function (it only signs: genSig, genUserSig,
// genPrivateMapKey, genPrivateMapKeyWithStringRoomID). So this script decodes the token itself (undo
// the *-_ swap, base64, zlib inflate, JSON.parse), checks TLS.ver, identifier, sdkappid and expiry
// against "now", recomputes HMAC-SHA256 per SPEC.md with node's crypto and compares it with TLS.sig
// in constant time. As a second opinion it also asks the official library's own MAC routine
// (Api.prototype._hmacsha256, the one genSig uses) for the same values; the two must agree.
'use strict';

const crypto = require('crypto');
const zlib = require('zlib');
const TLSSigAPIv2 = require('tls-sig-api-v2');

const MAX_DOCUMENT = 4096; // bytes of inflated JSON accepted (same bound as the C decoder)

// Token text -> { json } or { error }. Strict alphabet; inflate output bounded.
function decodeToken(token) {
  const t = String(token).replace(/\s+/g, '');
  if (t.length === 0) return { error: 'empty' };
  if (!/^[A-Za-z0-9*\-_]+$/.test(t)) return { error: 'malformed' };
  const b64 = t.replace(/\*/g, '+').replace(/-/g, '/').replace(/_/g, '=');
  let json;
  try {
    const deflated = Buffer.from(b64, 'base64');
    const text = zlib.inflateSync(deflated, { maxOutputLength: MAX_DOCUMENT }).toString('utf8');
    json = JSON.parse(text);
  } catch (e) {
    return { error: 'malformed' };
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) return { error: 'malformed' };
  return { json };
}

// PrivateMapKey userbuf bytes -> fields (SPEC.md "PrivateMapKey userbuf"); throws if truncated.
function parseUserbuf(buf) {
  let off = 0;
  const need = (n) => { if (off + n > buf.length) throw new Error('userbuf truncated'); };
  const u8 = () => { need(1); return buf.readUInt8(off++); };
  const u16 = () => { need(2); const v = buf.readUInt16BE(off); off += 2; return v; };
  const u32 = () => { need(4); const v = buf.readUInt32BE(off); off += 4; return v; };
  const bytes = (n) => { need(n); const v = buf.subarray(off, off + n).toString('latin1'); off += n; return v; };
  const ub = { version: u8() };
  ub.account = bytes(u16());
  ub.sdkappid = u32();
  ub.room_id = u32();
  ub.expire_at = u32();
  ub.privilege_map = u32();
  ub.account_type = u32();
  if (ub.version === 1) ub.room_str = bytes(u16());
  if (off !== buf.length) throw new Error('userbuf has trailing bytes');
  return ub;
}

// TLS.sig per SPEC.md: standard base64 of HMAC-SHA256(key as its bytes, content lines).
function specSig(key, identifier, sdkappid, time, expire, userbuf) {
  let content = 'TLS.identifier:' + identifier + '\n' +
    'TLS.sdkappid:' + sdkappid + '\n' +
    'TLS.time:' + time + '\n' +
    'TLS.expire:' + expire + '\n';
  if (userbuf !== undefined && userbuf !== null) content += 'TLS.userbuf:' + userbuf + '\n';
  return crypto.createHmac('sha256', Buffer.from(key, 'utf8')).update(content, 'utf8').digest('base64');
}

const isUint = (v, max) => Number.isSafeInteger(v) && v >= 0 && v <= max;

// One request -> "ok" or a reason, checks in SPEC.md order.
function verify(req) {
  const d = decodeToken(req.token !== undefined ? req.token : req.usersig);
  if (d.error) return d.error;
  const j = d.json;
  if (!('TLS.ver' in j)) {
    // A v1 (ECDSA) token has no TLS.ver; it cannot be checked with an HMAC key.
    return ('TLS.sdk_appid' in j || 'TLS.expire_after' in j) ? 'kind_mismatch' : 'malformed';
  }
  const id = j['TLS.identifier'], app = j['TLS.sdkappid'], time = j['TLS.time'],
    expire = j['TLS.expire'], sig = j['TLS.sig'], userbuf = j['TLS.userbuf'];
  if (typeof j['TLS.ver'] !== 'string' || typeof id !== 'string' || typeof sig !== 'string' ||
      !isUint(app, 4294967295) || !isUint(time, Number.MAX_SAFE_INTEGER) ||
      !isUint(expire, Number.MAX_SAFE_INTEGER) ||
      (userbuf !== undefined && typeof userbuf !== 'string')) {
    return 'malformed';
  }
  if (j['TLS.ver'] !== '2.0') return 'unsupported_version';
  if (id !== req.identifier) return 'identifier_mismatch';
  if (app !== req.sdkappid) return 'sdkappid_mismatch';
  if (req.now > time + expire) return 'expired';

  const want = specSig(req.key, id, app, time, expire, userbuf);
  const official = new TLSSigAPIv2.Api(app, req.key)._hmacsha256(id, time, expire,
    userbuf === undefined ? null : userbuf);
  if (official !== want) return 'internal_mac_disagreement';
  const a = Buffer.from(want, 'utf8'), b = Buffer.from(sig, 'utf8');
  if (a.length !== b.length || !crypto.timingSafeEqual(a, b)) return 'signature_mismatch';
  return 'ok';
}

function main() {
  const lines = require('fs').readFileSync(0, 'utf8').split('\n');
  const out = [];
  let failed = 0;
  for (const line of lines) {
    if (line.trim() === '') continue;
    let req, verdict;
    try {
      req = JSON.parse(line);
    } catch (e) {
      req = null;
    }
    if (req === null || typeof req !== 'object' || typeof req.key !== 'string' ||
        typeof req.identifier !== 'string' || !Number.isSafeInteger(req.sdkappid) ||
        !Number.isSafeInteger(req.now) ||
        typeof (req.token !== undefined ? req.token : req.usersig) !== 'string') {
      verdict = 'bad_input';
    } else {
      verdict = verify(req);
    }
    if (verdict === 'ok') {
      out.push('ok');
    } else {
      out.push('fail ' + verdict);
      failed++;
    }
  }
  process.stdout.write(out.length ? out.join('\n') + '\n' : '');
  process.exitCode = failed ? 1 : 0;
}

module.exports = { decodeToken, parseUserbuf, specSig, verify };

if (require.main === module) main();
