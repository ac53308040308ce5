//! The sender thread: oldest batch first, gzip, POST, remove on 2xx, back off on failure.

use super::spool::{Pending, Spool};
use crate::store::{RecorderCounts, SAMPLED_OUT_HEADER};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// The first retry waits this long; each failure doubles it, up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// With nothing to send, the sender looks at the spool again after this long.
const IDLE_POLL: Duration = Duration::from_millis(250);

#[derive(Default)]
pub(super) struct Stats {
    pub sent: AtomicU64,
    pub refused: AtomicU64,
    pub dropped: AtomicU64,
    pub retries: AtomicU64,
}

/// State shared by the store (writer thread) and the sender thread.
pub(super) struct Shared {
    url: String,
    token: Option<String>,
    agent: ureq::Agent,
    pub request_timeout: Duration,
    pub stats: Stats,
    last_error: Mutex<Option<String>>,
    stopping: AtomicBool,
    /// Set when there may be something new to send; the condvar wakes the sender.
    pending: Mutex<bool>,
    wake: Condvar,
}

impl Shared {
    pub fn new(url: String, token: Option<String>, request_timeout: Duration) -> Shared {
        Shared {
            url,
            token,
            agent: ureq::AgentBuilder::new()
                .timeout_connect(request_timeout.min(Duration::from_secs(5)))
                .timeout(request_timeout)
                .build(),
            request_timeout,
            stats: Stats::default(),
            last_error: Mutex::new(None),
            stopping: AtomicBool::new(false),
            pending: Mutex::new(false),
            wake: Condvar::new(),
        }
    }

    /// Tells the sender there is something to send.
    pub fn wake(&self) {
        if let Ok(mut pending) = self.pending.lock() {
            *pending = true;
            self.wake.notify_one();
        }
    }

    /// Asks the sender to send what it can before its deadline, then stop.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.wake();
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    fn set_error(&self, error: Option<String>) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = error;
        }
    }

    /// Waits until woken or `timeout` passes.
    fn wait(&self, timeout: Duration) {
        if let Ok(pending) = self.pending.lock() {
            if let Ok((mut pending, _)) = self
                .wake
                .wait_timeout_while(pending, timeout, |p| !*p && !self.stopping())
            {
                *pending = false;
            }
        }
    }
}

/// What the server made of a batch.
enum Outcome {
    Accepted,
    /// It can never be accepted (bad request, too large, unsupported): counted as failed.
    Refused(String),
    /// Try again later.
    Retry(String),
}

/// Sends until asked to stop, then until the spool is empty or `shutdown_timeout` passes.
pub(super) fn run(spool: &Spool, shared: &Shared, shutdown_timeout: Duration) {
    let mut backoff = MIN_BACKOFF;
    let mut deadline: Option<Instant> = None;
    loop {
        if shared.stopping() {
            let deadline = *deadline.get_or_insert_with(|| Instant::now() + shutdown_timeout);
            if Instant::now() >= deadline {
                return;
            }
        }
        let (batch, counts) = match spool.oldest() {
            Ok(Some(next)) => next,
            Ok(None) if shared.stopping() => return,
            Ok(None) => {
                shared.wait(IDLE_POLL);
                continue;
            }
            Err(e) => {
                shared.set_error(Some(e.to_string()));
                if shared.stopping() {
                    return;
                }
                shared.wait(backoff);
                continue;
            }
        };
        match send(shared, &batch, &counts) {
            Outcome::Accepted => {
                backoff = MIN_BACKOFF;
                shared.set_error(None);
                shared.stats.sent.fetch_add(batch.count, Ordering::Relaxed);
                if let Err(e) = spool.remove(batch.seq) {
                    shared.set_error(Some(e.to_string()));
                }
            }
            Outcome::Refused(why) => {
                shared.set_error(Some(why));
                shared
                    .stats
                    .refused
                    .fetch_add(batch.count, Ordering::Relaxed);
                // The counts were not delivered: they wait for the next batch, with this
                // batch's records added.
                if let Err(e) = spool.refuse(batch.seq, &counts, batch.count) {
                    shared.set_error(Some(e.to_string()));
                }
                if batch.count == 0 {
                    // Even a batch of counts alone was refused: this server refuses everything
                    // (a wrong URL, an incompatible server). The counts come back in a new
                    // batch each time, so wait as for a server that is down, rather than ask
                    // again at once, forever.
                    shared.stats.retries.fetch_add(1, Ordering::Relaxed);
                    if shared.stopping() {
                        return; // the counts stay in the spool for next time
                    }
                    shared.wait_backoff(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
            Outcome::Retry(why) => {
                shared.set_error(Some(why));
                shared.stats.retries.fetch_add(1, Ordering::Relaxed);
                if shared.stopping() {
                    // The server is not answering: leave the rest in the spool for next time.
                    return;
                }
                shared.wait_backoff(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

impl Shared {
    /// Sleeps `backoff`, cut short only by a stop request (new batches do not make a server
    /// that is down come back sooner).
    fn wait_backoff(&self, backoff: Duration) {
        let until = Instant::now() + backoff;
        while !self.stopping() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            self.wait(left);
        }
    }
}

fn send(shared: &Shared, batch: &Pending, counts: &RecorderCounts) -> Outcome {
    let body = match gzip_body(batch, counts) {
        Ok(body) => body,
        Err(e) => return Outcome::Retry(format!("could not compress a batch: {e}")),
    };
    let mut request = shared
        .agent
        .post(&shared.url)
        .set("Content-Type", "application/json")
        .set("Content-Encoding", "gzip");
    if let Some(token) = &shared.token {
        request = request.set("Authorization", &format!("Bearer {token}"));
    }
    if counts.sampled_out > 0 {
        // A header, not a field of the body: a server that predates this count ignores it,
        // where its body parser would refuse the whole batch for an unknown field.
        request = request.set(SAMPLED_OUT_HEADER, &counts.sampled_out.to_string());
    }
    match request.send_bytes(&body) {
        Ok(_) => Outcome::Accepted,
        Err(ureq::Error::Status(code, reply)) => {
            let detail = reply.into_string().unwrap_or_default();
            let why = format!("{} answered {code}: {detail}", shared.url);
            match code {
                400 | 413 | 415 | 422 => Outcome::Refused(why),
                _ => Outcome::Retry(why),
            }
        }
        Err(e) => Outcome::Retry(format!("{}: {e}", shared.url)),
    }
}

/// `{"xray_records":1,"batch":…,"dropped":…,"failed":…,"records":[…]}`, gzip-compressed. The
/// records are spliced in as they were spooled (already JSON).
fn gzip_body(batch: &Pending, counts: &RecorderCounts) -> std::io::Result<Vec<u8>> {
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(batch.records.len() / 4),
        flate2::Compression::fast(),
    );
    write!(
        gz,
        "{{\"xray_records\":1,\"batch\":{},\"dropped\":{},\"failed\":{},\"records\":",
        serde_json::Value::from(batch.id.as_str()),
        counts.dropped,
        counts.failed,
    )?;
    gz.write_all(batch.records.as_bytes())?;
    gz.write_all(b"}")?;
    gz.finish()
}
