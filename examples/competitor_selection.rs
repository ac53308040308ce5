//! The demo: competitor selection, instrumented with X-Ray, recorded into `xray.db` (or
//! `$XRAY_DB`), and the viewer serving it at <http://127.0.0.1:7777/> (or `$XRAY_ADDR`).
//!
//! For each seller product: an LLM-ish step generates keywords, a search returns thousands of
//! candidates, filters judge each one with a specific reason, a judge removes accessories, and
//! a ranker selects one. One run goes wrong on purpose (the "creative" keyword generator adds an
//! off-topic keyword and the category check is too loose), and the end of the program asks the
//! store the question a person would: *which step let a phone case through for a laptop stand?*
//! Then it serves the API and the viewer over the same file, in the same process, and records a
//! new run every few seconds so the viewer has something to show live. Ctrl-C stops it.
//!
//! ```sh
//! cargo run -p xray-examples --example competitor_selection            # record, then serve
//! cargo run -p xray-examples --example competitor_selection -- --once  # record and exit
//! ```

use serde::Serialize;
use tracing_subscriber::{fmt, prelude::*, EnvFilter};
use xray::store::{ExecutionQuery, LineageQuery, StepQuery};

#[derive(Clone, Debug, Serialize)]
struct Product {
    asin: String,
    title: String,
    category: String,
    price: f64,
    rating: f64,
    reviews: u32,
}

const CATALOG: [(&str, &str); 5] = [
    ("Laptop Stands", "Adjustable aluminium laptop stand"),
    ("Phone Cases", "Shockproof phone case"),
    ("Laptop Accessories", "Laptop stand replacement rubber feet"),
    ("Desk Lamps", "LED desk lamp with stand"),
    ("Monitor Arms", "Dual monitor arm stand"),
];

/// A small deterministic generator (no dependency, same catalog on every machine).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as f64) / ((1u64 << 31) as f64)
    }
}

fn catalog(n: usize) -> Vec<Product> {
    let mut rng = Lcg(42);
    (0..n)
        .map(|i| {
            let (category, title) = CATALOG[i % CATALOG.len()];
            Product {
                asin: format!("B0{:08X}", i * 2654435761 % 0xFFFF_FFFF),
                title: format!("{title} #{i}"),
                category: category.to_owned(),
                price: (5.0 + rng.next() * 95.0 * 100.0).round() / 100.0,
                rating: (1.0 + rng.next() * 4.0 * 10.0).round() / 10.0,
                reviews: (rng.next() * 5_000.0) as u32,
            }
        })
        .collect()
}

#[xray::execution(name = "competitor_selection", tags("demo"), skip(catalog))]
fn find_competitor(seller: &Product, catalog: &[Product], creative: bool) -> Option<Product> {
    let keywords = keyword_generation(seller, creative);
    let candidates = candidate_search(&keywords, catalog);
    let allowed = if creative {
        vec![seller.category.clone(), "Phone Cases".into()]
    } else {
        vec![seller.category.clone()]
    };
    let kept = apply_filters(seller, candidates, &allowed);
    let relevant = relevance_evaluation(kept, creative);
    rank_and_select(seller, relevant)
}

#[xray::step(kind = "llm", metadata(model = "mock-llm-1"))]
fn keyword_generation(seller: &Product, creative: bool) -> Vec<String> {
    let mut keywords: Vec<String> = seller
        .title
        .to_lowercase()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    keywords.retain(|k| k.len() > 3 && !k.starts_with('#'));
    if creative {
        keywords.push("case".into());
        xray::reasoning(
            "Added 'case': buyers of stands often also search for cases (creative mode).",
        );
    } else {
        xray::reasoning("Keywords are the title's content words.");
    }
    xray::metadata("prompt", &format!("Keywords for: {}", seller.title));
    xray::metadata(
        "tokens",
        &serde_json::json!({ "prompt": 57, "completion": 12 }),
    );
    keywords
}

#[xray::step(kind = "search", skip(catalog), output = false)]
fn candidate_search(keywords: &[String], catalog: &[Product]) -> Vec<Product> {
    let hits: Vec<Product> = catalog
        .iter()
        .filter(|p| {
            keywords
                .iter()
                .any(|k| p.title.to_lowercase().contains(k.as_str()))
        })
        .cloned()
        .collect();
    xray::candidates(Some(catalog.len() as u64), Some(hits.len() as u64));
    xray::output(
        &serde_json::json!({ "total_matches": hits.len(), "first": hits.iter().take(5).map(|p| &p.asin).collect::<Vec<_>>() }),
    );
    hits
}

#[xray::step(kind = "filter", skip(candidates))]
fn apply_filters(
    seller: &Product,
    candidates: Vec<Product>,
    allowed_categories: &[String],
) -> Vec<Product> {
    let (lo, hi) = (seller.price * 0.5, seller.price * 2.0);
    xray::filters(
        &serde_json::json!({ "price": [lo, hi], "min_rating": 3.8, "min_reviews": 100, "categories": allowed_categories }),
    );
    candidates
        .into_iter()
        .filter(|c| {
            xray::evaluate(&c.asin)
                .label(&c.title)
                .check_range("price", c.price, lo..=hi)
                .check_min("rating", c.rating, 3.8)
                .check_min("reviews", c.reviews, 100)
                .check_in("category", &c.category, allowed_categories)
                .passed()
        })
        .collect()
}

#[xray::step(kind = "llm", skip(candidates))]
fn relevance_evaluation(candidates: Vec<Product>, lenient: bool) -> Vec<Product> {
    candidates
        .into_iter()
        .filter(|c| {
            let accessory =
                c.title.contains("replacement") || (!lenient && c.category == "Phone Cases");
            xray::evaluate(&c.asin)
                .label(&c.title)
                .metric("confidence", if accessory { 0.93 } else { 0.81 })
                .check("relevant", !accessory, || {
                    format!("judged an accessory: {}", c.title)
                })
                .passed()
        })
        .collect()
}

#[xray::step(kind = "rank", skip(candidates))]
fn rank_and_select(seller: &Product, candidates: Vec<Product>) -> Option<Product> {
    let score = |c: &Product| {
        let proximity = 1.0 - ((c.price - seller.price).abs() / seller.price).min(1.0);
        0.5 * (f64::from(c.reviews) / 5_000.0) + 0.3 * (c.rating / 5.0) + 0.2 * proximity
    };
    let mut best: Option<(Product, f64)> = None;
    for c in candidates {
        let s = score(&c);
        xray::evaluate(&c.asin)
            .label(&c.title)
            .score(s)
            .metric("reviews", f64::from(c.reviews))
            .record();
        if best.as_ref().is_none_or(|(_, b)| s > *b) {
            best = Some((c, s));
        }
    }
    let (winner, s) = best?;
    xray::select(
        &winner.asin,
        format!("highest weighted score {s:.3} (reviews 50%, rating 30%, price proximity 20%)"),
    );
    Some(winner)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let once = std::env::args().any(|a| a == "--once");
    let (xray_layer, guard, store) = xray::layer().with_default_env().build_with_store()?;
    tracing_subscriber::registry()
        .with(fmt::layer().with_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        ))
        .with(xray_layer)
        .init();

    let products = catalog(6_000);
    let sellers: Vec<Product> = products
        .iter()
        .filter(|p| p.category == "Laptop Stands")
        .take(4)
        .cloned()
        .collect();
    for (i, seller) in sellers.iter().enumerate() {
        let creative = i == 2; // the run that goes wrong
        let winner = find_competitor(seller, &products, creative);
        println!(
            "{:<8} {} -> {}",
            if creative { "creative" } else { "normal" },
            seller.title,
            winner
                .map(|w| format!("{} ({})", w.title, w.category))
                .unwrap_or_else(|| "no match".into())
        );
    }
    guard.flush();

    // The question a person brings: a phone case was matched to a laptop stand. Which step?
    println!("\nRecorded runs:");
    for run in store
        .list_executions(&ExecutionQuery {
            limit: Some(10),
            ..Default::default()
        })?
        .items
    {
        println!(
            "  {} {} {:?} steps={} funnel {:?} -> {:?}",
            run.id, run.name, run.status, run.step_count, run.candidates_in, run.candidates_out
        );
    }
    let filters = store.find_steps(&StepQuery {
        kind: Some("filter".into()),
        ..Default::default()
    })?;
    for step in &filters.items {
        let summary = step.summary.as_ref();
        let allowed_phone_cases = summary
            .and_then(|s| s.checks.iter().find(|c| c.name == "category"))
            .map(|c| c.failed);
        println!(
            "  filter step {} eliminated {:.1}% (category failures: {:?})",
            step.id,
            step.elimination.unwrap_or(0.0) * 100.0,
            allowed_phone_cases
        );
    }
    if let Some(bad) = store
        .find_steps(&StepQuery {
            kind: Some("rank".into()),
            ..Default::default()
        })?
        .items
        .iter()
        .find_map(|s| {
            let step = store.step(s.id).ok()??;
            let chosen = step.selection.first()?.candidate_id.clone();
            let lineage = store
                .candidate_lineage(&chosen, &LineageQuery::default())
                .ok()?;
            let is_phone_case = lineage
                .items
                .iter()
                .any(|l| l.label.as_deref().is_some_and(|t| t.contains("phone case")));
            is_phone_case.then_some((chosen, lineage))
        })
    {
        println!("\nThe phone case {} was selected. Its path:", bad.0);
        for l in bad.1.items.iter().rev() {
            let why: Vec<String> = l
                .checks
                .iter()
                .map(|c| {
                    format!(
                        "{}={}",
                        c.name,
                        if c.passed {
                            "pass".into()
                        } else {
                            c.reason.clone().unwrap_or_default()
                        }
                    )
                })
                .collect();
            println!(
                "  {:<22} passed={} {}",
                l.step_name,
                l.passed,
                why.join(", ")
            );
        }
        // Why did it pass the filters? Look at what that run's filter step allowed, and at the
        // keywords that made the search return phone cases at all.
        for l in bad
            .1
            .items
            .iter()
            .filter(|l| l.step_name == "apply_filters")
        {
            if let Some(step) = store.step(l.step_id)? {
                let filters = step.filters.map(|f| f.to_value()).unwrap_or_default();
                println!(
                    "  filters of that run's apply_filters step: categories = {}",
                    filters["categories"]
                );
            }
            if let Some(run) = store.execution(l.execution_id)? {
                if let Some(kw) = run.steps.iter().find(|s| s.name == "keyword_generation") {
                    if let Some(step) = store.step(kw.id)? {
                        println!(
                            "  keywords: {}  reasoning: {}",
                            step.output.map(|o| o.to_string()).unwrap_or_default(),
                            step.reasoning.unwrap_or_default()
                        );
                    }
                }
            }
        }
    }
    let db = std::env::var("XRAY_DB").unwrap_or_else(|_| xray::DEFAULT_DB_PATH.into());
    println!("\nEverything above is in {db}.");
    if once {
        return Ok(());
    }
    serve(store, &sellers, &products)
}

/// Serves the viewer over the store the layer writes, and records a run every few seconds.
fn serve(
    store: std::sync::Arc<dyn xray::store::Store>,
    sellers: &[Product],
    products: &[Product],
) -> Result<(), Box<dyn std::error::Error>> {
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
        "\nX-Ray viewer at {}/ — recording a new run every 5 s; Ctrl-C to stop.",
        server.url()
    );
    for round in 0.. {
        std::thread::sleep(std::time::Duration::from_secs(5));
        let seller = &sellers[round % sellers.len()];
        find_competitor(seller, products, round % 7 == 3);
    }
    Ok(())
}
