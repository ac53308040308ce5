//! Stateless replicas: two `xray-server` processes over one PostgreSQL database. Two recording
//! processes send their runs to replica A (`xray::layer().remote(A)`); a viewer reads replica
//! B. Every API answer is the same from either replica, and a WebSocket follower on B receives
//! every step that was ingested through A, exactly once.
#![cfg(feature = "postgres")]

#[path = "../../xray-layer/tests/support/pg.rs"]
mod pg;

use futures_util::StreamExt;
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use tracing_subscriber::prelude::*;

const RUNS_PER_RECORDER: usize = 15;
const CANDIDATES: usize = 60;
/// Set in the recording child processes (this test binary, run again).
const CHILD: &str = "XRAY_REPLICAS_TEST_RECORDER";

#[xray::step(kind = "filter", skip(prices))]
fn keep_cheap(prices: &[f64]) -> usize {
    prices
        .iter()
        .enumerate()
        .filter(|(i, &p)| {
            xray::evaluate(format!("P{i:03}"))
                .check_max("price", p, 50.0)
                .passed()
        })
        .count()
}

#[xray::step(kind = "rank")]
fn pick(kept: usize) -> usize {
    xray::select("P000", format!("first of {kept}"));
    kept
}

/// Not a test of its own: the body of a recording process. Run by the test below as a child
/// process with `XRAY_REPLICAS_TEST_RECORDER` and `XRAY_ENDPOINT` set; does nothing otherwise.
#[test]
fn recorder_process() {
    let Ok(who) = std::env::var(CHILD) else {
        return;
    };
    let (layer, guard) = xray::layer()
        .with_default_env()
        .build()
        .expect("a remote layer from XRAY_ENDPOINT");
    let _subscriber = tracing_subscriber::registry().with(layer).set_default();
    for n in 0..RUNS_PER_RECORDER {
        let _run = xray::Execution::start("replicated")
            .tag(format!("{who}-{n}"))
            .enter();
        let prices: Vec<f64> = (0..CANDIDATES)
            .map(|i| ((i * 7 + n) % 100) as f64)
            .collect();
        pick(keep_cheap(&prices));
    }
    assert!(guard.flush(), "every record was handed to the collector");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A child process, killed when dropped (a failing test leaves none behind).
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_until(timeout: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A replica: the real binary over `db`; its base URL.
fn replica(db: &str) -> (Process, String) {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_xray-server"))
        .args(["--db", db, "--addr"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["--rate-limit", "0"])
        .stdout(Stdio::null())
        .spawn()
        .expect("the server starts");
    let process = Process(child);
    let base = format!("http://127.0.0.1:{port}");
    wait_until(Duration::from_secs(30), "the replica answers", || {
        ureq::get(&format!("{base}/api/v1/health")).call().is_ok()
    });
    (process, base)
}

fn get(base: &str, path: &str) -> serde_json::Value {
    ureq::get(&format!("{base}{path}"))
        .call()
        .unwrap_or_else(|e| panic!("GET {base}{path}: {e}"))
        .into_json()
        .expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_over_one_database_answer_alike_and_stream_every_step_once() {
    // The sync PostgreSQL client runs its own runtime: not from inside this one.
    let Some(db) = std::thread::spawn(pg::fresh_database)
        .join()
        .expect("creating the database")
    else {
        return;
    };
    let (_a, base_a) = replica(&db);
    let (_b, base_b) = replica(&db);

    // The viewer follows replica B from the start.
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("{}/api/v1/live", base_b.replace("http", "ws")))
            .await
            .expect("the WebSocket on B opens");
    let hello = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .expect("hello within 10 s");
    assert!(matches!(hello, Some(Ok(Message::Text(_)))), "{hello:?}");

    // Two recording processes send to replica A. They start in the same directory, so they share
    // the default spool file (as workers of one service would).
    let workdir = tempfile::tempdir().expect("a working directory");
    let mut recorders: Vec<Process> = ["r1", "r2"]
        .iter()
        .map(|who| {
            let child = Command::new(std::env::current_exe().expect("the test binary"))
                .args([
                    "--exact",
                    "recorder_process",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD, who)
                .current_dir(workdir.path())
                .env("XRAY_ENDPOINT", &base_a)
                .env("XRAY_FLUSH_INTERVAL_MS", "20")
                .stdout(Stdio::null())
                .spawn()
                .expect("a recorder starts");
            Process(child)
        })
        .collect();
    let steps_expected = 2 * RUNS_PER_RECORDER * 2;

    // Every step reaches B's follower, finished, exactly once.
    let mut finished: HashMap<String, u32> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while finished.len() < steps_expected {
        assert!(
            tokio::time::Instant::now() < deadline,
            "B's follower got {} of {steps_expected} steps in 90 s",
            finished.len()
        );
        let Ok(message) = tokio::time::timeout(Duration::from_secs(1), socket.next()).await else {
            // Nothing for a second: a recorder that failed will never send the rest.
            for recorder in &mut recorders {
                if let Ok(Some(status)) = recorder.0.try_wait() {
                    assert!(status.success(), "a recorder failed: {status}");
                }
            }
            continue;
        };
        let message = message.expect("the socket is open").expect("a frame");
        let Message::Text(text) = message else {
            continue;
        };
        let m: serde_json::Value = serde_json::from_str(text.as_str()).expect("JSON");
        assert_ne!(m["type"], "lagged", "the follower fell behind: {m}");
        if m["type"] == "step_finished" {
            let id = m["step"]["id"].as_str().expect("a step id").to_owned();
            *finished.entry(id).or_default() += 1;
        }
    }
    for mut recorder in recorders {
        let status = recorder.0.wait().expect("the recorder exits");
        assert!(status.success(), "a recorder failed: {status}");
    }
    // Nothing more arrives for a moment: no step is sent twice.
    let quiet = tokio::time::timeout(Duration::from_millis(500), async {
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Text(text) = message {
                let m: serde_json::Value = serde_json::from_str(text.as_str()).expect("JSON");
                if m["type"] == "step_finished" {
                    let id = m["step"]["id"].as_str().unwrap_or_default().to_owned();
                    *finished.entry(id).or_default() += 1;
                }
            }
        }
    })
    .await;
    assert!(quiet.is_err(), "the socket closed");
    let repeated: Vec<_> = finished.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        repeated.is_empty(),
        "steps sent more than once: {repeated:?}"
    );
    assert_eq!(finished.len(), steps_expected);

    // Every answer is the same from either replica.
    let runs = get(&base_b, "/api/v1/executions?limit=100");
    let runs = runs["items"].as_array().expect("items").clone();
    assert_eq!(runs.len(), 2 * RUNS_PER_RECORDER);
    let mut paths = vec![
        "/api/v1/executions?limit=100".to_owned(),
        "/api/v1/executions?limit=7&tag=r2-3".to_owned(),
        "/api/v1/steps?kind=filter&limit=100".to_owned(),
        "/api/v1/stats".to_owned(),
        "/api/v1/steps?kind=filter&min_elimination=0.4&limit=5".to_owned(),
        "/api/v1/candidates/P003?limit=100".to_owned(),
    ];
    for run in &runs {
        let id = run["id"].as_str().expect("id");
        paths.push(format!("/api/v1/executions/{id}"));
        let detail = get(&base_a, &format!("/api/v1/executions/{id}"));
        for step in detail["steps"].as_array().expect("steps") {
            let step_id = step["id"].as_str().expect("step id");
            paths.push(format!("/api/v1/steps/{step_id}"));
            paths.push(format!(
                "/api/v1/steps/{step_id}/evaluations?passed=false&limit=20"
            ));
        }
    }
    for path in &paths {
        assert_eq!(get(&base_a, path), get(&base_b, path), "{path}");
    }
}
