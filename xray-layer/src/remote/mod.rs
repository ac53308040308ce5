//! Recording to a remote X-Ray server: [`RemoteStore`] (feature `remote`).
//!
//! When a team's pipelines run on many machines, each process sends its records to one
//! `xray-server` (the collector) instead of keeping a file of its own:
//!
//! ```no_run
//! # fn main() -> Result<(), xray::Error> {
//! use tracing_subscriber::prelude::*;
//! let (layer, _guard) = xray::layer().remote("http://collector:7777").build()?;
//! tracing_subscriber::registry().with(layer).init();
//! # Ok(()) }
//! ```
//!
//! or, without code changes, `XRAY_ENDPOINT=http://collector:7777` (and `XRAY_TOKEN` when the
//! server has one) with [`Builder::with_default_env`](crate::Builder::with_default_env).
//!
//! ## What happens to a record
//!
//! ```text
//! app thread ─▶ queue ─▶ writer thread ─▶ spool (local SQLite file, bounded) ─▶ sender thread
//!                                                                                  │ POST, gzip
//!                                                 xray-server /api/v1/ingest/records ◀┘
//! ```
//!
//! - The writer thread appends each batch to the **spool** and goes on; the application thread
//!   never waits for the network, as with a local database.
//! - The **sender thread** sends the oldest batch (gzip-compressed JSON, the bearer token if set)
//!   and removes it from the spool only when the server answers 2xx. A server that is down, slow
//!   or overloaded (5xx, 429, a timeout) is retried with exponential backoff (100 ms to 30 s);
//!   records are ids-idempotent on the server, so a batch sent twice is stored once.
//! - The spool is bounded ([`DEFAULT_MAX_SPOOL_BYTES`]). When it is full, new batches are dropped
//!   and their records counted; the count (with the queue's own dropped and failed counts, and
//!   the executions the layer's sampling left out, in the `X-XRay-Sampled-Out` header) is sent
//!   with the next batch the server accepts, and the server adds it to its recorder counts
//!   (`/api/v1/metrics`). Nothing is lost without being counted.
//! - A batch the server refuses for good (400, 413, 415, 422: it can never be accepted) is removed
//!   and its records counted as failed; 401 and 403 are retried, so fixing the token loses nothing.
//!   A server that refuses even a batch of counts alone (a wrong URL, an incompatible server) is
//!   asked again after the same backoff as one that is down, not in a loop.
//! - At shutdown the sender tries to empty the spool for [`DEFAULT_SHUTDOWN_TIMEOUT`]; what is
//!   left stays in the spool file and is sent the next time a program starts with it.

mod sender;
mod spool;

use crate::model::Record;
use crate::store::{RecorderCounts, Store, StoreError};
use sender::Shared;
use spool::Spool;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// The spool file, relative to the working directory, unless set.
pub const DEFAULT_SPOOL_PATH: &str = "xray-spool.db";

/// Bytes of JSON the spool holds before it drops new batches (256 MiB).
pub const DEFAULT_MAX_SPOOL_BYTES: u64 = 256 << 20;

/// How long one request may take.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the sender keeps sending once the store is dropped.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`Store`] that spools batches locally and sends them to an `xray-server`.
///
/// It only receives records; its read queries answer [`StoreError::Unsupported`] (read them from
/// the server).
pub struct RemoteStore {
    spool: Arc<Spool>,
    shared: Arc<Shared>,
    done: crossbeam_channel::Receiver<()>,
    shutdown_timeout: Duration,
}

/// Configures a [`RemoteStore`]. Made by [`RemoteStore::builder`].
#[derive(Clone, Debug)]
pub struct RemoteBuilder {
    endpoint: String,
    token: Option<String>,
    spool: PathBuf,
    max_spool_bytes: u64,
    request_timeout: Duration,
    shutdown_timeout: Duration,
}

impl RemoteBuilder {
    /// The server's bearer token (`--token` / `XRAY_TOKEN` on the server).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Where unsent batches wait ([`DEFAULT_SPOOL_PATH`]).
    pub fn spool(mut self, path: impl Into<PathBuf>) -> Self {
        self.spool = path.into();
        self
    }

    /// Bytes of JSON the spool holds before dropping new batches ([`DEFAULT_MAX_SPOOL_BYTES`]).
    pub fn max_spool_bytes(mut self, bytes: u64) -> Self {
        self.max_spool_bytes = bytes;
        self
    }

    /// How long one request may take ([`DEFAULT_REQUEST_TIMEOUT`]).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long the sender keeps sending after the store is dropped ([`DEFAULT_SHUTDOWN_TIMEOUT`]).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Opens the spool and starts the sender thread. Fails when the endpoint is not an
    /// `http://` or `https://` URL or the spool cannot be opened.
    pub fn open(self) -> Result<RemoteStore, StoreError> {
        let endpoint = self.endpoint.trim_end_matches('/').to_owned();
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(StoreError::Io(format!(
                "remote endpoint {endpoint:?}: expected an http:// or https:// URL"
            )));
        }
        let spool = Arc::new(Spool::open(&self.spool, self.max_spool_bytes)?);
        let shared = Arc::new(Shared::new(
            format!("{endpoint}/api/v1/ingest/records"),
            self.token,
            self.request_timeout,
        ));
        let (done_tx, done) = crossbeam_channel::bounded(1);
        let (thread_spool, thread_shared) = (Arc::clone(&spool), Arc::clone(&shared));
        let shutdown_timeout = self.shutdown_timeout;
        std::thread::Builder::new()
            .name("xray-remote-sender".into())
            .spawn(move || {
                sender::run(&thread_spool, &thread_shared, shutdown_timeout);
                let _ = done_tx.send(());
            })
            .map_err(|e| StoreError::Io(format!("could not start the sender thread: {e}")))?;
        Ok(RemoteStore {
            spool,
            shared,
            done,
            shutdown_timeout,
        })
    }
}

/// What a [`RemoteStore`] has done so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoteStats {
    /// Records the server accepted.
    pub sent: u64,
    /// Records in batches the server refused for good (counted as failed).
    pub refused: u64,
    /// Records dropped because the spool was full.
    pub dropped: u64,
    /// Failed attempts that will be (or were) retried.
    pub retries: u64,
    /// Batches waiting in the spool.
    pub spooled_batches: u64,
    /// Bytes of JSON waiting in the spool (the bound is [`RemoteBuilder::max_spool_bytes`]).
    pub spooled_bytes: u64,
    /// The last error, if the last attempt failed.
    pub last_error: Option<String>,
}

impl RemoteStore {
    /// A builder for a store sending to `endpoint` (`http://host:port` of an `xray-server`).
    pub fn builder(endpoint: impl Into<String>) -> RemoteBuilder {
        RemoteBuilder {
            endpoint: endpoint.into(),
            token: None,
            spool: PathBuf::from(DEFAULT_SPOOL_PATH),
            max_spool_bytes: DEFAULT_MAX_SPOOL_BYTES,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }

    /// What has been sent, refused, dropped and retried, and what waits.
    pub fn stats(&self) -> RemoteStats {
        let s = &self.shared.stats;
        RemoteStats {
            sent: s.sent.load(Ordering::Relaxed),
            refused: s.refused.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            retries: s.retries.load(Ordering::Relaxed),
            spooled_batches: self.spool.len().unwrap_or(0),
            spooled_bytes: self.spool.bytes(),
            last_error: self.shared.last_error(),
        }
    }
}

impl Store for RemoteStore {
    fn write(&self, batch: &[Record]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let records = serde_json::to_string(batch)
            .map_err(|e| StoreError::Engine(format!("records could not be encoded: {e}")))?;
        if !self.spool.push(&records, batch.len() as u64)? {
            self.shared
                .stats
                .dropped
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
        self.shared.wake();
        Ok(())
    }

    fn add_recorder_counts(&self, counts: &RecorderCounts) -> Result<(), StoreError> {
        self.spool.add_counts(counts)
    }
}

impl Drop for RemoteStore {
    fn drop(&mut self) {
        self.shared.stop();
        // Bounded: the sender stops sending at its deadline; an answer it is waiting for takes
        // at most the request timeout. Past that the thread is left to finish on its own, and
        // whatever it did not send stays in the spool.
        let _ = self
            .done
            .recv_timeout(self.shutdown_timeout + self.shared.request_timeout);
    }
}
