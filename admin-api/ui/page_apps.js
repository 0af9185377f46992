// Apps (#/apps): the list with each app's active key version, its age (against rotate_every
// when the API gives one), sign counts; creating an app. One app (#/apps/ID): its key versions
// as a timeline (state, fingerprint, created / activated / retired, sign counts), import,
// rotate, disable, enable, destroy (typed confirmation), and its settings.
import { h, add, field, table, badge, section, fmtTime, fmtDuration, ageOf } from './dom.js';
import { api, all } from './api.js';

export async function render(ctx) {
  if (ctx.params.length > 0) return renderApp(ctx, ctx.params[0]);
  return renderList(ctx);
}

function sumSigns(keys) {
  return keys.reduce((n, k) => n + (Number(k.sign_count) || 0), 0);
}

async function renderList(ctx) {
  const { main } = ctx;
  main.append(h('h1', {}, 'Apps'));
  if (ctx.can('createApp')) main.append(createForm(ctx));
  const list = await all('/v1/apps?limit=1000', 'apps', 1000);
  if (!ctx.live()) return;
  const canKeys = ctx.can('listKeys');
  const keysOf = new Map();
  if (canKeys) {
    // Each app's key versions (for the key's age and the sign counts), a few requests at a time.
    let next = 0;
    const worker = async () => {
      while (next < list.length && ctx.live()) {
        const a = list[next++];
        try {
          const r = await api('GET', `/v1/apps/${a.sdkappid}/keys`, undefined, { quiet: true });
          keysOf.set(a.sdkappid, r.keys);
        } catch (e) {
          keysOf.set(a.sdkappid, null);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(6, list.length) }, worker));
  }
  if (!ctx.live()) return;
  const hasRotate = list.some((a) => a.rotate_every !== undefined && a.rotate_every !== null);
  const rows = list.map((a) => {
    const keys = keysOf.get(a.sdkappid) || [];
    const active = keys.find((k) => k.state === 'active');
    const age = active ? ageOf(active.activated_at || active.created_at) : null;
    const overdue = hasRotate && a.rotate_every && age !== null && age > a.rotate_every;
    return h('tr', { class: overdue ? 'overdue' : null },
      h('td', {}, h('a', { href: `#/apps/${a.sdkappid}` }, String(a.sdkappid))),
      h('td', {}, a.name),
      h('td', {}, a.active_key_version === null ? badge('no key', 'warn') : `v${a.active_key_version}`),
      h('td', {}, age === null ? '' : fmtDuration(age), overdue ? [' ', badge('rotate due', 'warn')] : null),
      hasRotate ? h('td', {}, a.rotate_every ? fmtDuration(a.rotate_every) : '') : null,
      h('td', { class: 'num' }, canKeys && keysOf.get(a.sdkappid) ? String(sumSigns(keys)) : ''),
      h('td', { class: 'num' }, canKeys && keysOf.get(a.sdkappid) ? String(keys.length) : ''));
  });
  const headers = ['SDKAppID', 'Name', 'Active key', 'Key age'];
  if (hasRotate) headers.push('Rotate every');
  headers.push('Signs', 'Versions');
  const sec = section(`${list.length} app${list.length === 1 ? '' : 's'}`,
    list.length === 0 ? h('p', {}, 'No apps yet.') : table('Apps', headers, rows, { class: 'apps' }));
  sec.id = 'apps-list';
  main.append(sec);
}

function createForm(ctx) {
  const id = h('input', { name: 'sdkappid', inputmode: 'numeric', required: true, pattern: '[1-9][0-9]{0,9}', autocomplete: 'off' });
  const name = h('input', { name: 'name', required: true, maxlength: '128', autocomplete: 'off' });
  const def = h('input', { name: 'default_expire', inputmode: 'numeric', pattern: '[0-9]*', placeholder: '15552000' });
  const form = h('form', { class: 'grid', id: 'create-app' },
    field('SDKAppID', id), field('Name', name), field('Default expire (s)', def, 'optional; 180 days by default'),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Create app')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = { sdkappid: Number(id.value), name: name.value };
    if (def.value) body.default_expire = Number(def.value);
    try {
      const app = await api('POST', '/v1/apps', body, { idempotent: true });
      ctx.status(`Created app ${app.sdkappid} (${app.name}).`);
      location.hash = `#/apps/${app.sdkappid}`;
    } catch (e) { /* shown */ }
  });
  const sec = section('Create an app', form);
  sec.classList.add('compact');
  return sec;
}

async function renderApp(ctx, idText) {
  const { main } = ctx;
  const sdkappid = Number(idText);
  main.append(h('p', { class: 'crumbs' }, h('a', { href: '#/apps' }, 'Apps'), ' / ', String(sdkappid)));
  const [app, keys] = await Promise.all([
    api('GET', `/v1/apps/${sdkappid}`),
    ctx.can('listKeys') ? api('GET', `/v1/apps/${sdkappid}/keys`).then((r) => r.keys) : Promise.resolve(null),
  ]);
  if (!ctx.live()) return;
  main.append(h('h1', {}, app.name, ' ', h('span', { class: 'muted' }, String(app.sdkappid))));
  const refresh = () => ctx.rerender();
  if (keys) main.append(timeline(ctx, app, keys, refresh));
  const writes = h('div', { class: 'two' });
  if (ctx.can('addKey')) writes.append(importForm(ctx, app, refresh));
  if (ctx.can('rotateKey')) writes.append(rotateForm(ctx, app, keys || [], refresh));
  if (writes.childNodes.length) main.append(writes);
  main.append(settings(ctx, app, refresh));
}

const STEPS = [
  ['created_at', 'created'],
  ['activated_at', 'activated'],
  ['retired_at', 'retired'],
  ['disabled_at', 'disabled'],
  ['destroyed_at', 'destroyed'],
];

function timeline(ctx, app, keys, refresh) {
  const ol = h('ol', { class: 'timeline', id: 'key-timeline' });
  for (const k of [...keys].sort((a, b) => b.version - a.version)) {
    const dates = h('dl', { class: 'dates' });
    for (const [f, label] of STEPS) if (k[f]) add(dates, [h('dt', {}, label), h('dd', {}, fmtTime(k[f]))]);
    if (k.last_used_at) add(dates, [h('dt', {}, 'last used'), h('dd', {}, fmtTime(k.last_used_at))]);
    if (k.destroy_reason) add(dates, [h('dt', {}, 'reason'), h('dd', {}, k.destroy_reason)]);
    const li = h('li', { class: `tl tl-${k.state}`, 'data-version': String(k.version) },
      h('div', { class: 'tl-head' },
        h('h3', {}, `Version ${k.version}`), badge(k.state), h('span', { class: 'muted' }, k.kind)),
      h('p', {}, 'Fingerprint ', h('code', { class: 'fp' }, k.fingerprint), ' · ',
        h('span', { class: 'signs' }, `${k.sign_count} sign${k.sign_count === 1 ? '' : 's'}`)),
      dates,
      keyActions(ctx, app, k, refresh));
    ol.append(li);
  }
  return section(`Key versions (${keys.length})`, keys.length === 0 ? h('p', {}, 'No key yet: import one.') : ol);
}

function keyActions(ctx, app, k, refresh) {
  const box = h('div', { class: 'actions' });
  const base = `/v1/apps/${app.sdkappid}/keys/${k.version}`;
  const post = async (what, body) => {
    try {
      await api('POST', `${base}/${what}`, body, { idempotent: true });
      ctx.status(`Key version ${k.version} of app ${app.sdkappid}: ${what} done.`);
      refresh();
    } catch (e) { /* shown */ }
  };
  if (ctx.can('disableKey') && (k.state === 'pending' || k.state === 'retired')) {
    box.append(h('button', { type: 'button', class: 'secondary', onclick: () => post('disable', {}) }, `Disable v${k.version}`));
  }
  if (ctx.can('enableKey') && k.state === 'disabled') {
    box.append(h('button', { type: 'button', class: 'secondary', onclick: () => post('enable', {}) }, `Enable v${k.version}`));
  }
  if (ctx.can('rotateKey') && (k.state === 'pending' || k.state === 'retired')) {
    box.append(h('button', { type: 'button', class: 'secondary', onclick: async () => {
      try {
        await api('POST', `/v1/apps/${app.sdkappid}/keys/rotate`, { version: k.version }, { idempotent: true });
        ctx.status(`Version ${k.version} of app ${app.sdkappid} is now active.`);
        refresh();
      } catch (e) { /* shown */ }
    } }, `Make v${k.version} active`));
  }
  if (ctx.can('destroyKey') && k.state !== 'active' && k.state !== 'destroyed') {
    box.append(destroyControl(app, k, (reason) => post('destroy', { reason })));
  }
  return box.childNodes.length ? box : null;
}

// Destroy is irreversible: the button stays disabled until "destroy vN" is typed exactly.
function destroyControl(app, k, go) {
  const want = `destroy v${k.version}`;
  const confirmIn = h('input', { name: 'confirm', autocomplete: 'off', spellcheck: 'false' });
  const reason = h('input', { name: 'reason', maxlength: '256', required: true, autocomplete: 'off' });
  const btn = h('button', { type: 'submit', class: 'danger', disabled: true }, `Destroy v${k.version}`);
  confirmIn.addEventListener('input', () => {
    btn.disabled = confirmIn.value !== want || reason.value.trim() === '';
  });
  reason.addEventListener('input', () => {
    btn.disabled = confirmIn.value !== want || reason.value.trim() === '';
  });
  const form = h('form', { class: 'destroy' },
    h('p', { class: 'warn-text' }, `Destroying erases version ${k.version}'s key material for good. Type `, h('code', {}, want), ' to confirm.'),
    field('Reason', reason), field('Confirmation', confirmIn), btn);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (confirmIn.value === want) go(reason.value.trim());
  });
  return h('details', { class: 'destroy-box' }, h('summary', {}, `Destroy v${k.version}…`), form);
}

function secretInput(name) {
  return h('input', { type: 'password', name, autocomplete: 'off', spellcheck: 'false', required: true, maxlength: '1024' });
}

function importForm(ctx, app, refresh) {
  const secret = secretInput('secret');
  const activate = h('input', { type: 'checkbox', name: 'activate' });
  const form = h('form', { id: 'import-key' },
    field('Secret key (v2, as the console shows it)', secret),
    h('div', { class: 'check' }, activate, h('label', { for: (activate.id = `act-${app.sdkappid}`) }, 'Make it active at once')),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Import key')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = { secret: secret.value };
    if (activate.checked) body.activate = true;
    secret.value = '';
    try {
      const k = await api('POST', `/v1/apps/${app.sdkappid}/keys`, body, { idempotent: true });
      ctx.status(`Imported key version ${k.version} (${k.state}, fingerprint ${k.fingerprint}).`);
      refresh();
    } catch (e) { /* shown */ }
  });
  return section('Import a key', form);
}

function rotateForm(ctx, app, keys, refresh) {
  const secret = secretInput('secret');
  const form = h('form', { id: 'rotate-key' },
    h('p', {}, 'A new key becomes the active version; the current one is retired (it still verifies the UserSigs it signed).'),
    field('New secret key', secret),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Rotate')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = { secret: secret.value };
    secret.value = '';
    try {
      const r = await api('POST', `/v1/apps/${app.sdkappid}/keys/rotate`, body, { idempotent: true });
      ctx.status(`Rotated: version ${r.active.version} is active${r.retired ? `, version ${r.retired.version} retired` : ''}.`);
      refresh();
    } catch (e) { /* shown */ }
  });
  return section('Rotate the active key', form);
}

function settings(ctx, app, refresh) {
  if (!ctx.can('updateApp')) {
    const dl = h('dl', { class: 'kv' });
    const rows = [['Name', app.name], ['Default expire', `${app.default_expire} s (${fmtDuration(app.default_expire)})`],
      ['Max expire', `${app.max_expire} s (${fmtDuration(app.max_expire)})`], ['Identifier policy', app.identifier_policy],
      ['Created', fmtTime(app.created_at)], ['Updated', fmtTime(app.updated_at)]];
    if (app.rotate_every) rows.push(['Rotate every', fmtDuration(app.rotate_every)]);
    for (const [k, v] of rows) add(dl, [h('dt', {}, k), h('dd', {}, v)]);
    return section('Settings', dl);
  }
  const name = h('input', { name: 'name', value: app.name, required: true, maxlength: '128' });
  const def = h('input', { name: 'default_expire', value: app.default_expire, inputmode: 'numeric', pattern: '[0-9]+' });
  const max = h('input', { name: 'max_expire', value: app.max_expire, inputmode: 'numeric', pattern: '[0-9]+' });
  const policy = h('select', { name: 'identifier_policy' },
    ['printable', 'strict'].map((p) => h('option', { value: p, selected: p === app.identifier_policy }, p)));
  const form = h('form', { class: 'grid', id: 'app-settings' },
    field('Name', name), field('Default expire (s)', def), field('Max expire (s)', max), field('Identifier policy', policy),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Save settings')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = {};
    if (name.value !== app.name) body.name = name.value;
    if (Number(def.value) !== app.default_expire) body.default_expire = Number(def.value);
    if (Number(max.value) !== app.max_expire) body.max_expire = Number(max.value);
    if (policy.value !== app.identifier_policy) body.identifier_policy = policy.value;
    if (Object.keys(body).length === 0) {
      ctx.status('Nothing changed.');
      return;
    }
    try {
      await api('PATCH', `/v1/apps/${app.sdkappid}`, body);
      ctx.status('Settings saved.');
      refresh();
    } catch (e) { /* shown */ }
  });
  return section('Settings', form, h('p', { class: 'muted' }, `Created ${fmtTime(app.created_at)}, updated ${fmtTime(app.updated_at)}.`));
}
