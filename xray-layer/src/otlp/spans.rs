//! Records → OTLP spans: what an execution or a step looks like to Jaeger, Tempo or Phoenix.
//!
//! The mapping, in one place:
//!
//! | X-Ray | OTLP |
//! |---|---|
//! | execution id (UUID, 16 bytes) | the trace id |
//! | execution | the root span, named after the pipeline, `openinference.span.kind = CHAIN` |
//! | step | a child span of its parent step, or of the root span |
//! | step id, execution id | span ids: the last 8 bytes of the UUID (its random part) |
//! | step kind `llm`, `search`, `rank`, … | `openinference.span.kind` `LLM`, `RETRIEVER`, `RERANKER`, … and `xray.step.kind` as written |
//! | input, output | `input.value`, `output.value` (JSON, cut at [`MAX_VALUE_BYTES`]) |
//! | candidates in / out, evaluations, selection | `xray.candidates.in`, `xray.candidates.out`, `xray.evaluations.*`, `xray.selection.*` |
//! | `error` / `lost` status | `STATUS_CODE_ERROR` with the error as the message |
//!
//! Evaluations themselves are not exported: a step with 5,000 of them is one span with their
//! counts. The per-candidate *why* stays in X-Ray, one `xray.execution.id` away.

use crate::model::{ExecutionEnd, ExecutionStart, Json, Status, StepRecord};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, ArrayValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{
    span::SpanKind, status::StatusCode, Span, Status as SpanStatus,
};
use uuid::Uuid;

/// Input and output longer than this are cut (at a character boundary, marked with `…`) and
/// sent as text: span attributes are not the place for a 5,000-candidate list.
pub const MAX_VALUE_BYTES: usize = 4 * 1024;

/// The W3C trace flag "sampled": X-Ray records every run it is given.
const SAMPLED: u32 = 1;

/// What the writer thread hands to the exporter: the parts of a record that become a span,
/// copied (payloads cut to [`MAX_VALUE_BYTES`]) so the record itself goes on to the store.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    ExecutionStarted {
        id: Uuid,
        name: String,
        started_at: i64,
        tags: Vec<String>,
    },
    ExecutionFinished {
        id: Uuid,
        completed_at: i64,
        status: Status,
        error: Option<String>,
        input: Option<String>,
        output: Option<String>,
        dropped_records: u64,
    },
    Step(Box<StepSource>),
}

#[derive(Debug, Clone)]
pub(crate) struct StepSource {
    id: Uuid,
    execution_id: Uuid,
    parent_id: Option<Uuid>,
    name: String,
    kind: Option<String>,
    started_at: i64,
    ended_at: Option<i64>,
    status: Status,
    error: Option<String>,
    input: Option<String>,
    output: Option<String>,
    reasoning: Option<String>,
    candidates_in: Option<u64>,
    candidates_out: Option<u64>,
    evaluations: Option<(u64, u64, u64)>,
    selected: Vec<(String, String)>,
}

impl Source {
    pub(crate) fn execution_started(start: &ExecutionStart) -> Source {
        Source::ExecutionStarted {
            id: start.id,
            name: start.name.clone(),
            started_at: start.started_at,
            tags: start.tags.clone(),
        }
    }

    pub(crate) fn execution_finished(end: &ExecutionEnd) -> Source {
        Source::ExecutionFinished {
            id: end.id,
            completed_at: end.completed_at,
            status: end.status,
            error: end.error.clone(),
            input: end.input.as_ref().map(cut_json),
            output: end.output.as_ref().map(cut_json),
            dropped_records: end.dropped_records,
        }
    }

    pub(crate) fn step(step: &StepRecord) -> Source {
        Source::Step(Box::new(StepSource {
            id: step.id,
            execution_id: step.execution_id,
            parent_id: step.parent_id,
            name: step.name.clone(),
            kind: step.kind.clone(),
            started_at: step.started_at,
            ended_at: step.ended_at,
            status: step.status,
            error: step.error.clone(),
            input: step.input.as_ref().map(cut_json),
            output: step.output.as_ref().map(cut_json),
            reasoning: step.reasoning.as_deref().map(cut_str),
            candidates_in: step.candidates_in,
            candidates_out: step.candidates_out,
            evaluations: step.summary.as_ref().map(|s| (s.total, s.passed, s.failed)),
            selected: step
                .selection
                .iter()
                .map(|s| (s.candidate_id.clone(), s.reason.clone()))
                .collect(),
        }))
    }
}

/// An execution whose start the exporter has seen, waiting for its end.
#[derive(Debug, Clone)]
pub(crate) struct OpenExecution {
    pub(crate) name: String,
    pub(crate) started_at: i64,
    pub(crate) tags: Vec<String>,
}

/// The span of a finished execution. `open` is `None` when its start never reached the exporter
/// (dropped from a full queue): the span is then named `execution` and starts when it ends.
pub(crate) fn execution_span(source: &Source, open: Option<OpenExecution>) -> Option<Span> {
    let Source::ExecutionFinished {
        id,
        completed_at,
        status,
        error,
        input,
        output,
        dropped_records,
    } = source
    else {
        return None;
    };
    let open = open.unwrap_or_else(|| OpenExecution {
        name: "execution".to_owned(),
        started_at: *completed_at,
        tags: Vec::new(),
    });
    let mut attributes = vec![
        string("openinference.span.kind", "CHAIN"),
        string("xray.execution.id", id.to_string()),
    ];
    if !open.tags.is_empty() {
        attributes.push(strings("xray.tags", open.tags.iter().cloned()));
    }
    push_value(&mut attributes, "input", input.as_deref());
    push_value(&mut attributes, "output", output.as_deref());
    if *dropped_records > 0 {
        attributes.push(int("xray.dropped_records", *dropped_records));
    }
    Some(Span {
        trace_id: id.as_bytes().to_vec(),
        span_id: span_id(*id),
        flags: SAMPLED,
        name: open.name,
        kind: SpanKind::Internal as i32,
        start_time_unix_nano: unix_nanos(open.started_at),
        end_time_unix_nano: unix_nanos((*completed_at).max(open.started_at)),
        attributes,
        status: Some(status_of(*status, error.as_deref())),
        ..Span::default()
    })
}

/// The span of a finished step.
pub(crate) fn step_span(step: &StepSource) -> Span {
    let kind = step.kind.as_deref();
    let mut attributes = vec![
        string("openinference.span.kind", openinference_kind(kind)),
        string("xray.execution.id", step.execution_id.to_string()),
        string("xray.step.id", step.id.to_string()),
    ];
    if let Some(kind) = kind {
        attributes.push(string("xray.step.kind", kind));
    }
    push_value(&mut attributes, "input", step.input.as_deref());
    push_value(&mut attributes, "output", step.output.as_deref());
    if let Some(n) = step.candidates_in {
        attributes.push(int("xray.candidates.in", n));
    }
    if let Some(n) = step.candidates_out {
        attributes.push(int("xray.candidates.out", n));
    }
    if let Some(ratio) = crate::model::elimination(step.candidates_in, step.candidates_out) {
        attributes.push(KeyValue {
            key: "xray.candidates.eliminated_ratio".to_owned(),
            value: Some(AnyValue {
                value: Some(any_value::Value::DoubleValue(ratio)),
            }),
            ..KeyValue::default()
        });
    }
    if let Some((total, passed, failed)) = step.evaluations {
        attributes.push(int("xray.evaluations.total", total));
        attributes.push(int("xray.evaluations.passed", passed));
        attributes.push(int("xray.evaluations.failed", failed));
    }
    if !step.selected.is_empty() {
        attributes.push(strings(
            "xray.selection.candidate_ids",
            step.selected.iter().map(|(id, _)| id.clone()),
        ));
        attributes.push(strings(
            "xray.selection.reasons",
            step.selected.iter().map(|(_, reason)| reason.clone()),
        ));
    }
    if let Some(reasoning) = &step.reasoning {
        attributes.push(string("xray.reasoning", reasoning.as_str()));
    }
    let end = step
        .ended_at
        .unwrap_or(step.started_at)
        .max(step.started_at);
    Span {
        trace_id: step.execution_id.as_bytes().to_vec(),
        span_id: span_id(step.id),
        parent_span_id: span_id(step.parent_id.unwrap_or(step.execution_id)),
        flags: SAMPLED,
        name: step.name.clone(),
        kind: SpanKind::Internal as i32,
        start_time_unix_nano: unix_nanos(step.started_at),
        end_time_unix_nano: unix_nanos(end),
        attributes,
        status: Some(status_of(step.status, step.error.as_deref())),
        ..Span::default()
    }
}

/// OpenInference's span kinds for X-Ray's step kinds; anything else is a `CHAIN` link.
pub(crate) fn openinference_kind(kind: Option<&str>) -> &'static str {
    match kind.map(str::to_ascii_lowercase).as_deref() {
        Some("llm") => "LLM",
        Some("search" | "retrieve" | "retriever" | "retrieval") => "RETRIEVER",
        Some("rank" | "rerank" | "reranker") => "RERANKER",
        Some("embedding" | "embed") => "EMBEDDING",
        Some("tool") => "TOOL",
        Some("agent") => "AGENT",
        Some("guardrail") => "GUARDRAIL",
        Some("evaluator" | "judge") => "EVALUATOR",
        _ => "CHAIN",
    }
}

/// The last 8 bytes of a UUID v7: its random part, so span ids do not collide within a trace.
/// (An all-zero span id is invalid in OTLP; a UUID whose random half is zero gets 1.)
pub(crate) fn span_id(id: Uuid) -> Vec<u8> {
    let bytes = id.as_bytes();
    let mut span = bytes[8..].to_vec();
    if span.iter().all(|b| *b == 0) {
        span[7] = 1;
    }
    span
}

fn unix_nanos(micros: i64) -> u64 {
    u64::try_from(micros).unwrap_or(0).saturating_mul(1_000)
}

fn status_of(status: Status, error: Option<&str>) -> SpanStatus {
    match status {
        Status::Ok => SpanStatus {
            code: StatusCode::Ok as i32,
            message: String::new(),
        },
        Status::Error | Status::Lost => SpanStatus {
            code: StatusCode::Error as i32,
            message: error
                .map(str::to_owned)
                .unwrap_or_else(|| status.as_str().to_owned()),
        },
        Status::Running => SpanStatus::default(),
    }
}

/// `input.value` and `input.mime_type` (likewise `output`): JSON when it fit, text when cut.
fn push_value(attributes: &mut Vec<KeyValue>, prefix: &str, value: Option<&str>) {
    let Some(value) = value else { return };
    let cut = value.len() > MAX_VALUE_BYTES;
    attributes.push(string(&format!("{prefix}.value"), cut_str(value)));
    attributes.push(string(
        &format!("{prefix}.mime_type"),
        if cut {
            "text/plain"
        } else {
            "application/json"
        },
    ));
}

fn cut_json(json: &Json) -> String {
    // One byte past the limit marks it as cut for `push_value`, without copying the rest.
    let text = json.as_str();
    if text.len() <= MAX_VALUE_BYTES {
        text.to_owned()
    } else {
        let mut end = MAX_VALUE_BYTES + 1;
        while !text.is_char_boundary(end) {
            end += 1;
        }
        text[..end].to_owned()
    }
}

fn cut_str(text: &str) -> String {
    if text.len() <= MAX_VALUE_BYTES {
        return text.to_owned();
    }
    let mut end = MAX_VALUE_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn string(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..KeyValue::default()
    }
}

fn int(key: &str, value: u64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(
                i64::try_from(value).unwrap_or(i64::MAX),
            )),
        }),
        ..KeyValue::default()
    }
}

fn strings(key: &str, values: impl Iterator<Item = String>) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::ArrayValue(ArrayValue {
                values: values
                    .map(|v| AnyValue {
                        value: Some(any_value::Value::StringValue(v)),
                    })
                    .collect(),
            })),
        }),
        ..KeyValue::default()
    }
}

/// Resource attributes: who recorded these spans.
pub(crate) fn resource_attributes(
    service: Option<&str>,
    host: Option<&str>,
    pid: u32,
) -> Vec<KeyValue> {
    let mut attributes = vec![
        string("service.name", service.unwrap_or("unknown_service")),
        string("telemetry.sdk.name", "xray"),
        string("telemetry.sdk.language", "rust"),
        string("telemetry.sdk.version", env!("CARGO_PKG_VERSION")),
        int("process.pid", u64::from(pid)),
    ];
    if let Some(host) = host {
        attributes.push(string("host.name", host));
    }
    attributes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_kinds_map_to_openinference_kinds() {
        assert_eq!(openinference_kind(Some("llm")), "LLM");
        assert_eq!(openinference_kind(Some("LLM")), "LLM");
        assert_eq!(openinference_kind(Some("search")), "RETRIEVER");
        assert_eq!(openinference_kind(Some("rank")), "RERANKER");
        assert_eq!(openinference_kind(Some("filter")), "CHAIN");
        assert_eq!(openinference_kind(None), "CHAIN");
    }

    #[test]
    fn long_values_are_cut_at_a_character_boundary_and_sent_as_text() {
        let long = format!("\"{}\"", "é".repeat(MAX_VALUE_BYTES));
        let json = Json::from(serde_json::Value::String("é".repeat(MAX_VALUE_BYTES)));
        assert!(json.as_str().len() > MAX_VALUE_BYTES);
        let copied = cut_json(&json);
        assert!(copied.len() <= MAX_VALUE_BYTES + 2);
        let mut attributes = Vec::new();
        push_value(&mut attributes, "input", Some(&copied));
        let Some(any_value::Value::StringValue(text)) =
            attributes[0].value.as_ref().and_then(|v| v.value.clone())
        else {
            panic!("input.value is a string");
        };
        assert!(text.ends_with('…') && text.len() <= MAX_VALUE_BYTES + '…'.len_utf8());
        assert!(long.starts_with(text.trim_end_matches('…')));
        let Some(any_value::Value::StringValue(mime)) =
            attributes[1].value.as_ref().and_then(|v| v.value.clone())
        else {
            panic!("input.mime_type is a string");
        };
        assert_eq!(mime, "text/plain");
    }

    #[test]
    fn span_ids_are_the_random_half_of_the_uuid_and_never_zero() {
        let id = Uuid::from_bytes([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
        assert_eq!(span_id(id), vec![9, 10, 11, 12, 13, 14, 15, 16]);
        let zero_half = Uuid::from_bytes([1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(span_id(zero_half), vec![0, 0, 0, 0, 0, 0, 0, 1]);
    }
}
