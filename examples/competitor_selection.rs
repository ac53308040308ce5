//! The demo: competitor selection over a 12,000-product catalog, recorded with X-Ray into
//! `xray.db` (or `$XRAY_DB`), and the viewer serving it at <http://127.0.0.1:7777/> (or
//! `$XRAY_ADDR`; another port if that one is taken).
//!
//! It records twelve runs of the five-step pipeline in [`xray_examples::competitor`]: sellers
//! from several categories, three of which go wrong the ways pipelines do — a phone case
//! selected for a laptop stand, filters that eliminate more than 90% of the candidates, a judge
//! model that times out. It prints them, then serves the API and the viewer over the same file in
//! the same process and records a new run every 5 seconds, so the viewer has something to show
//! live. Ctrl-C stops it.
//!
//! ```sh
//! cargo run -p xray-examples --example competitor_selection            # record, then serve
//! cargo run -p xray-examples --example competitor_selection -- --once  # record and exit
//! ```

use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::{fmt, prelude::*, EnvFilter};
use xray::store::{ExecutionQuery, StepQuery, Store};
use xray_examples::catalog::{self, Catalog};
use xray_examples::competitor::{self, Fault, PIPELINE};

/// Seconds between two runs once the viewer is up.
const LIVE_INTERVAL: Duration = Duration::from_secs(5);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let once = std::env::args().any(|a| a == "--once");

    // The subscriber a program already has (fmt, filtered by RUST_LOG), plus X-Ray.
    let (xray_layer, guard, store) = xray::layer().with_default_env().build_with_store()?;
    tracing_subscriber::registry()
        .with(fmt::layer().with_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        ))
        .with(xray_layer)
        .init();

    let catalog = Catalog::generate(7, catalog::DEFAULT_SIZE);
    let outcomes = competitor::run_all(competitor::demo_plan(&catalog), &catalog);
    guard.flush();

    let db = std::env::var("XRAY_DB").unwrap_or_else(|_| xray::DEFAULT_DB_PATH.into());
    let runs = store.list_executions(&ExecutionQuery {
        name: Some(PIPELINE.into()),
        limit: Some(outcomes.len()),
        ..Default::default()
    })?;
    println!(
        "Recorded {} runs of {PIPELINE} over {} products into {db}:",
        outcomes.len(),
        catalog.products.len()
    );
    // Newest first in the store; the plans ran oldest first.
    let ids: Vec<_> = runs.items.iter().rev().map(|r| r.id).collect();
    // Each run's filter step, for its elimination ratio.
    let filter_steps = store.find_steps(&StepQuery {
        kind: Some("filter".into()),
        execution_name: Some(PIPELINE.into()),
        limit: Some(outcomes.len()),
        ..Default::default()
    })?;
    let eliminated = |id: Option<&uuid::Uuid>| {
        filter_steps
            .items
            .iter()
            .find(|s| Some(&s.execution_id) == id)
            .and_then(|s| s.elimination)
            .map(|e| format!("filters eliminated {:.0}%", e * 100.0))
            .unwrap_or_default()
    };
    for (i, (plan, outcome)) in outcomes.iter().enumerate() {
        let seller = &plan.seller;
        let result = match outcome {
            Ok(s) if s.competitor.category != seller.category => format!(
                "{} {} ({})   <- wrong category",
                s.competitor.asin, s.competitor.title, s.competitor.category
            ),
            Ok(s) => format!("{} {}", s.competitor.asin, s.competitor.title),
            Err(e) => format!("failed: {e}"),
        };
        let id = ids.get(i);
        println!(
            "  {:>2} {:<14} ${:>6.2}  {:<52} -> {result}\n     run {}  {}{}",
            i + 1,
            seller.category,
            seller.price,
            seller.title,
            id.map(|id| id.to_string()).unwrap_or_default(),
            eliminated(id),
            if plan.fault == Fault::None {
                String::new()
            } else {
                format!("  (fault: {:?})", plan.fault)
            },
        );
    }

    // The cross-run question the viewer's "Steps" view asks: which filter steps eliminated > 90%?
    let harsh = store.find_steps(&StepQuery {
        kind: Some("filter".into()),
        execution_name: Some(PIPELINE.into()),
        min_elimination: Some(0.9),
        ..Default::default()
    })?;
    for step in &harsh.items {
        println!(
            "Filter step {} of run {} eliminated {:.1}% of its candidates.",
            step.id,
            step.execution_id,
            step.elimination.unwrap_or(0.0) * 100.0
        );
    }
    if once {
        return Ok(());
    }
    serve(store, &catalog)
}

/// Serves the viewer over the store the layer writes, and records a run every few seconds.
fn serve(store: Arc<dyn Store>, catalog: &Catalog) -> Result<(), Box<dyn std::error::Error>> {
    let addr: std::net::SocketAddr = std::env::var("XRAY_ADDR")
        .unwrap_or_else(|_| xray_server::DEFAULT_ADDR.into())
        .parse()?;
    let config = |addr| xray_server::Config {
        addr,
        ..xray_server::Config::default()
    };
    let server = match xray_server::BackgroundServer::start(store.clone(), config(addr)) {
        Ok(server) => server,
        Err(e) => {
            println!("{addr} is not free ({e}); serving on another port instead.");
            xray_server::BackgroundServer::start(store, config(([127, 0, 0, 1], 0).into()))?
        }
    };
    println!(
        "\nX-Ray viewer at {}/ — open the run marked '<- wrong category' and follow the phone \
         case back through its steps. A new run every {} s; Ctrl-C to stop.",
        server.url(),
        LIVE_INTERVAL.as_secs()
    );
    for round in 0.. {
        std::thread::sleep(LIVE_INTERVAL);
        if let Some(plan) = competitor::live_plan(catalog, round) {
            // Failures are recorded in the run; the demo goes on.
            let _ = competitor::find_competitor(&plan, catalog);
        }
    }
    Ok(())
}
