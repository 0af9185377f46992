// Audit (#/audit): the log, filtered by app, action, actor and time, paged by sequence; the
// chain's verification (GET /v1/audit/verify: how many events follow, the last one's seq and
// MAC, or the first that does not).
import { h, add, field, table, badge, section, fmtCell, newest } from './dom.js';
import { api } from './api.js';

const ACTIONS = ['', 'app.create', 'app.update', 'key.import', 'key.rotate', 'key.disable', 'key.enable',
  'key.destroy', 'usersig.sign', 'usersig.batch', 'usersig.batch.finish', 'token.create', 'token.revoke'];

export async function render(ctx) {
  const { main } = ctx;
  main.append(h('h1', {}, 'Audit log'));
  const chain = h('div', { id: 'audit-chain' });
  main.append(chain);
  const app = h('input', { name: 'sdkappid', inputmode: 'numeric', pattern: '[1-9][0-9]{0,9}', autocomplete: 'off' });
  const action = h('select', { name: 'action' }, ACTIONS.map((a) => h('option', { value: a }, a || 'any action')));
  const actor = h('input', { name: 'actor', autocomplete: 'off', maxlength: '256' });
  const since = h('input', { name: 'since', type: 'datetime-local', step: '1' });
  const until = h('input', { name: 'until', type: 'datetime-local', step: '1' });
  const out = h('div', { id: 'audit-result' });
  const stack = []; // the `after` of each page shown, for "Previous"
  let after = 0;
  const ticket = newest();
  const load = async () => {
    const current = ticket();
    const p = new URLSearchParams({ limit: '50' });
    if (app.value) p.set('sdkappid', app.value);
    if (action.value) p.set('action', action.value);
    if (actor.value) p.set('actor', actor.value);
    // datetime-local is local time; the API takes RFC 3339.
    if (since.value) p.set('since', new Date(since.value).toISOString());
    if (until.value) p.set('until', new Date(until.value).toISOString());
    if (after) p.set('after', String(after));
    let page;
    try {
      page = await api('GET', `/v1/audit?${p}`);
    } catch (e) {
      return;
    }
    if (!current()) return; // a newer load was asked for meanwhile
    out.replaceChildren(view(page, stack.length > 0,
      () => { stack.push(after); after = page.next_after; load(); },
      () => { after = stack.pop() || 0; load(); }));
  };
  const form = h('form', { class: 'grid', id: 'audit-filter' },
    field('SDKAppID', app), field('Action', action), field('Actor (token name)', actor),
    field('Since', since), field('Until', until),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Filter')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    stack.length = 0;
    after = 0;
    load();
  });
  main.append(section('Filter', form), out);
  await Promise.all([load(), verifyChain(chain)]);
}

async function verifyChain(box) {
  let r;
  try {
    r = await api('GET', '/v1/audit/verify', undefined, { quiet: true });
  } catch (e) {
    box.replaceChildren(section('Chain', h('p', {}, `Cannot verify the chain: ${e.message}`)));
    return;
  }
  const dl = h('dl', { class: 'kv' });
  add(dl, [h('dt', {}, 'Events checked'), h('dd', {}, String(r.checked)),
    h('dt', {}, 'Last event'), h('dd', {}, String(r.last_seq)),
    h('dt', {}, 'Last MAC'), h('dd', {}, h('code', { class: 'hash' }, r.last_mac))]);
  if (!r.ok) {
    add(dl, [h('dt', {}, 'Problem'), h('dd', {}, r.problem),
      h('dt', {}, 'First bad event'), h('dd', {}, String(r.bad_seq))]);
  }
  // Whatever else the server says about the chain (a checkpoint, when it keeps one), as it came.
  const known = new Set(['ok', 'checked', 'last_seq', 'last_mac', 'problem', 'bad_seq', 'found_seq']);
  for (const [k, v] of Object.entries(r)) {
    if (known.has(k) || v === null || v === undefined) continue;
    add(dl, [h('dt', {}, k.replace(/_/g, ' ')),
      h('dd', { 'data-field': k }, typeof v === 'object' ? h('code', {}, JSON.stringify(v)) : String(v))]);
  }
  const sec = section('Chain', h('p', { id: 'chain-status' },
    r.ok ? badge('chain ok', 'ok') : badge(`chain broken: ${r.problem}`, 'bad'),
    r.ok ? ' Every event follows the one before it. Keep the last seq and MAC elsewhere to catch events cut from the end.' : ''), dl);
  sec.classList.add('compact');
  box.replaceChildren(sec);
}

function view(page, hasPrev, next, prev) {
  const rows = page.events.map((e) => h('tr', { class: e.outcome === 'ok' ? null : 'refused', 'data-action': e.action },
    h('td', { class: 'num' }, String(e.seq)),
    h('td', {}, fmtCell(e.at)),
    h('td', {}, e.actor_name),
    h('td', {}, h('code', {}, e.action)),
    h('td', {}, e.sdkappid === null ? '' : String(e.sdkappid)),
    h('td', {}, e.key_version === null ? '' : `v${e.key_version}`),
    h('td', {}, e.outcome === 'ok' ? badge('ok') : badge(e.outcome, 'bad')),
    h('td', { class: 'details' }, h('code', {}, JSON.stringify(e.details)))));
  return section(`${page.events.length} event${page.events.length === 1 ? '' : 's'}`,
    page.events.length ? table('Audit events', ['Seq', 'At (UTC)', 'Actor', 'Action', 'App', 'Key', 'Outcome', 'Details'], rows, { class: 'audit' }) : h('p', {}, 'No events match.'),
    h('div', { class: 'actions' },
      hasPrev ? h('button', { type: 'button', class: 'secondary', onclick: prev }, 'Previous page') : null,
      page.next_after ? h('button', { type: 'button', class: 'secondary', id: 'audit-next', onclick: next }, 'Next page') : null));
}
