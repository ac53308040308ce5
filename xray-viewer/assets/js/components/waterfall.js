// The step tree as a waterfall: one row per step, indented by depth, with a bar placed at its
// start and as long as its duration on the run's time axis. Running steps grow live.

import { h, statusBadge } from '../dom.js';
import { duration } from '../format.js';

/**
 * Builds the waterfall of `steps` (tree order, with `depth`, as in `GET /executions/{id}`).
 * Returns `{ element, tick() }`: call `tick()` to grow running bars to now.
 */
export function waterfall(steps, { runStart, runEnd, selectedId = null }) {
  const element = h('div', { class: 'waterfall', role: 'table', 'aria-label': 'Steps and their durations' });
  const axis = h('div', { class: 'wf-axis', 'aria-hidden': 'true' });
  element.append(h('div', { class: 'wf-row wf-head', role: 'row' },
    h('div', { class: 'wf-name', role: 'columnheader' }, 'Step'),
    h('div', { class: 'wf-track', role: 'columnheader' }, axis),
    h('div', { class: 'wf-dur', role: 'columnheader' }, 'Duration')));
  const bars = [];
  for (const s of steps) {
    const b = h('span', { class: ['wf-bar', `status-${s.status}`] });
    const dur = h('span', { class: 'wf-dur-text' });
    bars.push({ s, b, dur });
    const name = h('div', { class: 'wf-name', role: 'cell' },
      // The full name on hover: a kind or status badge may leave room for only part of it.
      h('a', { href: `/steps/${s.id}`, class: 'wf-link', title: s.kind ? `${s.name} (${s.kind})` : s.name }, s.name),
      s.kind ? h('span', { class: `kind kind-${s.kind}` }, s.kind) : null,
      s.status !== 'ok' ? statusBadge(s.status) : null);
    name.style.paddingLeft = `${0.5 + s.depth * 1.1}rem`;
    element.append(h('div', {
      class: ['wf-row', s.id === selectedId && 'selected'],
      role: 'row',
      dataset: { step: s.id, status: s.status },
    }, name, h('div', { class: 'wf-track', role: 'cell' }, b), h('div', { class: 'wf-dur', role: 'cell' }, dur)));
  }
  const tick = () => {
    const now = Date.now() * 1000;
    const start = runStart;
    let end = runEnd ?? now;
    for (const { s } of bars) end = Math.max(end, s.ended_at ?? (s.status === 'running' ? now : s.started_at));
    const span = Math.max(end - start, 1);
    for (const { s, b, dur } of bars) {
      const stop = s.ended_at ?? (s.status === 'running' ? now : s.started_at);
      b.style.left = `${((s.started_at - start) / span) * 100}%`;
      b.style.width = `${Math.max(((stop - s.started_at) / span) * 100, 0.4)}%`;
      dur.textContent = s.ended_at != null ? duration(s.ended_at - s.started_at) : s.status === 'running' ? `${duration(now - s.started_at)}…` : '—';
    }
    axis.replaceChildren(...[0, 0.25, 0.5, 0.75, 1].map((f) => {
      const t = h('span', { class: 'wf-tick' }, duration(span * f));
      t.style.left = `${f * 100}%`;
      return t;
    }));
  };
  tick();
  return { element, tick };
}
