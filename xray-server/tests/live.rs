//! Live updates over a real WebSocket while the real layer records into the same file.

mod support;

use futures_util::StreamExt;
use std::sync::mpsc;
use std::time::Duration;
use support::*;
use tokio_tungstenite::tungstenite::Message;
use tracing_subscriber::prelude::*;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(server: &Server, query: &str) -> Socket {
    let url = format!(
        "{}/api/v1/live{query}",
        server.base.replace("http://", "ws://")
    );
    let (socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("the WebSocket opens");
    socket
}

/// The next JSON message, waiting at most 10 s.
async fn next(socket: &mut Socket) -> serde_json::Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message within 10 s")
            .expect("the socket is open")
            .expect("a frame");
        if let Message::Text(text) = message {
            return serde_json::from_str(text.as_str()).expect("JSON");
        }
    }
}

/// Messages until one satisfies `done` (included).
async fn until(
    socket: &mut Socket,
    done: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    loop {
        let m = next(socket).await;
        let stop = done(&m);
        out.push(m);
        if stop {
            return out;
        }
    }
}

fn name_of(m: &serde_json::Value) -> Option<&str> {
    m["step"]["name"].as_str()
}

#[xray::step(kind = "filter")]
fn live_step(n: u32) -> u32 {
    n * 2
}

#[xray::execution(name = "live_pipeline", skip(gate, seen))]
fn live_pipeline(gate: &mpsc::Receiver<()>, seen: &mpsc::Sender<()>) {
    for n in 0..3 {
        live_step(n);
        seen.send(()).ok();
        // Wait until the test has watched this step arrive before starting the next one.
        gate.recv_timeout(Duration::from_secs(20)).ok();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_steps_of_a_running_execution_arrive_in_order_while_it_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("xray.db");
    let (layer, guard) = xray::layer()
        .sqlite(&path)
        .flush_interval(Duration::from_millis(10))
        .build()
        .expect("build");
    let server = serve(&path, |_| {});
    let mut socket = connect(&server, "").await;
    let hello = next(&mut socket).await;
    assert_eq!(hello["type"], "hello");
    let start_seq = hello["seq"].as_u64().expect("seq");

    let (gate_tx, gate_rx) = mpsc::channel();
    let (seen_tx, _seen_rx) = mpsc::channel();
    let recorder = std::thread::spawn(move || {
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || live_pipeline(&gate_rx, &seen_tx));
        guard.flush();
    });

    let mut messages = Vec::new();
    for n in 0..3u32 {
        // Step n arrives while the run is still recording (the recorder waits on the gate).
        let got = until(&mut socket, |m| {
            m["type"] == "step_finished" && name_of(m) == Some("live_step")
        })
        .await;
        let finished = got.last().expect("a message");
        assert_eq!(finished["step"]["status"], "ok", "step {n}");
        messages.extend(got);
        gate_tx.send(()).expect("the recorder waits");
    }
    messages.extend(until(&mut socket, |m| m["type"] == "execution_finished").await);
    recorder.join().expect("the recorder ends");

    let seqs: Vec<u64> = messages
        .iter()
        .map(|m| m["seq"].as_u64().expect("seq"))
        .collect();
    assert!(seqs[0] > start_seq);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    let kinds: Vec<&str> = messages
        .iter()
        .map(|m| m["type"].as_str().expect("type"))
        .collect();
    // The run's row is rewritten with each step, so it comes after the first step's.
    assert_eq!(
        kinds.iter().filter(|k| **k == "execution_started").count(),
        1,
        "announced once: {kinds:?}"
    );
    assert!(kinds[..2].contains(&"execution_started"), "{kinds:?}");
    assert!(kinds.contains(&"execution_updated"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"execution_finished"), "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|k| **k == "step_finished").count(),
        3,
        "each step finished once: {kinds:?}"
    );
    let run_id = messages[0]["step"]["execution_id"]
        .as_str()
        .or(messages[0]["execution"]["id"].as_str())
        .expect("id");
    assert!(messages
        .iter()
        .all(|m| m["execution"]["id"].as_str() == Some(run_id)
            || m["step"]["execution_id"].as_str() == Some(run_id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_follows_one_execution_and_resumes_from_a_seq() {
    let recorded = record(&[3.5, 3.8]);
    let server = serve(&recorded.path, |_| {});
    let ids = execution_ids(&server); // newest first
    let older = &ids[1];
    // Replay everything after seq 0, for the older run only.
    let mut socket = connect(&server, &format!("?since=0&execution={older}")).await;
    assert_eq!(next(&mut socket).await["type"], "hello");
    let replay = until(&mut socket, |m| m["type"] == "execution_finished").await;
    let steps: Vec<&str> = replay
        .iter()
        .filter(|m| m["type"] == "step_finished")
        .filter_map(name_of)
        .collect();
    assert_eq!(
        steps,
        [
            "keyword_generation",
            "candidate_search",
            "apply_filters",
            "rank_and_select"
        ]
    );
    for m in &replay {
        let run = m["execution"]["id"]
            .as_str()
            .or(m["step"]["execution_id"].as_str());
        assert_eq!(run, Some(older.as_str()), "only the followed run: {m}");
    }
    let last_seq = replay.last().expect("replayed")["seq"]
        .as_u64()
        .expect("seq");

    // A client that reconnects with the last seq it saw gets only what came after.
    let mut resumed = connect(&server, &format!("?since={last_seq}")).await;
    assert_eq!(next(&mut resumed).await["type"], "hello");
    let rest = until(&mut resumed, |m| {
        m["type"] == "execution_finished" && m["execution"]["id"] == ids[0].as_str()
    })
    .await;
    assert!(rest.iter().all(|m| m["seq"].as_u64() > Some(last_seq)));
    assert!(rest
        .iter()
        .all(|m| m["execution"]["id"].as_str() != Some(older.as_str())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_websocket_needs_the_token_when_one_is_set() {
    let recorded = record(&[3.8]);
    let server = serve(&recorded.path, |c| c.token = Some("tok".into()));
    let url = format!("{}/api/v1/live", server.base.replace("http://", "ws://"));
    let refused = tokio_tungstenite::connect_async(url.as_str()).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401)
        }
        other => panic!("expected a 401, got {other:?}"),
    }
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request().expect("request");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "xray, bearer.tok".parse().expect("header"),
    );
    let (mut socket, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("opens with the token as a subprotocol");
    assert_eq!(
        response
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("xray")
    );
    assert_eq!(next(&mut socket).await["type"], "hello");
}

/// Steps with a large summary, so that a few thousand messages fill a socket's buffers.
fn flood(path: &std::path::Path, steps: usize) -> String {
    use xray::model::{CheckSummary, EvaluationSummary, Json, Record, Status, StepRecord};
    use xray::store::Store;
    let store = xray::store::SqliteStore::open(path).expect("open");
    let execution = uuid::Uuid::now_v7();
    let reasons: Vec<(String, u64)> = (0..20)
        .map(|i| (format!("reason {i} {}", "x".repeat(60)), i))
        .collect();
    let mut last = String::new();
    for chunk in 0..steps / 500 {
        let batch: Vec<Record> = (0..500)
            .map(|i| {
                let id = uuid::Uuid::now_v7();
                last = id.to_string();
                Record::StepFinished(Box::new(StepRecord {
                    id,
                    execution_id: execution,
                    parent_id: None,
                    name: format!("flood_{chunk}_{i}"),
                    kind: Some("filter".into()),
                    started_at: 1,
                    ended_at: Some(2),
                    status: Status::Ok,
                    error: None,
                    input: None,
                    output: None,
                    filters: None,
                    selection: vec![],
                    reasoning: None,
                    metadata: Json::from(serde_json::json!({})),
                    candidates_in: Some(100),
                    candidates_out: Some(1),
                    summary: Some(EvaluationSummary {
                        total: 100,
                        passed: 1,
                        failed: 99,
                        kept: 100,
                        sampled: false,
                        capture: "all".into(),
                        checks: vec![CheckSummary {
                            name: "rating".into(),
                            passed: 1,
                            failed: 99,
                            first_failed: 99,
                            top_reasons: reasons.clone(),
                        }],
                    }),
                    evaluations: vec![],
                    logs: vec![],
                    logs_dropped: 0,
                }))
            })
            .collect();
        store.write(&batch).expect("write");
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_dropped_without_slowing_the_others() {
    let recorded = record(&[3.8]);
    let server = serve(&recorded.path, |c| {
        c.live_send_timeout = Duration::from_secs(2);
        c.live_buffer = 64;
    });
    // The stalled client: completes the handshake, then never reads.
    let stalled = connect(&server, "").await;
    let mut reader = connect(&server, "").await;
    assert_eq!(next(&mut reader).await["type"], "hello");
    let health = || server.json("/api/v1/health")["websocket_clients"].as_i64();
    assert_eq!(tokio::task::block_in_place(health), Some(2));

    // Steps keep coming until the server gives up on the stalled client. (How many it takes to
    // fill the socket's buffers depends on the kernel and on the load: under load the stalled
    // client's task may skip ahead, lagged, instead of writing every step.)
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flooder = {
        let (path, stop) = (recorded.path.clone(), std::sync::Arc::clone(&stop));
        tokio::task::spawn_blocking(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                flood(&path, 2_000);
            }
        })
    };
    // The reader keeps reading meanwhile.
    let start = std::time::Instant::now();
    while tokio::task::block_in_place(health) != Some(1) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the stalled client is still connected"
        );
        let _ = tokio::time::timeout(Duration::from_millis(100), async {
            while let Some(Ok(_)) = reader.next().await {}
        })
        .await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flooder.await.expect("flooded");
    // The reader kept up: it sees a step written after the flood, or is told it lagged past it
    // (and reloads).
    let path = recorded.path.clone();
    let last = tokio::task::spawn_blocking(move || flood(&path, 1))
        .await
        .expect("one more step");
    let seen = until(&mut reader, |m| {
        m["step"]["id"].as_str() == Some(last.as_str()) || m["type"] == "lagged"
    })
    .await;
    let end = seen.last().expect("a message");
    if end["type"] == "lagged" {
        assert!(end["skipped"].as_u64() > Some(0), "{end}");
        assert!(end["seq"].as_u64() > Some(0), "{end}");
    }
    drop(stalled);
}
