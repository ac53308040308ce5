//! # X-Ray: why did the pipeline decide that?
//!
//! X-Ray records multi-step decision pipelines (an LLM picks keywords, a search returns 5,000
//! candidates, filters cut them to 40, a model scores them, one is selected) so that a person can
//! later ask *which step threw out the product I expected, and for what reason?*
//!
//! It is a [`tracing`] layer. You mark the functions of your pipeline with [`#[xray::step]`](step),
//! record the decisions where they are made ([`evaluate`], [`select`], [`filters`], …), and add
//! the layer to the subscriber you already have. Every run becomes an *execution* of *steps*;
//! each step keeps its input and output, the filters it applied, the verdict on every candidate
//! with a specific reason per check, and what it selected and why.
//!
//! ```
//! use tracing_subscriber::prelude::*;
//!
//! #[derive(serde::Serialize)]
//! struct Product { asin: String, title: String, price: f64, rating: f64 }
//!
//! #[xray::execution(name = "competitor_selection", tags("doc"))]
//! fn find_competitor(reference: &Product, catalog: Vec<Product>) -> Option<String> {
//!     let kept = apply_filters(reference, catalog);
//!     rank_and_select(kept)
//! }
//!
//! #[xray::step(kind = "filter", skip(candidates))]
//! fn apply_filters(reference: &Product, candidates: Vec<Product>) -> Vec<Product> {
//!     let (lo, hi) = (reference.price * 0.5, reference.price * 2.0);
//!     xray::filters(&serde_json::json!({ "price": [lo, hi], "min_rating": 3.8 }));
//!     candidates
//!         .into_iter()
//!         .filter(|c| {
//!             xray::evaluate(&c.asin)
//!                 .label(&c.title)
//!                 .check_range("price", c.price, lo..=hi)   // "8.99 < 14.99 (range 14.99–59.98)"
//!                 .check_min("rating", c.rating, 3.8)       // "3.2 < 3.8 minimum"
//!                 .passed()
//!         })
//!         .collect()
//! }
//!
//! #[xray::step(kind = "select", skip_all)]
//! fn rank_and_select(kept: Vec<Product>) -> Option<String> {
//!     let best = kept.iter().max_by(|a, b| a.rating.total_cmp(&b.rating))?;
//!     xray::select(&best.asin, format!("highest rating ({})", best.rating));
//!     Some(best.asin.clone())
//! }
//!
//! # fn product(asin: &str, price: f64, rating: f64) -> Product {
//! #     Product { asin: asin.into(), title: format!("Laptop stand {asin}"), price, rating }
//! # }
//! // Where the records go: an SQLite file in a real program, memory here.
//! let (xray_layer, guard, store) = xray::layer().memory().build_with_store()?;
//! let subscriber = tracing_subscriber::registry().with(xray_layer);
//! tracing::subscriber::with_default(subscriber, || {
//!     let reference = product("B0REF", 29.99, 4.5);
//!     let catalog = vec![product("B01", 8.99, 4.9), product("B02", 24.0, 3.2), product("B03", 31.0, 4.4)];
//!     assert_eq!(find_competitor(&reference, catalog).as_deref(), Some("B03"));
//! });
//! guard.flush();
//!
//! // Read it back: why was B01 rejected?
//! let lineage = store.candidate_lineage("B01", &Default::default())?;
//! let check = &lineage.items[0].checks[0];
//! assert_eq!((check.name.as_str(), check.passed), ("price", false));
//! assert_eq!(check.reason.as_deref(), Some("8.99 < 14.995 (range 14.995–59.98)"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## The map
//!
//! | module | what it holds |
//! |---|---|
//! | [`step`], [`execution`] | the attributes; [`Step`] and [`Execution`] do the same without one |
//! | [`recorder`](crate#functions) functions | [`evaluate`], [`select`], [`filters`], [`reasoning`], [`metadata`], [`input`], [`output`], [`candidates`], [`fail`], [`current_step`] |
//! | [`layer()`], [`Builder`] | configuration, `XRAY_*` variables, `build()` |
//! | [`XRayLayer`] | the `tracing_subscriber::Layer` |
//! | [`XRayGuard`] | flushes on drop; counts what was written, dropped, failed |
//! | [`capture`] | what is kept of a step with 100,000 evaluations |
//! | [`processor`] | redaction, payload cap, your processors and hooks (on the writer thread) |
//! | [`model`] | the records: executions, steps, evaluations, checks, logs |
//! | [`store`] | the [`Store`](store::Store) trait, SQLite and in-memory stores, read queries; `PostgresStore` with feature `postgres` |
//! | `remote` (feature `remote`) | `RemoteStore`: records sent to an `xray-server` through a bounded local spool |
//! | [`export`] | whole runs as one JSON document: what the server exports and ingests |
//! | `otlp` (feature `otlp`) | runs and steps also sent as OpenTelemetry spans to Jaeger, Tempo, Phoenix… |
//!
//! | feature | adds |
//! |---|---|
//! | `remote` | `.remote(url)`, `XRAY_ENDPOINT`: record to a server over HTTP (ureq, gzip) |
//! | `remote-tls` | the same over https (rustls) |
//! | `postgres` | `.postgres(url)`, `XRAY_DB=postgres://…`: record into PostgreSQL, which `xray-server` replicas serve |
//! | `otlp` | `.otlp(url)`, `XRAY_OTLP_ENDPOINT`: also send runs and steps as OTLP spans (OpenInference kinds) |
//!
//! ## Costs
//!
//! With no X-Ray layer installed (or the span disabled by a filter), a step costs what a
//! disabled `tracing` span costs, and no argument is serialized. With the layer, the calling
//! thread runs each argument's and result's `Serialize` once, into a compact record of its calls
//! (no escaping, no number formatting); the writer thread turns that into the JSON serde_json
//! would have written, and everything else (sampling, redaction, payload caps, hooks, SQL) runs
//! there too. A full queue never blocks the program by
//! default: the record is dropped and counted, and the count is stored where the viewer shows it.

#![warn(missing_docs)]

extern crate self as xray;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
mod builder;
pub mod capture;
pub mod clock;
mod error;
pub mod export;
mod ids;
mod layer;
pub mod model;
#[cfg(feature = "otlp")]
#[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
pub mod otlp;
pub mod processor;
mod recorder;
mod recycle;
#[cfg(feature = "remote")]
#[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
pub mod remote;
pub mod store;
mod tape;
mod unwind;
mod writer;

pub use builder::{
    layer, Builder, DEFAULT_BATCH_SIZE, DEFAULT_DB_PATH, DEFAULT_FLUSH_INTERVAL,
    DEFAULT_MAX_LOGS_PER_STEP, DEFAULT_MAX_PAYLOAD_BYTES, DEFAULT_QUEUE_CAPACITY,
    DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_WRITER_NICE,
};
pub use capture::Capture;
pub use error::Error;
pub use layer::XRayLayer;
pub use processor::Processor;
pub use recorder::scope::{Execution, Scope, Step};
pub use recorder::{
    candidates, current_step, evaluate, fail, filters, input, metadata, output, reasoning, select,
    Evaluation, Reason, StepHandle,
};
pub use writer::{Backpressure, RecorderStats, StatsHandle, XRayGuard};

/// Marks a function as one step of a decision pipeline. See the crate docs and
/// [`xray_macros`'s guide](https://docs.rs/xray-macros).
pub use xray_macros::step;

/// Marks a function as the root of one run (an execution) of a pipeline.
pub use xray_macros::execution;
