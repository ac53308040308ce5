//! A step's rows as the SQLite store writes them, straight from the arena, and the JSON they are
//! written as.

use super::decode::Bounds;
use super::*;

/// A step's evaluations as the SQLite store writes them: straight from the arena, without
/// building an owned [`Evaluation`] per row. The summary is computed in one pass that also
/// writes every derived reason once (kept here for the rows' check JSON), and the capture
/// policy picks the rows to keep by index.
pub(crate) struct StepRows {
    arena: EvalArena,
    /// Derived reasons of failed structured checks, by check index (`Text::NONE` otherwise).
    reasons: Vec<Text>,
    reason_text: String,
    /// Rows kept, in order; `None`: all of them.
    keep: Option<Vec<usize>>,
    /// Rows whose candidate the step selected.
    selected: Vec<usize>,
    bounds: Bounds,
    scratch: Vec<u8>,
    /// The payload cap, applied to snapshots as they are written.
    pub(crate) snapshot_cap: Option<usize>,
}

impl StepRows {
    /// Summarizes `arena` and applies `capture`, marking the candidates in `selection`.
    pub(crate) fn new(
        arena: EvalArena,
        capture: crate::capture::Capture,
        selection: &[crate::model::Selection],
    ) -> (StepRows, crate::model::EvaluationSummary) {
        use crate::capture;
        let mut rows = StepRows {
            arena,
            reasons: Vec::new(),
            reason_text: String::new(),
            keep: None,
            selected: Vec::new(),
            bounds: Bounds::default(),
            scratch: Vec::new(),
            snapshot_cap: None,
        };
        let mut summarizer = capture::Summarizer::default();
        let arena = &rows.arena;
        rows.reasons.resize(arena.checks.len(), Text::NONE);
        for (i, row) in arena.rows.iter().enumerate() {
            if !selection.is_empty() {
                let id = arena.get(row.candidate).unwrap_or_default();
                if selection.iter().any(|s| s.candidate_id == id) {
                    rows.selected.push(i);
                }
            }
            summarizer.add_row(row.passed);
            let cs = row.checks_start as usize;
            for n in 0..usize::from(row.checks_len) {
                let Some(c) = arena.checks.get(cs + n) else {
                    break;
                };
                let reason = match (arena.get(c.reason), c.passed) {
                    (Some(reason), _) => Some(reason),
                    (None, true) => None,
                    (None, false) => {
                        let start = rows.reason_text.len();
                        if arena.write_derived_reason(c, &mut rows.reason_text, &mut rows.bounds) {
                            let span = text_span(start, rows.reason_text.len());
                            if let Some(slot) = rows.reasons.get_mut(cs + n) {
                                *slot = span;
                            }
                            rows.reason_text.get(start..)
                        } else {
                            None
                        }
                    }
                };
                let numeric = matches!(c.op, Op::Min | Op::Max | Op::Range);
                summarizer.add_check(n, arena.name(c.name), c.passed, reason, numeric);
            }
        }
        let cap = match capture {
            capture::Capture::All => usize::MAX,
            capture::Capture::Cap(n) => n,
            capture::Capture::Summary => 0,
        };
        let mut summary = summarizer.finish();
        summary.capture = capture.label();
        let total = arena.rows.len();
        if total > cap {
            let keep = capture::sample_indices(total, cap, |i| {
                let row = &arena.rows[i];
                let selected = rows.selected.binary_search(&i).is_ok();
                let near = !row.passed && arena.failed_only_near(row);
                (
                    capture::priority(selected, near),
                    arena.get(row.candidate).unwrap_or_default(),
                )
            });
            summary.kept = keep.len() as u64;
            summary.sampled = true;
            rows.keep = Some(keep);
        } else {
            summary.kept = total as u64;
        }
        (rows, summary)
    }

    /// The indices of the rows to write, in order.
    pub(crate) fn kept(&self) -> impl Iterator<Item = usize> + '_ {
        let all = 0..if self.keep.is_some() {
            0
        } else {
            self.arena.rows.len()
        };
        all.chain(self.keep.iter().flatten().copied())
    }

    pub(crate) fn kept_len(&self) -> usize {
        self.keep.as_ref().map_or(self.arena.rows.len(), Vec::len)
    }

    pub(crate) fn candidate(&self, i: usize) -> &str {
        self.row(i)
            .and_then(|r| self.arena.get(r.candidate))
            .unwrap_or_default()
    }

    pub(crate) fn label(&self, i: usize) -> Option<&str> {
        self.row(i).and_then(|r| self.arena.get(r.label))
    }

    pub(crate) fn passed(&self, i: usize) -> bool {
        self.row(i).is_some_and(|r| r.passed)
    }

    pub(crate) fn score(&self, i: usize) -> Option<f64> {
        self.row(i).map(|r| r.score).filter(|s| !s.is_nan())
    }

    pub(crate) fn selected(&self, i: usize) -> bool {
        self.selected.binary_search(&i).is_ok()
    }

    /// Row `i`'s snapshot, cut by the payload cap when it is larger.
    pub(crate) fn snapshot(&self, i: usize) -> Option<std::borrow::Cow<'_, str>> {
        let text = self.row(i).and_then(|r| self.arena.get(r.snapshot))?;
        match self.snapshot_cap {
            Some(max) if text.len() > max => {
                let mut json = Json::from_trusted(text.to_owned());
                crate::processor::cap(&mut json, max);
                Some(std::borrow::Cow::Owned(json.into_string()))
            }
            _ => Some(std::borrow::Cow::Borrowed(text)),
        }
    }

    fn row(&self, i: usize) -> Option<&Row> {
        self.arena.rows.get(i)
    }

    /// Writes row `i`'s checks as JSON (what `serde_json` writes for its decoded `Vec<Check>`)
    /// and its failed check names as `\x1fa\x1fb\x1f`.
    pub(crate) fn write_checks(&mut self, i: usize, checks: &mut String, failed: &mut String) {
        checks.clear();
        failed.clear();
        checks.push('[');
        let Some(row) = self.arena.rows.get(i) else {
            checks.push(']');
            return;
        };
        let cs = row.checks_start as usize;
        let arena = &self.arena;
        let scratch = &mut self.scratch;
        for n in 0..usize::from(row.checks_len) {
            let Some(c) = arena.checks.get(cs + n) else {
                break;
            };
            if n > 0 {
                checks.push(',');
            }
            let name = arena.name(c.name);
            checks.push_str("{\"name\":");
            json_str(checks, scratch, name);
            checks.push_str(if c.passed {
                ",\"passed\":true"
            } else {
                ",\"passed\":false"
            });
            let reason = match arena.get(c.reason) {
                Some(reason) => Some(reason),
                None if c.passed => None,
                None => self
                    .reasons
                    .get(cs + n)
                    .and_then(|&t| get_text(&self.reason_text, t)),
            };
            if let Some(reason) = reason {
                checks.push_str(",\"reason\":");
                json_str(checks, scratch, reason);
            }
            match c.op {
                Op::Free => {}
                Op::Min | Op::Max => {
                    let threshold = if c.op == Op::Min { c.lo } else { c.hi };
                    if c.observed.is_finite() {
                        checks.push_str(",\"observed\":");
                        json_f64(checks, c.observed);
                    }
                    if threshold.is_finite() {
                        checks.push_str(",\"threshold\":");
                        json_f64(checks, threshold);
                    }
                }
                Op::Range => {
                    if c.observed.is_finite() {
                        checks.push_str(",\"observed\":");
                        json_f64(checks, c.observed);
                    }
                    checks.push_str(",\"threshold\":[");
                    json_f64(checks, c.lo);
                    checks.push(',');
                    json_f64(checks, c.hi);
                    checks.push(']');
                }
                Op::In => {
                    if let Some(observed) = arena.get(c.observed_text) {
                        checks.push_str(",\"observed\":");
                        json_str(checks, scratch, observed);
                    }
                    if let Some(set) = arena.names.get(usize::from(c.set)) {
                        checks.push_str(",\"threshold\":[");
                        for (k, item) in set.split(SET_SEP).filter(|s| !s.is_empty()).enumerate() {
                            if k > 0 {
                                checks.push(',');
                            }
                            json_str(checks, scratch, item);
                        }
                        checks.push(']');
                    }
                }
            }
            if let Some(op) = c.op.as_str() {
                checks.push_str(",\"op\":\"");
                checks.push_str(op);
                checks.push('"');
            }
            checks.push('}');
            if !c.passed {
                if failed.is_empty() {
                    failed.push(crate::store::sqlite::SEP);
                }
                failed.push_str(name);
                failed.push(crate::store::sqlite::SEP);
            }
        }
        checks.push(']');
    }

    /// Row `i`'s metrics as JSON (`[["name", 0.5], …]`), or `None` when it has none.
    pub(crate) fn write_metrics(&mut self, i: usize, out: &mut String) -> bool {
        out.clear();
        let Some(row) = self.arena.rows.get(i) else {
            return false;
        };
        if row.metrics_len == 0 {
            return false;
        }
        let ms = row.metrics_start as usize;
        let metrics: Vec<(&str, f64)> = self
            .arena
            .metrics
            .get(ms..ms + usize::from(row.metrics_len))
            .unwrap_or(&[])
            .iter()
            .map(|&(n, v)| (self.arena.name(n), v))
            .collect();
        json_into(out, &mut self.scratch, &metrics);
        true
    }

    /// The arena, to give back once written.
    pub(crate) fn into_arena(self) -> EvalArena {
        self.arena
    }
}

impl EvalArena {
    /// Whether every failed check of `row` missed a structured threshold by a little.
    fn failed_only_near(&self, row: &Row) -> bool {
        let cs = row.checks_start as usize;
        self.checks
            .get(cs..cs + usize::from(row.checks_len))
            .unwrap_or(&[])
            .iter()
            .filter(|c| !c.passed)
            .all(|c| {
                let near = |t: f64| crate::capture::near_number(c.observed, t);
                match c.op {
                    Op::Min => near(c.lo),
                    Op::Max => near(c.hi),
                    Op::Range => near(c.lo) || near(c.hi),
                    Op::Free | Op::In => false,
                }
            })
    }
}

/// Appends `s` as a JSON string, as serde_json writes it: as is between quotes when no byte
/// needs escaping (the usual case for names and reasons), else through serde_json.
fn json_str(out: &mut String, scratch: &mut Vec<u8>, s: &str) {
    if s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        json_into(out, scratch, s);
    } else {
        out.push('"');
        out.push_str(s);
        out.push('"');
    }
}

/// Appends `v` as serde_json writes an `f64` (`null` when it is not finite; otherwise the
/// shortest text that reads back, from the same formatter serde_json uses).
fn json_f64(out: &mut String, v: f64) {
    if v.is_finite() {
        out.push_str(zmij::Buffer::new().format_finite(v));
    } else {
        out.push_str("null");
    }
}

/// Appends `value` as JSON to `out`, through `scratch` (serde_json writes bytes).
pub(crate) fn json_into<T: serde::Serialize + ?Sized>(
    out: &mut String,
    scratch: &mut Vec<u8>,
    value: &T,
) {
    scratch.clear();
    match serde_json::to_writer(&mut *scratch, value)
        .ok()
        .and_then(|()| std::str::from_utf8(scratch).ok())
    {
        Some(text) => out.push_str(text),
        None => out.push_str("null"),
    }
}
