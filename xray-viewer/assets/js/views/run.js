// Run: the step tree as a waterfall (running steps grow live), the funnel with each step's loss
// attributed to its checks, tags and notes, and exports.

import { api, download } from '../api.js';
import { h, replace, statusBadge, notice, section, collapsible } from '../dom.js';
import { n, duration, time, ago } from '../format.js';
import { funnel } from '../components/funnel.js';
import { waterfall } from '../components/waterfall.js';
import { jsonTree } from '../components/json-tree.js';
import { live } from '../live.js';
import { navigate } from '../router.js';
import { viewShortcuts } from '../shortcuts.js';
import { neighbourRun } from '../state.js';

function parse(value) {
  return value === null || value === undefined ? undefined : value;
}

/** Whether a payload is short enough to show open (a few lines), not only on request. */
function short(value) {
  if (value === null || value === undefined) return false;
  return JSON.stringify(value).length <= 1200;
}

function runDuration(run) {
  if (run.duration_us != null) return duration(run.duration_us);
  if (run.status === 'running') return `${duration(Date.now() * 1000 - run.started_at)} so far`;
  return '—';
}

/** Tags and notes, editable; a refusal (read-only server) is shown, not swallowed. */
function editor(run, onSaved) {
  const wrap = h('div', { class: 'annotations' });
  const message = h('p', { class: 'save-status', role: 'status' });
  const tagsInput = h('input', { type: 'text', value: run.tags.join(', '), 'aria-describedby': 'tags-hint', autocomplete: 'off' });
  const notesInput = h('textarea', { rows: '2' }, run.notes || '');
  const save = h('button', { type: 'submit' }, 'Save tags and notes');
  const form = h('form', { class: 'annotate-form', 'aria-label': 'Tags and notes' },
    h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'Tags'), tagsInput,
      h('span', { class: 'hint', id: 'tags-hint' }, 'Comma-separated')),
    h('label', { class: 'field field-wide' }, h('span', { class: 'field-label' }, 'Notes'), notesInput),
    save, message);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    save.disabled = true;
    message.textContent = 'Saving…';
    try {
      const tags = tagsInput.value.split(',').map((t) => t.trim()).filter(Boolean);
      const updated = await api.patchExecution(run.id, { tags, notes: notesInput.value });
      message.textContent = 'Saved.';
      onSaved(updated);
    } catch (err) {
      message.textContent = err.status === 401 || err.status === 403
        ? 'This server does not allow edits without a token.'
        : `Not saved: ${err.message}`;
    } finally {
      save.disabled = false;
    }
  });
  wrap.append(form);
  return wrap;
}

export default {
  title: 'Run',
  async render({ outlet, params, signal }) {
    const id = params.id;
    let run = null;
    let wf = null;
    let selected = -1;
    const head = h('div', {});
    const body = h('div', {});
    const crumb = h('span', { 'aria-current': 'page' }, 'Run');
    replace(outlet, h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '/' }, 'Runs'), ' / ', crumb),
      head, body);
    body.append(h('p', { class: 'muted' }, 'Loading the run…'));

    function header() {
      const exportButton = (format) => {
        const b = h('button', { type: 'button' }, `Export ${format.toUpperCase()}`);
        b.addEventListener('click', () => download(`/executions/${id}/export`, { format }, `xray-${id}.${format}`)
          .catch((e) => alert(e.message)));
        return b;
      };
      const older = neighbourRun(id, 1);
      const newer = neighbourRun(id, -1);
      replace(head,
        h('div', { class: 'page-head' },
          h('div', {},
            h('h1', {}, run.name, ' ', statusBadge(run.status)),
            h('p', { class: 'meta' },
              h('span', { title: run.id, class: 'id' }, run.id), ' · started ', h('time', {}, time(run.started_at)),
              ` (${ago(run.started_at)}) · `, h('span', { class: 'run-duration' }, runDuration(run)),
              ` · ${n(run.counts.steps)} steps`,
              run.counts.running ? ` (${n(run.counts.running)} running)` : '',
              run.counts.error ? h('span', { class: 'error-text' }, ` · ${n(run.counts.error)} failed`) : '',
              ` · ${n(run.counts.evaluations)} evaluations`,
              run.service ? ` · ${run.service}${run.host ? `@${run.host}` : ''}` : ''),
            run.tags.length ? h('p', { class: 'run-tags' }, run.tags.map((t) => h('a', { class: 'tag', href: `/?tag=${encodeURIComponent(t)}` }, t))) : null),
          h('div', { class: 'page-actions' },
            newer ? h('a', { href: `/runs/${newer}`, class: 'button', title: 'Newer run ([)' }, '← Newer') : null,
            older ? h('a', { href: `/runs/${older}`, class: 'button', title: 'Older run (])' }, 'Older →') : null,
            h('a', { href: `/compare?a=${id}`, class: 'button' }, 'Compare with…'),
            exportButton('json'), exportButton('csv'))),
        run.error ? notice('error', h('strong', {}, 'The run failed: '), run.error) : null,
        run.dropped_records ? notice('warn', `${n(run.dropped_records)} ${run.dropped_records === 1 ? 'record of this run was' : 'records of this run were'} lost by the recorder (its queue was full, or the store failed to write them): what is shown is incomplete.`) : null);
    }

    // Built once; a live reload replaces the waterfall, the funnel and the payloads only, so an
    // open section or a half-typed note survives.
    const stepsBox = h('div', {});
    const funnelBox = h('div', {});
    const payloads = h('div', {});
    let built = false;
    let drawnStatus = null;

    function draw() {
      header();
      wf = waterfall(run.steps, { runStart: run.started_at, runEnd: run.completed_at });
      replace(stepsBox, run.steps.length ? wf.element : h('p', { class: 'muted' }, run.status === 'running' ? 'No step has started yet.' : 'This run recorded no steps.'));
      replace(funnelBox, funnel(run.funnel));
      if (!built) {
        built = true;
        replace(body,
          h('div', { class: 'run-grid' }, section('Steps', stepsBox), section('Funnel', funnelBox)),
          collapsible('Tags and notes', Boolean(run.notes), editor(run, (updated) => {
            run = { ...run, ...updated };
            header();
          })),
          payloads);
      }
      if (drawnStatus !== run.status) {
        drawnStatus = run.status;
        replace(payloads,
          // What the run was given and what it decided: open when short enough to read at once.
          // What the run was given and what it decided, open one level deeper when short: the
          // selected product's fields, not just "competitor {7 keys}".
          collapsible('Input', short(run.input), jsonTree(parse(run.input), { label: 'Run input', open: short(run.input) ? 2 : 1 })),
          collapsible('Output', short(run.output), jsonTree(parse(run.output), { label: 'Run output', open: short(run.output) ? 2 : 1 })),
          collapsible('Metadata', false, jsonTree(parse(run.metadata), { label: 'Run metadata' })));
      }
      if (selected >= 0) highlight(selected, false);
    }

    async function load() {
      try {
        run = await api.execution(id, { signal });
        document.title = `${run.name} · X-Ray`;
        crumb.textContent = `${run.name} ${run.id.slice(-8)}`;
        draw();
      } catch (e) {
        if (e.name === 'AbortError') return;
        replace(body, notice('error', e.status === 404 ? `There is no run ${id}.` : `Could not load the run: ${e.message}`));
      }
    }

    function highlight(i, focus = true) {
      const rowsEls = [...outlet.querySelectorAll('.waterfall .wf-row[data-step]')];
      if (!rowsEls.length) return;
      selected = Math.max(0, Math.min(rowsEls.length - 1, i));
      rowsEls.forEach((r, k) => r.classList.toggle('focused', k === selected));
      if (focus) rowsEls[selected].querySelector('a').focus();
    }

    // Live: reload (at most every 300 ms) when this run changes.
    let pending = 0;
    const unsubscribe = live.subscribe((m) => {
      const about = m.execution ? m.execution.id : m.step ? m.step.execution_id : null;
      if (about !== id) return;
      if (m.execution && run && run.status !== 'running' && m.execution.status !== 'running') {
        // A finished run edited (tags, notes): the header only, so a form being used stays.
        run = { ...run, ...m.execution };
        header();
        return;
      }
      if (pending) return;
      pending = setTimeout(() => {
        pending = 0;
        load();
      }, 300);
    });
    const unLagged = live.onLagged(() => load());
    const ticker = setInterval(() => {
      if (!run || (run.status !== 'running' && !run.counts.running)) return;
      if (wf) wf.tick();
      const d = outlet.querySelector('.run-duration');
      if (d) d.textContent = runDuration(run);
    }, 250);
    const unkeys = viewShortcuts([
      ['j', 'Next step', () => highlight(selected + 1)],
      ['k', 'Previous step', () => highlight(selected - 1)],
      ['Enter', 'Open the highlighted step', () => {
        const s = run && run.steps[selected];
        if (s) navigate(`/steps/${s.id}`);
      }],
      ['[', 'Newer run (from the runs list)', () => {
        const other = neighbourRun(id, -1);
        if (other) navigate(`/runs/${other}`);
      }],
      [']', 'Older run (from the runs list)', () => {
        const other = neighbourRun(id, 1);
        if (other) navigate(`/runs/${other}`);
      }],
      ['u', 'Up to the runs list', () => navigate('/')],
    ]);
    await load();
    return () => {
      unsubscribe();
      unLagged();
      unkeys();
      clearInterval(ticker);
      clearTimeout(pending);
    };
  },
};
