// Keyboard shortcuts: a few global ones (g r: runs, /: search, ?: help) and those the current
// view registers (j/k: next/previous, Enter: open). The help overlay lists what applies now.

import { navigate } from './router.js';

const globalKeys = [
  ['g r', 'Go to the runs list', () => navigate('/')],
  ['g s', 'Go to the steps query', () => navigate('/steps')],
  ['g c', 'Go to candidate search', () => navigate('/candidates')],
  ['g m', 'Go to compare', () => navigate('/compare')],
  ['g a', 'Go to analytics', () => navigate('/analytics')],
  ['/', 'Focus the search or filter box', () => {
    const input = document.querySelector('main [data-search]');
    if (input) input.focus();
  }],
  ['?', 'Show or hide this help', () => toggleHelp()],
];

let viewKeys = [];
let pending = '';
let pendingTimer = 0;
let helpDialog = null;

/** Registers the current view's shortcuts: [[keys, description, fn]]; returns an unregister. */
export function viewShortcuts(list) {
  viewKeys = list;
  return () => {
    if (viewKeys === list) viewKeys = [];
  };
}

function typing(target) {
  return target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
}

function onKey(event) {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
  if (typing(event.target)) return;
  if (document.querySelector('dialog[open]') && event.key !== '?') return;
  // Enter on a link or a button does what that control does.
  if (event.key === 'Enter' && event.target instanceof Element && event.target.closest('a, button, summary, [role="button"]')) return;
  const key = event.key;
  const combo = pending ? `${pending} ${key}` : key;
  const all = [...viewKeys, ...globalKeys];
  const hit = all.find(([k]) => k === combo);
  if (hit) {
    event.preventDefault();
    pending = '';
    hit[2](event);
    return;
  }
  if (!pending && all.some(([k]) => k.startsWith(`${key} `))) {
    pending = key;
    clearTimeout(pendingTimer);
    pendingTimer = setTimeout(() => {
      pending = '';
    }, 1200);
    return;
  }
  pending = '';
}

function keyLabel(keys) {
  const span = document.createElement('span');
  keys.split(' ').forEach((k, i) => {
    if (i) span.append(' then ');
    const kbd = document.createElement('kbd');
    kbd.textContent = k;
    span.append(kbd);
  });
  return span;
}

function section(title, list) {
  const wrap = document.createElement('section');
  const h = document.createElement('h3');
  h.textContent = title;
  const dl = document.createElement('dl');
  dl.className = 'keys';
  for (const [keys, text] of list) {
    const dt = document.createElement('dt');
    dt.append(keyLabel(keys));
    const dd = document.createElement('dd');
    dd.textContent = text;
    dl.append(dt, dd);
  }
  wrap.append(h, dl);
  return wrap;
}

/** Opens or closes the help overlay. */
export function toggleHelp() {
  if (helpDialog && helpDialog.open) {
    helpDialog.close();
    return;
  }
  helpDialog = helpDialog || document.getElementById('help');
  const body = helpDialog.querySelector('.help-body');
  body.replaceChildren();
  if (viewKeys.length) body.append(section('This view', viewKeys));
  body.append(section('Everywhere', globalKeys));
  helpDialog.showModal();
}

/** Installs the key listener. */
export function install() {
  document.addEventListener('keydown', onKey);
}
