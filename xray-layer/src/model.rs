//! The records X-Ray keeps: executions, steps, evaluations with their checks, and logs.
//!
//! These are plain owned values. The layer records what they are made of on the application
//! thread, into that thread's bounded queue; the writer thread builds them from there, and a
//! [`Store`](crate::store::Store) persists them.
//! The read side of a store returns the same types (plus the views in [`crate::store`]), so what
//! was recorded is what is read back.
//!
//! Times are unix microseconds (`i64`). JSON payloads travel as [`Json`]: text that is already
//! valid JSON, made once on the writer thread from what the application thread recorded of the
//! value (its `Serialize` calls), and never re-encoded unless a processor (redaction, payload
//! cap) has to change it.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// Valid JSON text.
///
/// Payloads are serialized once and stored as text. A payload cut by
/// the payload cap stays valid JSON and is marked (see [`Json::truncated`]).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Json(String);

impl Json {
    /// Serializes `value`; a value whose `Serialize` fails is kept as a JSON string naming the
    /// error. A `Serialize` that panics does not unwind into the caller: the value is kept as a
    /// string with the panic's message.
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Json {
        // (Steps record their values as tapes, not through this: see `crate::tape`.)
        match crate::unwind::guarded("Serialize", || serde_json::to_string(value)) {
            Ok(Ok(text)) => Json(text),
            Ok(Err(err)) => Json::string(&format!("<not serializable: {err}>")),
            Err(panic) => Json::string(&format!("<not recorded: {panic}>")),
        }
    }

    /// A JSON string holding `text`.
    pub fn string(text: &str) -> Json {
        // Serializing a &str cannot fail.
        Json(serde_json::to_string(text).unwrap_or_else(|_| String::from("\"\"")))
    }

    /// Wraps text the caller knows to be valid JSON (it was produced by `serde_json`).
    pub(crate) fn from_trusted(text: String) -> Json {
        Json(text)
    }

    /// Parses `text`, returning `None` when it is not valid JSON.
    pub fn parse(text: &str) -> Option<Json> {
        serde_json::from_str::<serde::de::IgnoredAny>(text).ok()?;
        Some(Json(text.to_owned()))
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Consumes the value, returning the JSON text.
    pub fn into_string(self) -> String {
        self.0
    }

    /// Parses into a `serde_json::Value`.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(&self.0).unwrap_or(serde_json::Value::Null)
    }

    /// Whether the payload cap cut this value (it is then an object with `"$xray_truncated": true`).
    pub fn truncated(&self) -> bool {
        self.0.starts_with("{\"$xray_truncated\":true")
    }

    /// Length of the JSON text in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the JSON text is empty (never true for a value built through this type's constructors).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Json {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Embed the text as raw JSON rather than as a string.
        match serde_json::value::RawValue::from_string(self.0.clone()) {
            Ok(raw) => raw.serialize(serializer),
            Err(_) => serializer.serialize_none(),
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(deserializer)?;
        Ok(Json(raw.get().to_owned()))
    }
}

impl From<serde_json::Value> for Json {
    fn from(value: serde_json::Value) -> Self {
        Json(value.to_string())
    }
}

/// How a step or an execution ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Started and not finished yet.
    Running,
    /// Finished normally.
    Ok,
    /// Returned an `Err`, panicked, or was marked failed.
    Error,
    /// The finishing record was dropped (full queue), failed to be written (a full disk), or
    /// the process ended before it was written.
    Lost,
}

impl Status {
    /// The stored spelling: `running`, `ok`, `error`, `lost`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Ok => "ok",
            Status::Error => "error",
            Status::Lost => "lost",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(text: &str) -> Option<Status> {
        Some(match text {
            "running" => Status::Running,
            "ok" => Status::Ok,
            "error" => Status::Error,
            "lost" => Status::Lost,
            _ => return None,
        })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The start of an execution (one run of a pipeline).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecutionStart {
    /// UUID v7: executions sort by id in start order.
    pub id: Uuid,
    /// The pipeline's name (`competitor_selection`).
    pub name: String,
    /// Unix microseconds.
    pub started_at: i64,
    /// Free-form labels (`["demo", "nightly"]`).
    pub tags: Vec<String>,
    /// JSON object of user metadata.
    pub metadata: Json,
    /// The service that recorded the run (the builder's `service`, or the executable's name).
    pub service: Option<String>,
    /// The host it ran on.
    pub host: Option<String>,
    /// The process id.
    pub pid: Option<u32>,
}

/// The end of an execution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecutionEnd {
    /// The execution's id.
    pub id: Uuid,
    /// Unix microseconds.
    pub completed_at: i64,
    /// `Ok` or `Error`.
    pub status: Status,
    /// The error message when the execution failed.
    pub error: Option<String>,
    /// Metadata recorded while the execution ran, merged over the start's.
    pub metadata: Option<Json>,
    /// The execution function's arguments, as a JSON object keyed by parameter name.
    pub input: Option<Json>,
    /// The execution function's return value.
    pub output: Option<Json>,
    /// Records of this execution that were lost: dropped because the queue was full, or step
    /// ends in a batch the store failed to write. When it is above zero, the store marks the
    /// execution's steps still `running` as `lost`.
    pub dropped_records: u64,
}

/// The start of a step, sent so a viewer can show steps while they run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepStart {
    /// UUID v7.
    pub id: Uuid,
    /// The execution the step belongs to.
    pub execution_id: Uuid,
    /// The enclosing step, when steps nest.
    pub parent_id: Option<Uuid>,
    /// The step's name (`apply_filters`).
    pub name: String,
    /// Free text; well-known values: `llm`, `search`, `filter`, `rank`, `select`.
    pub kind: Option<String>,
    /// Unix microseconds.
    pub started_at: i64,
}

/// One named check of an evaluation: "price", passed or not, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// The filter's name (`rating`).
    pub name: String,
    /// Whether the candidate passed it.
    pub passed: bool,
    /// The specific reason (`3.2 < 3.8 minimum`), for a failed check. A passed check has none:
    /// a structured one says what it met through `observed`, `op` and `threshold`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The observed value, for structured checks (`3.2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<serde_json::Value>,
    /// The threshold, for structured checks: a number, `[lo, hi]`, or the allowed set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<serde_json::Value>,
    /// How `observed` is compared with `threshold`: `min`, `max`, `range`, `in`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
}

/// The verdict of one step on one candidate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The candidate's id (an ASIN, a document id): the key of "where did candidate X go".
    pub candidate_id: String,
    /// A human label (the product title).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Passed every check (or the verdict given explicitly).
    pub passed: bool,
    /// A score, for steps that rank.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// Whether the step selected this candidate (set by [`crate::select`]).
    #[serde(default)]
    pub selected: bool,
    /// The checks, in the order they were made.
    #[serde(default)]
    pub checks: Vec<Check>,
    /// Named numbers (`relevance: 0.93`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<(String, f64)>,
    /// A snapshot of the candidate as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Json>,
}

/// What a step selected, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// The selected candidate.
    pub candidate_id: String,
    /// Why it was selected.
    pub reason: String,
}

/// A tracing event emitted inside a step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// Unix microseconds.
    pub at: i64,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG`, `TRACE`.
    pub level: String,
    /// The event's target.
    pub target: String,
    /// The `message` field.
    pub message: String,
    /// The other fields, as a JSON object.
    pub fields: Json,
}

/// Per-check counts of a step's evaluations: how many passed, failed, and for how many the check
/// was the first failure (so the losses of a step add up across its checks).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckSummary {
    /// The check's name.
    pub name: String,
    /// Evaluations that passed it.
    pub passed: u64,
    /// Evaluations that failed it.
    pub failed: u64,
    /// Evaluations for which this was the first failed check.
    pub first_failed: u64,
    /// The most frequent failure reasons with their counts (at most [`EvaluationSummary::TOP_REASONS`]).
    /// A numeric check (`check_min`, `check_max`, `check_range`) counts by rule, without the
    /// observed value: `< 3.8 minimum`, `> 59.98 (range 14.99–59.98)`.
    pub top_reasons: Vec<(String, u64)>,
}

/// The summary of a step's evaluations, always exact whatever was kept: stored in the
/// seed's `steps.evaluations` column.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EvaluationSummary {
    /// Evaluations the step made.
    pub total: u64,
    /// Evaluations that passed.
    pub passed: u64,
    /// Evaluations that failed.
    pub failed: u64,
    /// Evaluation rows kept (equal to `total` unless sampled).
    pub kept: u64,
    /// Whether the kept rows are a sample (capture cap or `capture = "summary"`).
    pub sampled: bool,
    /// The capture policy that applied: `all`, `summary`, or `cap:N`.
    pub capture: String,
    /// Per-check counts, in first-seen order.
    pub checks: Vec<CheckSummary>,
}

impl EvaluationSummary {
    /// How many distinct failure reasons are kept per check.
    pub const TOP_REASONS: usize = 20;
}

/// A finished step: everything recorded about it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// UUID v7.
    pub id: Uuid,
    /// The execution it belongs to.
    pub execution_id: Uuid,
    /// The enclosing step.
    pub parent_id: Option<Uuid>,
    /// The step's name.
    pub name: String,
    /// The step's kind.
    pub kind: Option<String>,
    /// Unix microseconds.
    pub started_at: i64,
    /// Unix microseconds; `None` while running.
    pub ended_at: Option<i64>,
    /// `Ok`, `Error` (an `Err`, a panic), or `Running` for a step read back while it runs.
    pub status: Status,
    /// The error's Display, or `panicked: …`.
    pub error: Option<String>,
    /// The arguments as a JSON object keyed by parameter name, or what `xray::input` set.
    pub input: Option<Json>,
    /// The return value, or what `xray::output` set.
    pub output: Option<Json>,
    /// The filters the step applied (`xray::filters`).
    pub filters: Option<Json>,
    /// What was selected and why.
    pub selection: Vec<Selection>,
    /// Free-text reasoning (an LLM's rationale).
    pub reasoning: Option<String>,
    /// JSON object of metadata.
    pub metadata: Json,
    /// Candidates the step considered.
    pub candidates_in: Option<u64>,
    /// Candidates the step kept: set by [`crate::candidates`], else the number selected (when the
    /// step selected), else the evaluations that passed, else the length of a list output.
    pub candidates_out: Option<u64>,
    /// The summary of evaluations (exact even when rows were sampled).
    pub summary: Option<EvaluationSummary>,
    /// The evaluation rows kept, in the order they were made.
    pub evaluations: Vec<Evaluation>,
    /// Tracing events emitted inside the step (capped).
    pub logs: Vec<LogLine>,
    /// Log lines beyond the cap that were not kept.
    pub logs_dropped: u64,
}

impl StepRecord {
    /// Share of candidates the step eliminated, when both counts are known and `candidates_in > 0`.
    pub fn elimination(&self) -> Option<f64> {
        elimination(self.candidates_in, self.candidates_out)
    }

    /// Duration in microseconds, once ended.
    pub fn duration_us(&self) -> Option<i64> {
        self.ended_at.map(|end| end.saturating_sub(self.started_at))
    }

    /// A step named `filter` of run `execution_id` that started at 1 and ended at 2, with
    /// nothing recorded: for the crate's unit tests to change what they need.
    #[cfg(test)]
    pub(crate) fn ended_for_test(execution_id: Uuid) -> StepRecord {
        StepRecord {
            id: Uuid::nil(),
            execution_id,
            parent_id: None,
            name: "filter".into(),
            kind: None,
            started_at: 1,
            ended_at: Some(2),
            status: Status::Ok,
            error: None,
            input: None,
            output: None,
            filters: None,
            selection: Vec::new(),
            reasoning: None,
            metadata: Json::from_trusted("{}".into()),
            candidates_in: None,
            candidates_out: None,
            summary: None,
            evaluations: Vec::new(),
            logs: Vec::new(),
            logs_dropped: 0,
        }
    }
}

/// `1 - out/in`, when both are known and `in > 0`.
pub fn elimination(candidates_in: Option<u64>, candidates_out: Option<u64>) -> Option<f64> {
    match (candidates_in, candidates_out) {
        (Some(i), Some(o)) if i > 0 => Some(1.0 - (o.min(i) as f64) / (i as f64)),
        _ => None,
    }
}

/// One unit of work for the writer.
///
/// As JSON (what remote recorders send) a record is externally tagged:
/// `{"step_finished": {...}}`. Not internally tagged: serde buffers an internally tagged
/// enum's fields before choosing the variant, and the buffer cannot hold the raw JSON payloads
/// ([`Json`]) of a step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Record {
    /// An execution began.
    ExecutionStarted(ExecutionStart),
    /// An execution ended.
    ExecutionFinished(ExecutionEnd),
    /// A step began.
    StepStarted(StepStart),
    /// A step ended, with everything it recorded.
    StepFinished(Box<StepRecord>),
}

impl Record {
    /// The execution this record belongs to.
    pub fn execution_id(&self) -> Uuid {
        match self {
            Record::ExecutionStarted(r) => r.id,
            Record::ExecutionFinished(r) => r.id,
            Record::StepStarted(r) => r.execution_id,
            Record::StepFinished(r) => r.execution_id,
        }
    }
}

/// The current time in unix microseconds: the wall clock's, read from the CPU's counter
/// ([`crate::clock`]).
#[inline]
pub fn now_us() -> i64 {
    crate::clock::now_us()
}
