// Tokens (#/tokens): create one (role, apps, lifetime; the token shown once, here, and then
// forgotten by the page), the list, revoke (a second click confirms).
import { h, field, table, badge, section, fmtCell } from './dom.js';
import { api } from './api.js';

const ROLES = ['admin', 'key_manager', 'signer', 'auditor', 'admin_signer', 'rest_caller'];
const SIGNING = ['admin', 'signer', 'admin_signer'];

const list = (v) => v.split(/[\s,]+/).filter(Boolean);

export async function render(ctx) {
  const { main } = ctx;
  main.append(h('h1', {}, 'API tokens'));
  const shown = h('div', { id: 'token-once', 'aria-live': 'polite' });
  const listBox = h('div', { id: 'token-list' });
  const refreshList = async () => {
    const list = await api('GET', '/v1/tokens');
    if (ctx.live()) listBox.replaceChildren(listSection(ctx, list.tokens));
  };
  if (ctx.can('createToken')) main.append(createForm(ctx, shown, refreshList), shown);
  main.append(listBox);
  await refreshList();
}

function listSection(ctx, tokens) {
  const rows = tokens.slice().reverse().map((t) => h('tr', { 'data-token-id': String(t.id), class: t.state !== 'active' ? 'inactive' : null },
    h('td', { class: 'num' }, String(t.id)),
    h('td', {}, t.name),
    h('td', {}, t.role),
    h('td', {}, t.apps === null ? 'all' : t.apps.join(', ')),
    h('td', {}, badge(t.state)),
    h('td', {}, fmtCell(t.created_at)),
    h('td', {}, fmtCell(t.expires_at) || 'never'),
    h('td', {}, fmtCell(t.last_used_at)),
    h('td', {}, ctx.can('revokeToken') && t.state !== 'revoked' ? revokeButton(ctx, t) : '')));
  return section(`${tokens.length} token${tokens.length === 1 ? '' : 's'}`,
    table('API tokens', ['Id', 'Name', 'Role', 'Apps', 'State', 'Created (UTC)', 'Expires (UTC)', 'Last used (UTC)', 'Action'], rows, { class: 'tokens' }));
}

function revokeButton(ctx, t) {
  let armed = false;
  const btn = h('button', { type: 'button', class: 'danger small' }, 'Revoke');
  btn.addEventListener('click', async () => {
    if (!armed) {
      armed = true;
      btn.textContent = `Confirm: revoke #${t.id}`;
      return;
    }
    try {
      await api('DELETE', `/v1/tokens/${t.id}`);
      ctx.status(`Token #${t.id} (${t.name}) is revoked: its next request is refused.`);
      ctx.rerender();
    } catch (e) { /* shown */ }
  });
  btn.addEventListener('blur', () => {
    armed = false;
    btn.textContent = 'Revoke';
  });
  return btn;
}

function createForm(ctx, shown, refreshList) {
  const name = h('input', { name: 'name', required: true, maxlength: '128', autocomplete: 'off' });
  const role = h('select', { name: 'role' }, ROLES.map((r) => h('option', { value: r }, r)));
  const apps = h('input', { name: 'apps', autocomplete: 'off', pattern: '[0-9, ]*', placeholder: '1400000000, 1400000001' });
  const ttl = h('input', { name: 'ttl', autocomplete: 'off', pattern: '[0-9]+[smhd]?', placeholder: '30d' });
  const prefixes = h('input', { name: 'identifier_prefixes', autocomplete: 'off', placeholder: 'user_, guest_' });
  const rest = h('input', { name: 'rest_allow', autocomplete: 'off', placeholder: 'openim/*' });
  const prefixField = field('Identifier prefixes', prefixes, 'signing roles: only UserIDs starting so; empty: any');
  const restField = field('REST calls allowed', rest, 'rest_caller: servicename/command or servicename/*');
  // Each role's own fields only.
  const roleFields = () => {
    prefixField.hidden = !SIGNING.includes(role.value);
    restField.hidden = role.value !== 'rest_caller';
  };
  role.addEventListener('change', roleFields);
  roleFields();
  const form = h('form', { class: 'grid', id: 'create-token' },
    field('Name', name), field('Role', role),
    field('Apps', apps, 'comma-separated SDKAppIDs; empty: every app'),
    field('Expires after', ttl, 'such as 12h or 30d; empty: until revoked'),
    prefixField, restField,
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Create token')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = { name: name.value, role: role.value };
    const ids = list(apps.value).map(Number);
    if (ids.length) body.apps = ids;
    if (ttl.value) body.ttl = ttl.value;
    if (!prefixField.hidden && list(prefixes.value).length) body.identifier_prefixes = list(prefixes.value);
    if (!restField.hidden) body.rest_allow = list(rest.value);
    let t;
    try {
      t = await api('POST', '/v1/tokens', body);
    } catch (e) {
      return;
    }
    const value = h('input', { type: 'text', readonly: true, id: 'new-token', value: t.token, spellcheck: 'false', 'aria-label': 'The new token' });
    const copy = h('button', { type: 'button', class: 'secondary' }, 'Copy');
    copy.addEventListener('click', async () => {
      value.select();
      try {
        await navigator.clipboard.writeText(value.value);
        copy.textContent = 'Copied';
      } catch (e) {
        copy.textContent = 'Select and copy it';
      }
    });
    const hide = h('button', { type: 'button', class: 'secondary' }, 'Done, hide it');
    hide.addEventListener('click', () => ctx.rerender());
    const once = section(`Token #${t.id} created: store it now`,
      h('p', { class: 'warn-text' }, 'This is the only time it is shown: only its hash is kept. It is gone once you leave this page.'),
      h('div', { class: 'token-row' }, value, copy, hide));
    once.classList.add('result-ok');
    form.reset();
    roleFields();
    shown.replaceChildren(once);
    value.focus();
    value.select();
    await refreshList().catch(() => {});
  });
  return section('Create a token', form);
}
