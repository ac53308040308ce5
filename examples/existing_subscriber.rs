//! X-Ray added to a program that already has a `tracing` subscriber: `fmt` for its logs, an
//! `EnvFilter` deciding what `fmt` prints, and X-Ray beside it with a filter of its own.
//!
//! ```sh
//! cargo run -p xray-examples --example existing_subscriber
//! RUST_LOG=debug cargo run -p xray-examples --example existing_subscriber
//! ```
//!
//! What it shows: the two layers do not get in each other's way. `fmt` prints the program's log
//! lines (and the step's own `info!`), not one line per candidate — the 2,000 evaluations go
//! to X-Ray only, through the step's state rather than as events — and `RUST_LOG` changes what
//! `fmt` prints without changing what X-Ray records, because each layer has its own filter.

use tracing::info;
use tracing_subscriber::{filter::LevelFilter, fmt, prelude::*, EnvFilter};
use xray::store::{EvaluationQuery, ExecutionQuery};

#[xray::step(kind = "filter", skip(prices))]
fn keep_affordable(prices: &[f64], max: f64) -> Vec<f64> {
    info!(candidates = prices.len(), max, "filtering by price");
    prices
        .iter()
        .enumerate()
        .filter(|(i, &price)| {
            xray::evaluate(format!("SKU-{i:04}"))
                .check_max("price", price, max)
                .passed()
        })
        .map(|(_, &price)| price)
        .collect()
}

#[xray::execution(name = "existing_subscriber")]
fn run(max: f64) -> usize {
    let prices: Vec<f64> = (0..2_000).map(|i| f64::from(i % 100) + 0.99).collect();
    keep_affordable(&prices, max).len()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // What the program already had: fmt, filtered by RUST_LOG (default: info).
    let fmt_layer = fmt::layer().with_filter(
        EnvFilter::builder()
            .with_default_directive(LevelFilter::INFO.into())
            .from_env_lossy(),
    );
    // What X-Ray adds: its layer, with its own per-layer filter (steps are `info` spans by
    // default, so `info` records them all whatever RUST_LOG says).
    let (xray_layer, guard, store) = xray::layer().with_default_env().build_with_store()?;
    tracing_subscriber::registry()
        .with(fmt_layer)
        .with(xray_layer.with_filter(EnvFilter::new("info")))
        .init();

    info!("the program starts");
    let kept = run(49.99);
    info!(kept, "the program is done");
    guard.flush();

    // What X-Ray recorded, read back from the store.
    let runs = store.list_executions(&ExecutionQuery {
        name: Some("existing_subscriber".into()),
        limit: Some(1),
        ..Default::default()
    })?;
    let run = runs.items.first().ok_or("the run was not recorded")?;
    let detail = store.execution(run.id)?.ok_or("the run has no detail")?;
    let step = detail.steps.first().ok_or("the run has no step")?;
    let rejected = store.evaluations(
        step.id,
        &EvaluationQuery {
            passed: Some(false),
            limit: Some(1),
            ..Default::default()
        },
    )?;
    println!(
        "X-Ray recorded run {} with step {}: {} candidates in, {} out; a rejected one: {}",
        run.id,
        step.name,
        step.candidates_in.unwrap_or(0),
        step.candidates_out.unwrap_or(0),
        rejected
            .items
            .first()
            .and_then(|e| e.checks.first())
            .and_then(|c| c.reason.clone())
            .unwrap_or_default()
    );
    Ok(())
}
