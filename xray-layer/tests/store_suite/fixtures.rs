//! Records to write, pages to walk, and the engines' databases.
//!
//! Everything here is engine-neutral: a case builds records with these helpers, writes them with
//! [`Store::write`] and reads them back through the trait, whatever the store.

use serde_json::Value;
use std::any::Any;
use uuid::Uuid;
use xray::model::{
    Check, Evaluation, ExecutionEnd, ExecutionStart, Json, LogLine, Record, Status, StepRecord,
    StepStart,
};
use xray::store::{Page, SqliteStore, Store, StoreError};

/// A time well inside the range real records use (unix µs, November 2023).
pub const T0: i64 = 1_700_000_000_000_000;

/// A database of one engine, opened once per test: [`Db::open`] gives a handle to it (a second
/// call gives a second handle to the same database).
pub struct Db {
    open: Box<dyn Fn() -> Box<dyn Store>>,
    /// What must outlive the handles (the SQLite file's directory, the PostgreSQL database).
    _keep: Box<dyn Any>,
}

impl Db {
    /// `open` opens a handle on the database; `keep` is dropped after the test, when every handle
    /// is closed.
    pub fn new(open: impl Fn() -> Box<dyn Store> + 'static, keep: impl Any) -> Db {
        Db {
            open: Box::new(open),
            _keep: Box::new(keep),
        }
    }

    /// A new handle on the database.
    pub fn open(&self) -> Box<dyn Store> {
        (self.open)()
    }
}

/// A fresh SQLite file in a temporary directory.
pub fn sqlite() -> Option<Db> {
    let dir = tempfile::tempdir().expect("a temporary directory for the database");
    let path = dir.path().join("xray.db");
    Some(Db::new(
        move || -> Box<dyn Store> {
            Box::new(SqliteStore::open(&path).expect("the SQLite store opens"))
        },
        dir,
    ))
}

/// A new UUID v7 (ids of executions and steps).
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

/// `value` as recorded JSON (compact, as the layer writes it; keys sorted, as `Value` keeps
/// them: use [`raw`] where the order of keys matters).
pub fn payload(value: Value) -> Json {
    Json::from(value)
}

/// JSON text as written by the caller, keys in its order.
pub fn raw(text: &str) -> Json {
    Json::parse(text).expect("the fixture is valid JSON")
}

/// `text` without the whitespace between JSON tokens: two texts are equal when they hold the same
/// values with the same keys in the same order.
pub fn compact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for ch in text.chars() {
        if in_string {
            out.push(ch);
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '"' {
                in_string = false;
            }
        } else if !ch.is_whitespace() {
            if ch == '"' {
                in_string = true;
            }
            out.push(ch);
        }
    }
    out
}

/// The start of execution `id`: no tags, empty metadata.
pub fn execution(id: Uuid, name: &str, started_at: i64) -> ExecutionStart {
    ExecutionStart {
        id,
        name: name.into(),
        started_at,
        tags: Vec::new(),
        metadata: payload(serde_json::json!({})),
        service: None,
        host: None,
        pid: None,
    }
}

/// The end of execution `id`, with nothing recorded.
pub fn end(id: Uuid, completed_at: i64, status: Status) -> ExecutionEnd {
    ExecutionEnd {
        id,
        completed_at,
        status,
        error: None,
        metadata: None,
        input: None,
        output: None,
        dropped_records: 0,
    }
}

/// `Record::ExecutionStarted` of [`execution`].
pub fn begin(id: Uuid, name: &str, started_at: i64) -> Record {
    Record::ExecutionStarted(execution(id, name, started_at))
}

/// `Record::ExecutionFinished` of [`end`].
pub fn finish(id: Uuid, completed_at: i64, status: Status) -> Record {
    Record::ExecutionFinished(end(id, completed_at, status))
}

/// A finished top-level step (status ok) of `execution_id`, `duration_us` long, with nothing
/// recorded.
pub fn step(execution_id: Uuid, name: &str, started_at: i64, duration_us: i64) -> StepRecord {
    StepRecord {
        id: new_id(),
        execution_id,
        parent_id: None,
        name: name.into(),
        kind: None,
        started_at,
        ended_at: Some(started_at + duration_us),
        status: Status::Ok,
        error: None,
        input: None,
        output: None,
        filters: None,
        selection: Vec::new(),
        reasoning: None,
        metadata: payload(serde_json::json!({})),
        candidates_in: None,
        candidates_out: None,
        summary: None,
        evaluations: Vec::new(),
        logs: Vec::new(),
        logs_dropped: 0,
    }
}

/// `Record::StepStarted` of `step`.
pub fn started(step: &StepRecord) -> Record {
    Record::StepStarted(StepStart {
        id: step.id,
        execution_id: step.execution_id,
        parent_id: step.parent_id,
        name: step.name.clone(),
        kind: step.kind.clone(),
        started_at: step.started_at,
    })
}

/// `Record::StepFinished` of `step`.
pub fn done(step: &StepRecord) -> Record {
    Record::StepFinished(Box::new(step.clone()))
}

/// A verdict on `candidate`, with no check, score, label or snapshot.
pub fn eval(candidate: &str, passed: bool) -> Evaluation {
    Evaluation {
        candidate_id: candidate.into(),
        label: None,
        passed,
        score: None,
        selected: false,
        checks: Vec::new(),
        metrics: Vec::new(),
        snapshot: None,
    }
}

/// A check named `name`; a failed one says why.
pub fn check(name: &str, passed: bool) -> Check {
    Check {
        name: name.into(),
        passed,
        reason: (!passed).then(|| format!("{name} is out of range")),
        observed: None,
        threshold: None,
        op: None,
    }
}

/// A structured check, every field given.
pub fn full_check(
    name: &str,
    passed: bool,
    reason: Option<&str>,
    observed: Option<Value>,
    threshold: Option<Value>,
    op: Option<&str>,
) -> Check {
    Check {
        name: name.into(),
        passed,
        reason: reason.map(Into::into),
        observed,
        threshold,
        op: op.map(Into::into),
    }
}

/// A log line of a step.
pub fn log(at: i64, level: &str, message: &str, fields: Value) -> LogLine {
    LogLine {
        at,
        level: level.into(),
        target: "pipeline::step".into(),
        message: message.into(),
        fields: payload(fields),
    }
}

/// Writes `batch`, which must succeed.
pub fn write(store: &dyn Store, batch: &[Record]) {
    store.write(batch).expect("the batch is written");
}

/// Every page of a list, walked with its cursors: `next(cursor)` reads one page. Checks what any
/// paginated list promises: every page but the last is full (`limit` items), the last has no
/// cursor, and no empty page is handed out after a full one.
pub fn pages<T>(limit: usize, mut next: impl FnMut(Option<String>) -> Page<T>) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        assert!(out.len() < 100_000, "pagination does not end");
        let page = next(cursor.take());
        assert!(
            page.items.len() <= limit,
            "a page holds at most `limit` items: {} > {limit}",
            page.items.len()
        );
        match page.next_cursor {
            Some(c) => {
                assert_eq!(
                    page.items.len(),
                    limit,
                    "a page with a next cursor is full (page {})",
                    out.len()
                );
                cursor = Some(c);
                out.push(page.items);
            }
            None => {
                if !out.is_empty() {
                    assert!(
                        !page.items.is_empty(),
                        "the last page is not an empty page after a full one (page {})",
                        out.len()
                    );
                }
                out.push(page.items);
                return out;
            }
        }
    }
}

/// Every item of a list, page after page (see [`pages`]).
pub fn all<T>(limit: usize, next: impl FnMut(Option<String>) -> Page<T>) -> Vec<T> {
    pages(limit, next).into_iter().flatten().collect()
}

/// The parameter an error names; panics unless it is [`StoreError::InvalidParameter`].
pub fn invalid_field<T: std::fmt::Debug>(result: Result<T, StoreError>) -> &'static str {
    match result {
        Err(StoreError::InvalidParameter { field, .. }) => field,
        other => panic!("expected an invalid parameter error, got {other:?}"),
    }
}

/// Calls [`Store::maintain`] until it says no work remains (a bounded number of times).
pub fn maintain_until_idle(store: &dyn Store) {
    for _ in 0..10_000 {
        if !store.maintain().expect("maintain") {
            return;
        }
    }
    panic!("maintain() still has work after 10,000 calls");
}
