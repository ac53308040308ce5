// Analytics: per step name, how many ran, p50/p95 duration, error rate and mean elimination, as
// small bar charts.

import { api } from '../api.js';
import { h, replace, notice, field, kindBadge } from '../dom.js';
import { n, pct, duration, toLocalInput, fromLocalInput } from '../format.js';
import { bar } from '../components/funnel.js';
import { setQuery } from '../router.js';

export default {
  title: 'Analytics',
  async render({ outlet, query, signal }) {
    const f = {
      name: query.get('name') || '',
      kind: query.get('kind') || '',
      since: query.get('since') ? Number(query.get('since')) : null,
      until: query.get('until') ? Number(query.get('until')) : null,
    };
    const name = h('input', { type: 'text', name: 'name', value: f.name, placeholder: 'any', 'data-search': '', autocomplete: 'off' });
    const kind = h('input', { type: 'text', name: 'kind', value: f.kind, placeholder: 'any', autocomplete: 'off' });
    const since = h('input', { type: 'datetime-local', name: 'since', value: toLocalInput(f.since) });
    const until = h('input', { type: 'datetime-local', name: 'until', value: toLocalInput(f.until) });
    const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter statistics' },
      field('Step name', name), field('Kind', kind), field('Started after', since), field('Started before', until),
      h('button', { type: 'submit', class: 'primary' }, 'Update'));
    const results = h('div', {});
    replace(outlet, h('div', { class: 'page-head' }, h('h1', {}, 'Step analytics')),
      h('p', { class: 'muted' }, 'Per step name, over every finished step: how often it ran, how long it took, how often it failed and how much it eliminated.'),
      form, results);
    const load = async () => {
      try {
        const { items } = await api.stats({ name: f.name, kind: f.kind, since: f.since, until: f.until }, { signal });
        if (!items.length) {
          replace(results, notice('info', 'No finished step matches.'));
          return;
        }
        const maxP95 = Math.max(...items.map((s) => s.p95_us), 1);
        const maxCount = Math.max(...items.map((s) => s.count), 1);
        replace(results, h('div', { class: 'table-wrap' }, h('table', { class: 'data stats-table' },
          h('thead', {}, h('tr', {},
            h('th', { scope: 'col' }, 'Step'), h('th', { scope: 'col' }, 'Runs'),
            h('th', { scope: 'col' }, 'Duration (p50 / p95)'), h('th', { scope: 'col' }, 'Error rate'),
            h('th', { scope: 'col' }, 'Mean elimination'))),
          h('tbody', {}, items.map((s) => h('tr', { dataset: { name: s.name } },
            h('th', { scope: 'row' }, h('a', { href: `/steps?name=${encodeURIComponent(s.name)}` }, s.name), ' ', kindBadge(s.kind)),
            h('td', { class: 'chart-cell' }, h('span', { class: 'chart-value' }, n(s.count)), bar(s.count, maxCount, 'count-bar')),
            h('td', { class: 'chart-cell' },
              h('span', { class: 'chart-value' }, `${duration(s.p50_us)} / ${duration(s.p95_us)}`),
              h('span', { class: 'stacked' }, bar(s.p50_us, maxP95, 'p50-bar'), bar(s.p95_us, maxP95, 'p95-bar'))),
            h('td', { class: 'chart-cell' }, h('span', { class: 'chart-value' }, pct(s.error_rate)), bar(s.error_rate, 1, 'error-bar')),
            h('td', { class: 'chart-cell' }, s.mean_elimination == null
              ? h('span', { class: 'muted' }, 'counts no candidates')
              : [h('span', { class: 'chart-value' }, pct(s.mean_elimination)), bar(s.mean_elimination, 1, 'elim-bar')])))))),
        h('p', { class: 'legend muted' }, h('span', { class: 'swatch p50' }), ' p50 ', h('span', { class: 'swatch p95' }), ' p95 (bars scaled to the slowest p95)'));
      } catch (e) {
        if (e.name !== 'AbortError') replace(results, notice('error', `Could not load statistics: ${e.message}`));
      }
    };
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      f.name = name.value.trim();
      f.kind = kind.value.trim();
      f.since = fromLocalInput(since.value);
      f.until = fromLocalInput(until.value);
      setQuery(f);
      load();
    });
    await load();
    return undefined;
  },
};
