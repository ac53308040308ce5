//! Field visitors: the X-Ray span fields, and an event's fields as a log line.

use crate::capture::Capture;
use crate::model::Json;
use crate::recorder::state::SpanInfo;
use std::fmt::{self, Write as _};
use tracing_core::field::{Field, Visit};

/// The `xray.*` fields of an X-Ray span.
#[derive(Default)]
pub(super) struct XrayFields {
    pub(super) name: Option<String>,
    pub(super) kind: Option<String>,
    pub(super) capture: Option<Capture>,
    pub(super) tags: Vec<String>,
}

impl XrayFields {
    fn set(&mut self, field: &Field, value: &str) {
        match field.name() {
            "xray.step" | "xray.execution" => self.name = Some(value.to_owned()),
            "xray.kind" if !value.is_empty() => self.kind = Some(value.to_owned()),
            "xray.capture" if !value.is_empty() => self.capture = Capture::parse(value),
            "xray.tags" if !value.is_empty() => {
                self.tags = serde_json::from_str::<Vec<String>>(value).unwrap_or_else(|_| {
                    value
                        .split(',')
                        .map(|t| t.trim().to_owned())
                        .filter(|t| !t.is_empty())
                        .collect()
                })
            }
            _ => {}
        }
    }
}

impl Visit for XrayFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name().starts_with("xray.") {
            // `%value` arrives here as Display wrapped in Debug.
            let text = format!("{value:?}");
            self.set(field, &text);
        }
    }
}

/// Checks, without allocating, whether a step span's fields equal a cached [`SpanInfo`].
pub(super) struct SameAs<'a> {
    info: &'a SpanInfo,
    pub(super) same: bool,
}

impl<'a> SameAs<'a> {
    pub(super) fn new(info: &'a SpanInfo) -> Self {
        SameAs { info, same: true }
    }

    fn check(&mut self, field: &Field, value: &str) {
        let equal = match field.name() {
            "xray.step" => self.info.name == value,
            "xray.kind" => self.info.kind.as_deref().unwrap_or("") == value,
            // An empty value parses as `None`, like an absent option.
            "xray.capture" => self.info.capture == Capture::parse(value),
            _ => true,
        };
        self.same &= equal;
    }
}

impl Visit for SameAs<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.check(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name().starts_with("xray.") {
            let text = format!("{value:?}");
            self.check(field, &text);
        }
    }
}

/// An event's `message` and its other fields as a JSON object.
#[derive(Default)]
pub(super) struct EventFields {
    pub(super) message: String,
    object: serde_json::Map<String, serde_json::Value>,
}

impl EventFields {
    pub(super) fn finish(self) -> Json {
        Json::from(serde_json::Value::Object(self.object))
    }

    fn put(&mut self, field: &Field, value: serde_json::Value) {
        self.object.insert(field.name().to_owned(), value);
    }
}

impl Visit for EventFields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, serde_json::json!(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.put(field, value.into());
        }
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.put(field, format!("{value:?}").into());
        }
    }
}
