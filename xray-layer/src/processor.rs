//! Hooks and processors: user code that sees every record, on the writer thread.
//!
//! Everything here runs on the writer thread, after the capture policy and before the store, so
//! the application thread pays nothing for it. In order:
//!
//! 1. redaction of named fields ([`Builder::redact`](crate::Builder::redact)): any object key
//!    that matches, at any depth of input, output, filters, metadata, snapshots and log fields,
//!    has its value replaced by `"[redacted]"`;
//! 2. the payload cap ([`Builder::max_payload_bytes`](crate::Builder::max_payload_bytes)): a
//!    larger payload is cut at a clean JSON boundary (long arrays and strings are shortened, the
//!    structure stays) and wrapped as `{"$xray_truncated": true, "original_bytes": N, "value": …}`;
//! 3. your [`Processor`]s, in the order added;
//! 4. the hooks: [`Builder::on_step_end`](crate::Builder::on_step_end) and
//!    [`Builder::on_execution_end`](crate::Builder::on_execution_end);
//! 5. with an OTLP endpoint (feature `otlp`), the span export's hand-off, which sees the record
//!    as the store will.
//!
//! A panic in a processor or a hook is caught and counted
//! ([`RecorderStats::hook_panics`](crate::RecorderStats)); the record is still written.

use crate::model::{ExecutionEnd, Json, Record, StepRecord};
use crate::store::StoreError;
use crate::writer::Counters;
use serde_json::Value;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Changes records before they are stored (on the writer thread).
///
/// ```
/// use xray::{model::Record, Processor};
///
/// /// Drops the snapshots of candidates that passed, to save space.
/// struct DropPassedSnapshots;
///
/// impl Processor for DropPassedSnapshots {
///     fn process(&self, record: &mut Record) {
///         if let Record::StepFinished(step) = record {
///             for e in step.evaluations.iter_mut().filter(|e| e.passed) {
///                 e.snapshot = None;
///             }
///         }
///     }
/// }
///
/// let (_layer, _guard) = xray::layer().memory().processor(DropPassedSnapshots).build()?;
/// # Ok::<(), xray::Error>(())
/// ```
pub trait Processor: Send + Sync + 'static {
    /// Changes `record` in place.
    fn process(&self, record: &mut Record);
}

pub(crate) type StepHook = Arc<dyn Fn(&StepRecord) + Send + Sync>;
pub(crate) type ExecutionHook = Arc<dyn Fn(&ExecutionEnd) + Send + Sync>;
pub(crate) type ErrorHook = Arc<dyn Fn(&StoreError, usize) + Send + Sync>;

/// The processors and hooks of one layer, in the order they run.
#[derive(Default, Clone)]
pub(crate) struct Pipeline {
    pub(crate) redact: Vec<String>,
    pub(crate) max_payload_bytes: Option<usize>,
    pub(crate) processors: Vec<Arc<dyn Processor>>,
    pub(crate) on_step_end: Vec<StepHook>,
    pub(crate) on_execution_end: Vec<ExecutionHook>,
    pub(crate) on_write_error: Vec<ErrorHook>,
    /// Runs and steps also sent as OTLP spans (feature `otlp`), after the hooks.
    #[cfg(feature = "otlp")]
    pub(crate) otlp: Option<Arc<crate::otlp::OtlpExporter>>,
}

impl Pipeline {
    /// Whether something here reads or changes evaluation rows (processors, step hooks,
    /// redaction of snapshots), so the writer must build them as owned records.
    pub(crate) fn needs_decoded_evaluations(&self) -> bool {
        !self.processors.is_empty() || !self.on_step_end.is_empty() || !self.redact.is_empty()
    }

    pub(crate) fn process(&self, record: &mut Record, counters: &Counters) {
        if !self.redact.is_empty() || self.max_payload_bytes.is_some() {
            for_each_payload(record, |json| {
                if !self.redact.is_empty() {
                    redact(json, &self.redact);
                }
                if let Some(max) = self.max_payload_bytes {
                    cap(json, max);
                }
            });
        }
        for processor in &self.processors {
            if catch_unwind(AssertUnwindSafe(|| processor.process(record))).is_err() {
                counters.writer.hook_panics.fetch_add(1, Ordering::Relaxed);
            }
        }
        match record {
            Record::StepFinished(step) => {
                for hook in &self.on_step_end {
                    if catch_unwind(AssertUnwindSafe(|| hook(step))).is_err() {
                        counters.writer.hook_panics.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Record::ExecutionFinished(end) => {
                for hook in &self.on_execution_end {
                    if catch_unwind(AssertUnwindSafe(|| hook(end))).is_err() {
                        counters.writer.hook_panics.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            _ => {}
        }
        #[cfg(feature = "otlp")]
        if let Some(otlp) = &self.otlp {
            otlp.record(record);
        }
    }

    pub(crate) fn write_failed(&self, err: &StoreError, records: usize) {
        for hook in &self.on_write_error {
            let _ = catch_unwind(AssertUnwindSafe(|| hook(err, records)));
        }
    }
}

fn for_each_payload(record: &mut Record, mut f: impl FnMut(&mut Json)) {
    match record {
        Record::ExecutionStarted(start) => f(&mut start.metadata),
        Record::ExecutionFinished(end) => {
            // An `#[xray::execution]` records its arguments and return value, as a step does.
            for json in [&mut end.metadata, &mut end.input, &mut end.output]
                .into_iter()
                .flatten()
            {
                f(json);
            }
        }
        Record::StepStarted(_) => {}
        Record::StepFinished(step) => {
            for json in [&mut step.input, &mut step.output, &mut step.filters]
                .into_iter()
                .flatten()
            {
                f(json);
            }
            f(&mut step.metadata);
            for e in &mut step.evaluations {
                if let Some(s) = &mut e.snapshot {
                    f(s);
                }
            }
            for log in &mut step.logs {
                f(&mut log.fields);
            }
        }
    }
}

/// Replaces the value of every object key in `fields` (ASCII case-insensitive) by `"[redacted]"`.
pub(crate) fn redact(json: &mut Json, fields: &[String]) {
    let lower = json.as_str().to_ascii_lowercase();
    if !fields
        .iter()
        .any(|f| lower.contains(&f.to_ascii_lowercase()))
    {
        return;
    }
    // serde_json reads back at most 128 levels of nesting (it writes more). A payload it cannot
    // read cannot be inspected, and may hold the field: it is withheld whole (fail closed).
    let Ok(mut value) = serde_json::from_str::<Value>(json.as_str()) else {
        *json = Json::string("[redacted: too deeply nested to inspect]");
        return;
    };
    if redact_value(&mut value, fields) {
        *json = Json::from(value);
    }
}

fn redact_value(value: &mut Value, fields: &[String]) -> bool {
    let mut changed = false;
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if fields.iter().any(|f| f.eq_ignore_ascii_case(key)) {
                    *v = Value::String("[redacted]".into());
                    changed = true;
                } else {
                    changed |= redact_value(v, fields);
                }
            }
        }
        Value::Array(items) => {
            for v in items {
                changed |= redact_value(v, fields);
            }
        }
        _ => {}
    }
    changed
}

/// Cuts a payload larger than `max` bytes at a clean boundary and marks it.
pub(crate) fn cap(json: &mut Json, max: usize) {
    if json.len() <= max || json.truncated() {
        return;
    }
    let original = json.len();
    // A payload serde_json cannot read back (nested more than 128 levels) keeps its text's
    // beginning, as a string.
    let value = serde_json::from_str::<Value>(json.as_str())
        .unwrap_or_else(|_| Value::String(json.as_str().to_owned()));
    let (mut items, mut chars) = (1000usize, 1000usize);
    loop {
        let shrunk = shrink(&value, items, chars);
        let wrapped = serde_json::json!({
            "$xray_truncated": true,
            "original_bytes": original,
            "value": shrunk,
        });
        let text = wrapped.to_string();
        if text.len() <= max || (items == 0 && chars <= 8) {
            *json = Json::from_trusted(text);
            return;
        }
        items /= 2;
        chars = (chars / 2).max(8);
    }
}

fn shrink(value: &Value, items: usize, chars: usize) -> Value {
    match value {
        Value::String(s) if s.chars().count() > chars => {
            let mut cut: String = s.chars().take(chars).collect();
            cut.push('…');
            Value::String(cut)
        }
        Value::Array(list) => {
            let mut out: Vec<Value> = list
                .iter()
                .take(items)
                .map(|v| shrink(v, items, chars))
                .collect();
            if list.len() > items {
                out.push(Value::String(format!(
                    "… {} more items",
                    list.len() - items
                )));
            }
            Value::Array(out)
        }
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (i, (k, v)) in map.iter().enumerate() {
                if i >= items.max(1) {
                    out.insert(
                        "…".into(),
                        Value::String(format!("{} more keys", map.len() - i)),
                    );
                    break;
                }
                out.insert(k.clone(), shrink(v, items, chars));
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_reaches_nested_keys_case_insensitively() {
        let mut json = Json::from(
            serde_json::json!({"user": {"API_Key": "s3cret", "name": "a"}, "list": [{"api_key": 1}]}),
        );
        redact(&mut json, &["api_key".to_owned()]);
        let v = json.to_value();
        assert_eq!(v["user"]["API_Key"], "[redacted]");
        assert_eq!(v["user"]["name"], "a");
        assert_eq!(v["list"][0]["api_key"], "[redacted]");
    }

    /// `[[…{"api_key":"s3cret"}…]]`, nested `depth` arrays deep.
    fn nested(depth: usize) -> Json {
        let mut text = "[".repeat(depth);
        text.push_str(r#"{"api_key":"s3cret"}"#);
        text.push_str(&"]".repeat(depth));
        Json::parse(&text).unwrap_or_else(|| Json::from_trusted(text))
    }

    #[test]
    fn a_payload_too_deep_to_inspect_is_withheld_not_stored_unredacted() {
        let fields = ["api_key".to_owned()];
        let mut shallow = nested(10);
        redact(&mut shallow, &fields);
        assert!(!shallow.as_str().contains("s3cret"), "{}", shallow.as_str());
        assert!(
            shallow.as_str().contains("[redacted]"),
            "only the field goes"
        );

        let mut deep = nested(200);
        assert!(deep.as_str().contains("s3cret"));
        redact(&mut deep, &fields);
        assert!(!deep.as_str().contains("s3cret"), "{}", deep.as_str());
        assert_eq!(deep.to_value(), "[redacted: too deeply nested to inspect]");
    }

    #[test]
    fn a_payload_too_deep_to_read_back_is_cut_to_its_beginning() {
        let mut deep = nested(5000);
        cap(&mut deep, 2048);
        assert!(deep.len() <= 2048, "{}", deep.len());
        assert!(deep.truncated());
        let v = deep.to_value();
        let kept = v["value"].as_str().unwrap_or("");
        assert!(kept.starts_with("[[[["), "{kept:.40}");
    }

    #[test]
    fn cap_keeps_valid_json_marks_it_and_fits() {
        let big: Vec<String> = (0..5000).map(|i| format!("item number {i}")).collect();
        let mut json = Json::from_serialize(&big);
        let original = json.len();
        cap(&mut json, 2048);
        assert!(json.len() <= 2048, "{}", json.len());
        assert!(json.truncated());
        let v = json.to_value();
        assert_eq!(v["original_bytes"], original);
        assert_eq!(v["value"][0], "item number 0");
    }
}
