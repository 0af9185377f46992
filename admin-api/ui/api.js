// The admin API from the page: the token kept in this tab's sessionStorage only (never in a URL,
// never in localStorage or a cookie), sent as "Authorization: Bearer"; every error reply
// ({"error":{"code","message"}}) reported to the listeners as it came (status, code, message).
const KEY = 'usersigd.token';

export function token() {
  return sessionStorage.getItem(KEY);
}

export function setToken(t) {
  sessionStorage.setItem(KEY, t);
}

export function forgetToken() {
  sessionStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(status, code, message, req) {
    super(message);
    this.status = status;
    this.code = code;
    this.req = req;
  }
}

const listeners = new Set();
export function onError(fn) {
  listeners.add(fn);
}

function report(err) {
  for (const fn of listeners) fn(err);
}

// api(method, path, body?, opts?): the parsed JSON reply (or the text with opts.text). Throws
// ApiError; reports it too unless opts.quiet. opts.token overrides the stored token;
// opts.idempotent sends a new Idempotency-Key (a retried POST then does nothing twice).
export async function api(method, path, body, opts = {}) {
  const headers = { Accept: opts.text ? 'text/plain' : 'application/json' };
  const t = opts.token !== undefined ? opts.token : token();
  if (t) headers.Authorization = `Bearer ${t}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (opts.idempotent && globalThis.crypto && crypto.randomUUID) headers['Idempotency-Key'] = crypto.randomUUID();
  const req = `${method} ${path.split('?')[0]}`;
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
    });
  } catch (e) {
    const err = new ApiError(0, 'network', `cannot reach the server (${e.message})`, req);
    if (!opts.quiet) report(err);
    throw err;
  }
  const text = await res.text();
  let json = null;
  try {
    json = text && !opts.text ? JSON.parse(text) : null;
  } catch (e) {
    json = null;
  }
  if (!res.ok) {
    const e = json && json.error ? json.error : {};
    const err = new ApiError(res.status, e.code || `http_${res.status}`, e.message || text.slice(0, 300), req);
    if (!opts.quiet) report(err);
    throw err;
  }
  return opts.text ? text : json;
}

// Every page of a list route ({items, next_after}), at most max items.
export async function all(path, key, max = 1000) {
  const out = [];
  let after = null;
  for (;;) {
    const sep = path.includes('?') ? '&' : '?';
    const page = await api('GET', `${path}${after !== null ? `${sep}after=${encodeURIComponent(after)}` : ''}`);
    out.push(...page[key]);
    after = page.next_after;
    if (after === null || after === undefined || out.length >= max) return out;
  }
}
