//! The writer thread's side of an arena: every row decoded into an owned [`Evaluation`], with
//! the reasons of structured checks derived from their numbers.

use super::*;

impl EvalArena {
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

    pub(super) fn name(&self, n: u16) -> &str {
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
pub(super) struct Bounds {
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
    pub(super) fn write_derived_reason(
        &self,
        c: &CheckRow,
        out: &mut String,
        bounds: &mut Bounds,
    ) -> bool {
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
