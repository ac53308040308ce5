//! One execution of many steps, written to SQLite: does the writer's cost per step stay flat as
//! the run grows?
//!
//! ```sh
//! cargo run --release -p xray-benches --example long_run            # 200,000 steps, one candidate each
//! XRAY_STEPS=500000 XRAY_NO_CANDIDATES=1 cargo run --release -p xray-benches --example long_run
//! XRAY_LONG_RUN_POSTGRES=postgres://… cargo run --release -p xray-benches --example long_run
//! ```
//!
//! The steps run in one entered [`xray::Execution`], with `Backpressure::Block` (every record
//! is written, none dropped), into a database in the temporary directory (or the PostgreSQL
//! database `XRAY_LONG_RUN_POSTGRES` names). After every 20,000
//! steps the program waits for the writer and prints how long those 20,000 took, recording and
//! writing: a figure that grows with the run's length is a cost per batch that grows with it.
//! `XRAY_NO_CANDIDATES` runs steps that judge no candidate (an LLM call's step), whose
//! execution's funnel has nothing to count.

use std::time::{Duration, Instant};
use tracing_subscriber::prelude::*;

/// Steps between two reports.
const EVERY: u64 = 20_000;

#[xray::step(kind = "filter")]
fn judge(i: u64) -> u64 {
    xray::evaluate(i)
        .check_min("rating", (i % 5) as f64, 1.0)
        .passed();
    i * 2
}

#[xray::step(kind = "llm")]
fn ask(i: u64) -> u64 {
    i * 2
}

fn main() {
    let steps: u64 = std::env::var("XRAY_STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let candidates = std::env::var_os("XRAY_NO_CANDIDATES").is_none();
    let path = std::env::temp_dir().join(format!("xray_long_run_{}.db", std::process::id()));
    let builder = match std::env::var("XRAY_LONG_RUN_POSTGRES") {
        Ok(url) => xray::layer().postgres(url),
        Err(_) => xray::layer().sqlite(&path),
    };
    let (layer, guard) = builder
        .backpressure(xray::Backpressure::Block)
        .build()
        .expect("the layer builds");
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let mut times = Vec::new();
    tracing::dispatcher::with_default(&dispatch, || {
        let run = xray::Execution::start("long_run").enter();
        let mut last = Instant::now();
        for i in 0..steps {
            if candidates {
                judge(i);
            } else {
                ask(i);
            }
            if (i + 1) % EVERY == 0 {
                assert!(guard.flush(), "the writer caught up");
                let took = last.elapsed();
                println!("{:>9} steps: the last {EVERY} in {took:>9.1?}", i + 1);
                times.push(took);
                last = Instant::now();
            }
        }
        run.finish();
    });
    assert!(guard.flush(), "the writer caught up");
    let stats = guard.stats();
    assert_eq!((stats.dropped, stats.failed), (0, 0), "{stats:?}");
    if let (Some(first), Some(last)) = (times.first(), times.last()) {
        println!(
            "last / first: {:.2} ({} records written)",
            last.as_secs_f64()
                / first
                    .as_secs_f64()
                    .max(Duration::from_nanos(1).as_secs_f64()),
            stats.written
        );
    }
    drop(guard);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}
