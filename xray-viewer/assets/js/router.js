// The router: History API paths to views, so every view has a URL that reopens it.
//
// A view is `{ title, render(ctx) }`; `render` fills `ctx.outlet` and may return a cleanup
// function. `ctx` has `params` (path parameters), `query` (URLSearchParams) and `signal` (aborted
// when the view is left, so its pending requests and timers stop).

const routes = [];
let outlet = null;
let current = null;
const afterRender = new Set();

/** Adds a route: `pattern` like "/runs/:id". */
export function route(pattern, view) {
  const names = [];
  const source = pattern
    .split('/')
    .map((part) => {
      if (part.startsWith(':')) {
        names.push(part.slice(1));
        return '([^/]+)';
      }
      return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('/');
  routes.push({ regex: new RegExp(`^${source}/?$`), names, view });
}

function match(pathname) {
  for (const r of routes) {
    const m = r.regex.exec(pathname);
    if (m) {
      const params = {};
      r.names.forEach((name, i) => {
        params[name] = decodeURIComponent(m[i + 1]);
      });
      return { view: r.view, params };
    }
  }
  return null;
}

/** Renders the view for the current location. */
export async function render() {
  if (current) {
    current.controller.abort();
    if (typeof current.cleanup === 'function') current.cleanup();
  }
  const found = match(location.pathname) || match('/404');
  const controller = new AbortController();
  current = { controller, cleanup: null, view: found.view };
  const ctx = {
    params: found.params,
    query: new URLSearchParams(location.search),
    signal: controller.signal,
    outlet,
  };
  outlet.replaceChildren();
  delete outlet.dataset.ready;
  outlet.dataset.view = found.view.title || '';
  document.title = `${found.view.title || 'X-Ray'} · X-Ray`;
  try {
    current.cleanup = await found.view.render(ctx);
  } catch (e) {
    if (e.name !== 'AbortError') throw e;
  }
  if (!controller.signal.aborted) outlet.dataset.ready = '1';
  afterRender.forEach((fn) => fn(location.pathname));
}

/** Goes to `href` (pushes history unless `replace`). */
export function navigate(href, { replace = false } = {}) {
  const target = new URL(href, location.origin);
  if (target.origin !== location.origin) {
    location.href = href;
    return;
  }
  if (replace) history.replaceState(null, '', target.pathname + target.search + target.hash);
  else history.pushState(null, '', target.pathname + target.search + target.hash);
  window.scrollTo(0, 0);
  render();
}

/** Rewrites the query of the current URL without rendering again (filters typed in a view). */
export function setQuery(values) {
  const u = new URL(location.href);
  for (const [key, value] of Object.entries(values)) {
    u.searchParams.delete(key);
    if (Array.isArray(value)) value.filter((v) => v !== '').forEach((v) => u.searchParams.append(key, v));
    else if (value !== null && value !== undefined && value !== '' && value !== false) u.searchParams.set(key, value);
  }
  history.replaceState(null, '', u.pathname + u.search + u.hash);
}

/** Calls `fn(pathname)` after each render (the nav highlights the current view). */
export function onRender(fn) {
  afterRender.add(fn);
}

/** Starts routing into `el`: internal links and back/forward stay in the page. */
export function start(el) {
  outlet = el;
  document.addEventListener('click', (event) => {
    if (event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const a = event.target.closest('a[href]');
    if (!a || a.target || a.hasAttribute('download')) return;
    const href = a.getAttribute('href');
    if (!href.startsWith('/') || href.startsWith('/api/')) return;
    event.preventDefault();
    navigate(href);
  });
  window.addEventListener('popstate', () => render());
  return render();
}
