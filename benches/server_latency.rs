//! How fast `xray-server` answers on a large database, and how late live messages are.
//!
//! A load program, not a criterion benchmark: criterion reports means, and the question here is
//! the tail (p99) of real HTTP requests over loopback. It
//!
//! 1. generates (once, cached under `target/`) a database of 100,000 executions with 4 steps
//!    each, 50 evaluations per filter step: 5,000,000 evaluations, 400,000 steps;
//! 2. starts a real server on an ephemeral port and sends, one after another over a keep-alive
//!    connection, 1,000 requests of each kind: the runs list (first page, a filtered page, a deep
//!    page), a step's detail, a page of a step's evaluations (all, and failed-by-rating);
//! 3. measures live latency: a second store commits a step, and the time until its
//!    `step_finished` message arrives on a WebSocket is taken, 200 times.
//!
//! ```sh
//! cargo bench -p xray-benches --bench server_latency
//! XRAY_BENCH_EXECUTIONS=10000 cargo bench -p xray-benches --bench server_latency   # smaller
//! # The same on PostgreSQL (a database `xray_bench_<executions>` is created on that server,
//! # and kept for the next run):
//! eval "$(bash .ci/postgres.sh start)"
//! XRAY_BENCH_POSTGRES_URL=$XRAY_TEST_POSTGRES_URL XRAY_BENCH_EXECUTIONS=200000 \
//!     cargo bench -p xray-benches --bench server_latency
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use xray::model::Record;
use xray::store::{PostgresStore, SqliteStore, Store};
use xray_benches::runs::{run_records, EVALUATIONS_PER_FILTER};
use xray_benches::SplitMix64;
use xray_server::{BackgroundServer, Config};

const REQUESTS: usize = 1_000;
const LIVE_SAMPLES: usize = 200;

fn database(executions: usize) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/xray-bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("server-{executions}.db"));
    if path.exists() {
        return Ok(path);
    }
    let partial = dir.join(format!("server-{executions}.partial.db"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", partial.display()));
    }
    let started = Instant::now();
    let store = SqliteStore::open(&partial)?;
    generate(&store, executions, started)?;
    while store.index_candidates(1_000_000)? > 0 {}
    drop(store);
    std::fs::rename(&partial, &path)?;
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", partial.display()));
    }
    eprintln!(
        "generated {executions} executions, {} evaluations in {:.1?}",
        executions * EVALUATIONS_PER_FILTER,
        started.elapsed()
    );
    Ok(path)
}

/// The PostgreSQL database `xray_bench_<executions>` on the server at `server`, generated
/// once (a row in `xray.meta` marks it complete); its URL.
fn postgres_database(
    server: &str,
    executions: usize,
) -> Result<String, Box<dyn std::error::Error>> {
    let name = format!("xray_bench_{executions}");
    let url = match server.rfind('/') {
        Some(i) if i > server.find("://").map_or(0, |s| s + 2) => {
            format!("{}/{name}", &server[..i])
        }
        _ => format!("{server}/{name}"),
    };
    let mut admin = postgres::Client::connect(server, postgres::NoTls)?;
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])?
        .is_some();
    if exists {
        let mut client = postgres::Client::connect(&url, postgres::NoTls)?;
        let complete = client
            .query_opt("SELECT 1 FROM xray.meta WHERE key = 'bench_complete'", &[])
            .ok()
            .flatten()
            .is_some();
        if complete {
            return Ok(url);
        }
        drop(client);
        admin.batch_execute(&format!("DROP DATABASE {name}"))?;
    }
    admin.batch_execute(&format!("CREATE DATABASE {name}"))?;
    let store = PostgresStore::open(&url)?;
    let started = Instant::now();
    generate(&store, executions, started)?;
    drop(store);
    let mut client = postgres::Client::connect(&url, postgres::NoTls)?;
    // Two statements: several in one call run as one transaction, where VACUUM may not.
    client.batch_execute("VACUUM ANALYZE")?;
    client.batch_execute("INSERT INTO xray.meta(key, value) VALUES ('bench_complete', 1)")?;
    eprintln!(
        "generated {executions} executions, {} evaluations in {:.1?} ({:.0} evaluations/s, COPY)",
        executions * EVALUATIONS_PER_FILTER,
        started.elapsed(),
        (executions * EVALUATIONS_PER_FILTER) as f64 / started.elapsed().as_secs_f64()
    );
    Ok(url)
}

/// Writes `executions` runs into `store`, in batches of about 300 runs.
fn generate(
    store: &dyn Store,
    executions: usize,
    started: Instant,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = SplitMix64(42);
    let base = xray::model::now_us() - (executions as i64) * 10_000;
    let mut batch = Vec::new();
    for i in 0..executions {
        batch.extend(run_records(&mut rng, base + i as i64 * 10_000).0);
        if batch.len() >= 1_200 {
            store.write(&batch)?;
            batch.clear();
        }
        if i % 10_000 == 0 && i > 0 {
            eprintln!("  generated {i} executions ({:.0?})", started.elapsed());
        }
    }
    store.write(&batch)?;
    Ok(())
}

struct Latencies(Vec<Duration>);

impl Latencies {
    fn percentile(&mut self, p: f64) -> Duration {
        self.0.sort();
        let i = ((self.0.len() as f64 - 1.0) * p).round() as usize;
        self.0[i]
    }
}

fn measure(
    agent: &ureq::Agent,
    label: &str,
    urls: &[String],
) -> Result<(), Box<dyn std::error::Error>> {
    // Warm up: the first requests fill SQLite's page cache.
    for url in urls.iter().take(20) {
        agent.get(url).call()?.into_string()?;
    }
    let mut times = Latencies(Vec::with_capacity(urls.len()));
    for url in urls {
        let t = Instant::now();
        let body = agent.get(url).call()?.into_string()?;
        times.0.push(t.elapsed());
        std::hint::black_box(body);
    }
    let (p50, p99, max) = (
        times.percentile(0.5),
        times.percentile(0.99),
        times.percentile(1.0),
    );
    println!(
        "| {label} | {:.2} ms | {:.2} ms | {:.2} ms | {} |",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
        if p99 <= Duration::from_millis(20) {
            "met (≤ 20 ms)"
        } else {
            "missed (≤ 20 ms)"
        }
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // `cargo bench -- --list` and `cargo test --benches` probe with this.
    }
    let executions: usize = std::env::var("XRAY_BENCH_EXECUTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let postgres = std::env::var("XRAY_BENCH_POSTGRES_URL").ok();
    let (store, db): (Arc<dyn Store>, Database) = match &postgres {
        Some(server) => {
            let url = postgres_database(server, executions)?;
            (
                Arc::new(PostgresStore::open(&url)?),
                Database::Postgres(url),
            )
        }
        None => {
            let path = database(executions)?;
            (Arc::new(SqliteStore::open(&path)?), Database::Sqlite(path))
        }
    };
    let config = Config {
        addr: "127.0.0.1:0".parse()?,
        rate_limit_per_minute: 0,
        ..Config::default()
    };
    let server = BackgroundServer::start(store.clone(), config)?;
    let base = format!("{}/api/v1", server.url());
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();

    // Ids to ask for, spread over the whole database.
    let mut rng = SplitMix64(7);
    let mut cursor = None;
    let mut deep_cursor = None;
    let mut runs = Vec::new();
    for page in 0..20 {
        let mut url = format!("{base}/executions?limit=1000");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let body: serde_json::Value = agent.get(&url).call()?.into_json()?;
        for e in body["items"].as_array().into_iter().flatten() {
            runs.push(e["id"].as_str().unwrap_or_default().to_owned());
        }
        cursor = body["next_cursor"].as_str().map(String::from);
        if page == 9 {
            deep_cursor = cursor.clone();
        }
        if cursor.is_none() {
            break;
        }
    }
    let mut steps = Vec::new();
    for _ in 0..REQUESTS {
        let run = &runs[rng.below(runs.len() as u64) as usize];
        let detail: serde_json::Value = agent
            .get(&format!("{base}/executions/{run}"))
            .call()?
            .into_json()?;
        if let Some(s) = detail["steps"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == "apply_filters"))
        {
            steps.push(s["id"].as_str().unwrap_or_default().to_owned());
        }
    }
    println!(
        "\n{} — {executions} executions, {} evaluations, database {:.0} MB\n",
        db.engine(),
        executions * EVALUATIONS_PER_FILTER,
        db.size()? as f64 / 1e6
    );
    println!("| request ({REQUESTS} each, sequential, keep-alive) | p50 | p99 | max | goal |");
    println!("|---|---|---|---|---|");
    let same = |url: String| vec![url; REQUESTS];
    measure(
        &agent,
        "runs list, first page (50)",
        &same(format!("{base}/executions")),
    )?;
    measure(
        &agent,
        "runs list, filtered (`name`, `status=error`)",
        &same(format!(
            "{base}/executions?name=listing_optimization&status=error"
        )),
    )?;
    if let Some(c) = deep_cursor {
        measure(
            &agent,
            "runs list, page 10,001–10,050 (cursor)",
            &same(format!("{base}/executions?cursor={c}")),
        )?;
    }
    let urls: Vec<String> = (0..REQUESTS)
        .map(|i| format!("{base}/executions/{}", runs[(i * 7919) % runs.len()]))
        .collect();
    measure(&agent, "one run (step tree, funnel)", &urls)?;
    let urls: Vec<String> = steps.iter().map(|s| format!("{base}/steps/{s}")).collect();
    measure(&agent, "step detail", &urls)?;
    let urls: Vec<String> = steps
        .iter()
        .map(|s| format!("{base}/steps/{s}/evaluations?limit=100"))
        .collect();
    measure(&agent, "evaluations page (100)", &urls)?;
    let urls: Vec<String> = steps
        .iter()
        .map(|s| format!("{base}/steps/{s}/evaluations?passed=false&check=rating&limit=100"))
        .collect();
    measure(&agent, "evaluations failed by `rating`", &urls)?;
    let urls: Vec<String> = (0..REQUESTS)
        .map(|_| format!("{base}/candidates/B{:07}", rng.below(1_000_000)))
        .collect();
    measure(&agent, "candidate lineage", &urls)?;
    let urls: Vec<String> = (0..REQUESTS)
        .map(|i| {
            let a = &runs[(i * 104_729) % runs.len()];
            let b = &runs[(i * 7_919 + 1) % runs.len()];
            format!("{base}/compare?a={a}&b={b}")
        })
        .collect();
    measure(&agent, "compare two runs", &urls)?;
    measure(
        &agent,
        "steps that eliminated > 90%",
        &same(format!("{base}/steps?kind=filter&min_elimination=0.9")),
    )?;

    live_latency(&server, &db)?;
    Ok(())
}

/// Where the bench's database is.
enum Database {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Database {
    fn engine(&self) -> &'static str {
        match self {
            Database::Sqlite(_) => "SQLite",
            Database::Postgres(_) => "PostgreSQL",
        }
    }

    fn size(&self) -> Result<u64, Box<dyn std::error::Error>> {
        Ok(match self {
            Database::Sqlite(path) => std::fs::metadata(path)?.len(),
            Database::Postgres(url) => {
                let mut client = postgres::Client::connect(url, postgres::NoTls)?;
                let bytes: i64 = client
                    .query_one("SELECT pg_database_size(current_database())", &[])?
                    .get(0);
                bytes.max(0) as u64
            }
        })
    }

    /// A second writer, as another process would be.
    fn writer(&self) -> Result<Box<dyn Store>, Box<dyn std::error::Error>> {
        Ok(match self {
            Database::Sqlite(path) => Box::new(SqliteStore::open(path)?),
            Database::Postgres(url) => Box::new(PostgresStore::open(url)?),
        })
    }
}

fn live_latency(
    server: &BackgroundServer,
    db: &Database,
) -> Result<(), Box<dyn std::error::Error>> {
    use tungstenite::Message;
    let writer = db.writer()?;
    let url = format!("ws://{}/api/v1/live", server.local_addr());
    let (mut socket, _) = tungstenite::connect(url.as_str())?;
    let mut times = Latencies(Vec::new());
    let mut rng = SplitMix64(99);
    for _ in 0..LIVE_SAMPLES {
        let (records, _) = run_records(&mut rng, xray::model::now_us());
        let Some(Record::StepFinished(step)) = records.get(1).cloned() else {
            continue;
        };
        let wanted = step.id.to_string();
        writer.write(&records[..2])?;
        let committed = Instant::now();
        loop {
            match socket.read()? {
                Message::Text(text) if text.as_str().contains(&wanted) => break,
                _ => {}
            }
        }
        times.0.push(committed.elapsed());
        // Spread the commits over the poll interval, as a real writer's would be.
        std::thread::sleep(Duration::from_millis(rng.below(50)));
    }
    let (p50, p99) = (times.percentile(0.5), times.percentile(0.99));
    println!(
        "\n| live: commit → `step_finished` on a WebSocket ({LIVE_SAMPLES} steps) | p50 {:.1} ms | p99 {:.1} ms | goal p50 ≤ 150 ms: {} |",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        if p50 <= Duration::from_millis(150) { "met" } else { "missed" }
    );
    Ok(())
}
