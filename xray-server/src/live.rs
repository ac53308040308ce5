//! Live updates: `GET /api/v1/live` upgrades to a WebSocket that pushes what the recorder writes.
//!
//! One tail task per server asks the store for changes after the last `seq` it saw
//! ([`Store::changes_since`](xray::store::Store::changes_since): an index range, no table scan)
//! every [`Config::live_poll`](crate::Config::live_poll), and at once when the store's
//! [`ChangeSignal`](xray::store::ChangeSignal) fires (PostgreSQL: a `NOTIFY` from whichever
//! replica or program committed; a replica's viewers see steps ingested through another), renders
//! each change to JSON once, and
//! broadcasts it. Each WebSocket client has its own task and its own place in a bounded
//! broadcast buffer, so a slow client never slows the tail or the other clients: if it falls
//! more than [`Config::live_buffer`](crate::Config::live_buffer) messages behind it gets a `lagged`
//! message and continues from the newest, and if a single send takes longer than
//! [`Config::live_send_timeout`](crate::Config::live_send_timeout) it is disconnected.
//!
//! ## Messages (server → client, JSON text frames)
//!
//! | `type` | with | when |
//! |---|---|---|
//! | `hello` | `seq` | on connect: the position the stream starts after |
//! | `execution_started` | `seq`, `execution` (as in the runs list) | a running execution was first seen |
//! | `execution_updated` | `seq`, `execution` | a running execution changed (a step was added: its counts moved) |
//! | `execution_finished` | `seq`, `execution` | an execution ended, or a finished one was edited (tags, notes) |
//! | `step_started` / `step_finished` | `seq`, `step` (as in a run's step list) | a step was written |
//! | `lagged` | `skipped`, `seq` | the client fell behind; reload what it shows, then carry on |
//!
//! The tail follows rows, not events: each poll sees a row once, at its latest write. A step
//! that starts and ends between two polls arrives once, as `step_finished`; and because an
//! execution's row is rewritten (its counts) with every step, its message comes after the
//! steps written in the same batch. Every message has a larger `seq` than the one before.
//!
//! ## Parameters and client messages
//!
//! `?execution=<id>` follows one run only; `?since=<seq>` first replays every change after `seq`
//! (a client that reconnects passes the last `seq` it saw and misses nothing). A client may send
//! `{"subscribe": "<execution id>"}` or `{"subscribe": null}` to change what it follows.

use crate::app::{App, Call};
use crate::error::ApiError;
use crate::http::{empty_response, Response};
use futures_util::{SinkExt, StreamExt};
use hyper::header::{
    HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use uuid::Uuid;
use xray::model::{now_us, Status};
use xray::store::Change;

/// How many changes one poll of the tail reads at most (it polls again at once if it got them all).
const TAIL_BATCH: usize = 1_000;
/// How often an idle WebSocket is pinged.
const PING_EVERY: Duration = Duration::from_secs(30);

/// One change, rendered once for every client.
#[derive(Debug)]
pub struct LiveMessage {
    /// The change's sequence number.
    pub seq: u64,
    /// The run it belongs to.
    pub execution_id: Uuid,
    /// The JSON text sent to clients.
    pub text: String,
}

/// The broadcast between the tail and the clients.
pub struct LiveHub {
    tx: broadcast::Sender<Arc<LiveMessage>>,
    latest: AtomicU64,
    closing: watch::Sender<bool>,
}

impl LiveHub {
    /// A hub whose clients may fall `buffer` messages behind.
    pub fn new(buffer: usize) -> LiveHub {
        let (tx, _) = broadcast::channel(buffer.max(16));
        LiveHub {
            tx,
            latest: AtomicU64::new(0),
            closing: watch::channel(false).0,
        }
    }

    /// The `seq` of the newest change broadcast.
    pub fn latest(&self) -> u64 {
        self.latest.load(Ordering::Acquire)
    }

    /// Tells every client session to close (server shutdown).
    pub fn close_all(&self) {
        self.closing.send_replace(true);
    }
}

#[derive(Serialize)]
struct Hello {
    r#type: &'static str,
    seq: u64,
}

#[derive(Serialize)]
struct Lagged {
    r#type: &'static str,
    skipped: u64,
    seq: u64,
}

/// The running executions already announced with `execution_started`, so later writes to them
/// (a step added, counts updated) go out as `execution_updated`. Bounded: when full it forgets
/// everything, which at worst announces a long-running execution twice.
#[derive(Default)]
pub struct Announced(std::collections::HashSet<Uuid>);

const MAX_ANNOUNCED: usize = 100_000;

impl Announced {
    fn first_time(&mut self, id: Uuid) -> bool {
        if self.0.len() >= MAX_ANNOUNCED {
            self.0.clear();
        }
        self.0.insert(id)
    }
}

/// Renders a change as its message.
pub fn render(change: &Change, announced: &mut Announced) -> LiveMessage {
    let (kind, execution_id) = match change {
        Change::Execution { execution, .. } if execution.status == Status::Running => {
            if announced.first_time(execution.id) {
                ("execution_started", execution.id)
            } else {
                ("execution_updated", execution.id)
            }
        }
        Change::Execution { execution, .. } => {
            announced.0.remove(&execution.id);
            ("execution_finished", execution.id)
        }
        Change::Step { step, .. } if step.status == Status::Running => {
            ("step_started", step.execution_id)
        }
        Change::Step { step, .. } => ("step_finished", step.execution_id),
    };
    let mut value = serde_json::to_value(change).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.insert("type".into(), kind.into());
    }
    LiveMessage {
        seq: change.seq(),
        execution_id,
        text: value.to_string(),
    }
}

fn change_time(change: &Change) -> i64 {
    match change {
        Change::Execution { execution, .. } => {
            execution.completed_at.unwrap_or(execution.started_at)
        }
        Change::Step { step, .. } => step.ended_at.unwrap_or(step.started_at),
    }
}

/// The tail: polls the store and broadcasts every change, until `stop` turns true.
pub async fn tail(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let mut last = loop {
        match app.blocking_now(|s| s.latest_seq()).await {
            Ok(seq) => break seq,
            Err(e) => {
                tracing::warn!(error = %e.message, "live tail: the database does not answer yet");
                if wait_or_stop(&mut stop, Duration::from_secs(1)).await {
                    return;
                }
            }
        }
    };
    app.live.latest.store(last, Ordering::Release);
    let mut announced = Announced::default();
    // A store that learns of commits by other processes (PostgreSQL: LISTEN/NOTIFY) wakes the
    // tail at once; the poll stays as the fallback. Taken before each read, so a change
    // committed during the read still wakes the next wait.
    let signal = app.store.change_signal();
    loop {
        let generation = signal.as_ref().map(|s| s.generation());
        let after = last;
        let changes = match app
            .blocking_now(move |s| s.changes_since(after, TAIL_BATCH))
            .await
        {
            Ok(changes) => changes,
            Err(e) => {
                tracing::warn!(error = %e.message, "live tail: reading changes failed");
                Vec::new()
            }
        };
        let full = changes.len() == TAIL_BATCH;
        if let Some(newest) = changes.last() {
            let lag_us = now_us().saturating_sub(change_time(newest)).max(0);
            app.metrics.ingest_lag.set(lag_us as f64 / 1e6);
        }
        for change in &changes {
            last = change.seq();
            app.live.latest.store(last, Ordering::Release);
            // No receivers is not an error: nobody is watching.
            let _ = app.live.tx.send(Arc::new(render(change, &mut announced)));
        }
        if !full {
            let woken = async {
                match (&signal, generation) {
                    (Some(signal), Some(g)) => {
                        signal.changed(g).await;
                    }
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = woken => {}
                stopped = wait_or_stop(&mut stop, app.config.live_poll) => if stopped {
                    return;
                },
            }
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// Waits `d`; true if `stop` turned true meanwhile.
async fn wait_or_stop(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        changed = stop.changed() => changed.is_err() || *stop.borrow(),
    }
}

/// Answers the upgrade request with 101 and starts the client's session.
pub fn upgrade(app: &Arc<App>, call: Call) -> Result<Response, ApiError> {
    let filter = call.params.uuid("execution")?;
    let since = call.params.count("since")?;
    let h = &call.headers;
    let is_upgrade = h
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let connection_upgrade = h
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if !is_upgrade || !connection_upgrade {
        return Err(ApiError::invalid(
            "Upgrade",
            "this route is a WebSocket: send `Upgrade: websocket` and `Connection: Upgrade`",
        ));
    }
    if h.get(SEC_WEBSOCKET_VERSION).map(HeaderValue::as_bytes) != Some(b"13") {
        return Err(ApiError::invalid(
            "Sec-WebSocket-Version",
            "only WebSocket version 13 is supported",
        ));
    }
    let Some(key) = h.get(SEC_WEBSOCKET_KEY) else {
        return Err(ApiError::invalid(
            "Sec-WebSocket-Key",
            "the WebSocket key is missing",
        ));
    };
    let accept = derive_accept_key(key.as_bytes());
    let offers_xray = h
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == "xray");
    let Some(request) = call.request else {
        return Err(ApiError::internal("the upgrade request was consumed"));
    };
    let session_app = Arc::clone(app);
    // The session starts here, before the 101 goes out: a change written once the client has
    // its answer (it may write one itself at once) is in the client's queue, not lost to a
    // session task that had not subscribed yet.
    let start = Start {
        rx: app.live.tx.subscribe(),
        closing: app.live.closing.subscribe(),
        latest: app.live.latest(),
    };
    tokio::spawn(async move {
        match hyper::upgrade::on(request).await {
            Ok(upgraded) => {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                session(session_app, ws, filter, since, start).await;
            }
            Err(e) => tracing::debug!(error = %e, "live: the upgrade did not complete"),
        }
    });
    let mut response = empty_response(StatusCode::SWITCHING_PROTOCOLS);
    let out = response.headers_mut();
    out.insert(UPGRADE, HeaderValue::from_static("websocket"));
    out.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        out.insert(SEC_WEBSOCKET_ACCEPT, v);
    }
    if offers_xray {
        out.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("xray"));
    }
    Ok(response)
}

#[derive(Deserialize)]
struct ClientMessage {
    subscribe: Option<Uuid>,
}

struct ClientGauge<'a>(&'a App);

impl Drop for ClientGauge<'_> {
    fn drop(&mut self) {
        self.0.metrics.websocket_clients.dec();
    }
}

/// A session's place in the stream, taken when the upgrade is answered.
struct Start {
    rx: broadcast::Receiver<Arc<LiveMessage>>,
    closing: watch::Receiver<bool>,
    /// The newest change broadcast before `rx` subscribed.
    latest: u64,
}

async fn session<S>(
    app: Arc<App>,
    ws: WebSocketStream<S>,
    mut filter: Option<Uuid>,
    since: Option<u64>,
    start: Start,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    app.metrics.websocket_clients.inc();
    let _gauge = ClientGauge(&app);
    // Subscribed before replaying, so nothing falls between the replay and the stream.
    let Start {
        mut rx,
        mut closing,
        latest,
    } = start;
    let (mut sink, mut incoming) = ws.split();
    let timeout = app.config.live_send_timeout;
    macro_rules! send {
        ($text:expr) => {
            match tokio::time::timeout(timeout, sink.send(Message::text($text))).await {
                Ok(Ok(())) => {}
                _ => return, // too slow, or gone
            }
        };
    }
    let mut last_sent = since.unwrap_or(latest);
    send!(json(&Hello {
        r#type: "hello",
        seq: last_sent
    }));
    if since.is_some() {
        let mut announced = Announced::default();
        loop {
            let after = last_sent;
            let Ok(changes) = app
                .blocking(move |s| s.changes_since(after, TAIL_BATCH))
                .await
            else {
                return;
            };
            let n = changes.len();
            for change in &changes {
                last_sent = change.seq();
                let message = render(change, &mut announced);
                if filter.is_none_or(|f| f == message.execution_id) {
                    send!(message.text);
                }
            }
            if n < TAIL_BATCH {
                break;
            }
        }
    }
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.reset();
    loop {
        tokio::select! {
            received = rx.recv() => match received {
                Ok(message) => {
                    if message.seq <= last_sent {
                        continue;
                    }
                    last_sent = message.seq;
                    if filter.is_none_or(|f| f == message.execution_id) {
                        send!(message.text.clone());
                    }
                }
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    app.metrics.live_lagged.inc();
                    last_sent = app.live.latest();
                    send!(json(&Lagged { r#type: "lagged", skipped, seq: last_sent }));
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            message = incoming.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    if let Ok(m) = serde_json::from_str::<ClientMessage>(text.as_str()) {
                        filter = m.subscribe;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                if !matches!(
                    tokio::time::timeout(timeout, sink.send(Message::Ping(Default::default()))).await,
                    Ok(Ok(()))
                ) {
                    return;
                }
            }
            _ = closing.changed() => break,
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
}

fn json(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}
