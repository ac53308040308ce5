// Runs: executions newest first, filtered by name, status, tag, time and text; new runs appear
// live and running ones update without a reload.

import { api } from '../api.js';
import { h, field, options, replace, statusBadge, debounce, notice } from '../dom.js';
import { n, duration, time, ago, toLocalInput, fromLocalInput, shortId } from '../format.js';
import { miniFunnel } from '../components/funnel.js';
import { live } from '../live.js';
import { navigate, setQuery } from '../router.js';
import { viewShortcuts } from '../shortcuts.js';
import { state } from '../state.js';
import { arrangePreviews } from '../preview.js';

const PAGE = 50;
let firstRenderMarked = false;

function filtersFrom(query) {
  return {
    name: query.get('name') || '',
    status: query.get('status') || '',
    tag: query.getAll('tag').filter(Boolean),
    since: query.get('since') ? Number(query.get('since')) : null,
    until: query.get('until') ? Number(query.get('until')) : null,
    q: query.get('q') || '',
  };
}

function apiQuery(f) {
  return { name: f.name, status: f.status, tag: f.tag, since: f.since, until: f.until, q: f.q, limit: PAGE };
}

function active(f) {
  return Boolean(f.name || f.status || f.tag.length || f.since || f.until || f.q);
}

/** Whether a run (as listed) passes the filters that can be checked here (all but `q`). */
function matches(f, run) {
  if (f.name && run.name !== f.name) return false;
  if (f.status && run.status !== f.status) return false;
  if (f.tag.some((t) => !run.tags.includes(t))) return false;
  if (f.since && run.started_at < f.since) return false;
  if (f.until && run.started_at >= f.until) return false;
  return !f.q;
}

function runDuration(run) {
  if (run.completed_at != null) return duration(run.completed_at - run.started_at);
  if (run.status === 'running') return `${duration(Date.now() * 1000 - run.started_at)}…`;
  return '—';
}

export default {
  title: 'Runs',
  async render({ outlet, query, signal }) {
    const f = filtersFrom(query);
    const selected = new Set();
    const rows = new Map();
    let cursor = null;
    let focused = -1;

    const nameInput = h('input', { type: 'text', name: 'name', value: f.name, list: 'run-names', placeholder: 'any', autocomplete: 'off' });
    const names = h('datalist', { id: 'run-names' });
    const statusSelect = h('select', { name: 'status' },
      options([['', 'any'], ['running', 'running'], ['ok', 'ok'], ['error', 'error'], ['lost', 'lost']], f.status));
    const tagInput = h('input', { type: 'text', name: 'tag', value: f.tag.join(', '), placeholder: 'e.g. demo, nightly', autocomplete: 'off' });
    const sinceInput = h('input', { type: 'datetime-local', name: 'since', value: toLocalInput(f.since) });
    const untilInput = h('input', { type: 'datetime-local', name: 'until', value: toLocalInput(f.until) });
    const qInput = h('input', { type: 'search', name: 'q', value: f.q, placeholder: 'any text', title: 'Searches the name, id, notes, step names, input and output', 'data-search': '', autocomplete: 'off' });
    const clear = h('button', { type: 'button', class: 'link-button' }, 'Clear filters');
    const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter runs' },
      field('Pipeline', nameInput), names, field('Status', statusSelect), field('Tags', tagInput),
      field('Started after', sinceInput), field('Started before', untilInput), field('Search', qInput), clear);

    const compareButton = h('button', { type: 'button', class: 'primary', disabled: true }, 'Compare selected');
    const selectionNote = h('span', { class: 'muted' }, 'Tick two runs to compare them.');
    const banner = h('div', { class: 'live-banner', hidden: true });
    // What recorders lost (dropped or failed records), from the server's health: runs may be
    // incomplete, and the list alone would not say so. And the runs their sampling left out:
    // a run missing from the list may never have been recorded. `data-checked` once the
    // server answered.
    const loss = h('div', { class: 'recorder-loss' });
    api.health({ signal }).then((health) => {
      const r = health && health.recorder;
      const notices = [];
      if (r && (r.dropped || r.failed)) {
        const lost = [
          r.dropped ? `${n(r.dropped)} dropped (queue full, or made after their step had ended)` : null,
          r.failed ? `${n(r.failed)} failed to write` : null,
        ].filter(Boolean).join(' and ');
        notices.push(notice('warn', h('strong', {}, 'Lost records. '),
          `Recorders lost ${n(r.dropped + r.failed)} ${r.dropped + r.failed === 1 ? 'record' : 'records'}: ${lost}. The runs they belonged to may be incomplete.`));
      }
      if (r && r.sampled_out) {
        notices.push(h('div', { class: 'sampled-out' }, notice('info', h('strong', {}, 'Sampled runs. '),
          `Sampling has left out ${n(r.sampled_out)} ${r.sampled_out === 1 ? 'run' : 'runs'} since this database was created: never recorded, not lost. `
          + 'A run missing from this list may be one of them. To record every run, the recording program builds its layer with ',
          h('code', {}, '.sample(1.0)'), ', or sets ', h('code', {}, 'XRAY_SAMPLE=1'), ' if it reads the environment (',
          h('code', {}, 'with_default_env()'), ').')));
      }
      replace(loss, ...notices);
      loss.dataset.checked = 'true';
    }).catch(() => {});
    const tbody = h('tbody', {});
    const table = h('table', { class: 'runs data' },
      h('caption', { class: 'visually-hidden' }, 'Runs, newest first'),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col', class: 'col-pick' }, h('span', { class: 'visually-hidden' }, 'Compare')),
        h('th', { scope: 'col' }, 'Run'), h('th', { scope: 'col' }, 'Status'), h('th', { scope: 'col' }, 'Started'),
        h('th', { scope: 'col', class: 'num' }, 'Duration'), h('th', { scope: 'col', class: 'num' }, 'Steps'),
        h('th', { scope: 'col' }, 'Candidates'), h('th', { scope: 'col' }, 'Tags'))),
      tbody);
    const more = h('button', { type: 'button', hidden: true }, 'Load more runs');
    const status = h('p', { class: 'muted list-status', role: 'status' }, 'Loading runs…');
    replace(outlet,
      h('div', { class: 'page-head' }, h('h1', {}, 'Runs'),
        h('div', { class: 'page-actions' }, selectionNote, compareButton)),
      form, loss, banner, h('div', { class: 'table-wrap' }, table), status, more);

    function rowFor(run) {
      const pick = h('input', { type: 'checkbox', 'aria-label': `Select ${run.name} ${shortId(run.id)} for comparison`, checked: selected.has(run.id) });
      pick.addEventListener('change', () => {
        if (pick.checked) selected.add(run.id);
        else selected.delete(run.id);
        updateSelection();
      });
      const tr = h('tr', { dataset: { id: run.id, status: run.status }, class: run.status === 'error' ? 'row-error' : '' },
        h('td', { class: 'col-pick' }, pick),
        h('td', {}, h('a', { href: `/runs/${run.id}`, class: 'run-link' }, run.name),
          h('span', { class: 'id muted', title: run.id }, shortId(run.id)),
          run.input_preview?.length ? h('div', { class: 'input-preview muted' }) : null,
          run.output_preview?.length ? h('div', { class: 'output-preview' }, h('span', { class: 'arrow', 'aria-hidden': 'true' }, '→ '), h('span', { class: 'preview-text' })) : null,
          run.error ? h('div', { class: 'error-text', title: run.error }, run.error) : null),
        h('td', {}, statusBadge(run.status)),
        h('td', {}, h('time', { datetime: new Date(run.started_at / 1000).toISOString(), title: time(run.started_at) }, time(run.started_at)),
          h('span', { class: 'muted ago' }, ago(run.started_at))),
        h('td', { class: 'num duration' }, runDuration(run)),
        h('td', { class: 'num' }, n(run.step_count), run.error_steps ? h('span', { class: 'error-text', title: 'steps that failed' }, ` (${n(run.error_steps)} failed)`) : null),
        h('td', {}, miniFunnel(run.candidates_in, run.candidates_out, run.status === 'error')),
        h('td', { class: 'tags' }, run.tags.map((t) => h('a', { class: 'tag', href: `/?tag=${encodeURIComponent(t)}` }, t))));
      tr.run = run;
      return tr;
    }

    function updateSelection() {
      const count = selected.size;
      compareButton.disabled = count !== 2;
      selectionNote.textContent = count === 2 ? 'Two runs selected.' : count > 2 ? 'Select exactly two runs.' : 'Tick two runs to compare them.';
    }
    compareButton.addEventListener('click', () => {
      const [a, b] = [...selected];
      navigate(`/compare?a=${a}&b=${b}`);
    });

    function put(run, { prepend = false } = {}) {
      const old = rows.get(run.id);
      const tr = rowFor(run);
      if (old) old.replaceWith(tr);
      else if (prepend) {
        tr.classList.add('new');
        tbody.prepend(tr);
      } else tbody.append(tr);
      rows.set(run.id, tr);
      if (!names.querySelector(`option[value="${CSS.escape(run.name)}"]`)) names.append(h('option', { value: run.name }));
    }

    // Each run's input and output, in the order that best tells the listed runs of its
    // pipeline apart (see preview.js): a laptop stand's run that returned a phone case reads so
    // in the list.
    function updatePreviews(onlyName) {
      const byName = new Map();
      for (const tr of rows.values()) {
        if (onlyName !== undefined && tr.run.name !== onlyName) continue;
        if (!byName.has(tr.run.name)) byName.set(tr.run.name, []);
        byName.get(tr.run.name).push(tr);
      }
      for (const group of byName.values()) {
        const arranged = arrangePreviews(group.map((tr) => tr.run.input_preview), f.q);
        const returned = arrangePreviews(group.map((tr) => tr.run.output_preview), f.q, { label: 'Output', proseFirst: true });
        group.forEach((tr, i) => {
          const el = tr.querySelector('.input-preview');
          if (el) {
            el.textContent = arranged[i].text;
            el.title = arranged[i].title;
          }
          const out = tr.querySelector('.output-preview');
          if (out) {
            out.querySelector('.preview-text').textContent = returned[i].text;
            out.title = returned[i].title;
          }
        });
      }
    }

    function syncState() {
      updatePreviews();
      state.runIds = [...tbody.children].map((tr) => tr.dataset.id);
      const shown = rows.size;
      status.textContent = shown === 0
        ? (active(f) ? 'No run matches these filters.' : 'No runs recorded yet. Runs appear here as soon as a pipeline records one.')
        : `${n(shown)} ${shown === 1 ? 'run' : 'runs'} shown${cursor ? '; more below' : ''}.`;
      more.hidden = !cursor;
    }

    async function load(append) {
      try {
        const page = await api.executions({ ...apiQuery(f), cursor: append ? cursor : null }, { signal });
        if (!append) {
          tbody.replaceChildren();
          rows.clear();
        }
        page.items.forEach((run) => put(run));
        cursor = page.next_cursor;
        syncState();
        if (!firstRenderMarked) {
          firstRenderMarked = true;
          performance.mark('xray:runs-rendered');
        }
      } catch (e) {
        if (e.name === 'AbortError') return;
        status.replaceChildren(notice('error', `Could not load runs: ${e.message}`));
      }
    }

    function apply() {
      f.name = nameInput.value.trim();
      f.status = statusSelect.value;
      f.tag = tagInput.value.split(',').map((t) => t.trim()).filter(Boolean);
      f.since = fromLocalInput(sinceInput.value);
      f.until = fromLocalInput(untilInput.value);
      f.q = qInput.value.trim();
      setQuery({ name: f.name, status: f.status, tag: f.tag, since: f.since, until: f.until, q: f.q });
      banner.hidden = true;
      load(false);
    }
    const applySoon = debounce(apply, 250);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      apply();
    });
    for (const el of [statusSelect, sinceInput, untilInput]) el.addEventListener('change', apply);
    for (const el of [nameInput, tagInput, qInput]) el.addEventListener('input', applySoon);
    clear.addEventListener('click', () => {
      for (const el of [nameInput, tagInput, sinceInput, untilInput, qInput]) el.value = '';
      statusSelect.value = '';
      apply();
    });
    more.addEventListener('click', () => load(true));

    // Live: new runs at the top, running ones updated in place.
    let missed = 0;
    const refreshing = new Map();
    const refreshRun = (id) => {
      if (refreshing.has(id)) return;
      refreshing.set(id, setTimeout(async () => {
        try {
          const run = await api.execution(id, { signal });
          if (rows.has(id)) {
            put(run);
            updatePreviews(run.name);
          }
        } catch {
          // the next message will try again
        } finally {
          refreshing.delete(id);
        }
      }, 300));
    };
    const unsubscribe = live.subscribe((m) => {
      if (m.execution) {
        const run = m.execution;
        const newest = tbody.firstElementChild?.run;
        const isNew = !newest || run.started_at >= newest.started_at;
        if (rows.has(run.id)) {
          put(run);
          updatePreviews(run.name);
        } else if (isNew && matches(f, run)) {
          put(run, { prepend: true });
          syncState();
        } else if (isNew && active(f) && !f.status && !f.name) {
          missed += 1;
          banner.hidden = false;
          replace(banner, `${n(missed)} new ${missed === 1 ? 'run' : 'runs'} may match. `,
            h('button', { type: 'button', class: 'link-button', onclick: () => { missed = 0; apply(); } }, 'Refresh the list'));
        }
      } else if (m.step && rows.has(m.step.execution_id)) {
        refreshRun(m.step.execution_id);
      }
    });
    const unLagged = live.onLagged(() => load(false));
    const ticker = setInterval(() => {
      for (const tr of rows.values()) {
        if (tr.run.status === 'running') tr.querySelector('.duration').textContent = runDuration(tr.run);
      }
    }, 1000);

    const focusRow = (i) => {
      const list = [...tbody.children];
      if (!list.length) return;
      focused = Math.max(0, Math.min(list.length - 1, i));
      list.forEach((tr, k) => tr.classList.toggle('focused', k === focused));
      list[focused].querySelector('.run-link').focus();
    };
    const unkeys = viewShortcuts([
      ['j', 'Next run', () => focusRow(focused + 1)],
      ['k', 'Previous run', () => focusRow(focused - 1)],
      ['Enter', 'Open the highlighted run', () => {
        const tr = tbody.children[focused];
        if (tr) navigate(`/runs/${tr.dataset.id}`);
      }],
      ['x', 'Tick the highlighted run for comparison', () => {
        const box = tbody.children[focused]?.querySelector('input[type=checkbox]');
        if (box) box.click();
      }],
    ]);

    await load(false);
    return () => {
      unsubscribe();
      unLagged();
      unkeys();
      clearInterval(ticker);
      for (const t of refreshing.values()) clearTimeout(t);
      applySoon.cancel();
    };
  },
};
