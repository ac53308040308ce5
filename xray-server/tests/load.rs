//! The load the server holds, on loopback, bounded in count and time, against the real binary
//! (`xray-server` as a child process, so its memory and file descriptors are its own) over a
//! SQLite file that the real layer writes in this process at the same time.
//!
//! - API clients (one thread and one keep-alive connection each) read lists, runs, steps,
//!   evaluations, stats and health in a loop; WebSocket followers follow everything; a writer
//!   records steps at a fixed rate; one more WebSocket client never reads. Every answer must be a
//!   200 (or 304), every follower must receive every `step_finished` in `seq` order (or a
//!   `lagged` notice for what it skipped), the writer must lose no record. Latencies, delivery
//!   lag, memory and the stalled client's fate are printed, not asserted (a shared machine).
//! - Thousands of connections opened and dropped abruptly (before, during and after sending a
//!   request): the server answers throughout, and its file descriptors come back down.
//!
//! `cargo test -p xray-server --test load` runs a short version (20 clients, 10 followers, 5 s,
//! 100 steps/s; 2,000 connections). The full one (200 clients, 50 followers, 60 s,
//! 500 steps/s; 10,000 connections) is
//! `cargo test --release -p xray-server --test load -- --ignored --nocapture`;
//! `XRAY_LOAD_CLIENTS`, `XRAY_LOAD_FOLLOWERS`, `XRAY_LOAD_SECONDS`, `XRAY_LOAD_STEPS` and
//! `XRAY_FLOOD_CONNECTIONS` override either.

use futures_util::StreamExt;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use tracing_subscriber::prelude::*;
use xray::store::{Change, SqliteStore, Store};

/// The tests of this file measure: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[derive(Clone, Copy, Debug)]
struct Load {
    clients: usize,
    followers: usize,
    seconds: u64,
    steps_per_second: u64,
}

const SHORT: Load = Load {
    clients: 20,
    followers: 10,
    seconds: 5,
    steps_per_second: 100,
};

const FULL: Load = Load {
    clients: 200,
    followers: 50,
    seconds: 60,
    steps_per_second: 500,
};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Load {
    fn from_env(default: Load) -> Load {
        Load {
            clients: env_or("XRAY_LOAD_CLIENTS", default.clients),
            followers: env_or("XRAY_LOAD_FOLLOWERS", default.followers),
            seconds: env_or("XRAY_LOAD_SECONDS", default.seconds),
            steps_per_second: env_or("XRAY_LOAD_STEPS", default.steps_per_second),
        }
    }
}

/// The `xray-server` binary serving `db` on an ephemeral loopback port, with no rate limit (every
/// client here shares one address). Killed on drop.
struct ServerProcess {
    child: Child,
    addr: SocketAddr,
}

impl ServerProcess {
    fn start(db: &Path) -> ServerProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_xray-server"))
            .args(["--addr", "127.0.0.1:0", "--rate-limit", "0", "--db"])
            .arg(db)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the server starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = lines
            .next()
            .expect("the server prints its address")
            .expect("a line");
        // "X-Ray viewer at http://127.0.0.1:PORT/ (database …)"
        let addr = first
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {first:?}"));
        // Keep reading what it prints, so a full pipe never blocks it.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        ServerProcess { child, addr }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// (VmRSS, VmHWM) in KiB.
    fn memory_kib(&self) -> (u64, u64) {
        let (rss, hwm, _) = self.status();
        (rss, hwm)
    }

    /// Its threads now.
    fn threads(&self) -> u64 {
        self.status().2
    }

    /// (VmRSS KiB, VmHWM KiB, Threads) from `/proc/<pid>/status`.
    fn status(&self) -> (u64, u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the server's /proc status");
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"), field("Threads:"))
    }

    /// Its open descriptors on the database's files (`xray.db`, `-wal`, `-shm`): two per SQLite
    /// connection, give or take the shared memory file.
    fn database_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter_map(|e| std::fs::read_link(e.path()).ok())
                    .filter(|target| target.to_string_lossy().contains("xray.db"))
                    .count()
            })
            .unwrap_or(0)
    }

    /// The sockets it holds open (the listener and connections; not its database files, whose
    /// reader pool grows with concurrent queries).
    fn open_sockets(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter_map(|e| std::fs::read_link(e.path()).ok())
                    .filter(|target| target.to_string_lossy().starts_with("socket:"))
                    .count()
            })
            .unwrap_or(0)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Steps at a fixed rate until a deadline.
struct Pacer {
    start: Instant,
    deadline: Instant,
    per_second: u64,
    count: AtomicU64,
}

impl Pacer {
    /// Waits for the next step's turn; false once the time is up.
    fn next(&self) -> bool {
        let n = self.count.load(Ordering::Relaxed);
        let turn = self.start + Duration::from_secs_f64(n as f64 / self.per_second as f64);
        let now = Instant::now();
        if turn >= self.deadline || now >= self.deadline {
            return false;
        }
        if turn > now {
            std::thread::sleep(turn - now);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        true
    }
}

#[xray::step(kind = "filter")]
fn load_step(n: u64) -> u64 {
    let mut kept = 0;
    for i in 0..5u64 {
        if xray::evaluate(format!("C{}", (n + i) % 1000))
            .check_min("score", ((n * 7 + i) % 10) as f64, 3.0)
            .passed()
        {
            kept += 1;
        }
    }
    kept
}

#[xray::execution(name = "load_run", skip(pacer))]
fn load_run(pacer: &Pacer, steps: u64) -> u64 {
    let mut done = 0;
    while done < steps && pacer.next() {
        load_step(pacer.count.load(Ordering::Relaxed));
        done += 1;
    }
    done
}

/// What the API clients saw.
#[derive(Default)]
struct ApiLog {
    latencies_us: Vec<u32>,
    errors: Vec<String>,
}

fn api_client(base: String, deadline: Instant, seed: usize) -> ApiLog {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let mut log = ApiLog::default();
    let (mut run, mut step): (Option<String>, Option<String>) = (None, None);
    let mut i = seed;
    while Instant::now() < deadline {
        i += 1;
        let path = match (i % 6, &run, &step) {
            (1, Some(run), _) => format!("/api/v1/executions/{run}"),
            (2, _, Some(step)) => format!("/api/v1/steps/{step}/evaluations?limit=50"),
            (3, _, _) => "/api/v1/steps?kind=filter&limit=20".to_owned(),
            (4, _, _) => "/api/v1/stats".to_owned(),
            (5, _, _) => "/api/v1/health".to_owned(),
            _ => "/api/v1/executions?limit=20".to_owned(),
        };
        let started = Instant::now();
        match agent.get(&format!("{base}{path}")).call() {
            Ok(response) => {
                let text = response.into_string().unwrap_or_default();
                log.latencies_us
                    .push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
                let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                if let Some(id) = value["items"][0]["id"].as_str() {
                    if path.starts_with("/api/v1/executions?") {
                        run = Some(id.to_owned());
                    }
                }
                if let Some(id) = value["steps"].as_array().and_then(|s| s.last()) {
                    step = id["id"].as_str().map(String::from);
                }
            }
            Err(e) => {
                if log.errors.len() < 5 {
                    log.errors.push(format!("GET {path}: {e}"));
                } else {
                    log.errors.push(String::new());
                }
            }
        }
    }
    log
}

/// What one WebSocket follower received.
#[derive(Default)]
struct FollowerLog {
    hello: u64,
    /// Every message's (seq, type, step id).
    messages: Vec<(u64, String, Option<String>)>,
    /// (seq, skipped) of each `lagged` notice.
    lagged: Vec<(u64, u64)>,
    /// Microseconds from a step's end (the writer's clock) to its arrival here.
    delivery_lag_us: Vec<i64>,
    error: Option<String>,
}

async fn follower(url: String, mut done: tokio::sync::watch::Receiver<u64>) -> FollowerLog {
    let mut log = FollowerLog::default();
    let (mut socket, _) = match tokio_tungstenite::connect_async(url).await {
        Ok(pair) => pair,
        Err(e) => {
            log.error = Some(format!("connect: {e}"));
            return log;
        }
    };
    let mut last = 0u64;
    loop {
        let target = *done.borrow();
        if target > 0 && last >= target {
            return log;
        }
        let message = tokio::select! {
            m = socket.next() => m,
            _ = done.changed() => continue,
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
            other => {
                log.error = Some(format!("the socket ended: {other:?}"));
                return log;
            }
        };
        let m: serde_json::Value = serde_json::from_str(text.as_str()).unwrap_or_default();
        let seq = m["seq"].as_u64().unwrap_or(0);
        let kind = m["type"].as_str().unwrap_or("").to_owned();
        match kind.as_str() {
            "hello" => log.hello = seq,
            "lagged" => log.lagged.push((seq, m["skipped"].as_u64().unwrap_or(0))),
            "step_finished" => {
                if let Some(end) = m["step"]["ended_at"].as_i64() {
                    log.delivery_lag_us.push(xray::model::now_us() - end);
                }
            }
            _ => {}
        }
        let step = m["step"]["id"].as_str().map(String::from);
        if kind != "hello" {
            log.messages.push((seq, kind, step));
        }
        last = last.max(seq);
    }
}

/// A WebSocket client that completes the handshake and never reads again.
fn stalled_client(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .write_all(
            b"GET /api/v1/live HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
              Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .expect("handshake");
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).expect("the 101");
    assert_eq!(&head[9..12], b"101");
    stream
}

/// Every finished step's id with the `seq` of its last write, and the last change's `seq` (the
/// store's counter can be ahead of it: a batch reserves more numbers than it uses).
fn finished_steps(db: &Path) -> (HashMap<String, u64>, u64) {
    let store = SqliteStore::open(db).expect("open");
    let mut out = HashMap::new();
    let mut after = 0;
    loop {
        let changes = store.changes_since(after, 5_000).expect("changes");
        let Some(last) = changes.last() else {
            return (out, after);
        };
        after = last.seq();
        for change in changes {
            if let Change::Step { seq, step } = change {
                if step.status != xray::model::Status::Running {
                    out.insert(step.id.to_string(), seq);
                }
            }
        }
    }
}

/// What a follower missed or got out of order; empty when it has every step after its hello in
/// `seq` order, except those a `lagged` notice told it it skipped.
fn check_follower(log: &FollowerLog, steps: &HashMap<String, u64>) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(e) = &log.error {
        problems.push(e.clone());
    }
    let seqs: Vec<u64> = log.messages.iter().map(|(s, _, _)| *s).collect();
    if let Some(w) = seqs.windows(2).find(|w| w[0] >= w[1]) {
        problems.push(format!("out of order: seq {} then {}", w[0], w[1]));
    }
    // The seq ranges a `lagged` notice covers: after the message before it, up to its seq.
    let mut skipped = Vec::new();
    let mut previous = log.hello;
    for (seq, kind, _) in &log.messages {
        if kind == "lagged" {
            skipped.push((previous, *seq));
        }
        previous = *seq;
    }
    let received: HashSet<&str> = log
        .messages
        .iter()
        .filter(|(_, kind, _)| kind == "step_finished")
        .filter_map(|(_, _, id)| id.as_deref())
        .collect();
    let missing: Vec<&String> = steps
        .iter()
        .filter(|(_, seq)| **seq > log.hello)
        .filter(|(_, seq)| !skipped.iter().any(|(a, b)| a < *seq && *seq <= b))
        .filter(|(id, _)| !received.contains(id.as_str()))
        .map(|(id, _)| id)
        .collect();
    if !missing.is_empty() {
        problems.push(format!("{} steps never arrived", missing.len()));
    }
    problems
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

fn run_load(load: Load) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("xray.db");
    let (layer, guard) = xray::layer()
        .sqlite(&db)
        .flush_interval(Duration::from_millis(10))
        .build()
        .expect("the layer");
    let server = ServerProcess::start(&db);
    let (rss_start, _) = server.memory_kib();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let ws_url = format!("ws://{}/api/v1/live", server.addr);

    // The followers and the stalled client connect before anything is written.
    let (done_tx, done_rx) = tokio::sync::watch::channel(0u64);
    let followers: Vec<_> = (0..load.followers)
        .map(|_| runtime.spawn(follower(ws_url.clone(), done_rx.clone())))
        .collect();
    let stalled = stalled_client(server.addr);
    let health = |server: &ServerProcess| -> serde_json::Value {
        ureq::get(&server.url("/api/v1/health"))
            .call()
            .expect("health answers")
            .into_json()
            .expect("JSON")
    };
    let expected_clients = (load.followers + 1) as i64;
    let connected = Instant::now();
    while health(&server)["websocket_clients"].as_i64() != Some(expected_clients) {
        assert!(
            connected.elapsed() < Duration::from_secs(30),
            "the followers did not connect"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let start = Instant::now();
    let deadline = start + Duration::from_secs(load.seconds);
    let pacer = Arc::new(Pacer {
        start,
        deadline,
        per_second: load.steps_per_second,
        count: AtomicU64::new(0),
    });
    let writer = {
        let pacer = Arc::clone(&pacer);
        std::thread::spawn(move || {
            let subscriber = tracing_subscriber::registry().with(layer);
            tracing::subscriber::with_default(subscriber, || {
                while Instant::now() < pacer.deadline {
                    load_run(&pacer, 50);
                }
            });
            let flushed = guard.flush();
            (flushed, guard.stats())
        })
    };
    let clients: Vec<_> = (0..load.clients)
        .map(|i| {
            let base = server.url("");
            std::thread::spawn(move || api_client(base, deadline, i))
        })
        .collect();
    // Memory once the load is under way; the most threads the server ran.
    let warm_at = start + Duration::from_secs(load.seconds / 4).max(Duration::from_secs(1));
    let (mut rss_warm, mut max_threads, mut max_db_fds) = (0, 0, 0);
    while Instant::now() < deadline {
        max_threads = max_threads.max(server.threads());
        max_db_fds = max_db_fds.max(server.database_fds());
        if rss_warm == 0 && Instant::now() >= warm_at {
            rss_warm = server.memory_kib().0;
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut api = ApiLog::default();
    for client in clients {
        let log = client.join().expect("a client thread");
        api.latencies_us.extend(log.latencies_us);
        api.errors.extend(log.errors);
    }
    let (flushed, stats) = writer.join().expect("the writer");
    let written = pacer.count.load(Ordering::Relaxed);
    let elapsed = start.elapsed();
    let (rss_end, hwm_end) = server.memory_kib();
    let stalled_connected = health(&server)["websocket_clients"].as_i64() == Some(expected_clients);

    // The followers stop once they have seen the last change.
    let (steps, last_seq) = finished_steps(&db);
    done_tx.send_replace(last_seq);
    let logs: Vec<FollowerLog> = runtime.block_on(async {
        let mut logs = Vec::new();
        for f in followers {
            match tokio::time::timeout(Duration::from_secs(60), f).await {
                Ok(Ok(log)) => logs.push(log),
                Ok(Err(e)) => panic!("a follower failed: {e}"),
                Err(_) => panic!("a follower did not reach seq {last_seq} within 60 s"),
            }
        }
        logs
    });
    drop(stalled);

    let mut latencies = api.latencies_us;
    latencies.sort_unstable();
    let mut lags: Vec<u32> = logs
        .iter()
        .flat_map(|l| &l.delivery_lag_us)
        .map(|&us| u32::try_from(us.max(0)).unwrap_or(u32::MAX))
        .collect();
    lags.sort_unstable();
    let lagged: usize = logs.iter().map(|l| l.lagged.len()).sum();
    eprintln!(
        "LOAD {load:?} over {:.1} s\n\
         LOAD api: {} requests ({:.0}/s), {} errors, latency p50 {:.1} ms p99 {:.1} ms max {:.1} ms\n\
         LOAD writer: {written} steps ({:.0}/s), {} records dropped, {} failed, flushed {flushed}\n\
         LOAD followers: {} x {} steps, {lagged} lagged notices, delivery p50 {:.1} ms p99 {:.1} ms max {:.1} ms\n\
         LOAD stalled client still connected at the end: {stalled_connected}\n\
         LOAD server RSS: start {} MiB, after {} s {} MiB, end {} MiB (peak {} MiB); at most {max_threads} threads, {max_db_fds} descriptors on the database",
        elapsed.as_secs_f64(),
        latencies.len(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        api.errors.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0),
        written as f64 / elapsed.as_secs_f64(),
        stats.dropped,
        stats.failed,
        logs.len(),
        steps.len(),
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        percentile(&lags, 1.0),
        rss_start / 1024,
        load.seconds / 4,
        rss_warm / 1024,
        rss_end / 1024,
        hwm_end / 1024,
    );
    assert!(
        api.errors.is_empty(),
        "API errors: {:?}",
        &api.errors[..api.errors.len().min(5)]
    );
    assert!(flushed, "the writer flushed");
    assert_eq!((stats.dropped, stats.failed), (0, 0), "records lost");
    assert!(
        steps.len() as u64 >= written.saturating_sub(1),
        "{} steps stored of {written} recorded",
        steps.len()
    );
    let problems: Vec<String> = logs
        .iter()
        .enumerate()
        .flat_map(|(i, log)| {
            check_follower(log, &steps)
                .into_iter()
                .map(move |p| format!("follower {i}: {p}"))
        })
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Memory is bounded: what the load adds after its first quarter is a fraction of the total.
    assert!(
        rss_end < rss_warm * 3 / 2 + 64 * 1024,
        "RSS grew from {} to {} MiB under a steady load",
        rss_warm / 1024,
        rss_end / 1024
    );
    // Store calls are bounded (Config::query_concurrency, 4): SQLite connections stay few
    // whatever the number of clients (4 readers, the writer, the live tail's; 2 files each).
    assert!(
        max_db_fds <= 16,
        "{max_db_fds} descriptors on the database for {} clients: store calls are not bounded",
        load.clients
    );
    if load.seconds >= 30 {
        assert!(
            !stalled_connected,
            "the client that never reads is still connected"
        );
    }
}

#[test]
fn the_server_holds_a_short_load() {
    run_load(Load::from_env(SHORT));
}

#[test]
#[ignore = "60 s of full load: cargo test --release -p xray-server --test load -- --ignored --nocapture"]
fn the_server_holds_the_full_load() {
    run_load(Load::from_env(FULL));
}

#[test]
fn connections_dropped_abruptly_leave_the_server_serving() {
    flood(env_or("XRAY_FLOOD_CONNECTIONS", 2_000));
}

#[test]
#[ignore = "10,000 connections: cargo test --release -p xray-server --test load -- --ignored --nocapture"]
fn ten_thousand_connections_dropped_abruptly_leave_the_server_serving() {
    flood(env_or("XRAY_FLOOD_CONNECTIONS", 10_000));
}

fn flood(total: usize) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("xray.db");
    drop(SqliteStore::open(&db).expect("a database"));
    let server = ServerProcess::start(&db);
    let health = server.url("/api/v1/health");
    assert_eq!(ureq::get(&health).call().expect("health").status(), 200);
    let (sockets_before, (rss_before, _)) = (server.open_sockets(), server.memory_kib());

    // Meanwhile, a client asks for health on one connection after another.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (stop, health) = (Arc::clone(&stop), health.clone());
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                match ureq::get(&health).timeout(Duration::from_secs(20)).call() {
                    Ok(_) => ok += 1,
                    Err(e) => failed.push(e.to_string()),
                }
                // A new connection every 10 ms: it probes, it does not add to the flood.
                std::thread::sleep(Duration::from_millis(10));
            }
            (ok, failed)
        })
    };
    let started = Instant::now();
    let threads = 16;
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let addr = server.addr;
            std::thread::spawn(move || {
                let mut refused = 0usize;
                for i in (t..total).step_by(threads) {
                    let Ok(mut stream) = TcpStream::connect(addr) else {
                        refused += 1;
                        continue;
                    };
                    // Dropped: at once, in the middle of a request line, in the middle of the
                    // headers, or with a whole request whose answer is never read.
                    let sent: &[u8] = match i % 4 {
                        0 => b"",
                        1 => b"GET /api/v1/exec",
                        2 => b"GET /api/v1/health HTTP/1.1\r\nHost: loc",
                        _ => b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
                    };
                    let _ = stream.write_all(sent);
                    drop(stream);
                }
                refused
            })
        })
        .collect();
    let refused: usize = workers
        .into_iter()
        .map(|w| w.join().expect("a worker"))
        .sum();
    let flood = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (served, failed) = watcher.join().expect("the watcher");
    // The connections are closed: the server's sockets come back to where they were.
    let closing = Instant::now();
    while server.open_sockets() > sockets_before + 2 {
        assert!(
            closing.elapsed() < Duration::from_secs(30),
            "{} sockets open, {sockets_before} before",
            server.open_sockets()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (rss_after, hwm) = server.memory_kib();
    eprintln!(
        "FLOOD {total} connections dropped in {:.1} s ({refused} refused by the kernel); \
         {served} health requests answered meanwhile, {} failed; sockets {sockets_before} before, \
         {} after ({:.1} s to close); RSS {} → {} MiB (peak {} MiB)",
        flood.as_secs_f64(),
        failed.len(),
        server.open_sockets(),
        closing.elapsed().as_secs_f64(),
        rss_before / 1024,
        rss_after / 1024,
        hwm / 1024
    );
    assert!(
        failed.is_empty(),
        "health failed during the flood: {:?}",
        &failed[..failed.len().min(3)]
    );
    assert!(served > 0, "health was asked during the flood");
    assert_eq!(refused, 0, "the kernel refused connections");
    let list = ureq::get(&server.url("/api/v1/executions"))
        .call()
        .expect("a list");
    assert_eq!(list.status(), 200);
}
