// Numbers, durations and times as a person reads them.

const int = new Intl.NumberFormat('en-US');

/** 12345 → "12,345"; null → "—". */
export function n(value) {
  return value === null || value === undefined ? '—' : int.format(value);
}

/** 0.9234 → "92.3%". */
export function pct(ratio, digits = 1) {
  if (ratio === null || ratio === undefined || Number.isNaN(ratio)) return '—';
  return `${(ratio * 100).toFixed(digits)}%`;
}

/** Microseconds → "420 µs", "12.3 ms", "4.21 s", "3m 12s", "2h 05m". */
export function duration(us) {
  if (us === null || us === undefined) return '—';
  if (us < 1000) return `${Math.round(us)} µs`;
  const ms = us / 1000;
  if (ms < 100) return `${ms.toFixed(ms < 10 ? 2 : 1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}

const pad = (v) => String(v).padStart(2, '0');

/** Unix µs → "2026-11-25 10:03:12" (local time). */
export function time(us) {
  if (us === null || us === undefined) return '—';
  const d = new Date(us / 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Unix µs → "3 min ago". */
export function ago(us) {
  if (us === null || us === undefined) return '';
  const s = (Date.now() - us / 1000) / 1000;
  if (s < 5) return 'just now';
  if (s < 60) return `${Math.floor(s)} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** Unix µs → value for `<input type="datetime-local">`. */
export function toLocalInput(us) {
  if (!us) return '';
  const d = new Date(us / 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** `<input type="datetime-local">` value → unix µs (or null). */
export function fromLocalInput(text) {
  if (!text) return null;
  const ms = new Date(text).getTime();
  return Number.isNaN(ms) ? null : ms * 1000;
}

/** A short id: the last 8 characters of a UUID. */
export function shortId(id) {
  return id ? `…${String(id).slice(-8)}` : '';
}

/** A number with at most `digits` decimals, trailing zeros dropped. */
export function num(value, digits = 3) {
  if (value === null || value === undefined) return '—';
  if (typeof value !== 'number') return String(value);
  return Number.isInteger(value) ? int.format(value) : String(Number(value.toFixed(digits)));
}

/** An evaluation's metrics in one line (`confidence 0.81, reviews 1,200`); '' when it has none. */
export function metricsText(metrics, separator = ', ') {
  return (metrics || []).map(([name, value]) => `${name} ${num(value, 3)}`).join(separator);
}

/**
 * Why a structured check passed, in words, from its observed value and rule: `4.2 ≥ 3.8
 * minimum`, `19.99 within 14.99–59.98`, `Phone Cases in [Laptop Stands, Phone Cases]`. A
 * failed check carries its reason; a passed one does not, and this is its answer to "why
 * was it let through?". Empty for a free-form check.
 */
export function passedRule(check) {
  const { op, observed, threshold } = check;
  const value = (v) => (typeof v === 'number' ? num(v, 4) : brief(v, 60));
  if (observed === undefined || threshold === undefined) return '';
  switch (op) {
    case 'min': return `${value(observed)} ≥ ${value(threshold)} minimum`;
    case 'max': return `${value(observed)} ≤ ${value(threshold)} maximum`;
    case 'range':
      return Array.isArray(threshold) ? `${value(observed)} within ${value(threshold[0])}–${value(threshold[1])}` : '';
    case 'in':
      return Array.isArray(threshold) ? `${value(observed)} in [${threshold.map((t) => brief(t, 40)).join(', ')}]` : '';
    default: return '';
  }
}

/** A snapshot on one line: `rationale: …; price: 12.5` for an object, else its JSON. */
export function snapshotText(snapshot) {
  if (snapshot && typeof snapshot === 'object' && !Array.isArray(snapshot)) {
    return Object.entries(snapshot).map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`).join('; ');
  }
  return JSON.stringify(snapshot);
}

/** A JSON value on one line, cut to `max` characters. */
export function brief(value, max = 80) {
  let text = typeof value === 'string' ? value : JSON.stringify(value);
  if (text === undefined) text = String(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** The most frequent reasons, at most `max`, with "(other reasons)" (the overflow bucket) last. */
export function topReasons(list, max = 3) {
  const named = list.filter(([r]) => r !== '(other reasons)');
  const other = list.filter(([r]) => r === '(other reasons)');
  return [...named.slice(0, max), ...other].slice(0, max + 1);
}
