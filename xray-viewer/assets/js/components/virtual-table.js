// A virtual table: only the rows in view exist in the DOM, and rows are fetched page by page
// from the API as the view reaches them, so a step with 100,000 evaluations scrolls smoothly.
//
// The row count is the known total when there is one (the step's exact summary); otherwise it
// grows as pages arrive, with one "loading" row at the end while more exist.

import { h } from '../dom.js';
import { n } from '../format.js';

const OVERSCAN = 8;
const SMALL_PAGE = 200;
const LARGE_PAGE = 1000;

export class VirtualTable {
  /**
   * `columns`: [{ title, min (rem), grow (share of the spare width, 0 = fixed), render(row, index) →
   * node|string, className }]. Every row gets the same tracks whatever its content.
   * `load(cursor, limit)` → Promise<{ items, next_cursor }>. `total`: the row count if known.
   * `onSelect(row, index)`: a row was chosen (click or Enter), or is the only row there is
   * and `selectOnly()` says to choose it (`onSelect(row, 0, { only: true })`: a search for one
   * candidate opens its detail at once). `label`: the table's name.
   */
  constructor({ columns, load, total = null, rowHeight = 36, label, onSelect, selectOnly = () => false, empty = 'Nothing to show.' }) {
    this.columns = columns;
    this.selectOnly = selectOnly;
    this.rowHeight = rowHeight;
    this.onSelect = onSelect;
    this.emptyText = empty;
    this.rendered = new Map();
    this.selected = -1;
    this.frame = 0;
    this.element = h('div', { class: 'vt', role: 'table', 'aria-label': label });
    const track = (c) => (c.grow ? `minmax(${c.min || 6}rem, ${c.grow}fr)` : `${c.min || 6}rem`);
    this.element.style.setProperty('--vt-cols', columns.map(track).join(' '));
    this.element.style.setProperty('--vt-min-width', `${columns.reduce((sum, c) => sum + (c.min || 6), 0)}rem`);
    this.element.style.setProperty('--vt-row', `${rowHeight}px`);
    this.head = h('div', { class: 'vt-row vt-head', role: 'row' },
      columns.map((c) => h('div', { class: ['vt-cell', c.className], role: 'columnheader' }, c.title)));
    this.spacer = h('div', { class: 'vt-spacer', role: 'rowgroup' });
    this.scroller = h('div', { class: 'vt-scroll', tabindex: '0', 'aria-label': `${label}: scroll with the arrow keys` }, this.spacer);
    this.status = h('div', { class: 'vt-status', role: 'status', 'aria-live': 'polite' });
    this.element.append(h('div', { class: 'vt-wide' }, this.head, this.scroller), this.status);
    this.scroller.addEventListener('scroll', () => this.schedule(), { passive: true });
    this.scroller.addEventListener('keydown', (e) => this.key(e));
    this.spacer.addEventListener('click', (e) => {
      if (e.target.closest('a, button')) return;
      const row = e.target.closest('.vt-row[data-index]');
      if (row) this.select(Number(row.dataset.index));
    });
    this.resizeObserver = new ResizeObserver(() => this.schedule());
    this.resizeObserver.observe(this.scroller);
    this.reset(load, total);
  }

  /** Starts over with a new loader (new filters) and total. */
  reset(load, total = null) {
    this.load = load;
    this.total = total;
    this.rows = [];
    this.cursor = null;
    // A list known to be empty needs no request: its message shows at once.
    this.done = total === 0;
    this.loading = false;
    this.error = null;
    this.generation = (this.generation || 0) + 1;
    this.selected = -1;
    this.scroller.scrollTop = 0;
    this.clearRows();
    this.schedule();
  }

  /** The number of rows the table shows (known, or loaded so far plus a loading row). */
  count() {
    if (this.done) return this.rows.length;
    if (this.total !== null) return Math.max(this.total, this.rows.length);
    return this.rows.length + 1;
  }

  clearRows() {
    for (const el of this.rendered.values()) el.remove();
    this.rendered.clear();
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  draw() {
    const count = this.count();
    this.spacer.style.height = `${Math.max(count, 1) * this.rowHeight}px`;
    // A short list takes the room of its rows, not the table's full height (an empty one, of
    // its message). While a new list loads, the last height stays, so that the page does not
    // jump at each filter; a long list gets the full height once its first page is in.
    if (this.done) this.scroller.style.maxHeight = count > 0 ? `${count * this.rowHeight + 2}px` : '5rem';
    else if (this.rows.length > 0) this.scroller.style.maxHeight = '';
    this.element.setAttribute('aria-rowcount', String(count + 1));
    const top = this.scroller.scrollTop;
    const height = this.scroller.clientHeight || 400;
    // The rows in view, and the rows kept in the DOM (OVERSCAN more on each side).
    const shownFirst = Math.min(count, Math.floor(top / this.rowHeight));
    const shownLast = Math.min(count, Math.ceil((top + height) / this.rowHeight));
    const first = Math.max(0, shownFirst - OVERSCAN);
    const last = Math.min(count, shownLast + OVERSCAN);
    for (const [i, el] of this.rendered) {
      const stale = el.dataset.placeholder === '1' && i < this.rows.length;
      if (i < first || i >= last || stale) {
        el.remove();
        this.rendered.delete(i);
      }
    }
    for (let i = first; i < last; i++) {
      if (this.rendered.has(i)) continue;
      const el = this.rowElement(i);
      this.rendered.set(i, el);
      this.spacer.append(el);
    }
    if (count === 0 && this.done) {
      const el = h('div', { class: 'vt-empty' }, this.emptyText);
      this.rendered.set(-1, el);
      this.spacer.append(el);
    }
    this.updateStatus(shownFirst, shownLast);
    if (!this.done && !this.loading && !this.error && last > this.rows.length - (this.total === null ? 1 : 0)) {
      this.fetch(last + OVERSCAN);
    }
  }

  rowElement(i) {
    const row = this.rows[i];
    const el = h('div', {
      class: ['vt-row', i === this.selected && 'selected', row && row.passed === false && 'failed'],
      role: 'row',
      'aria-rowindex': String(i + 2),
      dataset: { index: String(i), placeholder: row ? '0' : '1' },
    });
    el.style.transform = `translateY(${i * this.rowHeight}px)`;
    if (!row) {
      el.append(h('div', { class: 'vt-cell vt-loading', role: 'cell' }, this.error ? `Could not load: ${this.error}` : 'Loading…'));
      return el;
    }
    for (const c of this.columns) {
      el.append(h('div', { class: ['vt-cell', c.className], role: 'cell' }, c.render(row, i)));
    }
    return el;
  }

  /** Says which rows are in view: `first` (0-based) up to `last` (exclusive). */
  updateStatus(first, last) {
    const count = this.count();
    if (count === 0 && this.done) {
      this.status.textContent = 'No rows.';
      return;
    }
    const lo = Math.min(count, first + 1);
    const hi = Math.min(count, Math.max(lo, last));
    const known = this.done || this.total !== null;
    const of = known ? n(count) : `${n(this.rows.length)}+`;
    const loaded = this.done ? '' : ` · ${n(this.rows.length)} loaded${this.loading ? ', loading…' : ''}`;
    this.status.textContent = `Rows ${n(lo)}–${n(hi)} of ${of}${loaded}`;
  }

  async fetch(upTo) {
    const generation = this.generation;
    this.loading = true;
    try {
      while (!this.done && this.rows.length < upTo && generation === this.generation) {
        const limit = upTo - this.rows.length > SMALL_PAGE ? LARGE_PAGE : SMALL_PAGE;
        const page = await this.load(this.cursor, limit);
        if (generation !== this.generation) return;
        this.rows.push(...page.items);
        this.cursor = page.next_cursor;
        this.done = !page.next_cursor;
        this.schedule();
        if (this.done && this.rows.length === 1 && this.selected === -1 && this.selectOnly()) this.select(0, { only: true });
        // Scrolling may have moved on while the page was in flight.
        upTo = Math.max(upTo, this.visibleEnd() + OVERSCAN);
      }
    } catch (e) {
      if (e.name === 'AbortError') return;
      if (generation === this.generation) this.error = e.message;
    } finally {
      if (generation === this.generation) {
        this.loading = false;
        this.clearPlaceholders();
        this.schedule();
      }
    }
  }

  visibleEnd() {
    return Math.ceil((this.scroller.scrollTop + (this.scroller.clientHeight || 400)) / this.rowHeight);
  }

  clearPlaceholders() {
    for (const [i, el] of this.rendered) {
      if (el.dataset.placeholder === '1') {
        el.remove();
        this.rendered.delete(i);
      }
    }
  }

  select(i, how = {}) {
    if (i < 0 || i >= this.rows.length) return;
    const before = this.rendered.get(this.selected);
    if (before) before.classList.remove('selected');
    this.selected = i;
    const el = this.rendered.get(i);
    if (el) el.classList.add('selected');
    const top = i * this.rowHeight;
    if (top < this.scroller.scrollTop) this.scroller.scrollTop = top;
    else if (top + this.rowHeight > this.scroller.scrollTop + this.scroller.clientHeight) {
      this.scroller.scrollTop = top + this.rowHeight - this.scroller.clientHeight;
    }
    if (this.onSelect) this.onSelect(this.rows[i], i, how);
  }

  key(e) {
    if (e.key === 'ArrowDown' || e.key === 'j') {
      e.preventDefault();
      this.select(Math.min(this.selected + 1, this.rows.length - 1));
    } else if (e.key === 'ArrowUp' || e.key === 'k') {
      e.preventDefault();
      this.select(Math.max(this.selected - 1, 0));
    } else if (e.key === 'End') {
      e.preventDefault();
      this.scroller.scrollTop = this.scroller.scrollHeight;
    } else if (e.key === 'Home') {
      e.preventDefault();
      this.scroller.scrollTop = 0;
    }
  }

  /** Stops observing (the view is left). */
  destroy() {
    this.generation += 1;
    this.resizeObserver.disconnect();
    cancelAnimationFrame(this.frame);
  }
}
