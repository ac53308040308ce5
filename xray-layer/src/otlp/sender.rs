//! The exporter thread: turns sources into spans, batches them, POSTs them as OTLP/HTTP protobuf.

use super::spans::{self, OpenExecution, Source};
use super::{OtlpConfig, MAX_OPEN_EXECUTIONS};
use crate::writer::Counters;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The first retry of a batch waits this long; each failure doubles it.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A collector's `Retry-After` is honoured up to this long (the batch holds the queue meanwhile).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

pub(super) struct Exporter {
    config: OtlpConfig,
    resource: Vec<KeyValue>,
    counters: Arc<Counters>,
    last_error: Arc<Mutex<Option<String>>>,
    agent: ureq::Agent,
    /// Set when the guard is dropped: what is not exported by then is counted as failed.
    deadline: Arc<OnceLock<Instant>>,
    /// Executions started and not finished: their names and start times wait here for the
    /// root span. Bounded; the oldest is forgotten first (its span is then named `execution`).
    open: HashMap<Uuid, OpenExecution>,
    open_order: VecDeque<Uuid>,
    batch: Vec<Span>,
}

impl Exporter {
    pub(super) fn new(
        config: OtlpConfig,
        resource: Vec<KeyValue>,
        counters: Arc<Counters>,
        last_error: Arc<Mutex<Option<String>>>,
        deadline: Arc<OnceLock<Instant>>,
    ) -> Exporter {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(config.request_timeout.min(Duration::from_secs(5)))
            .timeout(config.request_timeout)
            .build();
        Exporter {
            config,
            resource,
            counters,
            last_error,
            agent,
            deadline,
            open: HashMap::new(),
            open_order: VecDeque::new(),
            batch: Vec::new(),
        }
    }

    /// Receives until the writer drops its end, exporting a batch when it is full or
    /// `flush_interval` has passed since the first span in it; then exports what is left.
    /// Once the shutdown deadline is set (the guard was dropped), whatever is not exported by
    /// then is counted as failed and the thread ends.
    pub(super) fn run(mut self, rx: Receiver<Source>) {
        let mut oldest: Option<Instant> = None;
        loop {
            if self.past_deadline() {
                let left = self.batch.len() as u64
                    + rx.try_iter()
                        .filter(|s| !matches!(s, Source::ExecutionStarted { .. }))
                        .count() as u64;
                self.batch.clear();
                self.give_up(left);
                return;
            }
            let wait = match oldest {
                Some(at) => self.config.flush_interval.saturating_sub(at.elapsed()),
                None => self.config.flush_interval,
            };
            match rx.recv_timeout(wait) {
                Ok(source) => {
                    self.take(source);
                    oldest.get_or_insert_with(Instant::now);
                    if self.batch.len() >= self.config.batch_size {
                        self.export();
                        oldest = None;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    if !self.batch.is_empty() {
                        self.export();
                    }
                    oldest = None;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        while !self.batch.is_empty() {
            if self.past_deadline() {
                self.give_up(self.batch.len() as u64);
                self.batch.clear();
                return;
            }
            self.export();
        }
    }

    fn past_deadline(&self) -> bool {
        self.deadline.get().is_some_and(|d| Instant::now() >= *d)
    }

    /// Counts `spans` as failed at the shutdown deadline, keeping the last error in the message.
    /// (The caller drops them: the batch being sent, or what is left of `self.batch`.)
    fn give_up(&self, spans: u64) {
        if spans == 0 {
            return;
        }
        let last = self.last_error.lock().ok().and_then(|e| e.clone());
        let why = match last {
            Some(last) => format!("not exported within the shutdown timeout (last error: {last})"),
            None => "not exported within the shutdown timeout".to_owned(),
        };
        self.failed(spans, why);
    }

    fn take(&mut self, source: Source) {
        match source {
            Source::ExecutionStarted {
                id,
                name,
                started_at,
                tags,
            } => {
                if self.open.len() >= MAX_OPEN_EXECUTIONS {
                    if let Some(old) = self.open_order.pop_front() {
                        self.open.remove(&old);
                    }
                }
                self.open.insert(
                    id,
                    OpenExecution {
                        name,
                        started_at,
                        tags,
                    },
                );
                self.open_order.push_back(id);
            }
            Source::ExecutionFinished { id, .. } => {
                let open = self.open.remove(&id);
                if open.is_some() {
                    self.open_order.retain(|o| *o != id);
                }
                self.batch.extend(spans::execution_span(&source, open));
            }
            Source::Step(step) => self.batch.push(spans::step_span(&step)),
        }
    }

    /// Exports up to one batch, retrying with backoff (or the collector's `Retry-After`) while
    /// it is unreachable or overloaded, until it is accepted, refused for good, out of tries, or
    /// the shutdown deadline comes. While it retries, the writer's spans wait in the bounded
    /// channel (and are dropped and counted when it is full): the program itself never waits.
    fn export(&mut self) {
        let take = self.batch.len().min(self.config.batch_size);
        let spans: Vec<Span> = self.batch.drain(..take).collect();
        let count = spans.len() as u64;
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: self.resource.clone(),
                    ..Resource::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "xray".to_owned(),
                        version: env!("CARGO_PKG_VERSION").to_owned(),
                        ..InstrumentationScope::default()
                    }),
                    spans,
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        };
        let body = match gzip(&request.encode_to_vec()) {
            Ok(body) => body,
            Err(e) => {
                self.failed(count, format!("could not compress spans: {e}"));
                return;
            }
        };
        let mut backoff = MIN_BACKOFF;
        for attempt in 1..=self.config.max_attempts {
            let deadline = self.deadline.get().copied();
            // At shutdown, no request outlasts the deadline.
            let timeout = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => self.config.request_timeout,
            }
            .min(self.config.request_timeout);
            if timeout.is_zero() {
                self.give_up(count);
                return;
            }
            match self.post(&body, timeout) {
                Outcome::Accepted { rejected, message } => {
                    let rejected = rejected.min(count);
                    self.counters
                        .writer
                        .spans_exported
                        .fetch_add(count - rejected, Ordering::Relaxed);
                    if rejected > 0 {
                        self.failed(rejected, format!("the collector rejected spans: {message}"));
                    } else if !message.is_empty() {
                        // A partial success with nothing rejected is the collector's warning.
                        self.set_error(Some(format!("the collector warned: {message}")));
                    } else {
                        self.set_error(None);
                    }
                    return;
                }
                Outcome::Refused(why) => {
                    self.failed(count, why);
                    return;
                }
                Outcome::Retry { why, after } => {
                    let wait = after.unwrap_or(backoff).max(backoff).min(MAX_RETRY_AFTER);
                    let out_of_time = deadline.is_some_and(|d| Instant::now() + wait >= d);
                    if attempt == self.config.max_attempts || out_of_time {
                        self.failed(count, why);
                        return;
                    }
                    self.set_error(Some(why));
                    std::thread::sleep(wait);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn post(&self, body: &[u8], timeout: Duration) -> Outcome {
        let mut request = self
            .agent
            .post(&self.config.traces_url)
            .timeout(timeout)
            .set("Content-Type", "application/x-protobuf")
            .set("Content-Encoding", "gzip");
        for (name, value) in &self.config.headers {
            request = request.set(name, value);
        }
        match request.send_bytes(body) {
            Ok(reply) => {
                // An empty body, or one without `partial_success`, means all were accepted.
                let mut bytes = Vec::new();
                let _ = reply.into_reader().take(1 << 20).read_to_end(&mut bytes);
                let partial = ExportTraceServiceResponse::decode(bytes.as_slice())
                    .ok()
                    .and_then(|r| r.partial_success);
                Outcome::Accepted {
                    rejected: partial
                        .as_ref()
                        .map_or(0, |p| u64::try_from(p.rejected_spans).unwrap_or(0)),
                    message: partial.map(|p| p.error_message).unwrap_or_default(),
                }
            }
            Err(ureq::Error::Status(code, reply)) => {
                let why = format!("{} answered {code}", self.config.traces_url);
                // OTLP/HTTP: 429, 502, 503 and 504 are worth retrying, after `Retry-After`
                // seconds when the collector says so; other errors are not.
                match code {
                    429 | 502 | 503 | 504 => Outcome::Retry {
                        why,
                        after: reply
                            .header("Retry-After")
                            .and_then(|s| s.trim().parse::<u64>().ok())
                            .map(Duration::from_secs),
                    },
                    _ => Outcome::Refused(why),
                }
            }
            // ureq's message names the URL.
            Err(e) => Outcome::Retry {
                why: e.to_string(),
                after: None,
            },
        }
    }

    fn failed(&self, spans: u64, why: String) {
        self.counters
            .writer
            .spans_failed
            .fetch_add(spans, Ordering::Relaxed);
        self.set_error(Some(why));
    }

    fn set_error(&self, error: Option<String>) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = error;
        }
    }
}

enum Outcome {
    Accepted {
        rejected: u64,
        message: String,
    },
    Refused(String),
    Retry {
        why: String,
        /// The collector's `Retry-After`, when it gave one.
        after: Option<Duration>,
    },
}

fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 3),
        flate2::Compression::fast(),
    );
    gz.write_all(bytes)?;
    gz.finish()
}
