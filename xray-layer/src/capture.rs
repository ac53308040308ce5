//! The capture policy: what is kept of a step that judged 5,000 candidates and kept 30.
//!
//! Counts are always exact: every step with evaluations gets an [`EvaluationSummary`] (passed and
//! failed per check, which check eliminated each candidate first, the most frequent reasons).
//! The rows themselves are kept according to [`Capture`]:
//!
//! | policy | rows kept |
//! |---|---|
//! | [`Capture::All`] | every evaluation |
//! | [`Capture::Cap(n)`](Capture::Cap) (default, `n` = [`DEFAULT_EVALUATION_CAP`]) | every evaluation up to `n`; past `n`: every selected one, every one that failed near a threshold, and a deterministic sample of the rest, `n` in all |
//! | [`Capture::Summary`] | only the selected ones |
//!
//! The developer chooses per step (`#[xray::step(capture = "all")]`, `"summary"`, or a number) or
//! for every step on the builder ([`crate::Builder::capture`]). The summary says when the rows are
//! a sample, and of how many, so the viewer can say so.
//!
//! Sampling runs on the writer thread: the application thread only appends to the step's arena.

use crate::model::{Check, CheckSummary, Evaluation, EvaluationSummary, Selection};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A fast hash for the reason histogram (the keys are our own reasons, not an attacker's):
/// FxHash, 8 bytes at a time.
#[derive(Default)]
pub(crate) struct FxHasher(u64);

/// Builds [`FxHasher`]s for a `HashMap`.
pub(crate) type FxBuild = BuildHasherDefault<FxHasher>;

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn write_u8(&mut self, b: u8) {
        self.write(&[b]);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The number of evaluation rows a step keeps before sampling, by default.
pub const DEFAULT_EVALUATION_CAP: usize = 10_000;

/// How much of a step's evaluations to keep. See the [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Capture {
    /// Keep every evaluation.
    All,
    /// Keep at most this many rows; sample past it.
    Cap(usize),
    /// Keep only the summary (and the selected candidates' rows).
    Summary,
}

impl Default for Capture {
    fn default() -> Self {
        Capture::Cap(DEFAULT_EVALUATION_CAP)
    }
}

impl Capture {
    /// Parses `all`, `summary`, or a number (a cap).
    pub fn parse(text: &str) -> Option<Capture> {
        match text.trim() {
            "all" => Some(Capture::All),
            "summary" => Some(Capture::Summary),
            n => n.parse::<usize>().ok().map(Capture::Cap),
        }
    }

    /// The stored spelling: `all`, `summary`, `cap:N`.
    pub fn label(self) -> String {
        match self {
            Capture::All => "all".into(),
            Capture::Summary => "summary".into(),
            Capture::Cap(n) => format!("cap:{n}"),
        }
    }
}

/// A candidate failing a structured check by at most this share of the threshold is "near" it
/// and always kept: those are the candidates a person asks about ("why was 3.75 rejected?").
const NEAR_THRESHOLD: f64 = 0.10;

/// Summarizes `rows` and keeps what `capture` says. Marks selected rows.
#[cfg(test)]
pub(crate) fn apply(
    capture: Capture,
    rows: Vec<Evaluation>,
    selection: &[Selection],
) -> (Vec<Evaluation>, EvaluationSummary) {
    let mut summarizer = Summarizer::default();
    for row in &rows {
        summarizer.add(row);
    }
    keep(capture, rows, summarizer, selection)
}

/// Keeps what `capture` says of `rows`, summarized by `summarizer`. Marks selected rows.
pub(crate) fn keep(
    capture: Capture,
    mut rows: Vec<Evaluation>,
    summarizer: Summarizer,
    selection: &[Selection],
) -> (Vec<Evaluation>, EvaluationSummary) {
    if !selection.is_empty() {
        for row in &mut rows {
            if selection.iter().any(|s| s.candidate_id == row.candidate_id) {
                row.selected = true;
            }
        }
    }
    let mut summary = summarizer.finish();
    summary.capture = capture.label();
    let cap = match capture {
        Capture::All => usize::MAX,
        Capture::Cap(n) => n,
        Capture::Summary => 0,
    };
    if rows.len() > cap {
        rows = sample(rows, cap);
        summary.sampled = true;
    }
    summary.kept = rows.len() as u64;
    (rows, summary)
}

/// Distinct reasons tracked per check before new ones are only counted as "other".
const MAX_DISTINCT: usize = 2_000;

/// Exact counts per check and the most frequent failure reasons, one row at a time (the writer
/// adds each row as it decodes it, while its strings are still in cache).
#[derive(Default)]
pub(crate) struct Summarizer {
    summary: EvaluationSummary,
    reasons: Vec<HashMap<String, u64, BuildHasherDefault<FxHasher>>>,
    /// No check of the current row has failed yet.
    first: bool,
}

impl Summarizer {
    pub(crate) fn add(&mut self, row: &Evaluation) {
        self.add_row(row.passed);
        for (n, check) in row.checks.iter().enumerate() {
            let numeric = matches!(check.op.as_deref(), Some("min" | "max" | "range"));
            self.add_check(
                n,
                &check.name,
                check.passed,
                check.reason.as_deref(),
                numeric,
            );
        }
    }

    /// Counts a row; its checks follow, in order, through [`add_check`](Self::add_check).
    pub(crate) fn add_row(&mut self, passed: bool) {
        let summary = &mut self.summary;
        summary.total += 1;
        if passed {
            summary.passed += 1;
        } else {
            summary.failed += 1;
        }
        self.first = true;
    }

    /// Counts the `n`-th check of the row last added. A `numeric` check (a structured `min`,
    /// `max` or `range`) counts its reason by rule, without the observed value: every rejected
    /// price has a reason of its own (`8.99 < 14.99 (range 14.99–59.98)`), and what the step's
    /// reader needs is how many were below the range and how many above
    /// (`< 14.99 (range 14.99–59.98)`).
    pub(crate) fn add_check(
        &mut self,
        n: usize,
        name: &str,
        passed: bool,
        reason: Option<&str>,
        numeric: bool,
    ) {
        let summary = &mut self.summary;
        // Rows usually make the same checks in the same order.
        let i = match summary.checks.get(n) {
            Some(c) if c.name == name => n,
            _ => match summary.checks.iter().position(|c| c.name == name) {
                Some(i) => i,
                None => {
                    summary.checks.push(CheckSummary {
                        name: name.to_owned(),
                        ..Default::default()
                    });
                    self.reasons.push(HashMap::default());
                    summary.checks.len() - 1
                }
            },
        };
        let entry = &mut summary.checks[i];
        if passed {
            entry.passed += 1;
            return;
        }
        entry.failed += 1;
        if self.first {
            entry.first_failed += 1;
            self.first = false;
        }
        let key = match reason {
            Some(reason) if numeric => reason.split_once(' ').map_or(reason, |(_, rule)| rule),
            Some(reason) => reason,
            None => "(no reason given)",
        };
        let histogram = &mut self.reasons[i];
        if let Some(n) = histogram.get_mut(key) {
            *n += 1;
        } else if histogram.len() < MAX_DISTINCT {
            histogram.insert(key.to_owned(), 1);
        } else {
            *histogram.entry("(other reasons)".to_owned()).or_insert(0) += 1;
        }
    }

    pub(crate) fn finish(self) -> EvaluationSummary {
        let mut summary = self.summary;
        for (entry, histogram) in summary.checks.iter_mut().zip(self.reasons) {
            let mut top: Vec<(String, u64)> = histogram.into_iter().collect();
            top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            top.truncate(EvaluationSummary::TOP_REASONS);
            entry.top_reasons = top;
        }
        summary
    }
}

/// Keeps `cap` rows: selected and near-threshold ones first, then the rows with the smallest
/// hash of their candidate id (deterministic: the same run samples the same candidates).
fn sample(rows: Vec<Evaluation>, cap: usize) -> Vec<Evaluation> {
    let keep = sample_indices(rows.len(), cap, |i| {
        let row = &rows[i];
        let near = !row.passed && row.checks.iter().filter(|c| !c.passed).all(near);
        (priority(row.selected, near), row.candidate_id.as_str())
    });
    let mut rows: Vec<Option<Evaluation>> = rows.into_iter().map(Some).collect();
    keep.into_iter().filter_map(|i| rows[i].take()).collect()
}

/// The sampling rank of a row: selected, then failed only near thresholds, then the rest.
pub(crate) fn priority(selected: bool, near_miss: bool) -> u8 {
    if selected {
        0
    } else if near_miss {
        1
    } else {
        2
    }
}

/// The indices (in order) of the `cap` rows of `n` that sampling keeps, given each row's
/// priority and candidate id; every selected row is kept even past `cap`.
pub(crate) fn sample_indices<'a>(
    n: usize,
    cap: usize,
    rank: impl Fn(usize) -> (u8, &'a str),
) -> Vec<usize> {
    let mut ranked: Vec<(u8, u64, usize)> = (0..n)
        .map(|i| {
            let (priority, id) = rank(i);
            (priority, fnv1a(id.as_bytes()), i)
        })
        .collect();
    ranked.sort_unstable();
    let selected = ranked.iter().take_while(|r| r.0 == 0).count();
    let mut keep: Vec<usize> = ranked.iter().take(cap.max(selected)).map(|r| r.2).collect();
    keep.sort_unstable();
    keep
}

/// Whether a failed structured check missed its threshold by at most [`NEAR_THRESHOLD`].
fn near(check: &Check) -> bool {
    let observed = check.observed.as_ref().and_then(|v| v.as_f64());
    let (Some(observed), Some(op)) = (observed, check.op.as_deref()) else {
        return false;
    };
    let threshold = check.threshold.as_ref();
    let close = |t: Option<f64>| t.is_some_and(|t| near_number(observed, t));
    match op {
        "min" | "max" => close(threshold.and_then(|t| t.as_f64())),
        "range" => {
            let bounds = threshold.and_then(|t| t.as_array());
            close(bounds.and_then(|b| b.first()).and_then(|v| v.as_f64()))
                || close(bounds.and_then(|b| b.get(1)).and_then(|v| v.as_f64()))
        }
        _ => false,
    }
}

/// Whether `observed` is within [`NEAR_THRESHOLD`] of `threshold` (false for NaN).
pub(crate) fn near_number(observed: f64, threshold: f64) -> bool {
    (observed - threshold).abs() <= NEAR_THRESHOLD * threshold.abs().max(f64::EPSILON)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(id: usize, passed: bool, observed: f64) -> Evaluation {
        Evaluation {
            candidate_id: format!("C{id}"),
            label: None,
            passed,
            score: None,
            selected: false,
            checks: vec![Check {
                name: "rating".into(),
                passed,
                reason: (!passed).then(|| format!("{observed} < 4 minimum")),
                observed: serde_json::Number::from_f64(observed).map(serde_json::Value::Number),
                threshold: Some(serde_json::json!(4.0)),
                op: Some("min".into()),
            }],
            metrics: vec![],
            snapshot: None,
        }
    }

    #[test]
    fn sampling_keeps_selected_and_near_misses_and_counts_stay_exact() {
        let rows: Vec<Evaluation> = (0..1000)
            .map(|i| match i {
                7 => eval(i, false, 3.9), // near the 4.0 minimum
                500 => eval(i, true, 4.5),
                _ => eval(i, false, 1.0),
            })
            .collect();
        let selection = vec![Selection {
            candidate_id: "C500".into(),
            reason: "best".into(),
        }];
        let (kept, summary) = apply(Capture::Cap(10), rows.clone(), &selection);
        assert_eq!(kept.len(), 10);
        assert!(summary.sampled);
        assert_eq!(
            (summary.total, summary.passed, summary.failed, summary.kept),
            (1000, 1, 999, 10)
        );
        assert!(kept.iter().any(|r| r.candidate_id == "C500" && r.selected));
        assert!(kept.iter().any(|r| r.candidate_id == "C7"));
        assert_eq!(summary.checks[0].failed, 999);
        assert_eq!(
            summary.checks[0].top_reasons[0],
            ("< 4 minimum".to_owned(), 999),
            "numeric reasons count by rule, whatever the observed value"
        );
        // Deterministic.
        let (again, _) = apply(Capture::Cap(10), rows, &selection);
        assert_eq!(kept, again);
    }

    #[test]
    fn summary_keeps_only_selected_rows() {
        let rows: Vec<Evaluation> = (0..5).map(|i| eval(i, i == 2, 4.2)).collect();
        let sel = vec![Selection {
            candidate_id: "C2".into(),
            reason: "r".into(),
        }];
        let (kept, summary) = apply(Capture::Summary, rows, &sel);
        assert_eq!(kept.len(), 1);
        assert_eq!(summary.kept, 1);
        assert!(summary.sampled);
        assert_eq!(summary.capture, "summary");
    }
}
