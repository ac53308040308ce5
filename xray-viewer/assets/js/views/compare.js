// Compare: two runs step by step; differing inputs and outputs highlighted; candidates whose
// verdict changed, with the reasons on each side; candidates only one run judged.

import { api } from '../api.js';
import { h, replace, notice, field, statusBadge } from '../dom.js';
import { n, duration, time, shortId, num, passedRule } from '../format.js';
import { jsonTree, diffPaths } from '../components/json-tree.js';
import { navigate, setQuery } from '../router.js';
import { arrangePreviews } from '../preview.js';

/** Each run's input preview for the picker, keyed by run id: the runs of one pipeline share a
 * name and often a minute, and their inputs are what tells them apart. */
function pickerPreviews(runs) {
  const byName = new Map();
  for (const r of runs) {
    if (!byName.has(r.name)) byName.set(r.name, []);
    byName.get(r.name).push(r);
  }
  const out = new Map();
  for (const group of byName.values()) {
    const arranged = arrangePreviews(group.map((r) => r.input_preview));
    group.forEach((r, i) => {
      const text = arranged[i].text;
      out.set(r.id, text.length > 90 ? `${text.slice(0, 89)}…` : text);
    });
  }
  return out;
}

/**
 * The run to compare `run` with by default: of the listed runs of the same pipeline, the one
 * whose input shares the most with `run`'s, a value counting more the fewer runs have it (the
 * same seller's category, not the configuration every run has); the newest among equals. A run
 * given the very same input is passed over while another is listed: comparing with it shows
 * nothing that explains a result. (Inputs are compared through their previews, the first 24
 * fields: two runs that differ only past them count as the same input.)
 */
export function similarRun(run, runs) {
  const pair = ([path, value]) => `${path}\u0000${value}`;
  const inputOf = (r) => (r.input_preview || []).map(pair).sort().join('\u0001');
  const pipeline = runs.filter((r) => r.id !== run.id && r.name === run.name);
  const other = pipeline.filter((r) => inputOf(r) !== inputOf(run));
  const same = other.length ? other : pipeline;
  const counts = new Map();
  for (const r of same) for (const f of r.input_preview || []) counts.set(pair(f), (counts.get(pair(f)) || 0) + 1);
  let best = null;
  let bestScore = -1;
  for (const r of same) {
    const has = new Set((r.input_preview || []).map(pair));
    let score = 0;
    for (const f of run.input_preview || []) {
      if (has.has(pair(f))) score += Math.log((same.length + 1) / counts.get(pair(f)));
    }
    if (score > bestScore + 1e-9) {
      best = r;
      bestScore = score;
    }
  }
  return best;
}

function stepCell(s) {
  if (!s) return h('span', { class: 'muted' }, 'not in this run');
  return h('span', { class: 'cmp-step' },
    h('a', { href: `/steps/${s.id}` }, statusBadge(s.status)), ' ',
    s.ended_at != null ? duration(s.ended_at - s.started_at) : '—',
    s.candidates_in != null || s.candidates_out != null ? h('span', { class: 'muted' }, ` · ${n(s.candidates_in)} → ${n(s.candidates_out)}`) : null);
}

/**
 * One side's verdict: its failed checks with their reasons and, when `other` (the other
 * side's verdict) failed checks this side passed, the rule each of those met here ("category:
 * Phone Cases in [Laptop Stands, …]"): why one run let through what the other rejected.
 */
function verdictText(v, other) {
  const failed = v.checks.filter((c) => !c.passed);
  const failedThere = new Set((other?.checks || []).filter((c) => !c.passed).map((c) => c.name));
  const met = v.checks.filter((c) => c.passed && failedThere.has(c.name));
  return h('div', { class: 'cmp-verdict' },
    h('span', { class: ['badge', v.selected ? 'selected-badge' : v.passed ? 'pass' : 'fail'] }, v.selected ? '★ selected' : v.passed ? 'passed' : 'failed'),
    v.score != null ? h('span', { class: 'muted' }, ` score ${num(v.score, 3)}`) : null,
    failed.length || met.length ? h('ul', { class: 'cmp-reasons' },
      failed.map((c) => h('li', {}, h('strong', {}, c.name), `: ${c.reason || 'failed'}`)),
      met.map((c) => h('li', { class: 'cmp-met' }, h('strong', {}, c.name), `: ${passedRule(c) || 'passed'}`))) : null);
}

function parse(v) {
  return v === null || v === undefined ? undefined : v;
}

function sideBySide(title, pair) {
  const [a, b] = pair.map(parse);
  const d = diffPaths(a, b);
  return h('div', { class: 'cmp-payload' }, h('h4', {}, title),
    h('div', { class: 'cmp-cols' },
      h('div', {}, h('p', { class: 'cmp-side' }, 'A'), jsonTree(a, { diff: d, label: `${title} in run A` })),
      h('div', {}, h('p', { class: 'cmp-side' }, 'B'), jsonTree(b, { diff: d, label: `${title} in run B` }))));
}

/** `pressed`: the check whose changes to list at once (`?step=<name>&check=<check>`). */
function pairDetail(p, id, pressed) {
  const parts = [];
  if (p.input_differs && p.inputs) parts.push(sideBySide('Input', p.inputs));
  if (p.output_differs && p.outputs) parts.push(sideBySide('Output', p.outputs));
  // The rules the step applied: when they differ, usually why its verdicts did.
  if (p.filters_differ && p.filters) parts.push(sideBySide('Filters', p.filters));
  // What one run judged and the other never saw first (the selected candidate of a run is
  // often there), then the verdicts that changed, with the checks that changed them. The
  // steps table's badges link to each.
  for (const [side, only, step, other, values] of [['A', p.only_a, p.a, p.b, p.only_a_values], ['B', p.only_b, p.b, p.a, p.only_b_values]]) {
    if (!only || !only.total) continue;
    parts.push(...onlyInTable(side, only, step, other, `${id}-only-${side}`, values || []));
  }
  if (p.verdict_changes.length) parts.push(...verdictChanges(p, `${id}-changes`, pressed));
  return parts;
}

/** The verdict-change badge's tooltip: the checks that changed them ("price 389 · category 36"). */
function byCheckTitle(p) {
  const checks = (p.verdict_changes_by_check || []).map((c) => `${c.check} ${n(c.failed_in_a + c.failed_in_b)}`);
  return checks.length ? `Changed by check: ${checks.join(' · ')}` : undefined;
}

/** What one check did to the verdicts: "12 failed it in B only", both sides when both. */
function checkCounts(c) {
  const sides = [];
  if (c.failed_in_a) sides.push(`${n(c.failed_in_a)} failed it in A only`);
  if (c.failed_in_b) sides.push(`${n(c.failed_in_b)} ${c.failed_in_a ? 'in B only' : 'failed it in B only'}`);
  return sides.join(', ');
}

/**
 * The verdict changes of a step pair, with a button per check that changed some (the server's
 * `verdict_changes_by_check`, most first): pressed, the table lists only that check's changes
 * (`/steps/{id}/verdict-changes?check=`); pressed again, all of them.
 */
function verdictChanges(p, id, pressed) {
  const byCheck = p.verdict_changes_by_check || [];
  const holder = h('div', { class: 'verdict-changes-holder' });
  const status = h('span', { class: 'muted', role: 'status' });
  let current = null;
  const buttons = byCheck.map((c) => {
    const button = h('button', { type: 'button', class: 'check-change', 'aria-pressed': 'false', dataset: { check: c.check } },
      h('span', {}, h('strong', {}, c.check), ` ${checkCounts(c)}`));
    button.addEventListener('click', () => show(current === c.check ? null : c.check));
    return button;
  });
  function address(check) {
    const here = new URLSearchParams(location.search);
    const mine = here.get('step') === p.name && Number(here.get('occurrence') || 0) === p.occurrence;
    if (check !== null) setQuery({ step: p.name, occurrence: p.occurrence || null, check });
    else if (mine) setQuery({ step: null, occurrence: null, check: null });
  }
  async function show(check) {
    current = check;
    buttons.forEach((b) => b.setAttribute('aria-pressed', String(b.dataset.check === check)));
    // In the address, so that the list can be shared and survives a reload: the pair by its
    // step's name and occurrence. Letting go clears it only if it names this pair.
    address(check);
    if (check === null) {
      status.textContent = `Showing every change (${changedCount(p)}).`;
      replace(holder, ...verdictChangesTable(p, null));
      return;
    }
    status.textContent = 'Loading…';
    try {
      const page = await api.verdictChanges(p.a.id, { other: p.b.id, check, limit: PAGE });
      if (current !== check) return;
      const c = byCheck.find((x) => x.check === check);
      const total = c.failed_in_a + c.failed_in_b;
      status.textContent = `Showing the ${n(total)} ${total === 1 ? 'change' : 'changes'} of ${check}.`;
      replace(holder, ...verdictChangesTable({
        ...p,
        verdict_changes: page.items,
        verdict_changes_cursor: page.next_cursor,
        verdict_changes_total: total,
        truncated: Boolean(page.next_cursor),
      }, check));
    } catch (err) {
      if (current !== check) return;
      // The table still lists every change: say so, and let go of the button.
      current = null;
      address(null);
      buttons.forEach((b) => b.setAttribute('aria-pressed', 'false'));
      status.textContent = `Could not load the ${check} check's changes (${err.message}); the table lists every change.`;
      replace(holder, ...verdictChangesTable(p, null));
    }
  }
  replace(holder, ...verdictChangesTable(p, null));
  if (pressed && byCheck.some((c) => c.check === pressed)) show(pressed);
  else if (pressed) address(null); // a check this pair's changes do not name
  // One element for the steps table's badge to lead to: the check buttons, then the table.
  return [h('div', { id },
    byCheck.length ? h('div', { class: 'check-changes', role: 'group', 'aria-label': 'Verdict changes by check' },
      h('span', {}, 'Changed by check (a change can count under more than one; press one to list only its changes):'), ...buttons, status) : null,
    holder)];
}

/** Rows of candidates judged differently, with the reasons on each side. */
function changeRows(changes) {
  return changes.map((c) => h('tr', {},
    h('th', { scope: 'row' }, h('a', { href: `/candidates?id=${encodeURIComponent(c.candidate_id)}`, class: 'mono' }, c.candidate_id),
      c.a.label || c.b.label ? h('div', { class: 'muted cand-label' }, c.a.label || c.b.label) : null),
    h('td', {}, verdictText(c.a, c.b)), h('td', {}, verdictText(c.b, c.a))));
}

/**
 * A "Show more" button under a paged table, with a status line. `load(cursor)` fetches the page
 * at `cursor`, appends its rows and resolves to `{ cursor, status, focus }`: the next cursor,
 * what to announce, and the element to move the keyboard to (the first new row: the button may
 * hide). `label()` is the button's text; `changed()` runs after every page.
 */
function pager(cls, cursor, load, label, changed) {
  const more = h('button', { type: 'button', class: `${cls}-more` });
  const status = h('span', { class: 'muted', role: 'status' });
  const actions = h('p', { class: `${cls}-actions` }, more, ' ', status);
  const update = () => {
    more.hidden = !cursor;
    actions.hidden = !cursor && !status.textContent;
    more.textContent = label();
  };
  more.addEventListener('click', async () => {
    more.disabled = true;
    status.textContent = 'Loading…';
    let focus = null;
    try {
      const page = await load(cursor);
      cursor = page.cursor;
      status.textContent = page.status;
      focus = page.focus;
    } catch (err) {
      status.textContent = `Could not load more: ${err.message}`;
    }
    more.disabled = false;
    changed();
    update();
    // Disabling the focused button dropped the keyboard's place: the first new row, else the
    // button again.
    (focus || (more.hidden ? null : more))?.focus();
  });
  update();
  return { actions, more: () => Boolean(cursor) };
}

/** How many candidates a pair's steps judged differently: the server's count (an older
 * server sends none: then the listed ones, "+" when there are more). */
function changedTotal(p) {
  return p.verdict_changes_total ?? p.verdict_changes.length;
}

function changedCount(p) {
  return p.verdict_changes_total != null ? n(p.verdict_changes_total) : `${n(p.verdict_changes.length)}${p.truncated ? '+' : ''}`;
}

/** The candidates judged differently (those `check` changed, when given): the first ones, then
 * "Show more" pages through `/steps/{id}/verdict-changes`. */
function verdictChangesTable(p, check) {
  let listed = p.verdict_changes.length;
  const caption = h('caption', {});
  const tbody = h('tbody', {}, changeRows(p.verdict_changes));
  const paging = pager('changes', p.verdict_changes_cursor, async (cursor) => {
    const page = await api.verdictChanges(p.a.id, { other: p.b.id, check, limit: PAGE, cursor });
    const rows = changeRows(page.items);
    tbody.append(...rows);
    listed += page.items.length;
    const next = page.next_cursor;
    return { cursor: next, status: next ? `Showing ${n(listed)}.` : `Showing all ${n(listed)}.`, focus: rows[0]?.querySelector('a') };
  }, () => {
    const left = p.verdict_changes_total != null ? Math.max(0, p.verdict_changes_total - listed) : null;
    return `Show ${n(left != null ? Math.min(PAGE, left) : PAGE)} more${left != null ? ` (${n(left)} left)` : ''}`;
  }, () => captionText());
  function captionText() {
    const more = paging.more();
    const total = p.verdict_changes_total != null ? n(p.verdict_changes_total) : `${n(listed)}${more ? '+' : ''}`;
    const what = check ? ` because of the ${check} check (failed in one run only)` : '';
    caption.textContent = `${total} candidates judged differently${what}${more ? ` · showing the first ${n(listed)}, in A's recorded order` : ''}`;
  }
  captionText();
  return [
    h('div', { class: 'table-wrap' }, h('table', { class: 'data verdict-changes' },
      caption,
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Candidate'), h('th', { scope: 'col' }, 'In A'), h('th', { scope: 'col' }, 'In B'))),
      tbody)),
    paging.actions,
  ];
}

/** Rows of candidates only one side judged. */
function onlyInRows(items) {
  return items.map((c) => h('tr', {},
    h('th', { scope: 'row' }, h('a', { href: `/candidates?id=${encodeURIComponent(c.candidate_id)}`, class: 'mono' }, c.candidate_id),
      c.verdict.label ? h('div', { class: 'muted cand-label' }, c.verdict.label) : null),
    h('td', {}, verdictText(c.verdict))));
}

/** "keyword phone case ×1,405 · category Phone Cases ×1,405": the values most of the candidates
 * only one side judged had (the server names those at least a fifth of them had). */
function onlyInValues(values) {
  if (!values.length) return null;
  const value = (v) => {
    const count = v.passed + v.failed;
    const verdict = v.failed === 0 ? '' : v.passed === 0 ? ' (all failed)' : ` (${n(v.failed)} failed)`;
    return `${v.observed} ×${n(count)}${verdict}`;
  };
  return h('span', { class: 'only-in-values' }, h('span', { class: 'muted' }, 'What they were: '),
    values.map((c, i) => [i ? ' · ' : '', h('strong', {}, c.check), ' ', c.values.map(value).join(', ')]));
}

/** Candidates only run `side` judged here: the comparison's first ones, then "Show more" pages
 * through `/steps/{id}/only-in` until every one is listed; the caption says what they were. */
function onlyInTable(side, only, step, other, id, values = []) {
  const otherSide = side === 'A' ? 'B' : 'A';
  let listed = only.items.length;
  let total = only.total;
  const heading = h('span', {});
  const caption = h('caption', {}, heading, onlyInValues(values));
  const tbody = h('tbody', {}, onlyInRows(only.items));
  const left = () => Math.max(0, total - listed);
  const paging = pager('only-in', only.next_cursor, async (cursor) => {
    const page = await api.onlyIn(step.id, { other: other.id, limit: PAGE, cursor });
    const rows = onlyInRows(page.items);
    tbody.append(...rows);
    listed += page.items.length;
    // A run still recording may have judged more since the comparison was made.
    total = Math.max(page.total, listed);
    return { cursor: page.next_cursor, status: `Showing ${n(listed)} of ${n(total)}.`, focus: rows[0]?.querySelector('a') };
  }, () => (left() > 0 ? `Show ${n(Math.min(PAGE, left()))} more (${n(left())} left)` : 'Show more'), () => captionText());
  function captionText() {
    const showing = listed < total ? `showing ${n(listed)}: ` : '';
    heading.textContent = `${n(total)} ${total === 1 ? 'candidate' : 'candidates'} judged by run ${side} but not by run ${otherSide} · ${showing}selected, then passed, then in recorded order`;
  }
  captionText();
  return [
    h('div', { class: 'table-wrap' }, h('table', { class: 'data only-in', id, dataset: { side } },
      caption,
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Candidate'), h('th', { scope: 'col' }, `In ${side}`))),
      tbody)),
    paging.actions,
  ];
}

/** Candidates fetched per "Show more". */
const PAGE = 100;

/** The number of candidates only one side's step judged, for the steps table. */
function onlyCount(p) {
  return (p.only_a ? p.only_a.total : 0) + (p.only_b ? p.only_b.total : 0);
}

async function picker(a, b, signal) {
  const selectA = h('select', { name: 'a', required: true });
  const selectB = h('select', { name: 'b', required: true });
  const form = h('form', { class: 'filters', 'aria-label': 'Pick two runs' },
    field('Run A', selectA), field('Run B', selectB), h('button', { type: 'submit', class: 'primary' }, 'Compare'));
  try {
    const page = await api.executions({ limit: 200 }, { signal });
    const runs = page.items;
    // By default the newest run (B) and the one before it of the same pipeline (A); with A
    // chosen (a run's "Compare with…"), the run of its pipeline whose input is most like A's.
    const chosenA = a && runs.find((r) => r.id === a);
    const newest = (chosenA && similarRun(chosenA, runs)) || runs.find((r) => r.id !== a) || runs[0];
    const previous = newest && (runs.find((r) => r.id !== newest.id && r.name === newest.name) || runs.find((r) => r.id !== newest.id));
    const previews = pickerPreviews(runs);
    for (const [select, chosen, fallback] of [[selectA, a, previous], [selectB, b, newest]]) {
      select.append(h('option', { value: '' }, 'choose a run'));
      const want = chosen || (fallback && !(a && fallback.id === a) ? fallback.id : '');
      if (chosen && !runs.some((r) => r.id === chosen)) select.append(h('option', { value: chosen, selected: true }, chosen));
      for (const r of runs) {
        const preview = previews.get(r.id);
        select.append(h('option', { value: r.id, selected: r.id === want },
          `${r.name} · ${time(r.started_at)} · ${r.status} · ${shortId(r.id)}${preview ? ` · ${preview}` : ''}`));
      }
    }
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    form.append(notice('error', `Could not list runs: ${e.message}`));
  }
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (selectA.value && selectB.value) navigate(`/compare?a=${selectA.value}&b=${selectB.value}`);
  });
  return form;
}

export default {
  title: 'Compare',
  async render({ outlet, query, signal }) {
    const a = query.get('a') || '';
    const b = query.get('b') || '';
    const results = h('div', {});
    replace(outlet, h('div', { class: 'page-head' }, h('h1', {}, 'Compare two runs')), await picker(a, b, signal), results);
    if (!a || !b) {
      results.append(h('p', { class: 'muted' }, 'Pick two runs of the same pipeline: their steps are paired by name, and each candidate judged differently is listed with the reasons on both sides.'));
      return undefined;
    }
    let cmp;
    results.append(h('p', { class: 'muted', role: 'status' }, 'Comparing the two runs…'));
    try {
      cmp = await api.compare(a, b, { signal });
    } catch (e) {
      if (e.name !== 'AbortError') replace(results, notice('error', `Could not compare: ${e.message}`));
      return undefined;
    }
    // Each card says what its run was given, the values that differ between the two first.
    const inputs = arrangePreviews([cmp.a.input_preview, cmp.b.input_preview]);
    const card = (label, r, input) => h('div', { class: 'panel cmp-card' },
      h('p', { class: 'cmp-side' }, label),
      h('h2', {}, h('a', { href: `/runs/${r.id}` }, r.name), ' ', statusBadge(r.status)),
      h('p', { class: 'meta' }, time(r.started_at), ' · ', r.completed_at ? duration(r.completed_at - r.started_at) : 'running',
        ` · ${n(r.step_count)} steps · ${n(r.candidates_in)} → ${r.status === 'error' ? 'failed' : n(r.candidates_out)}`),
      input.text ? h('p', { class: 'cmp-input muted', title: input.title || input.text }, input.text.length > 160 ? `${input.text.slice(0, 159)}…` : input.text) : null,
      h('p', { class: 'id muted' }, r.id));
    const changed = cmp.steps.filter((p) => p.input_differs || p.output_differs || p.filters_differ || p.verdict_changes.length || onlyCount(p) || !p.a || !p.b);
    // Each pair's panel has an id, so the steps table's badges can lead to its tables.
    const detailed = changed.filter((p) => p.a && p.b);
    detailed.forEach((p, i) => { p.panelId = `pair-${i}`; });
    // A badge that leads to its part of the pair's panel (`#<panel>-<part>`): the panel
    // opened, the part in view, the keyboard on its first control (a check button, else the
    // first candidate).
    const badge = (p, part, cls, text, title) => {
      if (!p.panelId) return h('span', { class: ['diff-badge', cls], title }, text);
      const link = h('a', { href: `#${p.panelId}-${part}`, class: ['diff-badge', cls], title }, text);
      link.addEventListener('click', (e) => {
        e.preventDefault();
        const panel = document.getElementById(p.panelId);
        if (panel) panel.open = true;
        const target = document.getElementById(`${p.panelId}-${part}`);
        target?.scrollIntoView({ block: 'start' });
        target?.querySelector('button.check-change, tbody a')?.focus({ preventScroll: true });
      });
      return link;
    };
    const onlyBadge = (p, side) => badge(p, `only-${side}`, 'diff-only',
      `${n(side === 'A' ? p.only_a.total : p.only_b.total)} only in ${side}`);
    // The pair `?step=<name>&check=<check>` asks for (the first of that name).
    const askedFor = (p) => p.name === query.get('step') && p.occurrence === Number(query.get('occurrence') || 0);
    const changesBadge = (p) => badge(p, 'changes', 'diff-verdicts',
      `${changedCount(p)} ${changedTotal(p) === 1 ? 'verdict' : 'verdicts'} changed`, byCheckTitle(p));
    const rows = cmp.steps.map((p) => {
      const diffs = [
        !p.a ? h('span', { class: 'diff-badge' }, 'only in B') : null,
        !p.b ? h('span', { class: 'diff-badge' }, 'only in A') : null,
        p.input_differs ? h('span', { class: 'diff-badge' }, 'input differs') : null,
        p.output_differs ? h('span', { class: 'diff-badge' }, 'output differs') : null,
        p.filters_differ ? h('span', { class: 'diff-badge' }, 'filters differ') : null,
        p.verdict_changes.length ? changesBadge(p) : null,
        p.only_a && p.only_a.total ? onlyBadge(p, 'A') : null,
        p.only_b && p.only_b.total ? onlyBadge(p, 'B') : null,
      ].filter(Boolean);
      return h('tr', { class: diffs.length ? 'row-differs' : '' },
        h('th', { scope: 'row' }, p.name, p.occurrence ? h('span', { class: 'muted' }, ` #${p.occurrence + 1}`) : null),
        h('td', {}, stepCell(p.a)), h('td', {}, stepCell(p.b)),
        h('td', {}, diffs.length ? diffs : h('span', { class: 'muted' }, 'same')));
    });
    replace(results,
      h('div', { class: 'cmp-cards' }, card('A', cmp.a, inputs[0]), card('B', cmp.b, inputs[1])),
      h('section', { class: 'panel' }, h('h2', {}, 'Steps side by side'),
        h('div', { class: 'table-wrap' }, h('table', { class: 'data compare-table' },
          h('thead', {}, h('tr', {}, ['Step', 'A', 'B', 'Differences'].map((t) => h('th', { scope: 'col' }, t)))),
          h('tbody', {}, rows)))),
      changed.length === 0 ? notice('info', 'The two runs made the same decisions: no input, output, filter or verdict differs.') : null,
      detailed.map((p, i) => h('details', { class: 'panel collapsible cmp-detail', id: p.panelId, open: i < 3 || askedFor(p) },
        h('summary', {}, h('h2', {}, `${p.name}${p.occurrence ? ` #${p.occurrence + 1}` : ''}: what differs`)),
        pairDetail(p, p.panelId, askedFor(p) ? query.get('check') : null))));
    // A shared link to one check's changes opens where they are.
    const asked = detailed.find(askedFor);
    if (asked && query.get('check')) document.getElementById(`${asked.panelId}-changes`)?.scrollIntoView({ block: 'start' });
    return undefined;
  },
};
