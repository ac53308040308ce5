//! Compact storage for a step's evaluations while the step runs.
//!
//! A step that judges 5,000 candidates must not make 5,000 × (id + label + checks + reasons)
//! small allocations on the application thread and free them on the writer thread (DESIGN's
//! measured facts: that costs ~0.5 µs a record). Instead every string of every evaluation is
//! appended to one `String`, and rows refer to it by offset. Check and metric names are interned
//! per step. The writer thread decodes the arena into [`Evaluation`]s.

use crate::capture::FxBuild;
use crate::model::{Check, Evaluation, Json};
use std::collections::HashMap;
use std::fmt::{self, Write as _};

/// A slice of [`EvalArena::text`]; `start == u32::MAX` means absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Text {
    start: u32,
    len: u32,
}

impl Text {
    pub(crate) const NONE: Text = Text {
        start: u32::MAX,
        len: 0,
    };

    fn is_none(self) -> bool {
        self.start == u32::MAX
    }
}

/// How a structured check compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Free,
    Min,
    Max,
    Range,
    In,
}

impl Op {
    fn as_str(self) -> Option<&'static str> {
        match self {
            Op::Free => None,
            Op::Min => Some("min"),
            Op::Max => Some("max"),
            Op::Range => Some("range"),
            Op::In => Some("in"),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct CheckRow {
    name: u16,
    passed: bool,
    op: Op,
    reason: Text,
    /// Observed number (structured numeric checks).
    observed: f64,
    /// Observed text (`check_in`).
    observed_text: Text,
    /// Minimum, maximum, or range bounds.
    lo: f64,
    hi: f64,
    /// The allowed set of `check_in`: an interned name, its items joined by [`SET_SEP`].
    set: u16,
}

/// Separates the items of an interned `check_in` set.
pub(crate) const SET_SEP: char = '\u{1f}';

/// No interned name.
pub(crate) const NO_NAME: u16 = u16::MAX;

/// Names kept by a reused scratch arena before it starts afresh.
const MAX_SCRATCH_NAMES: usize = 64;

/// Names past which [`EvalArena::intern`] looks a name up in a hash map rather than a list
/// (a step whose `check_in` sets or metric names differ from candidate to candidate).
const LOOKUP_FROM: usize = 16;

/// What a check is named when its step had more distinct names than an arena can number.
const NAME_NOT_KEPT: &str = "(name not kept: over 65,535 distinct names in this step)";

#[derive(Clone, Copy, Debug)]
struct Row {
    candidate: Text,
    label: Text,
    /// NaN when absent.
    score: f64,
    passed: bool,
    checks_start: u32,
    checks_len: u16,
    metrics_start: u32,
    metrics_len: u16,
    snapshot: Text,
}

/// Evaluations of one step, or the one evaluation being built (the scratch of a builder).
#[derive(Debug)]
pub(crate) struct EvalArena {
    text: String,
    rows: Vec<Row>,
    checks: Vec<CheckRow>,
    metrics: Vec<(u16, f64)>,
    names: Vec<Box<str>>,
    /// `names` by name, once there are more than [`LOOKUP_FROM`] (empty until then).
    lookup: HashMap<Box<str>, u16, FxBuild>,
    /// The name index of the n-th check of the last row: rows usually make the same checks
    /// in the same order, so one comparison finds the name.
    hints: [u16; 8],
}

/// A check as given to the builder, before it lands in an arena.
pub(crate) struct NewCheck<'a> {
    pub(crate) name: &'a str,
    pub(crate) passed: bool,
    pub(crate) op: Op,
    pub(crate) observed: f64,
    pub(crate) observed_text: Option<&'a str>,
    pub(crate) lo: f64,
    pub(crate) hi: f64,
}

impl Default for EvalArena {
    fn default() -> Self {
        EvalArena {
            text: String::new(),
            rows: Vec::new(),
            checks: Vec::new(),
            metrics: Vec::new(),
            names: Vec::new(),
            lookup: HashMap::default(),
            hints: [NO_NAME; 8],
        }
    }
}

impl EvalArena {
    pub(crate) fn rows(&self) -> usize {
        self.rows.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Empties the rows but keeps the interned names, so a reused scratch arena does not
    /// allocate a name it has seen before.
    pub(crate) fn clear_rows(&mut self) {
        self.text.clear();
        self.rows.clear();
        self.checks.clear();
        self.metrics.clear();
        if self.names.len() > MAX_SCRATCH_NAMES {
            self.names.clear();
            self.lookup.clear();
            self.hints = [NO_NAME; 8];
        }
    }

    /// Empties everything, names included, keeping the room (an arena reused for a new step).
    pub(crate) fn clear_all(&mut self) {
        self.text.clear();
        self.rows.clear();
        self.checks.clear();
        self.metrics.clear();
        self.names.clear();
        self.lookup.clear();
        self.hints = [NO_NAME; 8];
    }

    /// Bytes held, for deciding whether a scratch arena is worth keeping.
    pub(crate) fn capacity_bytes(&self) -> usize {
        self.text.capacity()
            + self.rows.capacity() * std::mem::size_of::<Row>()
            + self.checks.capacity() * std::mem::size_of::<CheckRow>()
    }

    fn push_str(&mut self, s: &str) -> Text {
        let start = self.text.len();
        self.text.push_str(s);
        text_span(start, self.text.len())
    }

    /// Appends what `value` displays as, without an intermediate `String`.
    ///
    /// The value's `Display` runs only because X-Ray records it: a panic in it is caught (the
    /// text says so) and does not reach the program, as a reason's does.
    #[inline]
    pub(crate) fn push_display(&mut self, value: impl fmt::Display) -> Text {
        let start = self.text.len();
        super::text::write_display(&mut self.text, "Display", value);
        text_span(start, self.text.len())
    }

    /// Appends text produced by `write`.
    pub(crate) fn push_with(&mut self, write: impl FnOnce(&mut String)) -> Text {
        let start = self.text.len();
        write(&mut self.text);
        text_span(start, self.text.len())
    }

    fn get(&self, t: Text) -> Option<&str> {
        if t.is_none() {
            return None;
        }
        let start = t.start as usize;
        self.text.get(start..start + t.len as usize)
    }

    /// The index of `name`, added if new. [`NO_NAME`] once 65,535 names are taken (it is never
    /// an index: decoding then says the name was not kept).
    pub(crate) fn intern(&mut self, name: &str) -> u16 {
        if self.lookup.is_empty() {
            if let Some(i) = self.names.iter().position(|n| &**n == name) {
                return i as u16;
            }
        } else if let Some(&i) = self.lookup.get(name) {
            return i;
        }
        if self.names.len() >= usize::from(NO_NAME) {
            return NO_NAME;
        }
        let i = self.names.len() as u16;
        self.names.push(name.into());
        if self.names.len() > LOOKUP_FROM {
            if self.lookup.is_empty() {
                for (j, n) in self.names.iter().enumerate() {
                    self.lookup.insert(n.clone(), j as u16);
                }
            } else {
                self.lookup.insert(name.into(), i);
            }
        }
        i
    }

    /// Starts a new row; checks and metrics pushed next belong to it. Returns its index.
    pub(crate) fn begin_row(&mut self, candidate: Text) -> u32 {
        let index = self.rows.len() as u32;
        self.rows.push(Row {
            candidate,
            label: Text::NONE,
            score: f64::NAN,
            passed: true,
            checks_start: self.checks.len() as u32,
            checks_len: 0,
            metrics_start: self.metrics.len() as u32,
            metrics_len: 0,
            snapshot: Text::NONE,
        });
        index
    }

    fn last_row(&mut self) -> Option<&mut Row> {
        self.rows.last_mut()
    }

    pub(crate) fn set_label(&mut self, label: Text) {
        if let Some(row) = self.last_row() {
            row.label = label;
        }
    }

    pub(crate) fn set_score(&mut self, score: f64) {
        if let Some(row) = self.last_row() {
            row.score = score;
        }
    }

    pub(crate) fn set_passed(&mut self, passed: bool) {
        if let Some(row) = self.last_row() {
            row.passed = passed;
        }
    }

    pub(crate) fn set_snapshot(&mut self, json: Text) {
        if let Some(row) = self.last_row() {
            row.snapshot = json;
        }
    }

    /// Adds a check to the current row; `reason` was pushed before, `set` interned before.
    #[inline]
    pub(crate) fn push_check(&mut self, check: NewCheck<'_>, reason: Text, set: u16) {
        let position = self.rows.last().map_or(0, |r| usize::from(r.checks_len));
        let name = match self.hints.get(position) {
            Some(&hint)
                if self
                    .names
                    .get(usize::from(hint))
                    .is_some_and(|n| **n == *check.name) =>
            {
                hint
            }
            Some(_) => {
                let name = self.intern(check.name);
                self.hints[position] = name;
                name
            }
            None => self.intern(check.name),
        };
        let observed_text = match check.observed_text {
            Some(s) => self.push_str(s),
            None => Text::NONE,
        };
        self.checks.push(CheckRow {
            name,
            passed: check.passed,
            op: check.op,
            reason,
            observed: check.observed,
            observed_text,
            lo: check.lo,
            hi: check.hi,
            set,
        });
        if let Some(row) = self.rows.last_mut() {
            row.checks_len = row.checks_len.saturating_add(1);
        }
    }

    pub(crate) fn push_metric(&mut self, name: &str, value: f64) {
        let name = self.intern(name);
        self.metrics.push((name, value));
        if let Some(row) = self.rows.last_mut() {
            row.metrics_len = row.metrics_len.saturating_add(1);
        }
    }

    /// Appends every row of `other` (a builder's scratch) to this arena.
    pub(crate) fn append(&mut self, other: &EvalArena) {
        let base = self.text.len() as u32;
        self.text.push_str(&other.text);
        let shift = |t: Text| {
            if t.is_none() {
                t
            } else {
                Text {
                    start: t.start + base,
                    len: t.len,
                }
            }
        };
        // Map the other arena's names to ours, only those this append uses (a handful: a
        // linear search is fastest, and a small table remembers each answer).
        let mut table = [NO_NAME; MAX_SCRATCH_NAMES];
        let mut name_of = |this: &mut EvalArena, i: u16| -> u16 {
            let Some(name) = other.names.get(usize::from(i)) else {
                return NO_NAME;
            };
            match table.get_mut(usize::from(i)) {
                Some(slot) if *slot != NO_NAME => *slot,
                Some(slot) => {
                    *slot = this.intern(name);
                    *slot
                }
                None => this.intern(name),
            }
        };
        for row in &other.rows {
            let checks_start = self.checks.len() as u32;
            let metrics_start = self.metrics.len() as u32;
            let cs = row.checks_start as usize;
            for c in other
                .checks
                .get(cs..cs + usize::from(row.checks_len))
                .unwrap_or(&[])
            {
                let name = name_of(self, c.name);
                let set = if c.set == NO_NAME {
                    NO_NAME
                } else {
                    name_of(self, c.set)
                };
                self.checks.push(CheckRow {
                    name,
                    set,
                    reason: shift(c.reason),
                    observed_text: shift(c.observed_text),
                    ..*c
                });
            }
            let ms = row.metrics_start as usize;
            for &(n, v) in other
                .metrics
                .get(ms..ms + usize::from(row.metrics_len))
                .unwrap_or(&[])
            {
                let name = name_of(self, n);
                self.metrics.push((name, v));
            }
            self.rows.push(Row {
                candidate: shift(row.candidate),
                label: shift(row.label),
                snapshot: shift(row.snapshot),
                checks_start,
                metrics_start,
                ..*row
            });
        }
    }

    /// Decodes every row (on the writer thread).
    #[cfg(test)]
    pub(crate) fn decode(&self) -> Vec<Evaluation> {
        let mut rows = Vec::new();
        self.decode_into(&mut rows, |_| {});
        rows
    }

    /// Decodes every row into `out`, reusing the evaluations (and their strings) already there:
    /// a writer that decodes step after step allocates nothing once it has seen a step as
    /// large. `each` sees every row as soon as it is decoded.
    pub(crate) fn decode_into(&self, out: &mut Vec<Evaluation>, mut each: impl FnMut(&Evaluation)) {
        let mut spare = Spare::default();
        out.truncate(self.rows.len());
        for (i, row) in self.rows.iter().enumerate() {
            match out.get_mut(i) {
                Some(e) => {
                    self.decode_row_into(row, e, &mut spare);
                    each(e);
                }
                None => {
                    let mut e = empty_evaluation();
                    self.decode_row_into(row, &mut e, &mut spare);
                    each(&e);
                    out.push(e);
                }
            }
        }
    }

    fn decode_row_into(&self, row: &Row, e: &mut Evaluation, spare: &mut Spare) {
        set(
            &mut e.candidate_id,
            self.get(row.candidate).unwrap_or_default(),
        );
        set_opt(&mut e.label, self.get(row.label));
        e.passed = row.passed;
        e.score = (!row.score.is_nan()).then_some(row.score);
        e.selected = false;
        let cs = row.checks_start as usize;
        let checks = self
            .checks
            .get(cs..cs + usize::from(row.checks_len))
            .unwrap_or(&[]);
        e.checks.truncate(checks.len());
        for (i, c) in checks.iter().enumerate() {
            match e.checks.get_mut(i) {
                Some(check) => self.decode_check_into(c, check, spare),
                None => {
                    let mut check = Check {
                        name: String::new(),
                        passed: false,
                        reason: None,
                        observed: None,
                        threshold: None,
                        op: None,
                    };
                    self.decode_check_into(c, &mut check, spare);
                    e.checks.push(check);
                }
            }
        }
        let ms = row.metrics_start as usize;
        let metrics = self
            .metrics
            .get(ms..ms + usize::from(row.metrics_len))
            .unwrap_or(&[]);
        e.metrics.truncate(metrics.len());
        for (i, &(n, v)) in metrics.iter().enumerate() {
            let name = self.name(n);
            match e.metrics.get_mut(i) {
                Some(m) => {
                    set(&mut m.0, name);
                    m.1 = v;
                }
                None => e.metrics.push((name.to_owned(), v)),
            }
        }
        // Snapshots were written by serde_json on the application thread.
        e.snapshot = self.get(row.snapshot).and_then(Json::parse);
    }

    fn name(&self, n: u16) -> &str {
        self.names.get(usize::from(n)).map_or(NAME_NOT_KEPT, |s| s)
    }

    fn decode_check_into(&self, c: &CheckRow, check: &mut Check, spare: &mut Spare) {
        use serde_json::Value;
        let num = |v: f64| serde_json::Number::from_f64(v).map(Value::Number);
        set(&mut check.name, self.name(c.name));
        check.passed = c.passed;
        match c.op {
            Op::Free => {
                check.observed = None;
                check.threshold = None;
            }
            Op::Min | Op::Max => {
                check.observed = num(c.observed);
                check.threshold = num(if c.op == Op::Min { c.lo } else { c.hi });
            }
            Op::Range => {
                check.observed = num(c.observed);
                let bounds = [c.lo, c.hi].map(|v| num(v).unwrap_or(Value::Null));
                match &mut check.threshold {
                    Some(Value::Array(items)) => {
                        items.clear();
                        items.extend(bounds);
                    }
                    other => *other = Some(Value::Array(bounds.into())),
                }
            }
            Op::In => {
                check.observed = self
                    .get(c.observed_text)
                    .map(|s| Value::String(s.to_owned()));
                check.threshold = self.names.get(usize::from(c.set)).map(|set| {
                    Value::Array(
                        set.split(SET_SEP)
                            .filter(|s| !s.is_empty())
                            .map(|s| Value::String(s.to_owned()))
                            .collect(),
                    )
                });
            }
        }
        // Structured checks keep numbers on the application thread; their reason is written
        // here, on the writer thread.
        match (self.get(c.reason), c.passed) {
            (Some(reason), _) => {
                set(check.reason.get_or_insert_with(|| spare.string()), reason);
            }
            (None, true) => spare.keep(check.reason.take()),
            (None, false) => {
                let reason = check.reason.get_or_insert_with(|| spare.string());
                reason.clear();
                // Reasons of one check differ in length from row to row: room for most at once.
                reason.reserve(REASON_CAPACITY);
                if !self.write_derived_reason(c, reason, &mut spare.bounds) {
                    spare.keep(check.reason.take());
                }
            }
        }
        set_opt(&mut check.op, c.op.as_str());
    }
}

/// Room made for a derived reason (`8.99 < 14.995 (range 14.995–59.98)` is 34 bytes).
const REASON_CAPACITY: usize = 64;

/// What a decode keeps at hand: strings freed by one row for the next (a reason that is
/// there in one row and not in the next would otherwise be freed and allocated again), and the
/// text of the last bounds written (every row of a filter has the same thresholds).
#[derive(Default)]
struct Spare {
    strings: Vec<String>,
    bounds: Bounds,
}

impl Spare {
    fn string(&mut self) -> String {
        self.strings
            .pop()
            .unwrap_or_else(|| String::with_capacity(REASON_CAPACITY))
    }

    fn keep(&mut self, s: Option<String>) {
        if let Some(s) = s {
            if self.strings.len() < 64 {
                self.strings.push(s);
            }
        }
    }
}

/// The text of the last `lo` and `hi` bounds written.
#[derive(Default)]
struct Bounds {
    bits: Option<(u64, u64)>,
    lo: String,
    hi: String,
}

impl Bounds {
    fn get(&mut self, lo: f64, hi: f64) -> (&str, &str) {
        let bits = (lo.to_bits(), hi.to_bits());
        if self.bits != Some(bits) {
            self.lo.clear();
            self.hi.clear();
            Num(lo).push_to(&mut self.lo);
            Num(hi).push_to(&mut self.hi);
            self.bits = Some(bits);
        }
        (&self.lo, &self.hi)
    }
}

fn empty_evaluation() -> Evaluation {
    Evaluation {
        candidate_id: String::new(),
        label: None,
        passed: false,
        score: None,
        selected: false,
        checks: Vec::new(),
        metrics: Vec::new(),
        snapshot: None,
    }
}

/// Replaces the text of `out`, keeping its allocation.
fn set(out: &mut String, text: &str) {
    out.clear();
    out.push_str(text);
}

/// Replaces an optional text, keeping the allocation when there is one.
fn set_opt(out: &mut Option<String>, text: Option<&str>) {
    match (out.as_mut(), text) {
        (Some(s), Some(t)) => set(s, t),
        (None, Some(t)) => *out = Some(t.to_owned()),
        (_, None) => *out = None,
    }
}

impl EvalArena {
    /// Writes the reason of a failed structured check: `3.2 < 3.8 minimum`, `1250 > 1000
    /// maximum`, `8.99 < 14.99 (range 14.99–59.98)`, `Phone Cases not in [Laptop Stands]`.
    /// Returns `false` for a free-form check (it has no derived reason).
    fn write_derived_reason(&self, c: &CheckRow, out: &mut String, bounds: &mut Bounds) -> bool {
        let (lo, hi) = bounds.get(c.lo, c.hi);
        let observed = |out: &mut String| Num(c.observed).push_to(out);
        match c.op {
            Op::Free => return false,
            Op::Min => {
                observed(out);
                out.push_str(" < ");
                out.push_str(lo);
                out.push_str(" minimum");
            }
            Op::Max => {
                observed(out);
                out.push_str(" > ");
                out.push_str(hi);
                out.push_str(" maximum");
            }
            Op::Range => {
                observed(out);
                let (sign, bound) = if c.observed < c.lo {
                    (" < ", lo)
                } else {
                    (" > ", hi)
                };
                out.push_str(sign);
                out.push_str(bound);
                out.push_str(" (range ");
                out.push_str(lo);
                out.push('–');
                out.push_str(hi);
                out.push(')');
            }
            Op::In => {
                let set = self
                    .names
                    .get(usize::from(c.set))
                    .map_or("", |s| s.as_ref());
                out.push_str(self.get(c.observed_text).unwrap_or(""));
                out.push_str(" not in [");
                for (i, item) in set.split(SET_SEP).filter(|s| !s.is_empty()).enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(item);
                }
                out.push(']');
            }
        }
        true
    }
}

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

fn get_text(text: &str, t: Text) -> Option<&str> {
    if t.is_none() {
        return None;
    }
    let start = t.start as usize;
    text.get(start..start + t.len as usize)
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

/// A number as a person writes it: `3.8`, `14.99`, `1000`.
pub(crate) struct Num(pub(crate) f64);

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = zmij::Buffer::new();
        match self.short(&mut buf) {
            Some(text) => f.write_str(text),
            None => self.fmt_slow(f),
        }
    }
}

impl Num {
    /// The text, when the fast paths give it: an integer below 1e15, or the shortest text that
    /// reads back as the number (zmij, as serde_json uses) when it has at most 4 decimals and
    /// no exponent. For |v| < 1e11 that is exactly what `{:.4}` with its zeros trimmed prints
    /// (v is within half an ulp < 0.5e-4 of it), without bignum arithmetic.
    fn short<'a>(&self, buf: &'a mut zmij::Buffer) -> Option<&'a str> {
        let v = self.0;
        if !v.is_finite() || v.abs() >= 1e11 {
            return None;
        }
        let text = buf.format_finite(v);
        let text = text.strip_suffix(".0").unwrap_or(text);
        if text.contains(['e', 'E']) {
            return None;
        }
        let decimals = text.find('.').map_or(0, |dot| text.len() - dot - 1);
        (decimals <= 4 && text != "-0").then_some(text)
    }

    fn fmt_slow(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if v.fract() == 0.0 && v.abs() < 1e15 {
            write!(f, "{}", v as i64)
        } else if v.is_finite() {
            let text = format!("{v:.4}");
            f.write_str(text.trim_end_matches('0').trim_end_matches('.'))
        } else {
            write!(f, "{v}")
        }
    }

    /// Appends the text to `out`.
    pub(crate) fn push_to(&self, out: &mut String) {
        let mut buf = zmij::Buffer::new();
        match self.short(&mut buf) {
            Some(text) => out.push_str(text),
            None => {
                let _ = write!(out, "{self}");
            }
        }
    }
}

fn text_span(start: usize, end: usize) -> Text {
    // A step's text beyond 4 GiB is not representable; such rows keep an empty string.
    match (u32::try_from(start), u32::try_from(end - start)) {
        (Ok(start), Ok(len)) if start != u32::MAX => Text { start, len },
        _ => Text { start: 0, len: 0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(arena: &mut EvalArena, id: &str, checks: &[(&str, bool, Option<&str>)]) {
        let cand = arena.push_str(id);
        arena.begin_row(cand);
        for &(name, passed, reason) in checks {
            let r = reason.map_or(Text::NONE, |r| arena.push_str(r));
            arena.push_check(
                NewCheck {
                    name,
                    passed,
                    op: Op::Free,
                    observed: f64::NAN,
                    observed_text: None,
                    lo: f64::NAN,
                    hi: f64::NAN,
                },
                r,
                NO_NAME,
            );
        }
        arena.set_passed(checks.iter().all(|c| c.1));
    }

    #[test]
    fn names_past_the_last_index_are_said_to_be_lost_not_confused_with_another() {
        let mut arena = EvalArena::default();
        let taken = usize::from(NO_NAME);
        for i in 0..taken {
            assert_eq!(usize::from(arena.intern(&format!("name {i}"))), i);
        }
        // Known names keep their index; a new one gets none (it used to get the last name's).
        assert_eq!(arena.intern("name 7"), 7);
        assert_eq!(arena.intern("name 65534"), 65534);
        assert_eq!(arena.intern("one too many"), NO_NAME);
        one(&mut arena, "C1", &[("one too many", false, Some("why"))]);
        let decoded = arena.decode();
        assert_eq!(decoded[0].checks[0].name, NAME_NOT_KEPT);
        assert_eq!(decoded[0].checks[0].reason.as_deref(), Some("why"));
    }

    #[test]
    fn append_remaps_text_and_names() {
        let mut step = EvalArena::default();
        one(&mut step, "A1", &[("price", true, None)]);
        let mut scratch = EvalArena::default();
        one(
            &mut scratch,
            "B2",
            &[("rating", false, Some("3.2 < 3.8")), ("price", true, None)],
        );
        scratch.push_metric("relevance", 0.5);
        step.append(&scratch);
        let rows = step.decode();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].candidate_id, "B2");
        assert!(!rows[1].passed);
        assert_eq!(rows[1].checks[0].name, "rating");
        assert_eq!(rows[1].checks[0].reason.as_deref(), Some("3.2 < 3.8"));
        assert_eq!(rows[1].checks[1].name, "price");
        assert_eq!(rows[1].metrics, vec![("relevance".to_owned(), 0.5)]);
        assert_eq!(rows[0].checks[0].name, "price");
        assert!(rows[0].passed);
    }
}
