// The dashboard's shell: sign-in, the caller's role (GET /v1/tokens/self), the navigation (only
// the pages the role may use), hash routes (#/apps, #/apps/ID, #/verify ...: the token never
// goes in a URL), and the error and status lines every page shares.
import { h, add, clear, field } from './dom.js';
import * as api from './api.js';
import * as apps from './page_apps.js';
import * as verify from './page_verify.js';
import * as batches from './page_batches.js';
import * as audit from './page_audit.js';
import * as tokens from './page_tokens.js';
import * as activity from './page_activity.js';

// Each page: the route's first segment, its title, the operation it needs, its module.
const PAGES = [
  { path: 'apps', title: 'Apps', op: 'listApps', mod: apps },
  { path: 'verify', title: 'Verify', op: 'verifyUserSig', mod: verify },
  { path: 'batches', title: 'Batches', op: 'listBatches', mod: batches },
  { path: 'audit', title: 'Audit', op: 'listAuditEvents', mod: audit },
  { path: 'tokens', title: 'Tokens', op: 'listTokens', mod: tokens },
  { path: 'activity', title: 'Activity', op: 'getMetrics', mod: activity },
];

const $ = (id) => document.getElementById(id);
let me = null;
let cleanup = null;
let generation = 0;

function can(op) {
  return !!me && Array.isArray(me.operations) && me.operations.includes(op);
}

export function showError(err) {
  const box = $('error');
  clear(box);
  if (!err) {
    box.hidden = true;
    return;
  }
  const status = err.status ? `HTTP ${err.status} ${err.code}` : err.code || 'error';
  add(box, [h('strong', {}, status), err.req ? ` (${err.req})` : '', ': ', err.message || '']);
  box.hidden = false;
}

export function showStatus(text) {
  const box = $('status');
  box.textContent = text || '';
  box.hidden = !text;
}

api.onError((err) => {
  showError(err);
  if (err.status === 401 && me) {
    // The token stopped working (revoked, expired): back to the sign-in form.
    me = null;
    api.forgetToken();
    render({ keepMessages: true });
  }
});

function renderWho() {
  const who = clear($('who'));
  if (!me) return;
  const scope = me.apps === null ? 'all apps' : `apps ${me.apps.join(', ')}`;
  add(who, [
    h('span', { class: 'who-name' }, me.name),
    h('span', { class: 'badge badge-role', title: me.name }, me.role),
    h('span', { class: 'who-scope' }, scope),
    h('button', { type: 'button', class: 'secondary', id: 'signout', onclick: signOut }, 'Sign out'),
  ]);
}

function renderNav(current) {
  const nav = clear($('nav'));
  if (!me) return;
  const ul = h('ul', {});
  for (const p of PAGES) {
    if (!can(p.op)) continue;
    const a = h('a', { href: `#/${p.path}`, 'aria-current': p.path === current ? 'page' : null }, p.title);
    ul.append(h('li', {}, a));
  }
  nav.append(ul);
}

function signInForm(main) {
  const input = h('input', { type: 'password', name: 'token', autocomplete: 'off', spellcheck: 'false', required: true, placeholder: 'usg_1_...' });
  // method post: were the form ever submitted natively, the token would not go into a URL.
  const form = h('form', { class: 'card signin', method: 'post', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'Sign in'),
    h('p', {}, 'Paste an API token (the admin token usersigd printed on its first run, or one from ',
      h('code', {}, 'usersigd token create'), '). It is kept in this tab only and forgotten when you sign out or close it.'),
    field('API token', input),
    h('button', { type: 'submit' }, 'Sign in'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const t = input.value.trim();
    input.value = '';
    try {
      me = await api.api('GET', '/v1/tokens/self', undefined, { token: t });
    } catch (e) {
      return;
    }
    api.setToken(t);
    showError(null);
    showStatus(`Signed in as ${me.name} (${me.role}).`);
    if (!location.hash || location.hash === '#/' || location.hash === '#') location.hash = `#/${firstPage()}`;
    else render({ keepMessages: true });
  });
  main.append(form);
  input.focus();
}

function signOut() {
  api.forgetToken();
  me = null;
  showError(null);
  showStatus('Signed out: the token is forgotten.');
  location.hash = '#/';
  render({ keepMessages: true });
}

function firstPage() {
  const p = PAGES.find((x) => can(x.op));
  return p ? p.path : '';
}

// A part of the hash as the user meant it; a malformed escape (#/apps/%E0) is kept as typed, for
// the page to refuse, rather than thrown out of render.
function decodePart(s) {
  try {
    return decodeURIComponent(s);
  } catch (e) {
    return s;
  }
}

async function render(opts = {}) {
  const gen = ++generation;
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  if (!opts.keepMessages) {
    showError(null);
    showStatus('');
  }
  const main = clear($('main'));
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodePart);
  renderWho();
  if (!me) {
    renderNav(null);
    signInForm(main);
    document.title = 'Sign in · usersigd';
    return;
  }
  const page = PAGES.find((p) => p.path === parts[0] && can(p.op));
  if (!page) {
    const first = firstPage();
    if (first) {
      location.replace(`#/${first}`);
      return;
    }
    main.append(h('div', { class: 'card' }, h('h1', {}, 'Nothing to show'),
      h('p', {}, `The role ${me.role} has no page here.`)));
    renderNav(null);
    return;
  }
  renderNav(page.path);
  document.title = `${page.title} · usersigd`;
  const ctx = {
    main,
    me,
    can,
    params: parts.slice(1),
    live: () => gen === generation,
    status: showStatus,
    error: showError,
    rerender: () => render({ keepMessages: true }),
  };
  try {
    const done = await page.mod.render(ctx);
    if (gen === generation && typeof done === 'function') cleanup = done;
    else if (typeof done === 'function') done();
  } catch (e) {
    if (!(e instanceof api.ApiError)) showError({ code: 'error', message: String(e && e.message ? e.message : e) });
  }
}

async function start() {
  $('skip').addEventListener('click', (ev) => {
    ev.preventDefault();
    $('main').focus();
  });
  window.addEventListener('hashchange', () => render());
  const t = api.token();
  if (t) {
    try {
      me = await api.api('GET', '/v1/tokens/self', undefined, { quiet: true });
    } catch (e) {
      api.forgetToken();
      me = null;
    }
  }
  render();
}

start();
