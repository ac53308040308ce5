//! The databases the browser tests look at, written by the real layer (`#[xray::step]`,
//! `xray::evaluate`, a real SQLite file), and the servers in front of them.

#![allow(dead_code)]

use serde::Serialize;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tracing_subscriber::prelude::*;
use uuid::Uuid;
use xray::model::{ExecutionEnd, ExecutionStart, Json, Record, Status};
use xray::store::{ExecutionQuery, ExecutionUpdate, SqliteStore, Store};
use xray_server::{BackgroundServer, Config};

/// A fresh database file under the target directory (removed first if a previous run left it).
pub fn fresh_db(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("viewer-{name}.db"));
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
    path
}

/// A server on an ephemeral loopback port over the database at `path`.
pub fn serve(path: &PathBuf, token: Option<&str>) -> (BackgroundServer, Arc<dyn Store>) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(path).expect("the database opens"));
    let config = Config {
        addr: "127.0.0.1:0".parse().expect("an address"),
        token: token.map(str::to_owned),
        ..Config::default()
    };
    let server = BackgroundServer::start(Arc::clone(&store), config).expect("the server starts");
    (server, store)
}

// ---------------------------------------------------------------------------------------------
// The competitor-selection pipeline (a seller's laptop stand; one run lets phone cases through).

#[derive(Clone, Debug, Serialize)]
pub struct Product {
    pub asin: String,
    pub title: String,
    pub category: String,
    pub price: f64,
    pub rating: f64,
    pub reviews: u32,
}

const KINDS: [(&str, &str); 4] = [
    ("Laptop Stands", "Adjustable aluminium laptop stand"),
    ("Phone Cases", "Shockproof phone case with stand"),
    ("Laptop Accessories", "Laptop stand replacement rubber feet"),
    ("Desk Lamps", "LED desk lamp with stand"),
];

/// 1,200 products, the same on every machine.
pub fn catalog() -> Vec<Product> {
    (0..1_200)
        .map(|i| {
            let (category, title) = KINDS[i % KINDS.len()];
            Product {
                asin: format!("B{i:05}"),
                title: format!("{title} #{i}"),
                category: category.to_owned(),
                price: 10.0 + ((i * 37) % 90) as f64,
                rating: 1.0 + ((i * 13) % 41) as f64 / 10.0,
                reviews: ((i * 97) % 3_000) as u32,
            }
        })
        .collect()
}

pub fn seller() -> Product {
    Product {
        asin: "S0000".into(),
        title: "Adjustable laptop stand".into(),
        category: "Laptop Stands".into(),
        price: 40.0,
        rating: 4.6,
        reviews: 1_800,
    }
}

/// What the search step returns for `keywords`.
pub fn search_hits(keywords: &[String], catalog: &[Product]) -> Vec<Product> {
    catalog
        .iter()
        .filter(|p| {
            let title = p.title.to_lowercase();
            keywords.iter().any(|k| title.contains(k.as_str()))
        })
        .cloned()
        .collect()
}

pub const MIN_RATING: f64 = 3.8;

pub fn keywords(creative: bool) -> Vec<String> {
    let mut k: Vec<String> = vec!["adjustable".into(), "laptop".into(), "stand".into()];
    if creative {
        k.push("case".into());
    }
    k
}

#[derive(Debug)]
struct JudgeTimeout;

impl std::fmt::Display for JudgeTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("judge timed out after 30s")
    }
}

#[xray::execution(name = "competitor_selection", tags("demo"), skip(catalog))]
fn find_competitor(
    seller: &Product,
    catalog: &[Product],
    creative: bool,
    judge_fails: bool,
) -> Result<Option<String>, String> {
    let keywords = keyword_generation(seller, creative);
    let candidates = candidate_search(&keywords, catalog);
    let allowed = if creative {
        vec![seller.category.clone(), "Phone Cases".to_owned()]
    } else {
        vec![seller.category.clone()]
    };
    let kept = apply_filters(seller, candidates, &allowed);
    let judged = relevance_check(kept, judge_fails).map_err(|e| e.to_string())?;
    Ok(rank_and_select(seller, judged))
}

#[xray::step(kind = "llm", metadata(model = "mock-llm-1"))]
fn keyword_generation(seller: &Product, creative: bool) -> Vec<String> {
    if creative {
        xray::reasoning(
            "Added 'case': buyers of stands often also search for cases (creative mode).",
        );
    } else {
        xray::reasoning("Keywords are the title's content words.");
    }
    tracing::info!(tokens = 57, "generated keywords");
    keywords(creative)
}

#[xray::step(kind = "search", skip(catalog), output = false)]
fn candidate_search(keywords: &[String], catalog: &[Product]) -> Vec<Product> {
    let hits = search_hits(keywords, catalog);
    xray::candidates(Some(catalog.len() as u64), Some(hits.len() as u64));
    xray::output(&serde_json::json!({ "total_matches": hits.len() }));
    hits
}

#[xray::step(kind = "filter", skip(candidates))]
fn apply_filters(seller: &Product, candidates: Vec<Product>, allowed: &[String]) -> Vec<Product> {
    let (lo, hi) = (seller.price * 0.5, seller.price * 2.0);
    xray::filters(
        &serde_json::json!({ "price": [lo, hi], "min_rating": MIN_RATING, "categories": allowed }),
    );
    candidates
        .into_iter()
        .filter(|c| {
            xray::evaluate(&c.asin)
                .label(&c.title)
                .check_range("price", c.price, lo..=hi)
                .check_min("rating", c.rating, MIN_RATING)
                .check_in("category", &c.category, allowed)
                .passed()
        })
        .collect()
}

/// How sure the mock judge is of its verdict on `c`: surer of some candidates than of others.
pub fn judge_confidence(c: &Product) -> f64 {
    if c.title.contains("replacement") {
        0.93
    } else {
        0.6 + f64::from(c.reviews % 40) / 100.0
    }
}

#[xray::step(kind = "llm", skip(candidates))]
fn relevance_check(candidates: Vec<Product>, fails: bool) -> Result<Vec<Product>, JudgeTimeout> {
    if fails {
        tracing::warn!("the judge did not answer");
        return Err(JudgeTimeout);
    }
    Ok(candidates
        .into_iter()
        .filter(|c| {
            let accessory = c.title.contains("replacement");
            xray::evaluate(&c.asin)
                .label(&c.title)
                .metric("confidence", judge_confidence(c))
                .snapshot(&serde_json::json!({
                    "rationale": if accessory { "an accessory" } else { "the product itself" }
                }))
                .check("relevant", !accessory, || {
                    format!("judged an accessory: {}", c.title)
                })
                .passed()
        })
        .collect())
}

#[xray::step(kind = "rank", skip(candidates))]
fn rank_and_select(seller: &Product, candidates: Vec<Product>) -> Option<String> {
    let mut best: Option<(String, f64)> = None;
    for c in &candidates {
        let proximity = 1.0 - ((c.price - seller.price).abs() / seller.price).min(1.0);
        let score =
            0.5 * (f64::from(c.reviews) / 3_000.0) + 0.3 * (c.rating / 5.0) + 0.2 * proximity;
        xray::evaluate(&c.asin)
            .label(&c.title)
            .score(score)
            .metric("reviews", f64::from(c.reviews))
            .record();
        if best.as_ref().is_none_or(|(_, b)| score > *b) {
            best = Some((c.asin.clone(), score));
        }
    }
    let (winner, score) = best?;
    xray::select(&winner, format!("highest weighted score {score:.3}"));
    Some(winner)
}

// ---------------------------------------------------------------------------------------------
// A pipeline with a 100,000-evaluation step (every row kept) and a sampled step.

pub const BULK: usize = 100_000;
pub const SAMPLED_TOTAL: usize = 3_000;
pub const SAMPLED_CAP: usize = 1_000;

#[xray::execution(name = "bulk_scoring", tags("load"))]
fn bulk_scoring() -> usize {
    let kept = prefilter();
    score_all(kept)
}

#[xray::step(kind = "filter", capture = 1000)]
fn prefilter() -> usize {
    (0..SAMPLED_TOTAL)
        .filter(|i| {
            xray::evaluate(format!("P{i:05}"))
                .check_min("quality", (i % 10) as f64, 3.0)
                .passed()
        })
        .count()
}

#[xray::step(kind = "rank", capture = "all")]
fn score_all(_kept: usize) -> usize {
    let mut passed = 0;
    for i in 0..BULK {
        let score = ((i * 7_919) % 10_007) as f64 / 10_007.0;
        if xray::evaluate(format!("C{i:06}"))
            .label(format!("Bulk candidate {i}"))
            .score(score)
            .check_min("score", score, 0.2)
            .passed()
        {
            passed += 1;
        }
    }
    xray::select("C000000", "first of the batch");
    passed
}

/// The recorder's payload cap in the main database.
pub const MAX_PAYLOAD_BYTES: usize = 4 * 1024;

/// The main database: three competitor-selection runs (normal, creative, failing) and the
/// bulk run, with the creative run tagged `creative`.
pub struct Main {
    pub server: BackgroundServer,
    pub store: Arc<dyn Store>,
    pub path: PathBuf,
    pub normal: Uuid,
    pub creative: Uuid,
    pub failing: Uuid,
    pub bulk: Uuid,
}

/// The main fixture, written once per test binary.
pub fn main() -> &'static Main {
    static MAIN: OnceLock<Main> = OnceLock::new();
    MAIN.get_or_init(|| {
        let path = fresh_db("main");
        {
            let (layer, guard) = xray::layer()
                .sqlite(&path)
                .flush_interval(Duration::from_millis(20))
                // Small enough that the filter step's output (the kept products) is cut.
                .max_payload_bytes(Some(MAX_PAYLOAD_BYTES))
                .build()
                .expect("the layer builds");
            let subscriber = tracing_subscriber::registry().with(layer);
            tracing::subscriber::with_default(subscriber, || {
                let catalog = catalog();
                let seller = seller();
                let _ = find_competitor(&seller, &catalog, false, false);
                let _ = find_competitor(&seller, &catalog, true, false);
                let _ = find_competitor(&seller, &catalog, false, true);
                bulk_scoring();
            });
            assert!(
                guard.flush_timeout(Duration::from_secs(30)),
                "the recorder flushed"
            );
        }
        let (server, store) = serve(&path, None);
        let runs = store
            .list_executions(&ExecutionQuery {
                limit: Some(10),
                ..Default::default()
            })
            .expect("runs")
            .items;
        assert_eq!(runs.len(), 4, "four runs recorded");
        // Newest first: bulk, failing, creative, normal.
        let (bulk, failing, creative, normal) = (runs[0].id, runs[1].id, runs[2].id, runs[3].id);
        store
            .update_execution(
                creative,
                &ExecutionUpdate {
                    tags: Some(vec!["demo".into(), "creative".into()]),
                    notes: Some("The run that matched a phone case to a laptop stand.".into()),
                },
            )
            .expect("tags");
        Main {
            server,
            store,
            path,
            normal,
            creative,
            failing,
            bulk,
        }
    })
}

/// The expected number of candidates in the normal run's filter step that failed `rating`.
pub fn expected_rating_failures(creative: bool) -> usize {
    search_hits(&keywords(creative), &catalog())
        .iter()
        .filter(|p| p.rating < MIN_RATING)
        .count()
}

/// A database of `n` finished runs written straight through the store, newest `now`.
pub fn many_runs(name: &str, n: usize) -> PathBuf {
    let path = fresh_db(name);
    let store = SqliteStore::open(&path).expect("the database opens");
    let now = xray::model::now_us();
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..n {
        let started_at = now - ((n - i) as i64) * 1_000_000;
        let secs = (started_at / 1_000_000) as u64;
        let nanos = ((started_at % 1_000_000) * 1_000) as u32;
        let id = Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, secs, nanos));
        batch.push(Record::ExecutionStarted(ExecutionStart {
            id,
            name: ["competitor_selection", "query_rewrite", "bulk_scoring"][i % 3].to_owned(),
            started_at,
            tags: vec![if i % 2 == 0 { "nightly" } else { "adhoc" }.to_owned()],
            metadata: Json::from(serde_json::json!({ "batch": i / 1000 })),
            service: Some("load-test".into()),
            host: None,
            pid: None,
        }));
        batch.push(Record::ExecutionFinished(ExecutionEnd {
            id,
            completed_at: started_at + 1_000 + (i as i64 % 500) * 100,
            status: if i % 50 == 0 {
                Status::Error
            } else {
                Status::Ok
            },
            error: (i % 50 == 0).then(|| "upstream timeout".to_owned()),
            metadata: None,
            input: None,
            output: None,
            dropped_records: 0,
        }));
        if batch.len() >= 10_000 {
            store.write(&batch).expect("a batch is written");
            batch.clear();
        }
    }
    store.write(&batch).expect("a batch is written");
    path
}
