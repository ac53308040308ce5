// A collapsible JSON tree that stays responsive on large payloads: children are built only when
// a node is opened, long lists and strings are shown a chunk at a time, and a payload cut by the
// recorder's cap says so. Optional `diff`: a set of paths ("/a/0/b") to highlight and open.

import { h, append } from '../dom.js';
import { n } from '../format.js';
import { truncation } from '../api.js';

const CHUNK = 100;
const LONG_STRING = 400;

/**
 * Builds the tree for `value`. Options: `open` (depth opened at first, default 1), `diff`
 * (Set of paths that differ), `label` (aria label).
 */
export function jsonTree(value, { open = 1, diff = null, label = 'JSON' } = {}) {
  const root = h('div', { class: 'jt' });
  const cut = truncation(value);
  if (cut) {
    root.append(
      h('p', { class: 'jt-truncated', role: 'note' },
        `Truncated by the recorder's payload cap: the original was ${n(cut.originalBytes)} bytes; long lists and strings below are shortened.`),
    );
    value = cut.value;
  }
  if (value === undefined) {
    root.append(h('p', { class: 'muted' }, 'Not recorded.'));
    return root;
  }
  const opens = new Set();
  if (diff) {
    for (const path of diff) {
      const parts = path.split('/');
      for (let i = 1; i < parts.length; i++) opens.add(parts.slice(0, i).join('/'));
    }
  }
  const ctx = { open, diff, opens };
  const list = h('ul', { class: 'jt-root', role: 'tree', 'aria-label': label });
  list.append(node(null, value, '', 0, ctx));
  root.append(list);
  return root;
}

function isContainer(v) {
  return v !== null && typeof v === 'object';
}

function entriesOf(v) {
  return Array.isArray(v) ? v.map((x, i) => [i, x]) : Object.entries(v);
}

function summaryOf(v) {
  if (Array.isArray(v)) return v.length === 0 ? '[]' : `[${n(v.length)} ${v.length === 1 ? 'item' : 'items'}]`;
  const k = Object.keys(v).length;
  return k === 0 ? '{}' : `{${n(k)} ${k === 1 ? 'key' : 'keys'}}`;
}

function keyLabel(key) {
  if (key === null) return null;
  return h('span', { class: typeof key === 'number' ? 'jt-index' : 'jt-key' }, typeof key === 'number' ? `${key}` : key);
}

function node(key, value, path, depth, ctx) {
  const differs = ctx.diff && ctx.diff.has(path);
  if (!isContainer(value)) {
    return h('li', { class: ['jt-leaf', differs && 'jt-diff'], role: 'treeitem' },
      keyLabel(key), key !== null ? h('span', { class: 'jt-colon' }, ': ') : null, leaf(value));
  }
  const entries = entriesOf(value);
  const li = h('li', { class: ['jt-node', differs && 'jt-diff'], role: 'treeitem' });
  if (entries.length === 0) {
    append(li, [keyLabel(key), key !== null ? h('span', { class: 'jt-colon' }, ': ') : null,
      h('span', { class: 'jt-summary' }, summaryOf(value))]);
    return li;
  }
  const children = h('ul', { class: 'jt-children', role: 'group' });
  const toggle = h('button', { type: 'button', class: 'jt-toggle', 'aria-expanded': 'false' },
    keyLabel(key) || h('span', { class: 'jt-key' }, Array.isArray(value) ? 'list' : 'object'),
    h('span', { class: 'jt-summary' }, summaryOf(value)));
  let built = false;
  const setOpen = (openNow) => {
    toggle.setAttribute('aria-expanded', String(openNow));
    li.setAttribute('aria-expanded', String(openNow));
    children.hidden = !openNow;
    if (openNow && !built) {
      built = true;
      chunk(children, entries, 0, path, depth, ctx);
    }
  };
  toggle.addEventListener('click', () => setOpen(toggle.getAttribute('aria-expanded') !== 'true'));
  li.append(toggle, children);
  setOpen(depth < ctx.open || ctx.opens.has(path));
  return li;
}

function chunk(list, entries, from, path, depth, ctx) {
  const to = Math.min(entries.length, from + CHUNK);
  for (let i = from; i < to; i++) {
    const [k, v] = entries[i];
    list.append(node(k, v, `${path}/${k}`, depth + 1, ctx));
  }
  if (to < entries.length) {
    const rest = entries.length - to;
    const more = h('li', { class: 'jt-more' });
    const next = h('button', { type: 'button', class: 'link-button' }, `Show ${n(Math.min(CHUNK, rest))} more`);
    next.addEventListener('click', () => {
      more.remove();
      chunk(list, entries, to, path, depth, ctx);
    });
    more.append(next, h('span', { class: 'muted' }, ` (${n(rest)} not shown)`));
    list.append(more);
  }
}

function leaf(v) {
  if (v === null) return h('span', { class: 'jt-null' }, 'null');
  if (typeof v === 'boolean') return h('span', { class: 'jt-bool' }, String(v));
  if (typeof v === 'number') return h('span', { class: 'jt-num' }, String(v));
  const s = String(v);
  if (s.length <= LONG_STRING) return h('span', { class: 'jt-str' }, JSON.stringify(s));
  const span = h('span', { class: 'jt-str' }, JSON.stringify(s.slice(0, LONG_STRING)).slice(0, -1) + '…"');
  const all = h('button', { type: 'button', class: 'link-button' }, `show all ${n(s.length)} characters`);
  all.addEventListener('click', () => {
    span.textContent = JSON.stringify(s);
    all.remove();
  });
  return h('span', {}, span, ' ', all);
}

/** The paths at which `a` and `b` differ ("" is the root). */
export function diffPaths(a, b, path = '', out = new Set()) {
  if (a === b) return out;
  if (isContainer(a) && isContainer(b) && Array.isArray(a) === Array.isArray(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const k of keys) diffPaths(a[k], b[k], `${path}/${k}`, out);
    return out;
  }
  if (JSON.stringify(a) !== JSON.stringify(b)) out.add(path);
  return out;
}
