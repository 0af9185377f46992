// DOM helpers: every piece of text goes in through textContent / text nodes, never as HTML, so
// names, identifiers and messages from users or the server cannot become markup.

// h('tag', {attrs}, ...children): attributes by setAttribute ("class", "for" as is; on*
// handlers as listeners; true as an empty attribute; null, undefined, false left out);
// children strings become text nodes.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  add(el, children);
  return el;
}

export function svg(tag, attrs, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  setAttrs(el, attrs);
  add(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value' && 'value' in el) el.value = String(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

export function add(el, children) {
  for (const c of [children].flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

// A labelled form field: the label's for= names the input's id.
let fieldSeq = 0;
export function field(label, input, hint) {
  const id = input.id || `f${++fieldSeq}`;
  input.id = id;
  const hintEl = hint ? h('span', { class: 'hint', id: `${id}-hint` }, hint) : null;
  if (hintEl) input.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: id }, label), input, hintEl);
}

// At phone width the rows become stacked cards: each cell carries its column's name
// (data-label, shown by the style sheet).
export function table(caption, headers, rows, opts = {}) {
  for (const tr of rows) {
    [...tr.children].forEach((td, i) => {
      if (headers[i]) td.setAttribute('data-label', headers[i]);
    });
  }
  const t = h('table', { class: opts.class || null },
    h('caption', { class: opts.showCaption ? null : 'sr-only' }, caption),
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', {}, rows));
  return h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': caption }, t);
}

export function badge(text, kind) {
  return h('span', { class: `badge badge-${kind || text}` }, text);
}

export function section(title, ...children) {
  const id = `s${++fieldSeq}`;
  return h('section', { class: 'card', 'aria-labelledby': id }, h('h2', { id }, title), children);
}

// "2026-12-02 10:17:26 UTC" from an RFC 3339 string or Unix seconds; "" for null.
export function fmtTime(v) {
  if (v === null || v === undefined || v === '') return '';
  const d = typeof v === 'number' ? new Date(v * 1000) : new Date(v);
  if (Number.isNaN(d.getTime())) return String(v);
  return `${d.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

// "3 d 4 h", "5 min", from seconds.
export function fmtDuration(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return '';
  s = Math.max(0, Math.round(s));
  const d = Math.floor(s / 86400), hr = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  if (d > 0) return hr > 0 ? `${d} d ${hr} h` : `${d} d`;
  if (hr > 0) return m > 0 ? `${hr} h ${m} min` : `${hr} h`;
  if (m > 0) return `${m} min`;
  return `${s} s`;
}

// The same without " UTC", for table cells (their column header says UTC).
export function fmtCell(v) {
  return fmtTime(v).replace(/ UTC$/, '');
}

// For a view whose loads can overlap (a filter submitted while the page's first load is still
// being answered): each load takes a ticket, and one whose ticket is no longer the newest drops
// its reply, so an older reply that comes last never replaces a newer one.
export function newest() {
  let n = 0;
  return () => {
    const mine = ++n;
    return () => mine === n;
  };
}

export function ageOf(iso) {
  if (!iso) return null;
  const t = new Date(iso).getTime();
  return Number.isNaN(t) ? null : (Date.now() - t) / 1000;
}

export function button(text, onclick, opts = {}) {
  return h('button', { type: opts.type || 'button', class: opts.class || null, onclick, 'aria-label': opts.label || null }, text);
}
