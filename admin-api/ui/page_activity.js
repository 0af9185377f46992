// Activity (#/activity): signs and errors per minute from the server's own counters. /metrics
// (Prometheus text) is read every few seconds, parsed here, and the differences between
// samples drawn as a small SVG chart: signs (single and batch UserSigs) and errors (refused
// signs and 5xx replies).
import { h, add, svg, section, fmtTime } from './dom.js';
import { api } from './api.js';

export const POLL_MS = 3000;
const KEEP = 100; // samples: 5 minutes at 3 s

// Prometheus text exposition: [{name, labels: {k: v}, value}]; comments and bad lines skipped.
export function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (line === '' || line[0] === '#') continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let l;
      while ((l = re.exec(m[3])) !== null) labels[l[1]] = l[2].replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    }
    const value = Number(m[4]);
    if (Number.isFinite(value)) out.push({ name: m[1], labels, value });
  }
  return out;
}

// The counters the chart follows, summed over their labels.
export function totals(samples) {
  let signs = 0, errors = 0;
  for (const s of samples) {
    if (s.name === 'usersigd_signs_total') {
      if (s.labels.outcome === 'ok') signs += s.value;
      else errors += s.value;
    } else if (s.name === 'usersigd_batch_tokens_total') {
      signs += s.value;
    } else if (s.name === 'usersigd_http_requests_total' && /^5/.test(s.labels.status || '')) {
      errors += s.value;
    }
  }
  return { signs, errors };
}

export async function render(ctx) {
  const { main } = ctx;
  main.append(h('h1', {}, 'Activity'));
  const now = h('dl', { class: 'kv', id: 'activity-now' });
  const chartBox = h('div', { class: 'chart', id: 'activity-chart' });
  main.append(section('Signs and errors per minute',
    h('p', { class: 'muted' }, `From this server's counters (/metrics), read every ${POLL_MS / 1000} s; each point is the rate since the one before.`),
    now, chartBox));
  const points = [];
  let last = null;
  let stopped = false;
  const tick = async () => {
    let text;
    try {
      text = await api('GET', '/metrics', undefined, { text: true, quiet: points.length > 0 });
    } catch (e) {
      return;
    }
    if (stopped) return;
    const t = Date.now();
    const cur = totals(parseMetrics(text));
    if (last) {
      const minutes = (t - last.t) / 60000;
      // A counter that went down is a restarted server: count from zero again.
      const d = (a, b) => (a >= b ? a - b : a);
      points.push({ t, signs: d(cur.signs, last.signs) / minutes, errors: d(cur.errors, last.errors) / minutes });
      if (points.length > KEEP) points.shift();
    }
    last = { t, ...cur };
    now.replaceChildren();
    const p = points[points.length - 1];
    add(now, [h('dt', {}, 'Signs (total)'), h('dd', { id: 'total-signs' }, String(cur.signs)),
      h('dt', {}, 'Errors (total)'), h('dd', { id: 'total-errors' }, String(cur.errors)),
      h('dt', {}, 'Signs per minute'), h('dd', { id: 'rate-signs' }, p ? p.signs.toFixed(1) : '…'),
      h('dt', {}, 'Errors per minute'), h('dd', { id: 'rate-errors' }, p ? p.errors.toFixed(1) : '…'),
      h('dt', {}, 'Read at'), h('dd', {}, fmtTime(new Date(t).toISOString()))]);
    // Drawn at the box's own width, so that its text keeps its size on a phone.
    chartBox.replaceChildren(chart(points, Math.max(300, Math.min(832, chartBox.clientWidth || 640))));
  };
  await tick();
  const timer = setInterval(tick, POLL_MS);
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}

function chart(points, W) {
  const H = 200, L = 44, R = 8, T = 10, B = 24;
  const max = Math.max(1, ...points.map((p) => Math.max(p.signs, p.errors)));
  const x = (i) => L + (points.length <= 1 ? 0 : (i * (W - L - R)) / (points.length - 1));
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const line = (key) => points.map((p, i) => `${i ? 'L' : 'M'}${x(i).toFixed(1)},${y(p[key]).toFixed(1)}`).join(' ');
  const last = points[points.length - 1];
  const label = points.length < 1 ? 'Waiting for a second reading.'
    : `Signs per minute, latest ${last.signs.toFixed(1)}; errors per minute, latest ${last.errors.toFixed(1)}; scale 0 to ${max.toFixed(1)}.`;
  const s = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': label, class: 'chart-svg' },
    svg('title', {}, label),
    svg('line', { x1: L, y1: y(0), x2: W - R, y2: y(0), class: 'axis' }),
    svg('line', { x1: L, y1: y(max), x2: W - R, y2: y(max), class: 'grid-line' }),
    svg('text', { x: L - 6, y: y(max) + 4, class: 'tick', 'text-anchor': 'end' }, max >= 10 ? max.toFixed(0) : max.toFixed(1)),
    svg('text', { x: L - 6, y: y(0) + 4, class: 'tick', 'text-anchor': 'end' }, '0'),
    svg('text', { x: W - R, y: H - 6, class: 'tick', 'text-anchor': 'end' }, 'now'));
  if (points.length >= 1) {
    s.append(svg('path', { d: line('signs'), class: 'series-signs' }), svg('path', { d: line('errors'), class: 'series-errors' }));
    if (points.length === 1) {
      s.append(svg('circle', { cx: x(0), cy: y(last.signs), r: 3, class: 'dot-signs' }));
    }
  }
  const legend = h('ul', { class: 'legend' },
    h('li', { class: 'lg-signs' }, 'signs / min'), h('li', { class: 'lg-errors' }, 'errors / min'));
  return h('figure', {}, s, legend);
}
