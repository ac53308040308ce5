//! The parameters and results of the store's read queries.

use crate::model::{Check, EvaluationSummary, Json, Status};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The largest page any query returns; a larger `limit` is an error naming `limit`.
pub const MAX_PAGE_SIZE: usize = 1000;
/// The page size when none is given.
pub const DEFAULT_PAGE_SIZE: usize = 50;

/// One page of a list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Pass back as `cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// An empty last page.
    pub fn empty() -> Self {
        Page {
            items: Vec::new(),
            next_cursor: None,
        }
    }
}

/// Checks `limit` (1..=[`MAX_PAGE_SIZE`], default [`DEFAULT_PAGE_SIZE`]).
pub(crate) fn page_size(limit: Option<usize>) -> Result<usize, super::StoreError> {
    match limit {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(0) => Err(super::StoreError::invalid("limit", "must be at least 1")),
        Some(n) if n > MAX_PAGE_SIZE => Err(super::StoreError::invalid(
            "limit",
            format!("must be at most {MAX_PAGE_SIZE}"),
        )),
        Some(n) => Ok(n),
    }
}

/// Filters for [`Store::list_executions`](super::Store::list_executions). Every field is optional;
/// set fields combine with AND.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecutionQuery {
    /// Exact pipeline name.
    pub name: Option<String>,
    /// Status.
    pub status: Option<Status>,
    /// Executions carrying every one of these tags.
    pub tags: Vec<String>,
    /// Started at or after (unix µs).
    pub since: Option<i64>,
    /// Started before (unix µs).
    pub until: Option<i64>,
    /// At least this many steps.
    pub min_steps: Option<u64>,
    /// At most this many steps.
    pub max_steps: Option<u64>,
    /// Text found in the name, id, notes, input, output, or a step's name (case-insensitive).
    pub q: Option<String>,
    /// `true`: the execution or one of its steps failed; `false`: none did.
    pub has_error: Option<bool>,
    /// Page size (default [`DEFAULT_PAGE_SIZE`], at most [`MAX_PAGE_SIZE`]).
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// An execution as listed: no payloads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecutionSummary {
    /// UUID v7.
    pub id: Uuid,
    /// Pipeline name.
    pub name: String,
    /// Running, ok, error or lost.
    pub status: Status,
    /// Unix µs.
    pub started_at: i64,
    /// Unix µs.
    pub completed_at: Option<i64>,
    /// Tags.
    pub tags: Vec<String>,
    /// Notes.
    pub notes: Option<String>,
    /// The execution's error.
    pub error: Option<String>,
    /// Steps recorded.
    pub step_count: u64,
    /// Steps that failed.
    pub error_steps: u64,
    /// Candidates entering the first step that counts them.
    pub candidates_in: Option<u64>,
    /// Candidates leaving the last top-level step that counts them; `None` for a run that
    /// failed (it returned no candidates, whatever a step let through before it failed).
    pub candidates_out: Option<u64>,
    /// Records of this execution that were lost: dropped on a full queue, or step ends the store
    /// failed to write.
    pub dropped_records: u64,
    /// Service, host, pid of the recording process.
    pub service: Option<String>,
    /// Host.
    pub host: Option<String>,
    /// Process id.
    pub pid: Option<u32>,
    /// Change sequence of the latest write to this execution.
    pub seq: u64,
    /// What the run was given: the first values of its input, each with its path
    /// (`("seller.title", "Qubi laptop stand")`), at most
    /// [`MAX_PREVIEW_FIELDS`](super::MAX_PREVIEW_FIELDS), each cut to
    /// [`MAX_PREVIEW_VALUE_CHARS`](super::MAX_PREVIEW_VALUE_CHARS) characters (paths to
    /// [`MAX_PREVIEW_PATH_CHARS`](super::MAX_PREVIEW_PATH_CHARS)); empty when it
    /// recorded no input. Runs of one pipeline share a name: these tell them apart in a list.
    #[serde(default)]
    pub input_preview: Vec<(String, String)>,
    /// What the run returned, the same way: the first values of its output (the selected
    /// competitor's title and category), so that a list shows a laptop stand's run that ended
    /// in a phone case without opening it. Empty when it recorded no output.
    #[serde(default)]
    pub output_preview: Vec<(String, String)>,
}

/// An execution with its steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecutionDetail {
    /// The execution.
    #[serde(flatten)]
    pub execution: ExecutionSummary,
    /// JSON object of metadata.
    pub metadata: Json,
    /// The execution's input (the arguments of the `#[xray::execution]` function), if recorded.
    pub input: Option<Json>,
    /// The execution's output, if recorded.
    pub output: Option<Json>,
    /// The steps, in start order; nest them with `parent_id`.
    pub steps: Vec<StepSummary>,
}

/// A step without payloads or evaluation rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepSummary {
    /// UUID v7.
    pub id: Uuid,
    /// Its execution.
    pub execution_id: Uuid,
    /// The execution's name (for cross-pipeline lists).
    pub execution_name: String,
    /// The enclosing step.
    pub parent_id: Option<Uuid>,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: Option<String>,
    /// Status.
    pub status: Status,
    /// Error message.
    pub error: Option<String>,
    /// Unix µs.
    pub started_at: i64,
    /// Unix µs.
    pub ended_at: Option<i64>,
    /// Candidates considered.
    pub candidates_in: Option<u64>,
    /// Candidates kept.
    pub candidates_out: Option<u64>,
    /// `1 - out/in`.
    pub elimination: Option<f64>,
    /// Evaluation counts per check (exact), when the step evaluated candidates.
    pub summary: Option<EvaluationSummary>,
    /// Change sequence of the latest write to this step.
    pub seq: u64,
}

/// Which evaluations of a step to return.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EvaluationQuery {
    /// Only those that passed (`true`) or failed (`false`).
    pub passed: Option<bool>,
    /// Only those that failed this check (with `passed = Some(true)`: passed it).
    pub check: Option<String>,
    /// With `check`: only those whose check observed this value, as
    /// [`CheckValue::observed`] shows it (a string's text, any other value as JSON: `4.1`).
    /// The verdict (`passed`) is then that of the check's entry with this value, as
    /// [`CheckValues`] counts them (a row may make one check twice).
    /// "Which candidates did the category check pass as Phone Cases?" (A string and another
    /// value spelled alike, `"24"` and `24`, both match `24`.)
    #[serde(default)]
    pub observed: Option<String>,
    /// Text in the candidate id or label (case-insensitive).
    pub q: Option<String>,
    /// Order: recorded order (default), score, or the metric named by `metric`.
    pub sort: EvaluationSort,
    /// The metric that [`EvaluationSort::MetricDesc`] and [`EvaluationSort::MetricAsc`] sort
    /// by (`confidence`); with any other order, an error naming `metric`.
    #[serde(default)]
    pub metric: Option<String>,
    /// Page size.
    pub limit: Option<usize>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// The order of [`Store::evaluations`](super::Store::evaluations).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvaluationSort {
    /// The order the step made them.
    #[default]
    Recorded,
    /// Highest score first (no score last).
    ScoreDesc,
    /// Lowest score first (no score last).
    ScoreAsc,
    /// Highest value of the query's `metric` first (evaluations without it last).
    MetricDesc,
    /// Lowest value of the query's `metric` first (evaluations without it last).
    MetricAsc,
}

impl EvaluationSort {
    /// Whether it sorts by a metric (the query must name one).
    pub fn by_metric(self) -> bool {
        matches!(self, EvaluationSort::MetricDesc | EvaluationSort::MetricAsc)
    }
}

/// An evaluation's metrics as stored (`[["name", value], …]`). A value JSON could not hold
/// (NaN, an infinity: stored as `null`) reads as NaN, so one such value does not hide the
/// row's other metrics.
pub(crate) fn metrics_of(json: Option<&str>) -> Vec<(String, f64)> {
    json.and_then(|m| serde_json::from_str::<Vec<(String, Option<f64>)>>(m).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| (name, value.unwrap_or(f64::NAN)))
        .collect()
}

impl EvaluationQuery {
    /// The metric to sort by: `Some` for a metric sort, `None` for the others; an error naming
    /// `metric` when the two disagree.
    pub(crate) fn sort_metric(&self) -> Result<Option<&str>, super::StoreError> {
        match (self.sort.by_metric(), self.metric.as_deref()) {
            (true, Some(m)) if !m.trim().is_empty() => Ok(Some(m)),
            (true, _) => Err(super::StoreError::invalid(
                "metric",
                "a metric sort needs the name of a metric (metric=confidence)",
            )),
            (false, Some(_)) => Err(super::StoreError::invalid(
                "metric",
                "a metric is used only to sort by it (sort=metric or metric_asc)",
            )),
            (false, None) => Ok(None),
        }
    }
}

/// Steps across executions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StepQuery {
    /// Step kind.
    pub kind: Option<String>,
    /// Step name.
    pub name: Option<String>,
    /// Execution (pipeline) name.
    pub execution_name: Option<String>,
    /// Eliminated at least this share of candidates (0.0–1.0).
    pub min_elimination: Option<f64>,
    /// Status.
    pub status: Option<Status>,
    /// Started at or after (unix µs).
    pub since: Option<i64>,
    /// Started before (unix µs).
    pub until: Option<i64>,
    /// Page size.
    pub limit: Option<usize>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// Paging for [`Store::candidate_lineage`](super::Store::candidate_lineage) and the
/// comparisons of two steps.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LineageQuery {
    /// Page size.
    pub limit: Option<usize>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// [`Store::verdict_changes`](super::Store::verdict_changes) only: the candidates whose
    /// check of this name failed in one step and not in the other (see [`CheckChange`]).
    /// Ignored elsewhere.
    #[serde(default)]
    pub check: Option<String>,
}

/// One step's verdict on a candidate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LineageEntry {
    /// The execution.
    pub execution_id: Uuid,
    /// Its name.
    pub execution_name: String,
    /// When the execution started (unix µs).
    pub execution_started_at: i64,
    /// The step.
    pub step_id: Uuid,
    /// Its name.
    pub step_name: String,
    /// Its kind.
    pub step_kind: Option<String>,
    /// When the step started (unix µs).
    pub step_started_at: i64,
    /// The candidate's label in this step.
    pub label: Option<String>,
    /// The verdict.
    pub passed: bool,
    /// Score.
    pub score: Option<f64>,
    /// Selected by the step.
    pub selected: bool,
    /// Every check, with reasons.
    pub checks: Vec<Check>,
    /// Named numbers (a judge's `confidence`), as recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<(String, f64)>,
    /// The candidate as this step saw it (a judge's rationale), if recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Json>,
    /// Why the step selected it, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection_reason: Option<String>,
    /// What the run was given, as [`ExecutionSummary::input_preview`]: one candidate's history
    /// runs through many runs of one pipeline, and this tells them apart (the laptop stand's
    /// run from the phone case seller's).
    #[serde(default)]
    pub execution_input_preview: Vec<(String, String)>,
}

/// The reason `selection` (a step's, as stored: a JSON list of [`Selection`]s) gives for
/// `candidate_id`.
pub(crate) fn selection_reason(selection: Option<&str>, candidate_id: &str) -> Option<String> {
    let list: Vec<crate::model::Selection> = serde_json::from_str(selection?).ok()?;
    list.into_iter()
        .find(|s| s.candidate_id == candidate_id)
        .map(|s| s.reason)
}

/// One candidate's verdict in one step, as [`VerdictChange`] shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The candidate's label in this step.
    pub label: Option<String>,
    /// Passed every check.
    pub passed: bool,
    /// Score.
    pub score: Option<f64>,
    /// Selected by the step.
    pub selected: bool,
    /// Every check, with reasons.
    pub checks: Vec<Check>,
}

/// A candidate judged differently by two steps (passed in one and failed in the other, or
/// selected in one and not the other): what [`Store::verdict_changes`](super::Store::verdict_changes)
/// lists when two runs are compared.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerdictChange {
    /// The candidate.
    pub candidate_id: String,
    /// Its verdict in the first step.
    pub a: Verdict,
    /// Its verdict in the second step.
    pub b: Verdict,
}

/// One check's part in the verdict changes between two steps: among the candidates both judged
/// with a different verdict, those that failed this check in one step and not in the other.
/// "36 of the 425 changes are the category check" says which rule moved. What
/// [`Store::verdict_change_checks`](super::Store::verdict_change_checks) gives, one per check.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckChange {
    /// The check's name.
    pub check: String,
    /// Failed it in the first step only.
    pub failed_in_a: u64,
    /// Failed it in the second step only.
    pub failed_in_b: u64,
}

impl CheckChange {
    /// Tallies the failed checks of each changed pair (first step's, second step's) into one
    /// entry per check that failed on one side only, the most changes first (then by name).
    pub fn tally<'a, A, B>(pairs: impl IntoIterator<Item = (A, B)>) -> Vec<CheckChange>
    where
        A: IntoIterator<Item = &'a str>,
        B: IntoIterator<Item = &'a str>,
    {
        let mut by_check: std::collections::BTreeMap<&'a str, CheckChange> = Default::default();
        for (a, b) in pairs {
            let a: Vec<&str> = a.into_iter().collect();
            let b: Vec<&str> = b.into_iter().collect();
            let mut count = |name: &'a str, first: bool| {
                let entry = by_check.entry(name).or_insert_with(|| CheckChange {
                    check: name.to_owned(),
                    ..CheckChange::default()
                });
                if first {
                    entry.failed_in_a += 1;
                } else {
                    entry.failed_in_b += 1;
                }
            };
            for (i, name) in a.iter().enumerate() {
                if !b.contains(name) && !a[..i].contains(name) {
                    count(name, true);
                }
            }
            for (i, name) in b.iter().enumerate() {
                if !a.contains(name) && !b[..i].contains(name) {
                    count(name, false);
                }
            }
        }
        let mut changes: Vec<CheckChange> = by_check.into_values().collect();
        changes.sort_by(|x, y| {
            (y.failed_in_a + y.failed_in_b)
                .cmp(&(x.failed_in_a + x.failed_in_b))
                .then_with(|| x.check.cmp(&y.check))
        });
        changes
    }
}

/// The candidates one step judged and another did not: what one run of a pipeline saw that
/// the other never did (a phone case that only the run with the off-topic keyword found).
/// What [`Store::candidates_only_in`](super::Store::candidates_only_in) gives.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OnlyIn {
    /// How many (a candidate judged twice by the step counts twice).
    pub total: u64,
    /// A page of them: selected ones first, then those that passed, in recorded order.
    pub items: Vec<OnlyInEntry>,
    /// The cursor of the next page, if there is one (pass it in [`LineageQuery::cursor`]).
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// The sort key of [`OnlyIn`]'s order (selected, then passed, then recorded order) as one
/// number, for its cursor: the two flags above an evaluation's index.
pub(crate) const ONLY_IN_SELECTED_BIT: i64 = 1 << 41;
/// See [`ONLY_IN_SELECTED_BIT`].
pub(crate) const ONLY_IN_PASSED_BIT: i64 = 1 << 40;

/// A candidate of [`OnlyIn`], with the verdict of the step that judged it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OnlyInEntry {
    /// The candidate.
    pub candidate_id: String,
    /// Its verdict in the step that judged it.
    pub verdict: Verdict,
}

/// How often one check of a step saw each value: "`category`: Phone Cases 1,405 passed", or
/// "`keyword`: phone case 1,405, laptop stand 483". What [`Store::check_values`](super::Store::check_values) gives.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckValues {
    /// Evaluations of the step that made the check (among the rows kept; a check made twice
    /// in one evaluation counts twice).
    pub evaluations: u64,
    /// How many different values it saw.
    pub distinct: u64,
    /// The most frequent values, most frequent first (ties by value).
    pub values: Vec<CheckValue>,
}

/// One value a check saw, with its verdicts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckValue {
    /// The observed value as text (`"Phone Cases"`, `"4.1"`); `None` for checks that recorded
    /// no observed value.
    pub observed: Option<String>,
    /// Evaluations with this value that passed the check.
    pub passed: u64,
    /// Evaluations with this value that failed it.
    pub failed: u64,
}

/// One check's common values among the candidates one step judged and another did not: what
/// the candidates only one run saw were. What
/// [`Store::common_values_only_in`](super::Store::common_values_only_in) gives, one per check.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CommonValues {
    /// The check's name.
    pub check: String,
    /// Its values that enough of those candidates had, the most frequent first. `passed` and
    /// `failed` count candidates (evaluations), not check entries.
    pub values: Vec<CheckValue>,
}

impl CommonValues {
    /// Groups the stores' rows (check name, value as JSON text, passed, count), ordered by
    /// name then most frequent first, into one entry per check with `per_check` values at most.
    pub(crate) fn group(
        rows: impl IntoIterator<Item = (String, Option<String>, u64, u64)>,
        per_check: usize,
    ) -> Vec<CommonValues> {
        let mut out: Vec<CommonValues> = Vec::new();
        for (check, json, passed, count) in rows {
            if out.last().is_none_or(|c| c.check != check) {
                out.push(CommonValues {
                    check,
                    values: Vec::new(),
                });
            }
            let Some(entry) = out.last_mut() else {
                continue;
            };
            let Some(observed) = observed_text(json.as_deref()) else {
                continue;
            };
            if entry.values.len() < per_check {
                entry.values.push(CheckValue {
                    observed: Some(observed),
                    passed,
                    failed: count.saturating_sub(passed),
                });
            }
        }
        out.retain(|c| !c.values.is_empty());
        out
    }
}

impl CheckValues {
    /// Counts one group of the stores' query (in their order): a value as its JSON text, with
    /// how many evaluations passed and how many there were; listed if fewer than `limit` are.
    pub(crate) fn add(&mut self, json: Option<&str>, passed: u64, count: u64, limit: usize) {
        self.evaluations += count;
        self.distinct += 1;
        if self.values.len() < limit {
            self.values.push(CheckValue {
                observed: observed_text(json),
                passed,
                failed: count.saturating_sub(passed),
            });
        }
    }
}

/// How the stores match [`EvaluationQuery::observed`]: a string value with this text, or
/// another value whose JSON (as `serde_json` writes it, the checks' own spelling) is the second
/// element, when the text is JSON other than a string (`4.1`, `true`, `[1,2]`).
pub(crate) fn observed_forms(observed: &str) -> (String, Option<String>) {
    let other = match serde_json::from_str::<serde_json::Value>(observed) {
        Ok(serde_json::Value::String(_) | serde_json::Value::Null) | Err(_) => None,
        Ok(value) => Some(value.to_string()),
    };
    (observed.to_owned(), other)
}

/// A check's observed value (its JSON text, as the stores group by it) as [`CheckValue`]
/// shows it: a string's text, any other value as `serde_json` writes it (the same whichever
/// database spaced or spelled it), nothing for no value or `null`.
fn observed_text(json: Option<&str>) -> Option<String> {
    match serde_json::from_str::<serde_json::Value>(json?) {
        Ok(serde_json::Value::Null) => None,
        Ok(serde_json::Value::String(s)) => Some(s),
        Ok(other) => Some(other.to_string()),
        Err(_) => Some(json?.to_owned()),
    }
}

/// Which step names to aggregate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsQuery {
    /// Only this step name.
    pub name: Option<String>,
    /// Only steps of this kind.
    pub kind: Option<String>,
    /// Started at or after (unix µs).
    pub since: Option<i64>,
    /// Started before (unix µs).
    pub until: Option<i64>,
}

/// Aggregates over every finished step of one name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepStats {
    /// Step name.
    pub name: String,
    /// Kind (of the most recent step of that name).
    pub kind: Option<String>,
    /// Finished steps.
    pub count: u64,
    /// Median duration (µs).
    pub p50_us: i64,
    /// 95th percentile duration (µs).
    pub p95_us: i64,
    /// Share that failed (0.0–1.0).
    pub error_rate: f64,
    /// Mean elimination over steps that counted candidates.
    pub mean_elimination: Option<f64>,
}

/// New tags and notes for an execution; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecutionUpdate {
    /// Replaces the tags.
    pub tags: Option<Vec<String>>,
    /// Replaces the notes.
    pub notes: Option<String>,
}

/// Counters of what recorders lost (dropped and failed records), and of the executions their
/// sampling left out (not a loss: never recorded).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecorderCounts {
    /// Records dropped because the queue was full (or the writer had stopped).
    pub dropped: u64,
    /// Records the store failed to write.
    pub failed: u64,
    /// Executions the recorders' sampling left out ([`Builder::sample`](crate::Builder::sample),
    /// `XRAY_SAMPLE`): not lost, never recorded. A viewer says so, so that a run missing from
    /// the list is not taken for a fault.
    #[serde(default)]
    pub sampled_out: u64,
}

/// The request header in which a remote recorder sends [`RecorderCounts::sampled_out`] with a
/// batch (counted once per batch id, like the body's `dropped` and `failed`). A header, not a
/// field of the body: a server that predates the count ignores it, where its body parser would
/// refuse the whole batch for a field it does not know.
pub const SAMPLED_OUT_HEADER: &str = "X-XRay-Sampled-Out";

impl RecorderCounts {
    /// The counts as `(key, value)` pairs, under the keys the stores keep them by.
    pub(crate) fn keyed(&self) -> [(&'static str, u64); 3] {
        [
            ("dropped", self.dropped),
            ("failed", self.failed),
            ("sampled_out", self.sampled_out),
        ]
    }
}

/// What changed, for live tailing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Change {
    /// An execution was written (started or finished).
    Execution {
        /// The change's sequence number.
        seq: u64,
        /// The execution as it is now.
        execution: ExecutionSummary,
    },
    /// A step was written (started or finished).
    Step {
        /// The change's sequence number.
        seq: u64,
        /// The step as it is now.
        step: StepSummary,
    },
}

impl Change {
    /// The change's sequence number.
    pub fn seq(&self) -> u64 {
        match self {
            Change::Execution { seq, .. } | Change::Step { seq, .. } => *seq,
        }
    }
}
