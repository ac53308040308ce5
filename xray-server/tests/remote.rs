//! Remote recording end to end: a program records through `xray::layer().remote(url)` into a
//! real `xray-server` process. The collector is killed (SIGKILL) mid-run and restarted; every
//! record arrives, or the exact count of what was dropped is reported to the server.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing_subscriber::prelude::*;
use xray::remote::RemoteStore;
use xray::store::{SqliteStore, Store};

const EVALUATIONS: usize = 40;

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

#[xray::step(kind = "select")]
fn pick(kept: usize) -> usize {
    xray::select("P000", format!("first of {kept}"));
    kept
}

/// One run: an execution with two steps (6 records).
fn record_run(n: usize) {
    let _run = xray::Execution::start("remote_run")
        .tag(format!("n{n}"))
        .enter();
    let prices: Vec<f64> = (0..EVALUATIONS).map(|i| (i * 3) as f64).collect();
    pick(keep_cheap(&prices));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The collector process; killed (SIGKILL) when dropped, so a failing test leaves none behind.
struct Collector(Child);

impl Collector {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The collector: the real binary on `port`, over `db`.
fn start_collector(db: &Path, port: u16) -> Collector {
    let child = Command::new(env!("CARGO_BIN_EXE_xray-server"))
        .args(["--db", db.to_str().expect("utf-8"), "--addr"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["--rate-limit", "0"])
        .stdout(Stdio::null())
        .spawn()
        .expect("the server starts");
    let child = Collector(child);
    wait_until(Duration::from_secs(30), "the collector answers", || {
        ureq::get(&format!("http://127.0.0.1:{port}/api/v1/health"))
            .call()
            .is_ok()
    });
    child
}

fn wait_until(timeout: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn runs_on(store: &SqliteStore) -> Vec<xray::store::ExecutionSummary> {
    store
        .list_executions(&xray::store::ExecutionQuery {
            limit: Some(500),
            ..Default::default()
        })
        .map(|page| page.items)
        .unwrap_or_default()
}

#[test]
fn every_record_arrives_although_the_collector_is_killed_mid_run() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("collector.db");
    drop(SqliteStore::open(&db).expect("the collector's database"));
    let port = free_port();
    let mut collector = start_collector(&db, port);

    // Configured as a deployment would be: from the environment.
    let endpoint = format!("http://127.0.0.1:{port}");
    let spool = dir.path().join("spool.db");
    let env = |var: &str| match var {
        "XRAY_ENDPOINT" => Some(endpoint.clone()),
        "XRAY_SPOOL" => spool.to_str().map(str::to_owned),
        "XRAY_FLUSH_INTERVAL_MS" => Some("20".into()),
        _ => None,
    };
    let (layer, guard) = xray::layer().with_env(env).build().expect("a remote layer");
    let _subscriber = tracing_subscriber::registry().with(layer).set_default();
    let reader = SqliteStore::open(&db).expect("a reader");

    for n in 0..10 {
        record_run(n);
    }
    guard.flush();
    wait_until(Duration::from_secs(30), "the first 10 runs", || {
        runs_on(&reader).len() == 10
    });

    // SIGKILL: no goodbye, connections reset, requests in flight lost.
    collector.kill();
    for n in 10..20 {
        record_run(n); // the app goes on; its records wait in the spool
    }
    guard.flush();
    let waiting = rusqlite_count(&spool);
    assert!(
        waiting > 0,
        "records wait in the spool while the collector is down"
    );

    let mut collector = start_collector(&db, port);
    for n in 20..25 {
        record_run(n);
    }
    guard.flush();
    wait_until(Duration::from_secs(60), "all 25 runs, complete", || {
        let runs = runs_on(&reader);
        runs.len() == 25
            && runs
                .iter()
                .all(|r| r.completed_at.is_some() && r.step_count == 2)
    });
    wait_until(Duration::from_secs(30), "an empty spool", || {
        rusqlite_count(&spool) == 0
    });
    for run in runs_on(&reader) {
        let detail = reader.execution(run.id).expect("read").expect("the run");
        let filter = detail
            .steps
            .iter()
            .find(|s| s.name == "keep_cheap")
            .expect("the filter step");
        assert_eq!(filter.candidates_in, Some(EVALUATIONS as u64), "{run:?}");
        assert_eq!(filter.candidates_out, Some(17), "prices 0, 3, …, 48 pass");
    }
    let counts = reader.recorder_counts().expect("counts");
    assert_eq!((counts.dropped, counts.failed), (0, 0));
    drop(guard);
    collector.kill();
}

#[test]
fn a_full_spool_drops_whole_batches_and_the_server_learns_how_many_records() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("collector.db");
    drop(SqliteStore::open(&db).expect("the collector's database"));
    let port = free_port();

    // Nothing listens yet; the spool holds about two runs.
    let remote = Arc::new(
        RemoteStore::builder(format!("http://127.0.0.1:{port}"))
            .spool(dir.path().join("spool.db"))
            .max_spool_bytes(16 * 1024)
            .open()
            .expect("a remote store"),
    );
    let (layer, guard) = xray::layer()
        .store(Arc::clone(&remote) as Arc<dyn Store>)
        .batch_size(6)
        .build()
        .expect("a layer");
    let _subscriber = tracing_subscriber::registry().with(layer).set_default();
    for n in 0..12 {
        record_run(n);
        guard.flush(); // one batch per run
    }
    let stats = remote.stats();
    assert!(stats.dropped > 0, "{stats:?}");
    assert_eq!(stats.sent, 0);

    let mut collector = start_collector(&db, port);
    wait_until(Duration::from_secs(60), "the spool to empty", || {
        remote.stats().spooled_batches == 0
    });
    let stats = remote.stats();
    let reader = SqliteStore::open(&db).expect("a reader");
    // Every record either arrived or was counted as dropped; the server knows how many.
    assert_eq!(stats.sent + stats.dropped, 12 * 6, "{stats:?}");
    assert_eq!(
        reader.recorder_counts().expect("counts").dropped,
        stats.dropped
    );
    assert_eq!(stats.refused, 0, "{stats:?}");
    assert!(
        !runs_on(&reader).is_empty(),
        "what fitted in the spool arrived"
    );
    drop(guard);
    collector.kill();
}

/// Batches waiting in a spool file, read as any SQLite reader would.
fn rusqlite_count(spool: &Path) -> u64 {
    rusqlite::Connection::open(spool)
        .and_then(|c| c.query_row("SELECT COUNT(*) FROM batches", [], |r| r.get::<_, i64>(0)))
        .map(|n| n as u64)
        .expect("the spool is readable")
}

#[test]
fn a_sampling_recorder_tells_the_server_how_many_runs_it_left_out() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("collector.db");
    drop(SqliteStore::open(&db).expect("the collector's database"));
    let port = free_port();
    let mut collector = start_collector(&db, port);
    let remote = Arc::new(
        RemoteStore::builder(format!("http://127.0.0.1:{port}"))
            .spool(dir.path().join("spool.db"))
            .open()
            .expect("a remote store"),
    );
    let (layer, guard) = xray::layer()
        .store(Arc::clone(&remote) as Arc<dyn Store>)
        .sample(0.3)
        .build()
        .expect("a layer");
    let _subscriber = tracing_subscriber::registry().with(layer).set_default();
    const RUNS: usize = 40;
    for n in 0..RUNS {
        record_run(n);
    }
    guard.flush();
    let sampled_out = guard.stats().sampled_out;
    assert!(sampled_out > 0, "some runs were left out");
    let reader = SqliteStore::open(&db).expect("a reader");
    wait_until(Duration::from_secs(60), "the runs and the count", || {
        reader.recorder_counts().expect("counts").sampled_out == sampled_out
            && runs_on(&reader).len() as u64 + sampled_out == RUNS as u64
    });
    drop(guard);
    collector.kill();
}

/// A server that refuses every request (400), and when each arrived.
struct Refusing {
    url: String,
    arrivals: Arc<std::sync::Mutex<Vec<Instant>>>,
    _runtime: tokio::runtime::Runtime,
}

fn refusing_server() -> Refusing {
    use hyper::service::service_fn;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("its address"));
    let arrivals = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&arrivals);
    runtime.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let service = service_fn(move |_req: hyper::Request<hyper::body::Incoming>| {
                    seen.lock().expect("arrivals").push(Instant::now());
                    async move {
                        let mut refused = hyper::Response::new(String::from("refused"));
                        *refused.status_mut() = hyper::StatusCode::BAD_REQUEST;
                        Ok::<_, std::convert::Infallible>(refused)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Refusing {
        url,
        arrivals,
        _runtime: runtime,
    }
}

#[test]
fn a_server_that_refuses_everything_is_asked_again_after_a_backoff_not_at_once() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = refusing_server();
    let remote = Arc::new(
        RemoteStore::builder(&server.url)
            .spool(dir.path().join("spool.db"))
            .shutdown_timeout(Duration::from_millis(200))
            .open()
            .expect("a remote store"),
    );
    let (layer, guard) = xray::layer()
        .store(Arc::clone(&remote) as Arc<dyn Store>)
        .build()
        .expect("a layer");
    let _subscriber = tracing_subscriber::registry().with(layer).set_default();
    record_run(0);
    guard.flush(); // one batch of records
    let arrivals = || server.arrivals.lock().expect("arrivals").clone();
    wait_until(Duration::from_secs(30), "four requests", || {
        arrivals().len() >= 4
    });
    let at = arrivals();
    // 1: the records, refused for good (counted as failed). 2, 3, 4: those counts alone, in a
    // batch of their own, refused each time: asked again after 100 ms, then 200 ms, not at once.
    let waited = at[3].duration_since(at[1]);
    assert!(
        waited >= Duration::from_millis(250),
        "the counts were sent again after only {waited:?}: {} requests so far",
        arrivals().len()
    );
    let stats = remote.stats();
    assert!(stats.refused > 0, "the records were refused: {stats:?}");
    drop(guard);
}
