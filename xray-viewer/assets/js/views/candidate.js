// Candidate: any candidate id → its path through every step of every run that saw it, with the
// verdict and the failing checks' reasons at each step ("why was X rejected?").

import { api } from '../api.js';
import { h, replace, notice, field, kindBadge } from '../dom.js';
import { n, time, num, brief, passedRule, shortId, metricsText, snapshotText } from '../format.js';
import { navigate } from '../router.js';
import { arrangePreviews } from '../preview.js';

/** Each run's block, each saying what its run was given, what differs between them first. */
function runBlocks(runs, id) {
  const given = arrangePreviews(runs.map((list) => list[0].execution_input_preview || []));
  return runs.map((list, i) => runBlock(list, id, given[i]));
}

function failing(entry) {
  return entry.checks.filter((c) => !c.passed);
}

function verdict(entry) {
  if (entry.selected) return h('span', { class: 'badge selected-badge' }, '★ selected');
  return h('span', { class: ['badge', entry.passed ? 'pass' : 'fail'] }, entry.passed ? 'passed' : 'rejected');
}

/** A check's reason, or for a passed structured check the rule it met (why it got through). */
function checkWhy(c) {
  const why = c.reason || (c.passed ? passedRule(c) : '');
  return why ? h('span', { class: c.passed ? 'muted' : 'reason-text' }, ` — ${why}`) : null;
}

/** What else the step said about the candidate: its metrics (a judge's confidence), its
 * snapshot (the judge's rationale), why it was selected. */
function notes(e) {
  const parts = [];
  if (e.metrics && e.metrics.length) parts.push(h('span', { class: 'lineage-metrics' }, metricsText(e.metrics, ' · ')));
  if (e.snapshot !== undefined && e.snapshot !== null) parts.push(h('span', { class: 'lineage-snapshot' }, brief(snapshotText(e.snapshot), 200)));
  if (e.selection_reason) parts.push(h('span', { class: 'lineage-selection' }, `selected: ${e.selection_reason}`));
  return parts.length ? h('p', { class: 'lineage-notes muted' }, parts.flatMap((p, i) => (i ? [' — ', p] : [p]))) : null;
}

/** A step's page, its table searched for the candidate (the step judged it among thousands).
 * The search matches ids and labels that contain the text, so a short id may bring a few other
 * rows along; an id longer than the search accepts (200 characters) links to the whole table. */
function stepHref(entry, id) {
  return id.length <= 200 ? `/steps/${entry.step_id}?q=${encodeURIComponent(id)}` : `/steps/${entry.step_id}`;
}

/**
 * One run's steps, in the order they ran, and the sentence that answers "why?". `given`: what
 * the run was given (`arrangePreviews`), which tells apart runs of one pipeline.
 */
function runBlock(runEntries, id, given) {
  const first = runEntries[0];
  const steps = [...runEntries].sort((a, b) => a.step_started_at - b.step_started_at);
  const rejectedAt = steps.find((e) => !e.passed);
  const selectedAt = steps.find((e) => e.selected);
  let answer;
  if (rejectedAt) {
    const reasons = failing(rejectedAt).map((c) => `${c.name}: ${c.reason || 'failed'}`).join('; ');
    answer = h('p', { class: 'answer answer-rejected' }, 'Rejected by ', h('a', { href: `/steps/${rejectedAt.step_id}?verdict=failed&q=${encodeURIComponent(id)}` }, rejectedAt.step_name),
      reasons ? [' — ', h('strong', {}, reasons)] : ' (no reason recorded)');
  } else if (selectedAt) {
    answer = h('p', { class: 'answer answer-selected' }, 'Selected by ', h('a', { href: stepHref(selectedAt, id) }, selectedAt.step_name),
      selectedAt.selection_reason ? [' — ', h('strong', {}, selectedAt.selection_reason)] : '.');
  } else {
    answer = h('p', { class: 'answer' }, 'Passed every step that judged it, and no step selected it.');
  }
  return h('article', { class: 'panel lineage-run' },
    h('h2', {}, h('a', { href: `/runs/${first.execution_id}` }, first.execution_name), ' ',
      // Runs of one pipeline share a name (and often a second): the id tells them apart.
      h('span', { class: 'mono muted run-short-id', title: first.execution_id }, shortId(first.execution_id)), ' ',
      h('span', { class: 'muted' }, time(first.execution_started_at))),
    given && given.text ? h('p', { class: 'input-preview muted', title: given.title }, given.text) : null,
    answer,
    h('ol', { class: 'lineage' }, steps.map((e) => h('li', { class: ['lineage-step', e.passed ? 'ok' : 'rejected', e.selected && 'chosen'] },
      h('div', { class: 'lineage-head' },
        h('a', { href: stepHref(e, id) }, e.step_name), ' ', kindBadge(e.step_kind), ' ', verdict(e),
        e.score != null ? h('span', { class: 'muted' }, ` score ${num(e.score, 3)}`) : null,
        e.label ? h('span', { class: 'muted cand-label' }, ` ${e.label}`) : null),
      notes(e),
      e.checks.length ? h('ul', { class: 'lineage-checks' }, e.checks.map((c) => h('li', { class: c.passed ? 'check-pass' : 'check-fail' },
        h('span', { class: 'check-mark' }, c.passed ? '✓' : '✗'), ` ${c.name}`,
        checkWhy(c)))) : null))));
}

export default {
  title: 'Candidate',
  async render({ outlet, query, signal }) {
    const id = query.get('id') || '';
    const input = h('input', { type: 'search', name: 'id', value: id, required: true, placeholder: 'e.g. B0001A2B3C', 'data-search': '', autocomplete: 'off' });
    const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Find a candidate' },
      field('Candidate id', input), h('button', { type: 'submit', class: 'primary' }, 'Trace'));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const value = input.value.trim();
      if (value) navigate(`/candidates?id=${encodeURIComponent(value)}`);
    });
    const results = h('div', { class: 'lineage-results' });
    replace(outlet, h('div', { class: 'page-head' }, h('h1', {}, id ? h('span', {}, 'Candidate ', h('span', { class: 'mono' }, id)) : 'Trace a candidate')),
      h('p', { class: 'muted' }, 'Where did a candidate go? Every step of every run that judged it, with the verdict and the reasons.'),
      form, results);
    if (!id) {
      input.focus();
      return undefined;
    }
    document.title = `${id} · X-Ray`;
    const entries = [];
    let cursor = null;
    const more = h('button', { type: 'button' }, 'Load older runs');
    const draw = () => {
      const byRun = new Map();
      for (const e of entries) {
        if (!byRun.has(e.execution_id)) byRun.set(e.execution_id, []);
        byRun.get(e.execution_id).push(e);
      }
      replace(results,
        entries.length === 0
          ? notice('info', `No step recorded an evaluation of “${id}”. Check the id (it is matched exactly).`)
          : h('p', { class: 'count-line' }, `Seen by ${n(entries.length)} ${entries.length === 1 ? 'step' : 'steps'} in ${n(byRun.size)} ${byRun.size === 1 ? 'run' : 'runs'}, newest run first.`),
        runBlocks([...byRun.values()], id),
        cursor ? more : null);
    };
    const load = async () => {
      try {
        const page = await api.candidate(id, { cursor, limit: 200 }, { signal });
        entries.push(...page.items);
        cursor = page.next_cursor;
        draw();
      } catch (e) {
        if (e.name !== 'AbortError') replace(results, notice('error', `Could not trace the candidate: ${e.message}`));
      }
    };
    more.addEventListener('click', load);
    await load();
    return undefined;
  },
};
