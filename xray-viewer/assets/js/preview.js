// What the runs list shows of each run's input: its fields in the order that best tells the
// listed runs of one pipeline apart. The server sends each run's first values with their paths
// (`input_preview`); only the list knows which of them differ between the runs it shows.

/** Whether a value is a number (`29.99`, `-3`, `1e6`). */
function numeric(value) {
  return /^-?[\d.,e+]+$/i.test(value);
}

/** The last name of a path: `title` for `seller.title`, `id` for `items[0].id`. */
function leafName(path) {
  return path.split('.').pop().replace(/\[\d+\]$/, '') || path;
}

/** The last two names of a path (`ranking_weights.rating`), for a leaf name two fields share. */
function twoNames(path) {
  return path.split('.').slice(-2).join('.');
}

/**
 * Each run's preview line and tooltip. `previews` holds the `input_preview` of the listed runs of
 * one pipeline; `search` is the list's search text. A run's fields come in this order:
 *
 * 1. those whose value contains the search text (why the run matched);
 * 2. those whose value differs from what most of the runs have (the setting changed in this
 *    run only: often the cause of an odd result);
 * 3. those that take more values across the runs (a title, an id), prose before a single
 *    word, words before numbers;
 * 4. the input's own order.
 *
 * For what the runs returned (`output_preview`: `label` 'Output' names it in the tooltip),
 * `proseFirst` puts values with words (a title, a category) before the rest: what a run
 * selected reads by its name, not by its score, which differs in every run.
 */
export function arrangePreviews(previews, search = '', { label: heading = 'Input', proseFirst = false } = {}) {
  const runs = previews.length;
  const counts = new Map();
  for (const fields of previews) {
    for (const [path, value] of fields || []) {
      if (!counts.has(path)) counts.set(path, new Map());
      const values = counts.get(path);
      values.set(value, (values.get(value) || 0) + 1);
    }
  }
  const needle = search.trim().toLowerCase();
  return previews.map((fields) => {
    fields = fields || [];
    const leaves = new Map();
    for (const [path] of fields) leaves.set(leafName(path), (leaves.get(leafName(path)) || 0) + 1);
    const key = ([path, value], index) => {
      const values = counts.get(path);
      const present = [...values.values()].reduce((a, b) => a + b, 0);
      const mode = Math.max(...values.values());
      const spread = values.size + (present < runs ? 1 : 0);
      const matched = needle !== '' && value.toLowerCase().includes(needle);
      const outlier = runs >= 3 && mode * 2 >= runs && values.get(value) < mode;
      const prose = /\s/.test(value) ? 0 : 1;
      const number = numeric(value) ? 1 : 0;
      return proseFirst
        ? [matched ? 0 : 1, prose, number, -spread, outlier ? 0 : 1, index]
        : [matched ? 0 : 1, outlier ? 0 : 1, -spread, prose, number, index];
    };
    const ordered = fields.map((field, i) => [field, key(field, i)])
      .sort(([, a], [, b]) => {
        for (let k = 0; k < a.length; k += 1) if (a[k] !== b[k]) return a[k] - b[k];
        return 0;
      })
      .map(([field]) => field);
    const label = (path) => (leaves.get(leafName(path)) > 1 ? twoNames(path) : leafName(path));
    return {
      text: ordered.map(([p, v]) => (p ? `${label(p)}: ${v}` : v)).join(' · '),
      title: `${heading}:\n${fields.map(([p, v]) => (p ? `${p}: ${v}` : v)).join('\n')}`,
    };
  });
}
