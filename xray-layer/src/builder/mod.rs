//! [`Builder`]: configure the layer, its store and its writer; `build()` starts them.
//!
//! Every setting has a documented default (the `DEFAULT_*` constants) and most can be set from
//! the environment with [`Builder::with_default_env`]:
//!
//! | variable | setting | values |
//! |---|---|---|
//! | `XRAY_DB` | [`Builder::sqlite`] / [`Builder::memory`] | a path (default [`DEFAULT_DB_PATH`]), or `:memory:` |
//! | `XRAY_ENDPOINT` | `Builder::remote` (feature `remote`) | an `xray-server` URL; records go there instead of `XRAY_DB` |
//! | `XRAY_TOKEN` | `Builder::remote_token` | the server's bearer token (with `XRAY_ENDPOINT`) |
//! | `XRAY_SPOOL` | `RemoteBuilder::spool` | the remote spool file (default `xray-spool.db`) |
//! | `XRAY_QUEUE_CAPACITY` | [`Builder::queue_capacity`] | records per recording thread, ≥ 1 |
//! | `XRAY_FLUSH_INTERVAL_MS` | [`Builder::flush_interval`] | milliseconds, ≥ 1 |
//! | `XRAY_BACKPRESSURE` | [`Builder::backpressure`] | `drop` or `block` |
//! | `XRAY_CAPTURE` | [`Builder::capture`] | `all`, `summary`, or a number of rows per step |
//! | `XRAY_REDACT` | [`Builder::redact`] | comma-separated field names |
//! | `XRAY_MAX_PAYLOAD_BYTES` | [`Builder::max_payload_bytes`] | bytes, ≥ 64 |
//! | `XRAY_MAX_LOGS_PER_STEP` | [`Builder::max_logs_per_step`] | log lines |
//! | `XRAY_SERVICE` | [`Builder::service`] | a name |
//! | `XRAY_SAMPLE` | [`Builder::sample`] | the share of executions recorded, `0`–`1` (default `1`: all) |
//! | `XRAY_WRITER_NICE` | [`Builder::writer_nice`] | nice levels below the application's, `0`–`19` (default [`DEFAULT_WRITER_NICE`]) |
//! | `XRAY_OTLP_ENDPOINT` | `Builder::otlp` (feature `otlp`) | a collector's OTLP/HTTP URL (`http://localhost:4318`); runs and steps are also sent there as spans |
//! | `XRAY_OTLP_HEADERS` | `Builder::otlp_header` | `name=value,name=value` sent with each OTLP request (values percent-encoded, as in `OTEL_EXPORTER_OTLP_HEADERS`) |
//!
//! A variable with a value X-Ray cannot use is an [`Error::Env`] from `build()`, naming it.

mod env;

use crate::capture::Capture;
use crate::layer::{Defaults, XRayLayer};
use crate::model::{ExecutionEnd, StepRecord};
use crate::processor::{Pipeline, Processor};
use crate::recycle::Recycler;
use crate::store::{MemoryStore, SqliteStore, Store, StoreError};
use crate::writer::lane::Lanes;
use crate::writer::worker::Worker;
use crate::writer::{Backpressure, Counters, Sink, XRayGuard};
use crate::Error;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// The database file when none is given.
pub const DEFAULT_DB_PATH: &str = "xray.db";
/// Records that can wait for the writer, on each recording thread, before new ones are dropped.
pub const DEFAULT_QUEUE_CAPACITY: usize = 16_384;
/// How often the writer wakes to write what is queued.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// Records written per transaction at most.
pub const DEFAULT_BATCH_SIZE: usize = 512;
/// A payload (input, output, filters, metadata, snapshot) larger than this is cut and marked.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 256 * 1024;
/// Log lines kept per step; more are counted, not kept.
pub const DEFAULT_MAX_LOGS_PER_STEP: usize = 200;
/// How long dropping the guard waits for the writer to finish.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Nice levels the writer thread runs below the thread that builds the layer (Linux): it
/// yields a CPU that a step wants. See [`Builder::writer_nice`].
pub const DEFAULT_WRITER_NICE: u8 = 10;

/// Starts building an X-Ray layer. See [`Builder`].
///
/// ```no_run
/// use tracing_subscriber::prelude::*;
///
/// let (xray_layer, _guard) = xray::layer().sqlite("xray.db").build()?;
/// tracing_subscriber::registry().with(xray_layer).init();
/// # Ok::<(), xray::Error>(())
/// ```
pub fn layer() -> Builder {
    Builder::default()
}

enum StoreChoice {
    Sqlite(PathBuf),
    Memory,
    Custom(Arc<dyn Store>),
    /// A PostgreSQL URL (feature `postgres`).
    #[cfg(feature = "postgres")]
    Postgres(String),
    /// An `xray-server` URL (feature `remote`).
    Remote {
        endpoint: String,
        token: Option<String>,
        spool: Option<PathBuf>,
    },
}

/// Configures an [`XRayLayer`] and its writer. Made by [`layer()`].
///
/// Every setting has a documented default (the `DEFAULT_*` constants) and most can be set from
/// the environment with [`Builder::with_default_env`]:
///
/// | variable | setting | values |
/// |---|---|---|
/// | `XRAY_DB` | [`Builder::sqlite`] / [`Builder::memory`] | a path (default [`DEFAULT_DB_PATH`]), or `:memory:` |
/// | `XRAY_ENDPOINT` | `Builder::remote` (feature `remote`) | an `xray-server` URL; records go there instead of `XRAY_DB` |
/// | `XRAY_TOKEN` | `Builder::remote_token` | the server's bearer token (with `XRAY_ENDPOINT`) |
/// | `XRAY_SPOOL` | `RemoteBuilder::spool` | the remote spool file (default `xray-spool.db`) |
/// | `XRAY_QUEUE_CAPACITY` | [`Builder::queue_capacity`] | records per recording thread, ≥ 1 |
/// | `XRAY_FLUSH_INTERVAL_MS` | [`Builder::flush_interval`] | milliseconds, ≥ 1 |
/// | `XRAY_BACKPRESSURE` | [`Builder::backpressure`] | `drop` or `block` |
/// | `XRAY_CAPTURE` | [`Builder::capture`] | `all`, `summary`, or a number of rows per step |
/// | `XRAY_REDACT` | [`Builder::redact`] | comma-separated field names |
/// | `XRAY_MAX_PAYLOAD_BYTES` | [`Builder::max_payload_bytes`] | bytes, ≥ 64 |
/// | `XRAY_MAX_LOGS_PER_STEP` | [`Builder::max_logs_per_step`] | log lines |
/// | `XRAY_SERVICE` | [`Builder::service`] | a name |
/// | `XRAY_WRITER_NICE` | [`Builder::writer_nice`] | nice levels below the application's, `0`–`19` (default [`DEFAULT_WRITER_NICE`]) |
/// | `XRAY_SAMPLE` | [`Builder::sample`] | the share of executions recorded, `0`–`1` (default `1`: all) |
/// | `XRAY_OTLP_ENDPOINT` | `Builder::otlp` (feature `otlp`) | a collector's OTLP/HTTP URL (`http://localhost:4318`); runs and steps are also sent there as spans |
/// | `XRAY_OTLP_HEADERS` | `Builder::otlp_header` | `name=value,name=value` sent with each OTLP request (values percent-encoded, as in `OTEL_EXPORTER_OTLP_HEADERS`) |
///
/// A variable with a value X-Ray cannot use is an [`Error::Env`] from `build()`, naming it.
pub struct Builder {
    store: StoreChoice,
    queue_capacity: usize,
    flush_interval: Duration,
    batch_size: usize,
    backpressure: Backpressure,
    capture: Capture,
    max_logs_per_step: usize,
    shutdown_timeout: Duration,
    /// Nice levels the writer thread lowers its priority by.
    writer_nice: u8,
    service: Option<String>,
    /// The share of executions recorded.
    sample: f64,
    pipeline: Pipeline,
    /// The OTLP endpoint and the headers to send it (used with feature `otlp`).
    #[cfg_attr(not(feature = "otlp"), allow(dead_code))]
    otlp_endpoint: Option<String>,
    #[cfg_attr(not(feature = "otlp"), allow(dead_code))]
    otlp_headers: Vec<(String, String)>,
    env_error: Option<Error>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("queue_capacity", &self.queue_capacity)
            .field("flush_interval", &self.flush_interval)
            .field("backpressure", &self.backpressure)
            .field("capture", &self.capture)
            .field("sample", &self.sample)
            .field("writer_nice", &self.writer_nice)
            .finish_non_exhaustive()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            store: StoreChoice::Sqlite(PathBuf::from(DEFAULT_DB_PATH)),
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            batch_size: DEFAULT_BATCH_SIZE,
            backpressure: Backpressure::Drop,
            capture: Capture::default(),
            max_logs_per_step: DEFAULT_MAX_LOGS_PER_STEP,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            writer_nice: DEFAULT_WRITER_NICE,
            service: None,
            sample: 1.0,
            otlp_endpoint: None,
            otlp_headers: Vec::new(),
            pipeline: Pipeline {
                max_payload_bytes: Some(DEFAULT_MAX_PAYLOAD_BYTES),
                ..Pipeline::default()
            },
            env_error: None,
        }
    }
}

impl Builder {
    /// Records into the SQLite file at `path` (created if missing; WAL mode).
    pub fn sqlite(mut self, path: impl Into<PathBuf>) -> Self {
        self.store = StoreChoice::Sqlite(path.into());
        self
    }

    /// Records into PostgreSQL at `url` (`postgres://user:password@host:5432/database`; feature
    /// `postgres`): for pipelines on many machines sharing one database, which any number of
    /// `xray-server --db postgres://…` replicas serve. See [`PostgresStore`](crate::store::PostgresStore).
    ///
    /// An unreachable server, a refused login or a newer X-Ray schema is an `Err` from
    /// [`build`](Self::build).
    #[cfg(feature = "postgres")]
    pub fn postgres(mut self, url: impl Into<String>) -> Self {
        self.store = StoreChoice::Postgres(url.into());
        self
    }

    /// Records into memory (for tests): read it back with [`Builder::build_with_store`].
    pub fn memory(mut self) -> Self {
        self.store = StoreChoice::Memory;
        self
    }

    /// Records into a store of your own.
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = StoreChoice::Custom(store);
        self
    }

    /// Sends records to an `xray-server` at `endpoint` (`http://collector:7777`) instead of a
    /// local database, through a bounded local spool: see [`crate::remote`]. `XRAY_ENDPOINT`
    /// sets it from the environment, `XRAY_TOKEN` the server's token, `XRAY_SPOOL` the spool file.
    #[cfg(feature = "remote")]
    pub fn remote(mut self, endpoint: impl Into<String>) -> Self {
        self.store = StoreChoice::Remote {
            endpoint: endpoint.into(),
            token: None,
            spool: None,
        };
        self
    }

    /// The bearer token of the server [`remote`](Self::remote) sends to.
    #[cfg(feature = "remote")]
    pub fn remote_token(mut self, token: impl Into<String>) -> Self {
        if let StoreChoice::Remote { token: t, .. } = &mut self.store {
            *t = Some(token.into());
        }
        self
    }

    /// Records waiting for the writer, on each recording thread, before new ones are dropped
    /// (or block).
    ///
    /// Each thread that records gets a queue of its own, the first time it does: a ring of
    /// `records` × 64 bytes (between 1 KiB and 4 MiB). Records are not all that size: an
    /// execution's end takes ~50 bytes, a step's start ~80–100, a step's end with its
    /// arguments' and result's JSON a few hundred; a record larger than a quarter of the ring
    /// (or than 4 KiB) travels beside it instead. So the ring holds `records` records at the
    /// pace of a pipeline's usual mix, give or take half. A step's evaluations travel beside its
    /// end record, up to `records / 8` steps' worth at a time (4 at least).
    pub fn queue_capacity(mut self, records: usize) -> Self {
        self.queue_capacity = records.max(1);
        self
    }

    /// How often the writer writes what is queued (it also wakes when a batch is full).
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Records per transaction at most.
    pub fn batch_size(mut self, records: usize) -> Self {
        self.batch_size = records.max(1);
        self
    }

    /// What to do when the queue is full. See [`Backpressure`].
    pub fn backpressure(mut self, backpressure: Backpressure) -> Self {
        self.backpressure = backpressure;
        self
    }

    /// The capture policy of steps that do not set their own. See [`crate::capture`].
    pub fn capture(mut self, capture: Capture) -> Self {
        self.capture = capture;
        self
    }

    /// Replaces the value of these object keys, at any depth of any payload, by `"[redacted]"`
    /// (on the writer thread, before anything is stored or exported). Payloads are the inputs,
    /// outputs, filters and metadata of steps and executions, snapshots and log fields. A
    /// payload that names one of the keys but is nested too deeply to read back (more than 128
    /// levels) is withheld whole.
    pub fn redact<I, S>(mut self, fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.pipeline
            .redact
            .extend(fields.into_iter().map(Into::into));
        self
    }

    /// Cuts payloads larger than this at a clean JSON boundary and marks them. `None` keeps
    /// payloads whole.
    pub fn max_payload_bytes(mut self, bytes: Option<usize>) -> Self {
        self.pipeline.max_payload_bytes = bytes.map(|b| b.max(64));
        self
    }

    /// Log lines kept per step.
    pub fn max_logs_per_step(mut self, lines: usize) -> Self {
        self.max_logs_per_step = lines;
        self
    }

    /// How long dropping the guard waits for the writer.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// How many nice levels the writer thread runs below the thread that builds the layer
    /// (default [`DEFAULT_WRITER_NICE`]; up to 19, the lowest priority; `0` keeps it equal).
    /// Linux only: elsewhere the writer keeps its priority.
    ///
    /// The writer turns records into JSON and writes them, about a microsecond of CPU per
    /// step. Woken by a thread that records, it may be run on that thread's CPU (when other
    /// work holds the other CPUs), and at equal priority the step then waits for it. Below the
    /// application's priority it yields that CPU, and the scheduler moves it to a free one. On a
    /// machine the application keeps busy on every CPU, the writer gets a small share (about
    /// a tenth of a CPU at 10) and falls behind: records are then dropped and counted, or the
    /// threads wait, as [`backpressure`](Self::backpressure) says; and the guard's last flush,
    /// if the guard drops while they still keep every CPU busy, takes longer (two threads
    /// flooding a 2-CPU machine: ~25 s against ~2 s; past the
    /// [`shutdown_timeout`](Self::shutdown_timeout) what is left is reported on stderr). Set
    /// `0` where the writer must keep up with a saturated machine. (A thread cannot raise its
    /// priority again without privileges, so the writer keeps this one to the end.)
    ///
    /// ```
    /// // The writer at the application's priority.
    /// let (layer, _guard) = xray::layer().memory().writer_nice(0).build()?;
    /// # drop(layer);
    /// # Ok::<(), xray::Error>(())
    /// ```
    pub fn writer_nice(mut self, levels: u8) -> Self {
        self.writer_nice = levels.min(19);
        self
    }

    /// Records this share of executions, from `0.0` to `1.0` (default `1.0`: every one). The
    /// choice is made when an execution starts (an `#[xray::execution]`, or the one a step with
    /// no execution above it starts) and holds for the whole run: a run is recorded whole or not
    /// at all, never a part of it. An execution started inside another run (in one of its
    /// steps) follows that run's choice. A run left out costs its steps next to nothing: they
    /// serialize no argument and send no record. How many were left out is in
    /// [`RecorderStats::sampled_out`](crate::RecorderStats::sampled_out), and is added to the
    /// store's [`RecorderCounts`](crate::store::RecorderCounts) (the viewer's runs list says
    /// so). A value outside the
    /// range is taken as the nearest end of it (NaN as `1.0`).
    ///
    /// ```
    /// // One run in ten, for a pipeline that runs thousands of times a minute.
    /// let (layer, _guard) = xray::layer().memory().sample(0.1).build()?;
    /// # drop(layer);
    /// # Ok::<(), xray::Error>(())
    /// ```
    pub fn sample(mut self, share: f64) -> Self {
        self.sample = if share.is_nan() {
            1.0
        } else {
            share.clamp(0.0, 1.0)
        };
        self
    }

    /// The service name stored with each execution (default: the executable's name).
    pub fn service(mut self, name: impl Into<String>) -> Self {
        self.service = Some(name.into());
        self
    }

    /// Also sends every finished execution and step as an OpenTelemetry span to the OTLP/HTTP
    /// collector at `endpoint` (`http://localhost:4318`, or a URL ending in `/v1/traces`), from a
    /// thread of its own. See [`crate::otlp`].
    #[cfg(feature = "otlp")]
    pub fn otlp(mut self, endpoint: impl Into<String>) -> Self {
        self.otlp_endpoint = Some(endpoint.into());
        self
    }

    /// A header sent with every OTLP request (an API key, `authorization`), when there is an
    /// endpoint ([`Builder::otlp`] or `XRAY_OTLP_ENDPOINT`). Added to those of `XRAY_OTLP_HEADERS`.
    #[cfg(feature = "otlp")]
    pub fn otlp_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.otlp_headers.push((name.into(), value.into()));
        self
    }

    /// Adds a processor, run on the writer thread on every record. See [`crate::processor`].
    pub fn processor(mut self, processor: impl Processor) -> Self {
        self.pipeline.processors.push(Arc::new(processor));
        self
    }

    /// Calls `hook` on the writer thread for every finished step, after the processors.
    pub fn on_step_end(mut self, hook: impl Fn(&StepRecord) + Send + Sync + 'static) -> Self {
        self.pipeline.on_step_end.push(Arc::new(hook));
        self
    }

    /// Calls `hook` on the writer thread for every finished execution.
    pub fn on_execution_end(
        mut self,
        hook: impl Fn(&ExecutionEnd) + Send + Sync + 'static,
    ) -> Self {
        self.pipeline.on_execution_end.push(Arc::new(hook));
        self
    }

    /// Calls `hook` on the writer thread when a batch of `n` records cannot be written.
    pub fn on_write_error(
        mut self,
        hook: impl Fn(&StoreError, usize) + Send + Sync + 'static,
    ) -> Self {
        self.pipeline.on_write_error.push(Arc::new(hook));
        self
    }

    /// Opens the store, starts the writer thread, and returns the layer with its guard.
    ///
    /// An unwritable path, a file that is not an X-Ray database, a database written by a newer
    /// X-Ray, or an invalid `XRAY_*` variable is an `Err` here, never a panic later.
    pub fn build(self) -> Result<(XRayLayer, XRayGuard), Error> {
        self.build_with_store()
            .map(|(layer, guard, _)| (layer, guard))
    }

    /// [`build`](Self::build), also returning the store, to read back what was recorded.
    pub fn build_with_store(self) -> Result<(XRayLayer, XRayGuard, Arc<dyn Store>), Error> {
        if let Some(e) = self.env_error {
            return Err(e);
        }
        // The clock of records is calibrated here (once per process), not by the first step.
        crate::clock::calibrate();
        let (store, native): (Arc<dyn Store>, _) = match self.store {
            StoreChoice::Sqlite(path) => {
                let sqlite = Arc::new(SqliteStore::open(&path)?);
                (Arc::clone(&sqlite) as Arc<dyn Store>, Some(sqlite))
            }
            StoreChoice::Memory => (Arc::new(MemoryStore::new()), None),
            StoreChoice::Custom(store) => (store, None),
            #[cfg(feature = "postgres")]
            StoreChoice::Postgres(url) => (
                Arc::new(crate::store::PostgresStore::open(&url)?) as Arc<dyn Store>,
                None,
            ),
            #[cfg(feature = "remote")]
            StoreChoice::Remote {
                endpoint,
                token,
                spool,
            } => {
                let mut remote = crate::remote::RemoteStore::builder(endpoint)
                    .shutdown_timeout(self.shutdown_timeout);
                if let Some(token) = token {
                    remote = remote.token(token);
                }
                if let Some(spool) = spool {
                    remote = remote.spool(spool);
                }
                (Arc::new(remote.open()?) as Arc<dyn Store>, None)
            }
            #[cfg(not(feature = "remote"))]
            StoreChoice::Remote { endpoint, .. } => {
                return Err(Error::Env {
                    var: "XRAY_ENDPOINT",
                    value: endpoint,
                    expected: "no endpoint: this build of xray has no `remote` feature",
                })
            }
        };
        let lanes = Arc::new(Lanes::new(self.queue_capacity));
        let (control_tx, control_rx) = crossbeam_channel::unbounded();
        let counters = Arc::new(Counters::default());
        let wake_pending = Arc::new(AtomicBool::new(false));
        let defaults = Arc::new(Defaults {
            capture: self.capture,
            max_logs_per_step: self.max_logs_per_step,
            service: self.service.or_else(executable_name),
            host: host_name(),
            pid: std::process::id(),
            sample_below: crate::layer::sample_threshold(self.sample),
        });
        let recycler = Arc::new(Recycler::default());
        #[cfg_attr(not(feature = "otlp"), allow(unused_mut))]
        let mut pipeline = self.pipeline;
        #[cfg(feature = "otlp")]
        if let Some(endpoint) = self.otlp_endpoint {
            let mut config = crate::otlp::OtlpConfig::new(&endpoint);
            config.headers = self.otlp_headers;
            pipeline.otlp = Some(Arc::new(crate::otlp::OtlpExporter::start(
                config,
                &defaults,
                Arc::clone(&counters),
                self.shutdown_timeout,
            )?));
        }
        let worker = Worker {
            repairs: Default::default(),
            defaults: Arc::clone(&defaults),
            recycler: Arc::clone(&recycler),
            native,
            lanes: Arc::clone(&lanes),
            control: control_rx,
            store: Arc::clone(&store),
            pipeline,
            counters: Arc::clone(&counters),
            wake_pending: Arc::clone(&wake_pending),
            flush_interval: self.flush_interval,
            batch_size: self.batch_size,
        };
        let writer_nice = self.writer_nice;
        let handle = std::thread::Builder::new()
            .name("xray-writer".into())
            .spawn(move || {
                crate::writer::priority::lower_this_thread(writer_nice);
                worker.run()
            })
            .map_err(Error::Spawn)?;
        let wake_at = (self.queue_capacity / 2).clamp(1, self.batch_size);
        let sink = Arc::new(Sink::new(
            Arc::clone(&lanes),
            self.backpressure,
            wake_at,
            wake_pending,
            handle.thread().clone(),
            Arc::clone(&counters),
            recycler,
        ));
        let guard = XRayGuard::new(control_tx, handle, counters, lanes, self.shutdown_timeout);
        Ok((XRayLayer::new(sink, defaults), guard, store))
    }
}

fn executable_name() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.file_stem()?.to_string_lossy().into_owned())
}

fn host_name() -> Option<String> {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}
