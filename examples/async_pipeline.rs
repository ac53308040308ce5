//! Async steps on tokio, and spawned tasks recording into one step through a step handle.
//!
//! ```sh
//! cargo run -p xray-examples --example async_pipeline
//! ```
//!
//! `#[xray::step]` works on `async fn`: the step spans every `.await`, on whichever worker
//! thread the future is polled. Work the step hands to spawned tasks is not inside the step's
//! span (a task starts with no span), so the step takes a handle, `xray::current_step()`, and
//! gives a clone to each task; the tasks record their evaluations through it. The step's record
//! is complete when the step returns, so it awaits its tasks first.

use std::time::Duration;
use tracing_subscriber::prelude::*;
use xray::store::ExecutionQuery;

#[derive(Clone, Debug, serde::Serialize)]
struct Candidate {
    id: String,
    title: String,
}

/// A mock model call: a little latency and a relevance score.
async fn relevance(query: &str, candidate: &Candidate) -> f64 {
    tokio::time::sleep(Duration::from_millis(2)).await;
    let shared = query
        .split_whitespace()
        .filter(|w| candidate.title.to_lowercase().contains(w))
        .count();
    shared as f64 / query.split_whitespace().count().max(1) as f64
}

#[xray::step(kind = "search")]
async fn retrieve(query: &str) -> Vec<Candidate> {
    tokio::time::sleep(Duration::from_millis(5)).await;
    let titles = [
        "steel water bottle",
        "glass water bottle",
        "bottle opener",
        "yoga mat",
    ];
    (0..200)
        .map(|i| Candidate {
            id: format!("C{i:03}"),
            title: titles[i % titles.len()].to_owned(),
        })
        .collect()
}

/// Scores candidates concurrently in spawned tasks (8 at a time), each recording its verdicts
/// into this step through the handle.
#[xray::step(kind = "llm", skip(candidates), output = false)]
async fn score(query: &str, candidates: Vec<Candidate>) -> Vec<(Candidate, f64)> {
    let step = xray::current_step();
    let query = query.to_owned();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in candidates.chunks(25) {
        let (step, query, chunk) = (step.clone(), query.clone(), chunk.to_vec());
        tasks.spawn(async move {
            let mut scored = Vec::new();
            for c in chunk {
                let s = relevance(&query, &c).await;
                let relevant = step
                    .evaluate(&c.id)
                    .label(&c.title)
                    .score(s)
                    .check_min("relevance", s, 0.5)
                    .passed();
                if relevant {
                    scored.push((c, s));
                }
            }
            scored
        });
    }
    let mut kept = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(scored) => kept.extend(scored),
            Err(e) => xray::fail(format!("a scoring task failed: {e}")),
        }
    }
    xray::output(&serde_json::json!({ "kept": kept.len() }));
    kept
}

#[xray::step(kind = "select", skip(scored))]
async fn pick(scored: Vec<(Candidate, f64)>) -> Option<String> {
    let (best, s) = scored.into_iter().max_by(|a, b| a.1.total_cmp(&b.1))?;
    xray::select(&best.id, format!("highest relevance {s:.2}"));
    Some(best.title)
}

#[xray::execution(name = "async_pipeline", tags("example"))]
async fn run(query: &str) -> Option<String> {
    let candidates = retrieve(query).await;
    let scored = score(query, candidates).await;
    pick(scored).await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (xray_layer, guard, store) = xray::layer().with_default_env().build_with_store()?;
    tracing_subscriber::registry().with(xray_layer).init();

    let picked = run("steel water bottle").await;
    println!("picked: {picked:?}");
    guard.flush();

    let runs = store.list_executions(&ExecutionQuery {
        name: Some("async_pipeline".into()),
        limit: Some(1),
        ..Default::default()
    })?;
    let run = runs.items.first().ok_or("the run was not recorded")?;
    let detail = store.execution(run.id)?.ok_or("the run has no detail")?;
    for step in &detail.steps {
        println!(
            "step {:<8} {:?}: {} in, {} out",
            step.name,
            step.status,
            step.candidates_in.unwrap_or(0),
            step.candidates_out.unwrap_or(0)
        );
    }
    Ok(())
}
