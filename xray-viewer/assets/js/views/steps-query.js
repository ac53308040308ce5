// Steps query: the cross-pipeline question as a form ("every filter step that eliminated more
// than 90% of its candidates last week"), listing the matching steps with links to their runs.

import { api } from '../api.js';
import { h, replace, notice, field, options, statusBadge, kindBadge } from '../dom.js';
import { n, pct, duration, time, toLocalInput, fromLocalInput, shortId } from '../format.js';
import { bar } from '../components/funnel.js';
import { setQuery } from '../router.js';

const KINDS = ['llm', 'search', 'filter', 'rank', 'select', 'transform'];

/**
 * The URL's `min_elimination` as the API takes it, a fraction: `0.9`, or `90` read as a percent
 * (the form shows percents, and a hand-typed `?min_elimination=90` means 90%, not an error).
 * A value up to 1 is a fraction (`1` is 100%; 1% is `0.01`), one above it up to 100 a percent.
 * Anything else goes to the API as typed, which names the parameter in its error.
 */
function asFraction(value) {
  if (value === null || value.trim() === '') return '';
  const x = Number(value);
  return Number.isFinite(x) && x > 1 && x <= 100 ? String(x / 100) : value;
}

export default {
  title: 'Steps',
  async render({ outlet, query, signal }) {
    const f = {
      kind: query.get('kind') || '',
      name: query.get('name') || '',
      execution_name: query.get('execution_name') || '',
      min_elimination: asFraction(query.get('min_elimination')),
      status: query.get('status') || '',
      since: query.get('since') ? Number(query.get('since')) : null,
      until: query.get('until') ? Number(query.get('until')) : null,
    };
    const kind = h('input', { type: 'text', name: 'kind', value: f.kind, list: 'step-kinds', placeholder: 'any', autocomplete: 'off' });
    const kinds = h('datalist', { id: 'step-kinds' }, KINDS.map((k) => h('option', { value: k })));
    const name = h('input', { type: 'text', name: 'name', value: f.name, placeholder: 'any', 'data-search': '', autocomplete: 'off' });
    const pipeline = h('input', { type: 'text', name: 'execution_name', value: f.execution_name, placeholder: 'any', autocomplete: 'off' });
    const minElim = h('input', { type: 'number', name: 'min_elimination', min: '0', max: '100', step: '1', placeholder: '0',
      value: f.min_elimination ? String(Math.round(Number(f.min_elimination) * 100)) : '' });
    const status = h('select', { name: 'status' }, options([['', 'any'], ['ok', 'ok'], ['error', 'error'], ['running', 'running'], ['lost', 'lost']], f.status));
    const since = h('input', { type: 'datetime-local', name: 'since', value: toLocalInput(f.since) });
    const until = h('input', { type: 'datetime-local', name: 'until', value: toLocalInput(f.until) });
    const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Find steps' },
      field('Kind', kind), kinds, field('Step name', name), field('Pipeline', pipeline),
      field('Min. eliminated %', minElim), field('Status', status),
      field('Started after', since), field('Started before', until),
      h('button', { type: 'submit', class: 'primary' }, 'Find steps'));
    const tbody = h('tbody', {});
    const table = h('table', { class: 'data steps-table' },
      h('thead', {}, h('tr', {}, ['Step', 'Run', 'Status', 'Started', 'Duration', 'Candidates', 'Eliminated'].map((t, i) =>
        h('th', { scope: 'col', class: i === 4 ? 'num' : '' }, t)))),
      tbody);
    const statusLine = h('p', { class: 'muted list-status', role: 'status' });
    const more = h('button', { type: 'button', hidden: true }, 'Load more steps');
    replace(outlet, h('div', { class: 'page-head' }, h('h1', {}, 'Steps across runs')),
      h('p', { class: 'muted' }, 'Ask across pipelines: for example every filter step that eliminated more than 90% of its candidates.'),
      form, h('div', { class: 'table-wrap' }, table), statusLine, more);

    let cursor = null;
    let shown = 0;
    const row = (s) => h('tr', { dataset: { step: s.id } },
      h('td', {}, h('a', { href: `/steps/${s.id}` }, s.name), ' ', kindBadge(s.kind)),
      h('td', {}, h('a', { href: `/runs/${s.execution_id}` }, s.execution_name), ' ', h('span', { class: 'id muted', title: s.execution_id }, shortId(s.execution_id))),
      h('td', {}, statusBadge(s.status)),
      h('td', {}, time(s.started_at)),
      h('td', { class: 'num' }, s.ended_at != null ? duration(s.ended_at - s.started_at) : '—'),
      h('td', {}, s.candidates_in != null || s.candidates_out != null ? `${n(s.candidates_in)} → ${n(s.candidates_out)}` : '—'),
      h('td', { class: 'elim' }, s.elimination != null ? [bar(s.elimination, 1, 'elim-bar'), ` ${pct(s.elimination)}`] : '—'));
    const load = async (append) => {
      try {
        const page = await api.steps({
          kind: f.kind, name: f.name, execution_name: f.execution_name, min_elimination: f.min_elimination,
          status: f.status, since: f.since, until: f.until, limit: 100, cursor: append ? cursor : null,
        }, { signal });
        if (!append) {
          tbody.replaceChildren();
          shown = 0;
        }
        page.items.forEach((s) => tbody.append(row(s)));
        shown += page.items.length;
        cursor = page.next_cursor;
        more.hidden = !cursor;
        statusLine.textContent = shown ? `${n(shown)} ${shown === 1 ? 'step' : 'steps'}${cursor ? ', more below' : ''}.` : 'No step matches.';
      } catch (e) {
        if (e.name !== 'AbortError') replace(statusLine, notice('error', `Could not search steps: ${e.message}${e.field ? ` (${e.field})` : ''}`));
      }
    };
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      f.kind = kind.value.trim();
      f.name = name.value.trim();
      f.execution_name = pipeline.value.trim();
      f.min_elimination = minElim.value === '' ? '' : String(Math.min(100, Math.max(0, Number(minElim.value))) / 100);
      f.status = status.value;
      f.since = fromLocalInput(since.value);
      f.until = fromLocalInput(until.value);
      setQuery(f);
      load(false);
    });
    more.addEventListener('click', () => load(true));
    await load(false);
    return undefined;
  },
};
