// Verify and explain (#/verify): a UserSig (and optionally the UserID and the app it should be
// for) checked by the server: the verdict, Tencent's error code, the message, signed_by when
// another app's key made it, and the token's own document, decoded here (base64 in Tencent's
// URL form, then zlib) without any network.
import { h, add, field, section, badge, fmtTime } from './dom.js';
import { api } from './api.js';

// Tencent's base64: '*' for '+', '-' for '/', '_' for '='.
export async function decodeUserSig(token) {
  const b64 = token.trim().replace(/\*/g, '+').replace(/-/g, '/').replace(/_/g, '=');
  const bin = atob(b64);
  const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate'));
  const text = await new Response(stream).text();
  return JSON.parse(text);
}

export async function render(ctx) {
  const { main } = ctx;
  main.append(h('h1', {}, 'Verify and explain'));
  const sig = h('textarea', { name: 'usersig', rows: '4', required: true, spellcheck: 'false', maxlength: '8192' });
  const ident = h('input', { name: 'identifier', autocomplete: 'off', spellcheck: 'false', maxlength: '32' });
  const app = h('input', { name: 'sdkappid', inputmode: 'numeric', pattern: '[1-9][0-9]{0,9}', autocomplete: 'off' });
  const out = h('div', { id: 'verify-result', 'aria-live': 'polite' });
  const form = h('form', { id: 'verify-form' },
    field('UserSig', sig),
    h('div', { class: 'grid' },
      field('UserID (optional)', ident, 'checked against the token when given'),
      field('SDKAppID (optional)', app, 'default: the one in the token')),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Verify')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = { usersig: sig.value.trim() };
    if (ident.value !== '') body.identifier = ident.value;
    if (app.value !== '') body.sdkappid = Number(app.value);
    out.replaceChildren();
    let r;
    try {
      r = await api('POST', '/v1/usersigs/verify', body);
    } catch (e) {
      return;
    }
    out.append(await result(r, body.usersig));
    out.focus();
  });
  out.setAttribute('tabindex', '-1');
  main.append(section('A UserSig to check', form), out);
}

async function result(r, token) {
  const dl = h('dl', { class: 'kv' });
  const rows = [
    ['Verdict', r.verdict],
    ['Tencent code', String(r.tencent_code)],
    ['SDKAppID', r.sdkappid],
    ['UserID', r.identifier],
    ['Key version', r.key_version],
    ['Issued', r.issued_at ? fmtTime(r.issued_at) : null],
    ['Expires', r.expire_at ? fmtTime(r.expire_at) : null],
    ['Validity', r.expire !== null && r.expire !== undefined ? `${r.expire} s` : null],
  ];
  for (const [k, v] of rows) if (v !== null && v !== undefined) add(dl, [h('dt', {}, k), h('dd', { 'data-field': k }, String(v))]);
  const parts = [
    h('p', { class: 'verdict' }, badge(r.valid ? 'valid' : 'invalid', r.valid ? 'ok' : 'bad'), ' ',
      h('strong', {}, r.verdict), r.tencent_code ? ` · Tencent error ${r.tencent_code}` : ''),
    h('p', { class: 'message', id: 'verify-message' }, r.message),
  ];
  if (r.signed_by) {
    parts.push(h('p', { class: 'signed-by', id: 'verify-signed-by' }, 'Signed with the key of app ',
      h('a', { href: `#/apps/${Number(r.signed_by.sdkappid)}` }, String(r.signed_by.sdkappid)),
      ` (key version ${r.signed_by.key_version}), not app ${r.sdkappid}'s.`));
  }
  parts.push(dl);
  let doc;
  try {
    doc = JSON.stringify(await decodeUserSig(token), null, 2);
  } catch (e) {
    doc = null;
  }
  parts.push(h('h3', {}, 'Decoded document'),
    doc ? h('pre', { class: 'doc', id: 'verify-doc', tabindex: '0' }, doc) : h('p', { class: 'muted' }, 'The token does not decode.'));
  const sec = section(r.valid ? 'Valid' : 'Not valid', parts);
  sec.classList.add(r.valid ? 'result-ok' : 'result-bad');
  return sec;
}
