// The API client: one function per route of /api/v1, the bearer token when the server wants one,
// and errors that carry the server's code, message and parameter.

const BASE = '/api/v1';
const TOKEN_KEY = 'xray.token';

let token = sessionStorage.getItem(TOKEN_KEY);
const listeners = new Set();

/** An error answered by the server (or the network). */
export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

/** The token in use (null when none). */
export function getToken() {
  return token;
}

/** Sets the token for this tab (kept for the session only). */
export function setToken(value) {
  token = value || null;
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Calls `fn()` when the server answers 401 (the token prompt listens). */
export function onUnauthorized(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** The URL of an API path with its query (arrays repeat the parameter; empty values are left out). */
export function url(path, query = {}) {
  const u = new URL(BASE + path, location.origin);
  for (const [key, value] of Object.entries(query)) {
    if (value === null || value === undefined || value === '') continue;
    if (Array.isArray(value)) value.filter((v) => v !== '').forEach((v) => u.searchParams.append(key, v));
    else u.searchParams.set(key, value);
  }
  return u;
}

// Requests in flight, on the root element (`data-requests`): a page is settled at 0.
let inFlight = 0;
document.documentElement.dataset.requests = '0';
function track(delta) {
  inFlight += delta;
  document.documentElement.dataset.requests = String(inFlight);
}

async function request(method, path, options = {}) {
  track(1);
  try {
    return await send(method, path, options);
  } finally {
    track(-1);
  }
}

async function send(method, path, { query, body, signal } = {}, attempt = 0) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(url(path, query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'The server cannot be reached.', null);
  }
  if (res.status === 429 && attempt < 3) {
    // Rate limited (a fast scroll through a large table): wait as told, then try again.
    const wait = Math.min(Number(res.headers.get('Retry-After')) || 1, 5);
    await new Promise((resolve) => setTimeout(resolve, wait * 1000));
    return send(method, path, { query, body, signal }, attempt + 1);
  }
  if (res.status === 401) listeners.forEach((fn) => fn());
  if (!res.ok) {
    let err = {};
    try {
      err = (await res.json()).error || {};
    } catch {
      // not JSON: keep the status text
    }
    throw new ApiError(res.status, err.code || `http_${res.status}`, err.message || res.statusText, err.field || null);
  }
  return res.json();
}

/** Downloads an API resource as a file (with the token, which a plain link cannot carry). */
export async function download(path, query, filename) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const res = await fetch(url(path, query), { headers });
  if (!res.ok) throw new ApiError(res.status, `http_${res.status}`, `Export failed (${res.status})`, null);
  const blob = await res.blob();
  const href = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = href;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 10_000);
}

const enc = encodeURIComponent;

export const api = {
  health: (o) => request('GET', '/health', o),
  executions: (query, o = {}) => request('GET', '/executions', { ...o, query }),
  execution: (id, o) => request('GET', `/executions/${enc(id)}`, o),
  patchExecution: (id, body) => request('PATCH', `/executions/${enc(id)}`, { body }),
  step: (id, o) => request('GET', `/steps/${enc(id)}`, o),
  evaluations: (id, query, o = {}) => request('GET', `/steps/${enc(id)}/evaluations`, { ...o, query }),
  steps: (query, o = {}) => request('GET', '/steps', { ...o, query }),
  candidate: (id, query, o = {}) => request('GET', `/candidates/${enc(id)}`, { ...o, query }),
  stats: (query, o = {}) => request('GET', '/stats', { ...o, query }),
  compare: (a, b, o = {}) => request('GET', '/compare', { ...o, query: { a, b } }),
  checkValues: (step, query, o = {}) => request('GET', `/steps/${enc(step)}/check-values`, { ...o, query }),
  onlyIn: (step, query, o = {}) => request('GET', `/steps/${enc(step)}/only-in`, { ...o, query }),
  verdictChanges: (step, query, o = {}) => request('GET', `/steps/${enc(step)}/verdict-changes`, { ...o, query }),
};

/** Parses a stored JSON payload; a payload cut by the cap is `{"$xray_truncated": true, …}`. */
export function truncation(value) {
  if (value && typeof value === 'object' && !Array.isArray(value) && value.$xray_truncated === true) {
    return { value: value.value, originalBytes: value.original_bytes };
  }
  return null;
}
