//! Proptest strategies for ingest documents ([`ExportDocument`]): every field the shape has, with
//! hostile values (any Unicode text including control characters and NUL, integers over their
//! whole range, finite floats of every class, nested JSON), and a runner sized by
//! `PROPTEST_CASES`.
//!
//! Ids are not drawn by the strategies: [`Shape::into_document`] gives every execution and step a
//! fresh UUID, so a case shrunk from another never writes over the runs of an earlier case.
#![allow(dead_code)]

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;
use uuid::Uuid;
use xray::export::{ExportDocument, ExportedExecution};
use xray::model::{
    Check, CheckSummary, Evaluation, EvaluationSummary, Json, LogLine, Selection, Status,
    StepRecord,
};

/// How many cases a property runs: `PROPTEST_CASES` when set (a longer run by hand), else
/// `default` (what `cargo test` runs).
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A runner for `cases` cases that writes no regression files (the failing input is printed,
/// shrunk).
pub fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

/// Text of any Unicode scalar values, control characters and NUL included.
pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "(?s).{0,12}",
        1 => Just(String::new()),
        1 => "[\u{0}-\u{1f}\"\\\\/\u{7f}\u{2028}\u{2029}\u{feff}\u{fffd}\u{10ffff}]{1,6}",
    ]
}

/// Finite floats of every class (zero, subnormal, normal, both signs): JSON cannot carry NaN or
/// infinities.
pub fn finite_f64() -> impl Strategy<Value = f64> {
    use proptest::num::f64::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    prop_oneof![
        3 => (POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO).prop_filter("finite", |f| f.is_finite()),
        1 => prop_oneof![
            Just(0.1), Just(-0.0), Just(f64::MAX), Just(f64::MIN), Just(f64::MIN_POSITIVE),
            Just(5e-324), Just(1e300), Just(2.638344616030823e-256), Just(9007199254740993.0),
        ],
        1 => (-1000i32..1000).prop_map(|n| f64::from(n) / 8.0),
    ]
}

/// Integers at and around the edges of `i64`.
pub fn any_i64() -> impl Strategy<Value = i64> {
    prop_oneof![
        2 => any::<i64>(),
        1 => prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(0), Just(-1), Just(1)],
        2 => 1_600_000_000_000_000i64..1_900_000_000_000_000,
    ]
}

/// Integers at and around the edges of `u64`.
pub fn any_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        2 => any::<u64>(),
        1 => prop_oneof![Just(u64::MAX), Just(i64::MAX as u64 + 1), Just(0)],
        2 => 0u64..10_000,
    ]
}

/// A count a store keeps (at most `i64::MAX`), and now and then one above it (which ingest
/// refuses).
pub fn count() -> impl Strategy<Value = u64> {
    prop_oneof![
        40 => any_u64().prop_map(|n| n.min(i64::MAX as u64)),
        1 => (i64::MAX as u64 + 1)..=u64::MAX,
    ]
}

/// Mostly true: how often a generated document is tidied into one ingest accepts.
fn mostly() -> impl Strategy<Value = bool> {
    prop_oneof![9 => Just(true), 1 => Just(false)]
}

/// Any JSON value JSON can carry: nested arrays and objects, numbers of every kind, text.
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any_i64().prop_map(Value::from),
        any_u64().prop_map(Value::from),
        finite_f64().prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A JSON object (what metadata is).
pub fn json_object() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(text(), json_value(), 0..5)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

fn json() -> impl Strategy<Value = Json> {
    json_value().prop_map(Json::from)
}

fn status() -> impl Strategy<Value = Status> {
    prop_oneof![
        Just(Status::Running),
        Just(Status::Ok),
        Just(Status::Error),
        Just(Status::Lost),
    ]
}

fn check() -> impl Strategy<Value = Check> {
    (
        text(),
        any::<bool>(),
        proptest::option::of(text()),
        proptest::option::of(json_value()),
        proptest::option::of(json_value()),
        proptest::option::of(text()),
    )
        .prop_map(|(name, passed, reason, observed, threshold, op)| Check {
            name,
            passed,
            reason,
            observed,
            threshold,
            op,
        })
}

fn evaluation() -> impl Strategy<Value = Evaluation> {
    (
        text(),
        proptest::option::of(text()),
        any::<bool>(),
        proptest::option::of(finite_f64()),
        any::<bool>(),
        prop::collection::vec(check(), 0..3),
        prop::collection::vec((text(), finite_f64()), 0..3),
        proptest::option::of(json()),
    )
        .prop_map(
            |(candidate_id, label, passed, score, selected, checks, metrics, snapshot)| {
                Evaluation {
                    candidate_id,
                    label,
                    passed,
                    score,
                    selected,
                    checks,
                    metrics,
                    snapshot,
                }
            },
        )
}

fn summary() -> impl Strategy<Value = EvaluationSummary> {
    let check = (
        text(),
        any_u64(),
        any_u64(),
        any_u64(),
        prop::collection::vec((text(), any_u64()), 0..3),
    )
        .prop_map(
            |(name, passed, failed, first_failed, top_reasons)| CheckSummary {
                name,
                passed,
                failed,
                first_failed,
                top_reasons,
            },
        );
    (
        (any_u64(), any_u64(), any_u64(), any_u64()),
        any::<bool>(),
        text(),
        prop::collection::vec(check, 0..3),
    )
        .prop_map(
            |((total, passed, failed, kept), sampled, capture, checks)| EvaluationSummary {
                total,
                passed,
                failed,
                kept,
                sampled,
                capture,
                checks,
            },
        )
}

fn log_line() -> impl Strategy<Value = LogLine> {
    (any_i64(), text(), text(), text(), json()).prop_map(|(at, level, target, message, fields)| {
        LogLine {
            at,
            level,
            target,
            message,
            fields,
        }
    })
}

/// A step without its ids; `parent` says whether it nests under the step before it.
#[derive(Clone, Debug)]
pub struct StepShape {
    pub record: StepRecord,
    pub parent: bool,
}

fn step() -> impl Strategy<Value = StepShape> {
    let head = (
        text(),
        proptest::option::of(text()),
        any_i64(),
        proptest::option::of(any_i64()),
        status(),
        proptest::option::of(text()),
        any::<bool>(),
    );
    let payloads = (
        proptest::option::of(json()),
        proptest::option::of(json()),
        proptest::option::of(json()),
        prop::collection::vec(
            (text(), text()).prop_map(|(candidate_id, reason)| Selection {
                candidate_id,
                reason,
            }),
            0..2,
        ),
        proptest::option::of(text()),
        json_object().prop_map(Json::from),
    );
    let counts = (
        proptest::option::of(count()),
        proptest::option::of(count()),
        proptest::option::of(summary()),
        prop::collection::vec(evaluation(), 0..4),
        prop::collection::vec(log_line(), 0..3),
        count(),
    );
    (head, payloads, counts).prop_map(
        |(
            (name, kind, started_at, ended_at, status, error, parent),
            (input, output, filters, selection, reasoning, metadata),
            (candidates_in, candidates_out, summary, evaluations, logs, logs_dropped),
        )| StepShape {
            parent,
            record: StepRecord {
                id: Uuid::nil(),
                execution_id: Uuid::nil(),
                parent_id: None,
                name,
                kind,
                started_at,
                ended_at,
                status,
                error,
                input,
                output,
                filters,
                selection,
                reasoning,
                metadata,
                candidates_in,
                candidates_out,
                summary,
                evaluations,
                logs,
                logs_dropped,
            },
        },
    )
}

/// An execution without ids.
#[derive(Clone, Debug)]
pub struct Shape {
    pub execution: ExportedExecution,
    pub steps: Vec<StepShape>,
}

/// Any execution, including ones ingest may refuse (a finished run without `completed_at`, a
/// running one with an end's fields, metadata that is not an object): the property is about what
/// ingest accepts, and the test counts what it refused.
pub fn execution() -> impl Strategy<Value = Shape> {
    let head = (
        text(),
        status(),
        any_i64(),
        prop_oneof![4 => any_i64().prop_map(Some), 1 => Just(None)],
        prop::collection::vec(text(), 0..3),
        proptest::option::of(text()),
        proptest::option::of(text()),
    );
    let rest = (
        prop_oneof![9 => json_object(), 1 => json_value()].prop_map(Json::from),
        proptest::option::of(json()),
        proptest::option::of(json()),
        (
            proptest::option::of(text()),
            proptest::option::of(text()),
            proptest::option::of(any::<u32>()),
        ),
        prop_oneof![1 => count(), 1 => Just(0)],
        prop::collection::vec(step(), 0..4),
        mostly(),
    );
    (head, rest).prop_map(
        |(
            (name, status, started_at, completed_at, tags, notes, error),
            (metadata, input, output, (service, host, pid), dropped_records, steps, tidy),
        )| {
            let mut execution = ExportedExecution {
                id: Uuid::nil(),
                name,
                status,
                started_at,
                completed_at,
                tags,
                notes,
                error,
                metadata,
                input,
                output,
                service,
                host,
                pid,
                dropped_records,
                steps: Vec::new(),
            };
            if tidy && status != Status::Running {
                execution.completed_at = execution.completed_at.or(Some(started_at));
            }
            if tidy && status == Status::Running {
                // What a store exports for a run still running: no end yet.
                execution.completed_at = None;
                execution.error = None;
                execution.input = None;
                execution.output = None;
                execution.dropped_records = 0;
            }
            Shape { execution, steps }
        },
    )
}

impl Shape {
    /// The execution with fresh ids for it and its steps (a nesting step's parent is the step
    /// before it).
    pub fn into_execution(self) -> ExportedExecution {
        let mut execution = self.execution;
        execution.id = Uuid::now_v7();
        let mut previous: Option<Uuid> = None;
        for shape in self.steps {
            let mut step = shape.record;
            step.id = Uuid::now_v7();
            step.execution_id = execution.id;
            step.parent_id = previous.filter(|_| shape.parent);
            previous = Some(step.id);
            execution.steps.push(step);
        }
        execution
    }
}

/// One to three executions as a document.
pub fn document() -> impl Strategy<Value = Vec<Shape>> {
    prop::collection::vec(execution(), 1..4)
}

/// The shapes as an ingest document with fresh ids.
pub fn into_document(shapes: Vec<Shape>) -> ExportDocument {
    ExportDocument::new(shapes.into_iter().map(Shape::into_execution).collect())
}
