//! Compact storage for a step's evaluations while the step runs.
//!
//! A step that judges 5,000 candidates must not make 5,000 × (id + label + checks + reasons)
//! small allocations on the application thread and free them on the writer thread (DESIGN's
//! measured facts: that costs ~0.5 µs a record). Instead every string of every evaluation is
//! appended to one `String`, and rows refer to it by offset. Check and metric names are interned
//! per step. The writer thread decodes the arena into [`Evaluation`]s.
//!
//! | file | side | what |
//! |---|---|---|
//! | `mod.rs` | application thread | the rows, and the calls a builder makes to fill them |
//! | `decode.rs` | writer thread | rows into owned [`Evaluation`]s, reasons derived from the numbers |
//! | `rows.rs` | writer thread | rows straight into the SQLite store's columns ([`StepRows`]) |
//! | `num.rs` | writer thread | numbers as a person writes them (`14.99`, `1000`) |

use crate::capture::FxBuild;
use crate::model::{Check, Evaluation, Json};
use std::collections::HashMap;
use std::fmt;

mod decode;
mod num;
mod rows;

pub(crate) use num::Num;
pub(crate) use rows::{json_into, StepRows};

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
    #[inline(always)]
    pub(crate) fn push_check(&mut self, check: NewCheck<'_>, reason: Text, set: u16) {
        let (position, name) = match self.rows.last() {
            Some(row) => {
                let position = usize::from(row.checks_len);
                (position, self.hinted_name(position, check.name))
            }
            None => (0, None),
        };
        let name = match name {
            Some(name) => name,
            None => self.name_at(position, check.name),
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

    /// The name the last row gave its check at `position`, if `name` is that one: rows usually
    /// make the same checks in the same order, so this finds a check's name with one short
    /// comparison.
    #[inline(always)]
    fn hinted_name(&self, position: usize, name: &str) -> Option<u16> {
        let hint = *self.hints.get(position)?;
        let known = self.names.get(usize::from(hint))?;
        same_text(known.as_bytes(), name.as_bytes()).then_some(hint)
    }

    /// The index of check name `name`, remembered as the hint for `position`: the slower path
    /// of [`push_check`](Self::push_check), kept out of its way.
    #[cold]
    #[inline(never)]
    fn name_at(&mut self, position: usize, name: &str) -> u16 {
        let index = self.intern(name);
        if let Some(hint) = self.hints.get_mut(position) {
            *hint = index;
        }
        index
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
}

/// Whether `a` and `b` are the same bytes. Check names are short: up to 16 bytes, two
/// overlapping 8-byte words (or four bytes) of each are compared in registers, where `==`
/// would call `memcmp`.
#[inline(always)]
fn same_text(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| s.get(at..)?.first_chunk().map(|w| u64::from_ne_bytes(*w));
    let half = |s: &[u8], at: usize| s.get(at..)?.first_chunk().map(|w| u32::from_ne_bytes(*w));
    match n {
        0 => true,
        1..=3 => a == b,
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        _ => a == b,
    }
}

fn get_text(text: &str, t: Text) -> Option<&str> {
    if t.is_none() {
        return None;
    }
    let start = t.start as usize;
    text.get(start..start + t.len as usize)
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
    fn check_names_that_differ_in_any_byte_are_told_apart() {
        // `same_text` compares words, not bytes: every length, a difference at every position.
        for len in 0..40usize {
            let name: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            assert!(same_text(&name, &name.clone()), "{len}");
            if len > 0 {
                assert!(!same_text(&name, &name[..len - 1]), "{len}");
            }
            for at in 0..len {
                let mut other = name.clone();
                other[at] = b'_';
                assert!(!same_text(&name, &other), "length {len}, byte {at}");
            }
        }
        // Through the arena: a row whose check names differ from the last row's only late in
        // the name gets its own names.
        let mut arena = EvalArena::default();
        one(&mut arena, "A", &[("price_minimum", true, None)]);
        one(&mut arena, "B", &[("price_maximum", false, Some("why"))]);
        let rows = arena.decode();
        assert_eq!(rows[0].checks[0].name, "price_minimum");
        assert_eq!(rows[1].checks[0].name, "price_maximum");
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
