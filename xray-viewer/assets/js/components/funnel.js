// The funnel: candidates in and out of each step that counted them, with the loss of each step
// attributed to the check that rejected each candidate first.

import { h } from '../dom.js';
import { n, pct, topReasons } from '../format.js';

/** A bar whose filled share is `value / max` (width set from script: CSP allows it). */
export function bar(value, max, className = '') {
  const fill = h('span', { class: 'bar-fill' });
  const share = max > 0 && value > 0 ? Math.max(0.5, (value / max) * 100) : 0;
  fill.style.width = `${Math.min(100, share)}%`;
  return h('span', { class: ['bar', className] }, fill);
}

/**
 * The mini funnel of a run in the runs list: "5,000 → 1". A run that `failed` returned nothing,
 * whatever its last counting step let through before the failure: "1,080 → failed".
 */
export function miniFunnel(candidatesIn, candidatesOut, failed = false) {
  if (failed) {
    return h('span', { class: 'mini-funnel mf-failed', title: `${n(candidatesIn)} candidates in; the run failed before it returned a result` },
      h('span', { class: 'mf-text' }, `${candidatesIn != null ? n(candidatesIn) : '—'} → `, h('span', { class: 'error-text' }, 'failed')));
  }
  if (candidatesIn == null && candidatesOut == null) return h('span', { class: 'muted' }, '—');
  const share = candidatesIn ? (candidatesOut ?? 0) / candidatesIn : 1;
  return h('span', { class: 'mini-funnel', title: `${n(candidatesIn)} candidates in, ${n(candidatesOut)} out` },
    h('span', { class: 'mf-text' }, `${n(candidatesIn)} → ${n(candidatesOut)}`),
    bar(share, 1, 'mf-bar'));
}

/** The funnel of a run. `rows` as in `GET /executions/{id}`.funnel. */
export function funnel(rows) {
  if (!rows.length) return h('p', { class: 'muted' }, 'No step of this run counted candidates.');
  const max = Math.max(...rows.map((r) => Math.max(r.candidates_in ?? 0, r.candidates_out ?? 0)), 1);
  return h('ol', { class: 'funnel', 'aria-label': 'Candidates per step' }, rows.map((r) => {
    const eliminated = r.eliminated ?? null;
    const share = r.candidates_in ? eliminated / r.candidates_in : null;
    const bars = h('span', { class: 'funnel-bars' }, bar(r.candidates_in ?? 0, max, 'funnel-in'));
    const outBar = bar(r.candidates_out ?? 0, max, 'funnel-out');
    bars.append(outBar);
    return h('li', { class: 'funnel-row', dataset: { step: r.step_id } },
      h('div', { class: 'funnel-head' },
        h('a', { href: `/steps/${r.step_id}`, class: 'funnel-name' }, r.name),
        r.kind ? h('span', { class: `kind kind-${r.kind}` }, r.kind) : null,
        h('span', { class: 'funnel-counts' }, `${n(r.candidates_in)} → ${n(r.candidates_out)}`),
        eliminated ? h('span', { class: 'funnel-loss' }, `−${n(eliminated)} (${pct(share)})`) : null,
        // A step that failed counted only what it judged before it stopped.
        // (One marked failed that still returned its result keeps its count: just "failed".)
        r.status && r.status !== 'ok' ? h('span', { class: `badge status-${r.status}`, title: r.error || r.status },
          r.status === 'error' ? (r.candidates_out == null ? 'failed: counts stop there' : 'failed') : r.status) : null),
      bars,
      r.lost_to.length ? h('ul', { class: 'lost-to', 'aria-label': `Lost in ${r.name}, by check` }, r.lost_to.map((l) =>
        h('li', {},
          h('a', { href: `/steps/${r.step_id}?verdict=failed&check=${encodeURIComponent(l.check)}`, class: 'lost-check',
            title: 'Candidates this check rejected first; open them' },
          h('span', { class: 'lost-name' }, l.check), ': ', h('strong', {}, n(l.eliminated)),
          // The reasons count every candidate that failed the check, not only those it was the
          // first to reject: say so when the two differ.
          l.failed > l.eliminated ? h('span', { class: 'muted lost-failed' }, ` first · ${n(l.failed)} failed`) : null),
          topReasons(l.top_reasons).length ? h('span', { class: 'lost-reasons' },
            topReasons(l.top_reasons).map(([reason, count]) => h('span', { class: 'reason' }, reason, h('span', { class: 'muted' }, ` ×${n(count)}`)))) : null))) : null,
      // A loss no check accounts for: a limit or a top-N (its rule is in the step's filters).
      eliminated && !r.lost_to.length && r.status === 'ok' ? h('p', { class: 'unattributed-loss muted' },
        `No recorded check rejected these ${n(eliminated)}: the step let through fewer than it took in (a limit, a top N). `,
        h('a', { href: `/steps/${r.step_id}` }, 'Its filters and output say how')) : null,
      // A check that rejected nothing is silent above; a filter that let everything through
      // is often the finding (a category check in a run that compared departments).
      (r.rejected_none || []).length ? h('p', { class: 'rejected-none' },
        h('span', { class: 'muted' }, 'Rejected none: '),
        r.rejected_none.map((name, i) => [i ? ', ' : '',
          h('a', { href: `/steps/${r.step_id}?values=${encodeURIComponent(name)}`, title: `Every candidate ${name} judged passed it: the values it saw` }, name)])) : null);
  }));
}
