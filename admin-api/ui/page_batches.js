// Batches (#/batches): an app's batch signing manifests, filtered by state, paged; running ones
// highlighted (a batch that stays running after its process went away is marked interrupted).
import { h, field, table, badge, section, fmtCell, newest } from './dom.js';
import { api, all } from './api.js';

const STATES = ['', 'running', 'complete', 'aborted', 'interrupted'];

export async function render(ctx) {
  const { main } = ctx;
  main.append(h('h1', {}, 'Batches'));
  const apps = ctx.can('listApps') ? await all('/v1/apps?limit=1000', 'apps', 1000) : [];
  if (!ctx.live()) return;
  const q = new URLSearchParams(ctx.params[0] || '');
  const appSel = h('select', { name: 'sdkappid' },
    apps.map((a) => h('option', { value: a.sdkappid, selected: String(a.sdkappid) === q.get('app') }, `${a.sdkappid} · ${a.name}`)));
  const stateSel = h('select', { name: 'state' },
    STATES.map((s) => h('option', { value: s, selected: s === (q.get('state') || '') }, s || 'any state')));
  const out = h('div', { id: 'batches-result' });
  let after = null;
  const ticket = newest();
  const load = async (reset) => {
    if (reset) after = null;
    if (!appSel.value) return;
    const current = ticket();
    const p = new URLSearchParams({ limit: '50' });
    if (stateSel.value) p.set('state', stateSel.value);
    if (after) p.set('after', after);
    let page;
    try {
      page = await api('GET', `/v1/apps/${appSel.value}/usersigs/batches?${p}`);
    } catch (e) {
      return;
    }
    if (!current()) return; // a newer load was asked for meanwhile
    out.replaceChildren(view(page, () => { after = page.next_after; load(false); }, () => load(true)));
  };
  const form = h('form', { class: 'grid', id: 'batches-filter' },
    field('App', appSel), field('State', stateSel),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Show')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    load(true);
  });
  main.append(section('Filter', apps.length ? form : h('p', {}, 'No apps.')), out);
  if (apps.length) await load(true);
}

function view(page, next, first) {
  const rows = page.batches.map((b) => h('tr', { class: b.state === 'running' ? 'running' : null },
    h('td', {}, h('code', {}, b.batch_id.slice(0, 12)), h('span', { class: 'sr-only' }, b.batch_id)),
    h('td', {}, badge(b.state)),
    h('td', {}, `v${b.key_version}`),
    h('td', {}, b.actor_name),
    h('td', { class: 'num' }, b.count === null ? '?' : String(b.count)),
    h('td', { class: 'num' }, b.signed === null ? '?' : String(b.signed)),
    h('td', { class: 'num' }, b.failed === null ? '?' : String(b.failed)),
    h('td', {}, b.sha256 ? h('code', { class: 'hash', title: b.sha256 }, b.sha256) : ''),
    h('td', {}, fmtCell(b.started_at)),
    h('td', {}, fmtCell(b.finished_at))));
  const running = page.batches.filter((b) => b.state === 'running').length;
  return section(`${page.batches.length} batch${page.batches.length === 1 ? '' : 'es'}${running ? `, ${running} running` : ''}`,
    page.batches.length ? table('Batches', ['Batch', 'State', 'Key', 'Actor', 'Count', 'Signed', 'Failed', 'SHA-256', 'Started (UTC)', 'Finished (UTC)'], rows) : h('p', {}, 'None.'),
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'secondary', onclick: first }, 'First page'),
      page.next_after ? h('button', { type: 'button', class: 'secondary', onclick: next }, 'Next page') : null));
}
