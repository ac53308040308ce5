//! One JSON shape for whole runs: what `xray-server` exports and what its ingest endpoint accepts.
//!
//! An [`ExportDocument`] holds complete executions: each with every step, and each step with
//! every evaluation row and log line that was kept. Reading a run out of one store and writing
//! the document into another gives back the same run, ids included, so a run can be moved
//! between machines, attached to a bug report, or sent by a process that has no database of its
//! own. Writing the same document twice leaves one copy (records are idempotent by id).
//!
//! The document is versioned by its `xray_export` field ([`EXPORT_VERSION`]); a reader refuses a
//! version it does not know instead of guessing.
//!
//! ```
//! use xray::export::{ExportDocument, ExportedExecution};
//! use xray::store::{MemoryStore, Store};
//!
//! let source = MemoryStore::new();
//! # let id = uuid::Uuid::now_v7();
//! # source.write(&[xray::model::Record::ExecutionStarted(xray::model::ExecutionStart {
//! #     id, name: "competitor_selection".into(), started_at: 1, tags: vec![],
//! #     metadata: Default::default(), service: None, host: None, pid: None,
//! # })])?;
//! // Read one run out of a store …
//! let run = ExportedExecution::read(&source, id)?.expect("the run exists");
//! let document = ExportDocument::new(vec![run]);
//! let json = serde_json::to_string(&document).expect("serializable");
//!
//! // … and write it into another.
//! let target = MemoryStore::new();
//! let parsed: ExportDocument = serde_json::from_str(&json).expect("valid JSON");
//! parsed.write_to(&target)?;
//! assert_eq!(ExportedExecution::read(&target, id)?, Some(parsed.executions[0].clone()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::model::{ExecutionEnd, ExecutionStart, Json, Record, Status, StepRecord};
use crate::store::{EvaluationQuery, ExecutionUpdate, Store, StoreError, MAX_PAGE_SIZE};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use uuid::Uuid;

/// The version of the export shape this build writes and reads.
pub const EXPORT_VERSION: u32 = 1;

/// A set of complete runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportDocument {
    /// The shape's version: [`EXPORT_VERSION`].
    pub xray_export: u32,
    /// The runs.
    pub executions: Vec<ExportedExecution>,
}

/// One run with all of its steps, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedExecution {
    /// UUID v7.
    pub id: Uuid,
    /// Pipeline name.
    pub name: String,
    /// Running, ok, error or lost.
    pub status: Status,
    /// Unix µs.
    pub started_at: i64,
    /// Unix µs; required unless `status` is `running`.
    #[serde(default)]
    pub completed_at: Option<i64>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Notes.
    #[serde(default)]
    pub notes: Option<String>,
    /// The execution's error.
    #[serde(default)]
    pub error: Option<String>,
    /// JSON object of metadata (`{}` when left out).
    #[serde(default = "empty_object")]
    pub metadata: Json,
    /// The execution's input.
    #[serde(default)]
    pub input: Option<Json>,
    /// The execution's output.
    #[serde(default)]
    pub output: Option<Json>,
    /// The recording service.
    #[serde(default)]
    pub service: Option<String>,
    /// The recording host.
    #[serde(default)]
    pub host: Option<String>,
    /// The recording process.
    #[serde(default)]
    pub pid: Option<u32>,
    /// Records of this run that the recorder dropped.
    #[serde(default)]
    pub dropped_records: u64,
    /// Every step, in start order, each with all of its kept evaluations and logs.
    #[serde(default)]
    pub steps: Vec<StepRecord>,
}

/// Why a document cannot be written: the JSON path of the offending field and what is wrong.
#[derive(Debug)]
pub enum ImportError {
    /// The document is malformed at `field`.
    Invalid {
        /// A JSON path such as `executions[0].steps[3].execution_id`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The store refused the records.
    Store(StoreError),
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImportError::Invalid { field, message } => write!(f, "invalid `{field}`: {message}"),
            ImportError::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ImportError {}

impl From<StoreError> for ImportError {
    fn from(e: StoreError) -> Self {
        ImportError::Store(e)
    }
}

impl ExportDocument {
    /// A document of the current version holding `executions`.
    pub fn new(executions: Vec<ExportedExecution>) -> Self {
        ExportDocument {
            xray_export: EXPORT_VERSION,
            executions,
        }
    }

    /// Checks the version and that every step belongs to the run that holds it, with unique ids.
    pub fn validate(&self) -> Result<(), ImportError> {
        if self.xray_export != EXPORT_VERSION {
            return Err(invalid(
                "xray_export".into(),
                format!(
                    "version {} is not supported (this server reads {EXPORT_VERSION})",
                    self.xray_export
                ),
            ));
        }
        let mut steps = HashSet::new();
        let mut runs = HashSet::new();
        for (i, run) in self.executions.iter().enumerate() {
            if !runs.insert(run.id) {
                return Err(invalid(
                    format!("executions[{i}].id"),
                    "appears twice in the document",
                ));
            }
            if run.status != Status::Running && run.completed_at.is_none() {
                return Err(invalid(
                    format!("executions[{i}].completed_at"),
                    format!("is required when status is `{}`", run.status),
                ));
            }
            if run.status == Status::Running {
                // These arrive with the end of a run, which a running one has not had: they
                // would not be stored, so the document would not come back as sent.
                let ended = [
                    ("completed_at", run.completed_at.is_some()),
                    ("error", run.error.is_some()),
                    ("input", run.input.is_some()),
                    ("output", run.output.is_some()),
                    ("dropped_records", run.dropped_records > 0),
                ];
                if let Some((field, _)) = ended.iter().find(|(_, set)| *set) {
                    return Err(invalid(
                        format!("executions[{i}].{field}"),
                        "must be absent while status is `running` (it comes with the run's end)",
                    ));
                }
            }
            if run.dropped_records > MAX_COUNT {
                return Err(too_large(format!("executions[{i}].dropped_records")));
            }
            for (j, step) in run.steps.iter().enumerate() {
                let counts = [
                    ("candidates_in", step.candidates_in.unwrap_or(0)),
                    ("candidates_out", step.candidates_out.unwrap_or(0)),
                    ("logs_dropped", step.logs_dropped),
                ];
                if let Some((field, _)) = counts.iter().find(|(_, n)| *n > MAX_COUNT) {
                    return Err(too_large(format!("executions[{i}].steps[{j}].{field}")));
                }
                if step.execution_id != run.id {
                    return Err(invalid(
                        format!("executions[{i}].steps[{j}].execution_id"),
                        "must be the id of the execution that holds the step",
                    ));
                }
                if !steps.insert(step.id) {
                    return Err(invalid(
                        format!("executions[{i}].steps[{j}].id"),
                        "appears twice in the document",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Validates the document and writes it into `store` in one batch (one transaction).
    pub fn write_to(&self, store: &dyn Store) -> Result<(), ImportError> {
        self.validate()?;
        let records: Vec<Record> = self
            .executions
            .iter()
            .flat_map(ExportedExecution::records)
            .collect();
        store.write(&records)?;
        for run in &self.executions {
            if run.notes.is_some() {
                store.update_execution(
                    run.id,
                    &ExecutionUpdate {
                        tags: None,
                        notes: run.notes.clone(),
                    },
                )?;
            }
        }
        Ok(())
    }
}

fn empty_object() -> Json {
    Json::from(serde_json::Value::Object(serde_json::Map::new()))
}

/// The largest count a store keeps: SQLite integers are signed 64-bit.
const MAX_COUNT: u64 = i64::MAX as u64;

fn too_large(field: String) -> ImportError {
    invalid(field, format!("must be at most {MAX_COUNT}"))
}

fn invalid(field: String, message: impl Into<String>) -> ImportError {
    ImportError::Invalid {
        field,
        message: message.into(),
    }
}

impl ExportedExecution {
    /// Reads one run with every step, evaluation row and log line; `None` if it does not exist.
    pub fn read(store: &dyn Store, id: Uuid) -> Result<Option<ExportedExecution>, StoreError> {
        let Some(detail) = store.execution(id)? else {
            return Ok(None);
        };
        let mut steps = Vec::with_capacity(detail.steps.len());
        for summary in &detail.steps {
            let Some(mut step) = store.step(summary.id)? else {
                continue; // deleted while reading
            };
            let mut query = EvaluationQuery {
                limit: Some(MAX_PAGE_SIZE),
                ..EvaluationQuery::default()
            };
            loop {
                let page = store.evaluations(step.id, &query)?;
                step.evaluations.extend(page.items);
                match page.next_cursor {
                    Some(next) => query.cursor = Some(next),
                    None => break,
                }
            }
            steps.push(step);
        }
        let e = detail.execution;
        Ok(Some(ExportedExecution {
            id: e.id,
            name: e.name,
            status: e.status,
            started_at: e.started_at,
            completed_at: e.completed_at,
            tags: e.tags,
            notes: e.notes,
            error: e.error,
            metadata: detail.metadata,
            input: detail.input,
            output: detail.output,
            service: e.service,
            host: e.host,
            pid: e.pid,
            dropped_records: e.dropped_records,
            steps,
        }))
    }

    /// The records that write this run: its start, its end once it ended, then every step.
    ///
    /// The end comes before the steps so that writing a document changes none of them: an end
    /// with dropped records marks the run's steps still `running` as `lost`, which is right for
    /// a recording process and wrong for a document that says what each step is.
    pub fn records(&self) -> Vec<Record> {
        let mut records = Vec::with_capacity(self.steps.len() + 2);
        records.push(Record::ExecutionStarted(ExecutionStart {
            id: self.id,
            name: self.name.clone(),
            started_at: self.started_at,
            tags: self.tags.clone(),
            metadata: self.metadata.clone(),
            service: self.service.clone(),
            host: self.host.clone(),
            pid: self.pid,
        }));
        if let (Some(completed_at), false) = (self.completed_at, self.status == Status::Running) {
            records.push(Record::ExecutionFinished(ExecutionEnd {
                id: self.id,
                completed_at,
                status: self.status,
                error: self.error.clone(),
                metadata: None,
                input: self.input.clone(),
                output: self.output.clone(),
                dropped_records: self.dropped_records,
            }));
        }
        records.extend(
            self.steps
                .iter()
                .map(|s| Record::StepFinished(Box::new(s.clone()))),
        );
        records
    }
}
