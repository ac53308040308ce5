//! Runs and steps as OpenTelemetry spans, for teams already on Jaeger, Tempo or Phoenix
//! (feature `otlp`).
//!
//! X-Ray keeps recording into its own store; with an OTLP endpoint set, it *also* sends each
//! finished execution and step as a span over OTLP/HTTP (protobuf, gzip) to a collector:
//!
//! ```no_run
//! # fn main() -> Result<(), xray::Error> {
//! use tracing_subscriber::prelude::*;
//! let (layer, _guard) = xray::layer()
//!     .sqlite("xray.db")
//!     .otlp("http://localhost:4318") // an OpenTelemetry Collector, Jaeger, Tempo, Phoenix…
//!     .build()?;
//! tracing_subscriber::registry().with(layer).init();
//! # Ok(()) }
//! ```
//!
//! or, without code changes, `XRAY_OTLP_ENDPOINT=http://localhost:4318` (and
//! `XRAY_OTLP_HEADERS=authorization=Bearer …` when the collector wants a header) with
//! [`Builder::with_default_env`](crate::Builder::with_default_env). X-Ray does not read the
//! `OTEL_EXPORTER_OTLP_*` variables: a program that already exports its own spans would
//! otherwise start sending X-Ray's too without anyone asking.
//!
//! ## What is sent
//!
//! One trace per execution (the trace id *is* the execution id), a root span per execution and
//! a child span per step, nested as the steps were. Spans carry summaries, never evaluations:
//! the kind (also as OpenInference's `openinference.span.kind`, so Phoenix draws LLM, retriever
//! and reranker steps as such), candidates in and out, the evaluation counts, what was selected
//! and why, input and output cut to 4 KiB, and an error status with the error for a failed step.
//! The per-candidate *why* stays in X-Ray: search the X-Ray viewer for the span's
//! `xray.execution.id`. The full mapping is in the source of `otlp/spans.rs`.
//!
//! ## Costs and failures
//!
//! ```text
//! app thread ─▶ queue ─▶ writer thread ─┬─▶ store (SQLite, …)
//!                                       └─▶ bounded channel ─▶ exporter thread ─▶ POST /v1/traces
//! ```
//!
//! The application thread pays nothing for it: the writer thread copies each finished record's
//! summary into a bounded channel ([`DEFAULT_OTLP_QUEUE_CAPACITY`]) and goes on; the exporter
//! thread builds the spans and sends them in batches ([`DEFAULT_OTLP_BATCH_SIZE`] spans, or
//! every [`DEFAULT_OTLP_FLUSH_INTERVAL`]). A collector that is down or answers 429/502/503/504
//! is retried with backoff (or after its `Retry-After`), [`DEFAULT_OTLP_MAX_ATTEMPTS`] times
//! per batch; other answers are final. Spans dropped from a full channel, or never accepted, are
//! counted ([`RecorderStats::spans_dropped`](crate::RecorderStats::spans_dropped),
//! [`spans_failed`](crate::RecorderStats::spans_failed)) and said on stderr when the guard is
//! dropped; the X-Ray store is not affected by any of it. Dropping the guard sends what is left
//! for at most the builder's shutdown timeout (on top of the writer's own), and counts what it
//! could not send as failed. `guard.flush()` waits for the store, not for the exporter.

mod sender;
mod spans;

pub use spans::MAX_VALUE_BYTES;

use crate::layer::Defaults;
use crate::model::Record;
use crate::writer::Counters;
use crate::Error;
use crossbeam_channel::Sender;
use spans::Source;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Spans waiting for the exporter thread before new ones are dropped.
pub const DEFAULT_OTLP_QUEUE_CAPACITY: usize = 8_192;
/// Spans per OTLP request at most.
pub const DEFAULT_OTLP_BATCH_SIZE: usize = 512;
/// How long a span waits for a batch to fill before it is sent anyway.
pub const DEFAULT_OTLP_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Tries per batch while the collector is unreachable or overloaded.
pub const DEFAULT_OTLP_MAX_ATTEMPTS: u32 = 5;
/// How long one request may take.
pub const DEFAULT_OTLP_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Executions whose start waits for their end, at most (a program that starts runs and never
/// ends them does not grow the exporter without bound).
const MAX_OPEN_EXECUTIONS: usize = 4_096;

/// Where and how to send spans. Made by [`Builder::otlp`](crate::Builder::otlp).
#[derive(Clone, Debug)]
pub(crate) struct OtlpConfig {
    /// `…/v1/traces`.
    pub(crate) traces_url: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) queue_capacity: usize,
    pub(crate) batch_size: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) max_attempts: u32,
    pub(crate) request_timeout: Duration,
}

impl OtlpConfig {
    /// `endpoint` is the collector's base URL (`http://localhost:4318`, to which `/v1/traces` is
    /// added) or the full traces URL (ending in `/v1/traces`).
    pub(crate) fn new(endpoint: &str) -> OtlpConfig {
        let endpoint = endpoint.trim().trim_end_matches('/');
        let traces_url = if endpoint.ends_with("/v1/traces") {
            endpoint.to_owned()
        } else {
            format!("{endpoint}/v1/traces")
        };
        OtlpConfig {
            traces_url,
            headers: Vec::new(),
            queue_capacity: DEFAULT_OTLP_QUEUE_CAPACITY,
            batch_size: DEFAULT_OTLP_BATCH_SIZE,
            flush_interval: DEFAULT_OTLP_FLUSH_INTERVAL,
            max_attempts: DEFAULT_OTLP_MAX_ATTEMPTS,
            request_timeout: DEFAULT_OTLP_REQUEST_TIMEOUT,
        }
    }

    fn check(&self) -> Result<(), Error> {
        let url = &self.traces_url;
        let https = url.starts_with("https://");
        if !(url.starts_with("http://") || https) {
            return Err(Error::Otlp(format!(
                "endpoint {url:?}: expected an http:// or https:// URL"
            )));
        }
        if https && !cfg!(feature = "remote-tls") {
            return Err(Error::Otlp(format!(
                "endpoint {url:?}: https needs the `remote-tls` feature of xray"
            )));
        }
        for (name, value) in &self.headers {
            let name_ok = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
            // Visible ASCII, spaces and tabs: what HTTP allows in a field value.
            let value_ok = value
                .bytes()
                .all(|b| b == b'\t' || (0x20..0x7f).contains(&b));
            if !(name_ok && value_ok) {
                // The value is not shown: it is often a key.
                return Err(Error::Otlp(format!(
                    "header {name:?}: a name of letters, digits, '-' and '_', and a value of \
                     visible ASCII are expected"
                )));
            }
        }
        Ok(())
    }
}

/// The writer thread's end of the exporter. Dropping it gives the exporter thread the shutdown
/// timeout to send what is left (what it cannot send by then is counted as failed) and waits
/// that long for it, no longer.
pub(crate) struct OtlpExporter {
    tx: Option<Sender<Source>>,
    done: crossbeam_channel::Receiver<()>,
    counters: Arc<Counters>,
    last_error: Arc<Mutex<Option<String>>>,
    deadline: Arc<OnceLock<Instant>>,
    shutdown_timeout: Duration,
}

/// A shutdown timeout of "forever" (`Duration::MAX`) is taken as a day: an `Instant` cannot
/// hold more.
const LONGEST_SHUTDOWN: Duration = Duration::from_secs(24 * 60 * 60);

impl OtlpExporter {
    pub(crate) fn start(
        config: OtlpConfig,
        defaults: &Defaults,
        counters: Arc<Counters>,
        shutdown_timeout: Duration,
    ) -> Result<OtlpExporter, Error> {
        config.check()?;
        let (tx, rx) = crossbeam_channel::bounded(config.queue_capacity.max(1));
        let (done_tx, done) = crossbeam_channel::bounded(1);
        let last_error = Arc::new(Mutex::new(None));
        let deadline = Arc::new(OnceLock::new());
        let exporter = sender::Exporter::new(
            config,
            spans::resource_attributes(
                defaults.service.as_deref(),
                defaults.host.as_deref(),
                defaults.pid,
            ),
            Arc::clone(&counters),
            Arc::clone(&last_error),
            Arc::clone(&deadline),
        );
        std::thread::Builder::new()
            .name("xray-otlp".into())
            .spawn(move || {
                exporter.run(rx);
                let _ = done_tx.send(());
            })
            .map_err(Error::Spawn)?;
        Ok(OtlpExporter {
            tx: Some(tx),
            done,
            counters,
            last_error,
            deadline,
            shutdown_timeout: shutdown_timeout.min(LONGEST_SHUTDOWN),
        })
    }

    /// Hands a record's summary to the exporter thread (writer thread; never waits).
    pub(crate) fn record(&self, record: &Record) {
        let source = match record {
            Record::ExecutionStarted(start) => Source::execution_started(start),
            Record::ExecutionFinished(end) => Source::execution_finished(end),
            Record::StepStarted(_) => return,
            Record::StepFinished(step) => Source::step(step),
        };
        // The start of an execution is not a span: only spans count as dropped.
        let is_span = !matches!(source, Source::ExecutionStarted { .. });
        let sent = self
            .tx
            .as_ref()
            .is_some_and(|tx| tx.try_send(source).is_ok());
        if !sent && is_span {
            self.counters
                .writer
                .spans_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for OtlpExporter {
    fn drop(&mut self) {
        let _ = self.deadline.set(Instant::now() + self.shutdown_timeout);
        self.tx = None;
        // A little past the deadline: the exporter counts what it gives up on first.
        let finished = self
            .done
            .recv_timeout(self.shutdown_timeout + Duration::from_millis(200))
            .is_ok();
        let w = &self.counters.writer;
        let dropped = w.spans_dropped.load(Ordering::Relaxed);
        let failed = w.spans_failed.load(Ordering::Relaxed);
        if dropped + failed > 0 || !finished {
            let last = self
                .last_error
                .lock()
                .ok()
                .and_then(|e| e.clone())
                .unwrap_or_else(|| "none".to_owned());
            let _ =
                writeln!(
                std::io::stderr(),
                "X-Ray: OTLP export: {} spans exported, {dropped} dropped (queue full), {failed} \
                 not accepted{}; last error: {last}",
                w.spans_exported.load(Ordering::Relaxed),
                if finished { "" } else { ", and the exporter did not finish in time" },
            );
        }
    }
}
