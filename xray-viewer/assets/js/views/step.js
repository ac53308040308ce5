// Step: what went in and out, the filters, the selection and its reason, reasoning, logs, error,
// and the candidates table (every check's verdict and reason), virtualized and paged.

import { api, truncation } from '../api.js';
import { h, replace, statusBadge, kindBadge, notice, section, collapsible, field, options, debounce } from '../dom.js';
import { n, pct, duration, time, num, brief, topReasons, metricsText, passedRule, snapshotText } from '../format.js';
import { jsonTree } from '../components/json-tree.js';
import { VirtualTable } from '../components/virtual-table.js';
import { bar } from '../components/funnel.js';
import { live } from '../live.js';
import { navigate, setQuery } from '../router.js';
import { viewShortcuts } from '../shortcuts.js';

/** What a value's count was counted for: the check, the verdict, the value (and no search). */
function filterKey(f) {
  return JSON.stringify([f.check, f.verdict, f.observed, f.q]);
}

/** The row count the filters will give, when the exact summary tells it. */
function knownTotal(summary, f) {
  // A value's count is known when its button in the values table set the filters.
  if (f.observed != null) return f.observedCount && f.observedCount.key === filterKey(f) ? f.observedCount.n : null;
  if (!summary || f.q) return null;
  if (f.check) {
    if (summary.sampled) return null;
    const c = summary.checks.find((x) => x.name === f.check);
    if (!c) return null;
    return f.verdict === 'passed' ? c.passed : c.failed;
  }
  if (f.verdict === 'passed') return summary.sampled ? null : summary.passed;
  if (f.verdict === 'failed') return summary.sampled ? null : summary.failed;
  return summary.kept;
}

/**
 * The sort menu's choices: recorded order, score (when the rows have one), and each metric the
 * rows carry (`metric:confidence` is the API's `sort=metric&metric=confidence`).
 */
function sortChoices(metrics, scores = true) {
  return [['recorded', 'recorded order'],
    ...(scores ? [['score', 'score, highest first'], ['score_asc', 'score, lowest first']] : []),
    ...metrics.flatMap((m) => [[`metric:${m}`, `${m}, highest first`], [`metric_asc:${m}`, `${m}, lowest first`]])];
}

/** What a sort menu value says (`confidence, lowest first`). */
function sortLabel(sort) {
  const { metric } = sortParams(sort);
  const choice = sortChoices(metric ? [metric] : []).find(([value]) => value === sort);
  return choice ? choice[1] : sort;
}

/** The API's `sort` and `metric` for a sort menu value. */
function sortParams(sort) {
  const at = sort.indexOf(':');
  if (at > 0) return { sort: sort.slice(0, at), metric: sort.slice(at + 1) };
  return { sort: sort === 'recorded' ? '' : sort, metric: '' };
}

/** The sort menu value for the page's `sort` and `metric` parameters. */
function sortOf(query) {
  const sort = query.get('sort') === 'metric_desc' ? 'metric' : query.get('sort') || 'recorded';
  const metric = query.get('metric');
  if (sort === 'metric' || sort === 'metric_asc') return metric ? `${sort}:${metric}` : 'recorded';
  return sort;
}

function describe(f, total, missingMetric = '') {
  const value = f.check && f.observed != null ? ` with the value “${f.observed}”` : '';
  const what = f.check
    ? `${f.verdict === 'passed' ? 'passed' : 'failed'} the “${f.check}” check${value}`
    : f.verdict === 'passed' ? 'passed every check' : f.verdict === 'failed' ? 'failed a check' : '';
  const count = total === null ? 'Candidates' : `${n(total)} ${total === 1 ? 'candidate' : 'candidates'}`;
  const search = f.q ? ` matching “${f.q}”` : '';
  const sorted = f.sort === 'recorded' ? '' : ` · sorted by ${sortLabel(f.sort)}`;
  const missing = missingMetric ? ` (no candidate here has a metric “${missingMetric}”: recorded order)` : '';
  return `${count}${what ? ` that ${what}` : ''}${search}${sorted}${missing}`;
}

/**
 * A check's cell: a failed check with its reason; a passed one with what it saw (the keyword
 * that found the candidate, its category), so the column reads without opening each row.
 */
function checkCell(check) {
  if (!check) return h('span', { class: 'muted' }, '·');
  const reason = check.reason || '';
  const seen = check.passed && check.observed !== undefined && check.observed !== null
    ? (typeof check.observed === 'number' ? num(check.observed, 4) : brief(check.observed, 60)) : '';
  const rule = check.passed ? passedRule(check) : '';
  return h('span', { class: ['check', check.passed ? 'check-pass' : 'check-fail'], title: `${check.name}: ${check.passed ? 'passed' : 'failed'}${reason ? ` — ${reason}` : rule ? ` — ${rule}` : ''}` },
    h('span', { class: 'check-mark', 'aria-label': check.passed ? 'passed' : 'failed' }, check.passed ? '✓' : '✗'),
    !check.passed && reason ? h('span', { class: 'check-reason' }, reason) : null,
    seen ? h('span', { class: 'check-reason check-seen muted' }, seen) : null);
}

/**
 * A row's verdict. In a step that selects (`selects`), a candidate that passed its checks but
 * was not selected is "not selected": for a ranking step, whose rows have no checks, "passed"
 * would read as if every candidate got through.
 */
function verdictCell(row, selects = false) {
  if (selects && row.passed && !row.selected) {
    return h('span', { class: 'verdict' }, h('span', { class: 'badge not-selected', title: 'passed its checks; this step selected another candidate' }, 'not selected'));
  }
  return h('span', { class: 'verdict' },
    h('span', { class: ['badge', row.passed ? 'pass' : 'fail'] }, row.passed ? 'passed' : 'failed'),
    row.selected ? h('span', { class: 'badge selected-badge', title: 'selected by this step' }, '★ selected') : null);
}

function detail(row, selects) {
  const checks = h('table', { class: 'data compact' },
    h('thead', {}, h('tr', {}, ['Check', 'Verdict', 'Reason', 'Observed', 'Rule'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, (row.checks || []).map((c) => h('tr', { class: c.passed ? '' : 'row-fail' },
      h('th', { scope: 'row' }, c.name),
      h('td', {}, h('span', { class: ['badge', c.passed ? 'pass' : 'fail'] }, c.passed ? 'passed' : 'failed')),
      // A passed check has no reason; a structured one says the rule it met, as the candidate
      // view does. Observed values and rules are shown whole: this is the row's detail.
      h('td', {}, c.reason || (c.passed && passedRule(c) ? h('span', { class: 'muted' }, passedRule(c)) : h('span', { class: 'muted' }, '—'))),
      h('td', {}, c.observed !== undefined ? brief(c.observed, 500) : '—'),
      h('td', {}, c.op ? `${c.op} ${brief(c.threshold, 500)}` : '—')))));
  return h('div', { class: 'candidate-detail' },
    h('h3', {}, h('a', { href: `/candidates?id=${encodeURIComponent(row.candidate_id)}` }, row.candidate_id), ' ',
      row.label ? h('span', { class: 'muted' }, row.label) : null, ' ', verdictCell(row, selects)),
    (row.checks || []).length ? checks : h('p', { class: 'muted' }, 'No checks were recorded for this candidate.'),
    row.score != null ? h('p', {}, 'Score: ', h('strong', {}, num(row.score, 4))) : null,
    (row.metrics || []).length ? h('p', {}, 'Metrics: ', row.metrics.map(([k, v]) => h('span', { class: 'metric' }, `${k} ${num(v, 4)}`))) : null,
    row.snapshot !== undefined && row.snapshot !== null ? h('div', {}, h('h4', {}, 'Snapshot'),
      // On one line first (a judge's rationale is what the row is about), then as a tree.
      h('p', { class: 'snapshot-line' }, brief(snapshotText(row.snapshot), 500)),
      jsonTree(row.snapshot, { label: 'Candidate snapshot' })) : null,
    h('p', {}, h('a', { href: `/candidates?id=${encodeURIComponent(row.candidate_id)}` }, 'Follow this candidate through every run →')));
}

export default {
  title: 'Step',
  async render({ outlet, params, query, signal }) {
    const id = params.id;
    const f = {
      verdict: query.get('verdict') || '',
      check: query.get('check') || '',
      // The value the check saw (`observed=`, from the values table): with `check` only.
      observed: (query.get('check') && query.get('observed')) || null,
      sort: sortOf(query),
      q: query.get('q') || '',
    };
    let step;
    try {
      step = await api.step(id, { signal });
    } catch (e) {
      if (e.name === 'AbortError') return undefined;
      replace(outlet, notice('error', e.status === 404 ? `There is no step ${id}.` : `Could not load the step: ${e.message}`));
      return undefined;
    }
    document.title = `${step.name} · ${step.execution_name || 'run'} · X-Ray`;
    const summary = step.summary;
    const siblings = { prev: null, next: null };
    const stepNav = h('span', { class: 'step-nav' });

    const crumbs = h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' },
      h('a', { href: '/' }, 'Runs'), ' / ',
      h('a', { href: `/runs/${step.execution_id}` }, step.execution_name || 'run'), ' / ',
      h('span', { 'aria-current': 'page' }, step.name));
    const elim = step.elimination;
    const head = h('div', { class: 'page-head' },
      h('div', {},
        h('h1', {}, step.name, ' ', kindBadge(step.kind), ' ', statusBadge(step.status)),
        h('p', { class: 'meta' },
          'started ', time(step.started_at), ' · ',
          step.duration_us != null ? duration(step.duration_us) : 'still running',
          step.candidates_in != null || step.candidates_out != null
            ? ` · candidates ${n(step.candidates_in)} → ${n(step.candidates_out)}` : '',
          elim != null ? ` · ${pct(elim)} eliminated` : '')),
      h('div', { class: 'page-actions' }, stepNav));

    const blocks = [];
    if (step.error) blocks.push(notice('error', h('strong', {}, 'The step failed: '), h('span', { class: 'pre' }, step.error)));
    if (step.selection.length) {
      blocks.push(section('Selection', h('ul', { class: 'selection' }, step.selection.map((s) => h('li', {},
        h('a', { href: `/candidates?id=${encodeURIComponent(s.candidate_id)}`, class: 'mono' }, s.candidate_id),
        h('span', { class: 'reason-text' }, s.reason))))));
    }
    if (step.reasoning) blocks.push(section('Reasoning', h('p', { class: 'pre reasoning' }, step.reasoning)));

    // A value's count in the values table: a button that lists those candidates (a value is
    // named by its text; "no value recorded" cannot be, and stays a number).
    const valueLink = (check, x, verdict) => {
      const count = x[verdict];
      const text = verdict === 'failed' && count ? h('span', { class: 'error-text' }, n(count)) : n(count);
      // (An empty text cannot travel in the address: it stays a number too.)
      if (!count || x.observed == null || x.observed === '') return text;
      const button = h('button', { type: 'button', class: 'link-button value-rows', dataset: { verdict },
        'aria-label': `Show the ${n(count)} candidates that ${verdict} ${check} with the value ${x.observed}` }, text);
      button.addEventListener('click', () => {
        const next = { check, verdict, observed: x.observed, q: '' };
        setFilters({ ...next, observedCount: { key: filterKey(next), n: count } });
        candidatesSection.scrollIntoView({ block: 'start' });
      });
      return button;
    };

    // The values one check saw (`GET /steps/{id}/check-values`), in a row under the check's.
    const toggleValues = async (row, button, check) => {
      const open = row.nextElementSibling?.classList.contains('check-values-row') ? row.nextElementSibling : null;
      if (open) {
        open.remove();
        button.setAttribute('aria-expanded', 'false');
        if (new URLSearchParams(location.search).get('values') === check) setQuery({ values: null });
        return;
      }
      button.setAttribute('aria-expanded', 'true');
      setQuery({ values: check });
      const cell = h('td', { colspan: '6' }, h('p', { class: 'muted' }, `Loading the values ${check} saw…`));
      row.after(h('tr', { class: 'check-values-row' }, cell));
      try {
        const v = await api.checkValues(id, { check, limit: 20 }, { signal });
        const most = Math.max(1, ...v.values.map((x) => x.passed + x.failed));
        replace(cell,
          h('p', { class: 'muted' }, `${check} saw ${n(v.distinct)} ${v.distinct === 1 ? 'value' : 'different values'} in ${n(v.evaluations)} evaluations${v.distinct > v.values.length ? `; the ${n(v.values.length)} most frequent` : ''}${summary && summary.kept < summary.total ? ' (among the rows kept)' : ''}:`),
          h('table', { class: 'data compact check-values' },
            h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Value'), h('th', { scope: 'col', class: 'num' }, 'Passed'), h('th', { scope: 'col', class: 'num' }, 'Failed'), h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Share')))),
            h('tbody', {}, v.values.map((x) => h('tr', {},
              h('td', {}, x.observed == null ? h('span', { class: 'muted' }, 'no value recorded') : x.observed),
              h('td', { class: 'num' }, valueLink(check, x, 'passed')),
              h('td', { class: 'num' }, valueLink(check, x, 'failed')),
              h('td', {}, bar(x.passed + x.failed, most, x.failed > x.passed ? 'fail-bar' : 'pass-bar')))))));
      } catch (e) {
        if (e.name !== 'AbortError') replace(cell, notice('error', `Could not load the values ${check} saw: ${e.message}`));
      }
    };

    // The exact per-check summary, each count a way into the table.
    let table = null;
    const candidatesSection = h('section', { class: 'panel candidates', id: 'candidates' });
    if (summary) {
      const maxFailed = Math.max(1, ...summary.checks.map((c) => c.failed));
      const checkRows = summary.checks.map((c) => {
        const show = h('button', { type: 'button', class: 'link-button', 'aria-label': `Show the ${n(c.failed)} candidates that failed ${c.name}` }, n(c.failed));
        show.addEventListener('click', () => {
          setFilters({ verdict: 'failed', check: c.name, observed: null });
          candidatesSection.scrollIntoView({ block: 'start' });
        });
        const valuesButton = h('button', { type: 'button', class: 'link-button check-values-toggle', 'aria-expanded': 'false', 'aria-label': `Values the ${c.name} check saw` }, 'values');
        const row = h('tr', { dataset: { check: c.name } },
          h('th', { scope: 'row' }, c.name),
          h('td', { class: 'num' }, n(c.passed)),
          h('td', { class: 'num' }, c.failed ? show : '0', ' ', bar(c.failed, maxFailed, 'fail-bar')),
          h('td', { class: 'num' }, n(c.first_failed)),
          h('td', {}, h('span', { class: 'reasons' }, topReasons(c.top_reasons).map(([r, k]) => h('span', { class: 'reason' }, r, h('span', { class: 'muted' }, ` ×${n(k)}`))))),
          h('td', {}, valuesButton));
        valuesButton.addEventListener('click', () => toggleValues(row, valuesButton, c.name));
        return row;
      });
      // `values=<check>` in the address (the funnel's "Rejected none" links): open at once.
      const asked = query.get('values');
      const askedRow = checkRows.find((r) => r.dataset.check === asked);
      if (askedRow) queueMicrotask(() => toggleValues(askedRow, askedRow.querySelector('.check-values-toggle'), asked));
      if (summary.checks.length) blocks.push(section('Checks',
        h('p', { class: 'muted' }, `${n(summary.total)} evaluations: ${n(summary.passed)} passed, ${n(summary.failed)} failed (exact counts).`),
        h('div', { class: 'table-wrap' }, h('table', { class: 'data checks-table' },
          h('thead', {}, h('tr', {},
            h('th', { scope: 'col' }, 'Check'), h('th', { scope: 'col', class: 'num' }, 'Passed'),
            h('th', { scope: 'col', class: 'num' }, 'Failed'),
            h('th', { scope: 'col', class: 'num', title: 'Candidates for which this was the first failed check: the loss attributed to it' }, 'Eliminated first'),
            h('th', { scope: 'col' }, 'Most frequent reasons'),
            h('th', { scope: 'col', title: 'The values each check saw, with how many passed and failed: which keyword found the candidates, which categories passed' }, 'Seen'))),
          h('tbody', {}, checkRows)))));
      blocks.push(candidatesSection);
    }

    const payloads = [
      ['Input', step.input, true],
      ['Output', step.output, false],
      ['Filters', step.filters, Boolean(step.filters)],
      ['Metadata', step.metadata, false],
    ];
    for (const [title, value, open] of payloads) {
      if (value === null || value === undefined) continue;
      if (title === 'Metadata' && typeof value === 'object' && Object.keys(value).length === 0) continue;
      const cut = truncation(value);
      const block = collapsible(cut ? `${title} · truncated` : title, open, jsonTree(value, { label: `Step ${title.toLowerCase()}` }));
      block.classList.add(`payload-${title.toLowerCase()}`);
      blocks.push(block);
    }
    if (step.logs.length || step.logs_dropped) {
      blocks.push(collapsible(`Logs (${n(step.logs.length)})`, step.status === 'error',
        step.logs_dropped ? notice('warn', `${n(step.logs_dropped)} more log lines were not kept (per-step cap).`) : null,
        h('div', { class: 'table-wrap' }, h('table', { class: 'data compact logs' },
          h('thead', {}, h('tr', {}, ['Time', 'Level', 'Target', 'Message', 'Fields'].map((t) => h('th', { scope: 'col' }, t)))),
          h('tbody', {}, step.logs.map((l) => h('tr', { class: `log-${String(l.level).toLowerCase()}` },
            h('td', { class: 'mono' }, time(l.at)), h('td', {}, l.level), h('td', { class: 'mono' }, l.target),
            h('td', {}, l.message), h('td', { class: 'mono' }, brief(l.fields, 120)))))))));
    }
    replace(outlet, crumbs, head, ...blocks);

    // The candidates table.
    let detailPane = null;
    let setFilters = () => {};
    if (summary) {
      const checkNames = summary.checks.map((c) => c.name);
      const verdictSelect = h('select', { name: 'verdict', id: 'verdict' },
        options([['', 'all candidates'], ['passed', 'passed'], ['failed', 'failed']], f.verdict));
      const checkSelect = h('select', { name: 'check', id: 'check' },
        options([['', 'any check'], ...checkNames.map((c) => [c, c])], f.check));
      // Metrics are named by the rows: the first page's names, and the one the address sorts by.
      const metricNames = new Set();
      if (sortParams(f.sort).metric) metricNames.add(sortParams(f.sort).metric);
      const sortSelect = h('select', { name: 'sort', id: 'sort' }, options(sortChoices([...metricNames]), f.sort));
      api.evaluations(id, { limit: 200 }, { signal }).then((page) => {
        for (const row of page.items) for (const [name] of row.metrics || []) metricNames.add(name);
        // A judge's rows have no score: no score sort to offer, unless the address asks for it.
        const scores = page.items.some((row) => row.score != null) || f.sort.startsWith('score');
        sortSelect.replaceChildren(...options(sortChoices([...metricNames], scores), f.sort));
      }).catch(() => {});
      const search = h('input', { type: 'search', name: 'q', id: 'candidate-search', value: f.q, placeholder: 'candidate id or label', 'data-search': '', autocomplete: 'off' });
      const countLine = h('p', { class: 'count-line', role: 'status' });
      const sampleNote = summary.sampled
        ? notice('warn', h('strong', {}, 'A sample: '),
          `${n(summary.kept)} of ${n(summary.total)} evaluations were kept (capture ${summary.capture}): every selected candidate, those that failed near a threshold, and a deterministic sample of the rest. The counts above are exact; the rows below are the sample.`)
        : summary.kept < summary.total
          ? notice('info', `${n(summary.kept)} of ${n(summary.total)} evaluations were kept (capture ${summary.capture}).`)
          : null;
      const columns = [
        { title: 'Candidate', min: 18, grow: 2, render: (r) => h('span', { class: 'cand' },
          h('a', { href: `/candidates?id=${encodeURIComponent(r.candidate_id)}`, class: 'mono cand-id' }, r.candidate_id),
          r.label ? h('span', { class: 'cand-label', title: r.label }, r.label) : null) },
        // Room for "passed ★ selected" when the step selects.
        // The row's verdict in the step (a filter on one check may list rows the step failed).
        { title: 'Step verdict', min: step.selection.length ? 12.5 : 8, render: (r) => verdictCell(r, step.selection.length > 0) },
        ...checkNames.map((name) => ({
          title: name, min: 9, grow: 1.2, className: 'col-check',
          render: (r) => checkCell((r.checks || []).find((c) => c.name === name)),
        })),
        { title: 'Score', min: 5.5, className: 'num', render: (r) => (r.score == null ? h('span', { class: 'muted' }, '—') : num(r.score, 3)) },
        { title: 'Metrics', min: 8, grow: 0.8, render: (r) => {
          const text = metricsText(r.metrics);
          if (!text) return '';
          // The metric the table is sorted by comes first, in bold.
          const sortedBy = sortParams(f.sort).metric;
          const first = sortedBy ? (r.metrics || []).filter(([k]) => k === sortedBy).slice(0, 1) : [];
          if (!first.length) return h('span', { title: text }, text);
          const rest = (r.metrics || []).filter((m) => m !== first[0]);
          return h('span', { title: text }, h('strong', { class: 'sorted-metric' }, metricsText(first)),
            rest.length ? `, ${metricsText(rest)}` : '');
        } },
      ];
      detailPane = h('div', { class: 'detail-pane', 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Select a row to see every check with its observed value and rule.'));
      // A metric no row of the step has (a misspelled address) is a 400 naming `metric`: the
      // rows then come in recorded order. A metric only the rows filtered out have comes back
      // sorted with the rows lacking it first in recorded order. Either way the count line says
      // why the rows are not in the metric's order.
      let loads = 0;
      const loader = () => {
        // Only the latest filters' answer may write the count line: an older, slower one
        // (a refused sort is answered after two more queries) would leave a stale note.
        const mine = ++loads;
        let unsorted = false;
        const get = (cursor, limit) => api.evaluations(id, {
          passed: f.verdict === 'passed' ? 'true' : f.verdict === 'failed' ? 'false' : '',
          check: f.check, observed: f.check ? f.observed : null,
          q: f.q, ...(unsorted ? {} : sortParams(f.sort)), limit, cursor,
        }, { signal });
        const { metric } = sortParams(f.sort);
        return (cursor, limit) => get(cursor, limit).then((page) => {
          const first = page.items[0];
          if (mine === loads && !cursor && metric && first && !(first.metrics || []).some(([k]) => k === metric)) {
            countLine.textContent = describe(f, knownTotal(summary, f), metric);
          }
          return page;
        }, (e) => {
          if (cursor || unsorted || !metric || e.field !== 'metric') throw e;
          unsorted = true;
          if (mine === loads) countLine.textContent = describe(f, knownTotal(summary, f), metric);
          return get(cursor, limit);
        });
      };
      table = new VirtualTable({
        columns, label: 'Candidates', load: loader(), total: knownTotal(summary, f),
        empty: 'No candidate matches these filters.',
        // A search for one candidate opens its detail at once (a link from its history).
        selectOnly: () => Boolean(f.q),
        onSelect: (row, i, { only } = {}) => {
          replace(detailPane, detail(row, step.selection.length > 0));
          // The one candidate searched for (a link from its history): its checks, in view.
          if (only && f.q) detailPane.scrollIntoView({ block: 'nearest' });
        },
      });
      const refresh = () => {
        countLine.textContent = describe(f, knownTotal(summary, f));
        setQuery({ verdict: f.verdict, check: f.check, observed: f.check ? f.observed : null, ...sortParams(f.sort), q: f.q });
        table.reset(loader(), knownTotal(summary, f));
        replace(detailPane, h('p', { class: 'muted' }, 'Select a row to see every check with its observed value and rule.'));
      };
      // The value the rows are narrowed to, with a button that lets go of it.
      const valueFilter = h('p', { class: 'value-filter' });
      const showValue = () => {
        valueFilter.hidden = !(f.check && f.observed != null);
        if (valueFilter.hidden) return valueFilter.replaceChildren();
        const clear = h('button', { type: 'button', class: 'link-button', 'aria-label': `Any value of ${f.check}` }, 'any value');
        clear.addEventListener('click', () => setFilters({ observed: null }));
        return replace(valueFilter, `Only the value “${f.observed}” of ${f.check} · `, clear);
      };
      setFilters = (next) => {
        Object.assign(f, next);
        if (!f.check) f.observed = null;
        showValue();
        verdictSelect.value = f.verdict;
        checkSelect.value = f.check;
        sortSelect.value = f.sort;
        search.value = f.q;
        refresh();
      };
      verdictSelect.addEventListener('change', () => setFilters({ verdict: verdictSelect.value }));
      checkSelect.addEventListener('change', () => setFilters({ check: checkSelect.value, observed: null, verdict: checkSelect.value && !f.verdict ? 'failed' : f.verdict }));
      sortSelect.addEventListener('change', () => setFilters({ sort: sortSelect.value }));
      const typed = debounce(() => setFilters({ q: search.value.trim() }), 250);
      search.addEventListener('input', typed);
      countLine.textContent = describe(f, knownTotal(summary, f));
      showValue();
      replace(candidatesSection,
        h('h2', {}, 'Candidates'),
        sampleNote,
        h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter candidates', onsubmit: (e) => e.preventDefault() },
          field('Verdict', verdictSelect), field('On check', checkSelect), field('Sort by', sortSelect), field('Search', search)),
        valueFilter,
        countLine,
        table.element,
        detailPane);
    }

    // Previous and next step of the same run, for j/k and the buttons.
    api.execution(step.execution_id, { signal }).then((run) => {
      const i = run.steps.findIndex((s) => s.id === id);
      siblings.prev = i > 0 ? run.steps[i - 1] : null;
      siblings.next = i >= 0 && i < run.steps.length - 1 ? run.steps[i + 1] : null;
      replace(stepNav,
        siblings.prev ? h('a', { class: 'button', href: `/steps/${siblings.prev.id}`, title: 'Previous step (k)' }, `← ${siblings.prev.name}`) : null,
        siblings.next ? h('a', { class: 'button', href: `/steps/${siblings.next.id}`, title: 'Next step (j)' }, `${siblings.next.name} →`) : null);
    }).catch(() => {});

    let reload = 0;
    const unsubscribe = step.status === 'running' ? live.subscribe((m) => {
      if (m.step && m.step.id === id && m.step.status !== 'running' && !reload) {
        reload = setTimeout(() => navigate(location.pathname + location.search, { replace: true }), 200);
      }
    }) : () => {};
    const unkeys = viewShortcuts([
      ['j', 'Next step of this run', () => siblings.next && navigate(`/steps/${siblings.next.id}`)],
      ['k', 'Previous step of this run', () => siblings.prev && navigate(`/steps/${siblings.prev.id}`)],
      ['u', 'Up to the run', () => navigate(`/runs/${step.execution_id}`)],
      ['f', 'Show failed candidates', () => setFilters({ verdict: 'failed' })],
    ]);
    return () => {
      unsubscribe();
      unkeys();
      clearTimeout(reload);
      if (table) table.destroy();
    };
  },
};
