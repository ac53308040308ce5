// Small DOM helpers: elements built node by node (no HTML strings, so no injection; no inline styles).

/**
 * Creates an element. `attrs` keys: `class`, `text`, `on<event>` (listener), `dataset`,
 * `hidden`, boolean attributes (true adds, false/null skips), anything else as an attribute.
 * Children may be nodes, strings, numbers, arrays or null/false (skipped).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = Array.isArray(value) ? value.filter(Boolean).join(' ') : value;
    else if (key === 'text') el.textContent = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'value') el.value = value;
    else if (key === 'checked' || key === 'selected' || key === 'disabled') el[key] = Boolean(value);
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

/** Appends children (nodes, text, arrays; null/false skipped). */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A labelled form field: `<label>Text <input></label>` with an id for tests and shortcuts. */
export function field(label, control, hint) {
  return h('label', { class: 'field' }, h('span', { class: 'field-label' }, label), control,
    hint ? h('span', { class: 'hint' }, hint) : null);
}

/** An `<option>` list for a `<select>`. */
export function options(list, selected) {
  return list.map(([value, text]) => h('option', { value, selected: String(value) === String(selected ?? '') }, text));
}

/** A debounced function. */
export function debounce(fn, ms) {
  let timer = 0;
  const wrapped = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  wrapped.cancel = () => clearTimeout(timer);
  return wrapped;
}

/** A status badge: running, ok, error, lost. */
export function statusBadge(status) {
  const text = { running: 'running', ok: 'ok', error: 'error', lost: 'lost' }[status] || status;
  return h('span', { class: `badge status-${status}`, title: `status: ${text}` }, text);
}

/** A kind badge (llm, search, filter, rank, …). */
export function kindBadge(kind) {
  if (!kind) return null;
  return h('span', { class: `kind kind-${kind.replace(/[^a-z0-9_-]/gi, '')}` }, kind);
}

/** A message box: `kind` is info, warn or error. */
export function notice(kind, ...children) {
  return h('div', { class: `notice notice-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, ...children);
}

/** A section with a heading. */
export function section(title, ...children) {
  return h('section', { class: 'panel' }, h('h2', {}, title), ...children);
}

/** A collapsible section (`<details>`), open or not. */
export function collapsible(title, open, ...children) {
  return h('details', { class: 'panel collapsible', open }, h('summary', {}, h('h2', {}, title)), ...children);
}
