//! The whole SDK end to end: a 5-step competitor-selection pipeline (sync and async steps, a
//! nested step, rayon workers recording through a handle, a failing and a panicking step)
//! recorded into a real SQLite file, then read back through a fresh store.

use rayon::prelude::*;
use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;
use tracing_subscriber::prelude::*;
use xray::model::Status;
use xray::store::{EvaluationQuery, ExecutionQuery, LineageQuery, SqliteStore, StepQuery, Store};

#[derive(Clone, Debug, Serialize)]
struct Product {
    asin: String,
    title: String,
    category: String,
    price: f64,
    rating: f64,
}

const CATEGORIES: [&str; 3] = ["Laptop Stands", "Phone Cases", "Laptop Accessories"];

fn catalog(n: usize) -> Vec<Product> {
    (0..n)
        .map(|i| Product {
            asin: format!("B{i:05}"),
            title: format!("{} #{i}", CATEGORIES[i % 3]),
            category: CATEGORIES[i % 3].to_owned(),
            price: 5.0 + ((i * 37) % 100) as f64,
            rating: 1.0 + ((i * 13) % 40) as f64 / 10.0,
        })
        .collect()
}

struct Thresholds {
    min_rating: f64,
}

#[xray::execution(name = "competitor_selection", tags("test", "e2e"), skip(catalog, rt))]
fn find_competitor(
    reference: &Product,
    catalog: &[Product],
    judge_fails: bool,
    rt: &tokio::runtime::Runtime,
) -> Result<Option<String>, String> {
    let keywords = generate_keywords(reference);
    let candidates = rt.block_on(candidate_search(keywords, catalog.to_vec()));
    let thresholds = Thresholds {
        min_rating: if judge_fails { 4.8 } else { 2.0 },
    };
    let kept = apply_filters(reference, candidates, &thresholds);
    let judged = relevance_evaluation(kept, judge_fails).map_err(|e| e.to_string())?;
    Ok(rank_and_select(judged))
}

#[xray::step(kind = "llm")]
fn generate_keywords(reference: &Product) -> Vec<String> {
    xray::metadata("model", &"mock-llm-1");
    xray::reasoning("The title names the product type; the category narrows it.");
    tracing::info!(tokens = 42, "generated keywords");
    vec!["laptop".into(), "stand".into()]
}

#[xray::step(kind = "search", output = false)]
async fn candidate_search(keywords: Vec<String>, catalog: Vec<Product>) -> Vec<Product> {
    tokio::task::yield_now().await;
    let hits: Vec<Product> = catalog
        .into_iter()
        .filter(|p| !keywords.is_empty() && p.asin.len() == 6)
        .collect();
    xray::candidates(None, Some(hits.len() as u64));
    hits
}

#[xray::step(kind = "filter", skip(candidates, thresholds), metadata(min_rating = thresholds.min_rating))]
fn apply_filters(
    reference: &Product,
    candidates: Vec<Product>,
    thresholds: &Thresholds,
) -> Vec<Product> {
    let (lo, hi) = normalize_price_band(reference.price);
    xray::filters(&serde_json::json!({ "price": [lo, hi], "min_rating": thresholds.min_rating }));
    let step = xray::current_step();
    let min_rating = thresholds.min_rating;
    let category = reference.category.clone();
    candidates
        .into_par_iter()
        .filter(|c| {
            step.evaluate(&c.asin)
                .label(&c.title)
                .check_range("price", c.price, lo..=hi)
                .check_min("rating", c.rating, min_rating)
                .check("category", c.category == category, || {
                    format!("{} ≠ {}", c.category, category)
                })
                .passed()
        })
        .collect()
}

#[xray::step(kind = "transform")]
fn normalize_price_band(price: f64) -> (f64, f64) {
    (price * 0.5, price * 2.0)
}

#[derive(Debug)]
struct JudgeTimeout;

impl std::fmt::Display for JudgeTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("judge timed out after 30s")
    }
}

#[xray::step(kind = "llm", skip(candidates))]
fn relevance_evaluation(
    candidates: Vec<Product>,
    fails: bool,
) -> Result<Vec<Product>, JudgeTimeout> {
    if fails {
        return Err(JudgeTimeout);
    }
    Ok(candidates
        .into_iter()
        .filter(|c| {
            let relevant = !c.title.contains("#1");
            xray::evaluate(&c.asin)
                .metric("confidence", 0.9)
                .check("relevant", relevant, "accessory, not a stand")
                .passed()
        })
        .collect())
}

#[xray::step(kind = "rank", skip_all)]
fn rank_and_select(candidates: Vec<Product>) -> Option<String> {
    let mut best: Option<(&Product, f64)> = None;
    for c in &candidates {
        let score = c.rating * 10.0 - c.price / 10.0;
        xray::evaluate(&c.asin).score(score).record();
        if best.is_none_or(|(_, s)| score > s) {
            best = Some((c, score));
        }
    }
    let (winner, score) = best?;
    xray::select(&winner.asin, format!("highest score {score:.1}"));
    Some(winner.asin.clone())
}

#[xray::step(kind = "enrich")]
fn flaky_enrichment(asin: &str) -> String {
    if asin.starts_with('B') {
        panic!("enrichment service returned garbage for {asin}");
    }
    asin.to_owned()
}

#[test]
fn a_pipeline_run_is_recorded_completely_and_answers_the_questions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("xray.db");
    let (layer, guard) = xray::layer()
        .sqlite(&path)
        .flush_interval(Duration::from_millis(20))
        .build()
        .expect("build");
    let subscriber = tracing_subscriber::registry().with(layer);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let products = catalog(2_400);
    let reference = Product {
        asin: "B0REF".into(),
        title: "Aluminium laptop stand".into(),
        category: "Laptop Stands".into(),
        price: 30.0,
        rating: 4.5,
    };
    let (ok_result, failed_result) = tracing::subscriber::with_default(subscriber, || {
        let ok = find_competitor(&reference, &products, false, &rt);
        let failed = find_competitor(&reference, &products, true, &rt);
        let panicked = std::panic::catch_unwind(|| flaky_enrichment("B00001"));
        assert!(panicked.is_err(), "the panic propagates as without X-Ray");
        (ok, failed)
    });
    assert!(guard.flush(), "flush finished in time");
    assert_eq!(guard.stats().dropped, 0);
    assert_eq!(guard.stats().failed, 0);
    drop(guard);

    // Expected verdicts, computed independently of X-Ray.
    let expected = |min_rating: f64| {
        let (lo, hi) = (15.0, 60.0);
        let mut failed_rating = 0;
        let mut kept = 0;
        for p in &products {
            let price = (lo..=hi).contains(&p.price);
            let rating = p.rating >= min_rating;
            let category = p.category == "Laptop Stands";
            failed_rating += usize::from(!rating);
            kept += usize::from(price && rating && category);
        }
        (failed_rating, kept)
    };
    let (failed_rating_ok, kept_ok) = expected(2.0);
    let (_, kept_strict) = expected(4.8);
    let winner = ok_result.expect("run ok").expect("a winner");
    assert_eq!(failed_result, Err("judge timed out after 30s".to_owned()));

    // Read everything back through a fresh connection to the file.
    let store = SqliteStore::open(&path).expect("reopen");
    let runs = store
        .list_executions(&ExecutionQuery::default())
        .expect("list");
    assert_eq!(
        runs.items.len(),
        3,
        "two pipeline runs and the root panicking step"
    );
    let by_status: HashMap<_, usize> = runs.items.iter().fold(HashMap::new(), |mut m, r| {
        *m.entry((r.name.as_str(), r.status)).or_default() += 1;
        m
    });
    assert_eq!(by_status[&("competitor_selection", Status::Ok)], 1);
    assert_eq!(by_status[&("competitor_selection", Status::Error)], 1);
    assert_eq!(by_status[&("flaky_enrichment", Status::Error)], 1);
    let ok_run = runs
        .items
        .iter()
        .find(|r| r.name == "competitor_selection" && r.status == Status::Ok)
        .expect("ok run");
    assert_eq!(ok_run.tags, vec!["test", "e2e"]);
    assert_eq!(ok_run.step_count, 6);
    assert_eq!(
        ok_run.candidates_in,
        Some(2_400),
        "the funnel starts at the filter's input"
    );
    assert_eq!(
        ok_run.candidates_out,
        Some(1),
        "and ends at the one selected"
    );
    assert!(ok_run.completed_at.expect("completed") >= ok_run.started_at);

    let detail = store.execution(ok_run.id).expect("query").expect("exists");
    let names: Vec<&str> = detail.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "generate_keywords",
            "candidate_search",
            "apply_filters",
            "normalize_price_band",
            "relevance_evaluation",
            "rank_and_select"
        ]
    );
    let step = |name: &str| detail.steps.iter().find(|s| s.name == name).expect(name);
    let filter = step("apply_filters");
    assert_eq!(
        step("normalize_price_band").parent_id,
        Some(filter.id),
        "nested step"
    );
    assert_eq!(filter.parent_id, None);
    assert!(detail.steps.iter().all(|s| s.status == Status::Ok));
    assert!(detail
        .steps
        .iter()
        .all(|s| s.ended_at.expect("ended") >= s.started_at));
    assert_eq!(step("candidate_search").candidates_out, Some(2_400));
    assert_eq!(filter.candidates_in, Some(2_400));
    assert_eq!(filter.candidates_out, Some(kept_ok as u64));
    let input = detail.metadata.to_value();
    assert_eq!(
        input,
        serde_json::json!({}),
        "execution metadata stays empty unless set"
    );

    // The keyword step: input, output, reasoning, metadata and its log line.
    let kw = store
        .step(step("generate_keywords").id)
        .expect("q")
        .expect("step");
    assert_eq!(
        kw.input.expect("input").to_value()["reference"]["asin"],
        "B0REF"
    );
    assert_eq!(
        kw.output.expect("output").to_value(),
        serde_json::json!(["laptop", "stand"])
    );
    assert_eq!(
        kw.reasoning.as_deref(),
        Some("The title names the product type; the category narrows it.")
    );
    assert_eq!(kw.metadata.to_value()["model"], "mock-llm-1");
    assert_eq!(kw.logs.len(), 1);
    assert_eq!(kw.logs[0].message, "generated keywords");
    assert_eq!(kw.logs[0].level, "INFO");
    assert_eq!(kw.logs[0].fields.to_value()["tokens"], 42);

    // The filter step: skipped input, filters, metadata, every evaluation with its reasons.
    let fs = store.step(filter.id).expect("q").expect("step");
    let fin = fs.input.expect("input").to_value();
    assert!(
        fin.get("candidates").is_none() && fin.get("thresholds").is_none(),
        "skipped"
    );
    assert_eq!(fin["reference"]["price"], 30.0);
    assert_eq!(
        fs.filters.expect("filters").to_value(),
        serde_json::json!({"price": [15.0, 60.0], "min_rating": 2.0})
    );
    assert_eq!(fs.metadata.to_value()["min_rating"], 2.0);
    let summary = fs.summary.expect("summary");
    assert_eq!(
        (summary.total, summary.passed, summary.sampled),
        (2_400, kept_ok as u64, false)
    );
    let rating = summary
        .checks
        .iter()
        .find(|c| c.name == "rating")
        .expect("rating");
    assert_eq!(rating.failed, failed_rating_ok as u64);
    // Numeric checks count their reasons by rule: one line for the rating, two for the price
    // band (below, above), each with every candidate it rejected.
    assert_eq!(
        rating.top_reasons,
        vec![("< 2 minimum".to_owned(), rating.failed)]
    );
    let price = summary
        .checks
        .iter()
        .find(|c| c.name == "price")
        .expect("price");
    assert!(
        price
            .top_reasons
            .iter()
            .all(|(r, _)| r == "< 15 (range 15–60)" || r == "> 60 (range 15–60)"),
        "{:?}",
        price.top_reasons
    );
    assert_eq!(
        price.top_reasons.iter().map(|(_, n)| n).sum::<u64>(),
        price.failed
    );

    let failed_rating = store
        .evaluations(
            filter.id,
            &EvaluationQuery {
                passed: Some(false),
                check: Some("rating".into()),
                limit: Some(1000),
                ..Default::default()
            },
        )
        .expect("evaluations");
    assert_eq!(failed_rating.items.len(), failed_rating_ok.min(1000));
    for e in &failed_rating.items {
        let c = e.checks.iter().find(|c| c.name == "rating").expect("check");
        assert!(!c.passed && !e.passed);
        let product = products
            .iter()
            .find(|p| p.asin == e.candidate_id)
            .expect("product");
        let reason = c.reason.as_deref().expect("reason");
        assert!(reason.ends_with("< 2 minimum"), "{reason}");
        assert!(
            reason.starts_with(&format!("{}", product.rating)),
            "{reason} for {}",
            product.rating
        );
        assert_eq!(c.observed, Some(serde_json::json!(product.rating)));
    }
    // Page through every evaluation with the cursor: all 2,400, in recorded order, none twice.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .evaluations(
                filter.id,
                &EvaluationQuery {
                    limit: Some(700),
                    cursor,
                    ..Default::default()
                },
            )
            .expect("page");
        seen.extend(page.items.into_iter().map(|e| e.candidate_id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 2_400);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 2_400);

    // A category failure carries its specific reason.
    let cat = store
        .evaluations(
            filter.id,
            &EvaluationQuery {
                check: Some("category".into()),
                limit: Some(1),
                ..Default::default()
            },
        )
        .expect("q");
    let reason = cat.items[0]
        .checks
        .iter()
        .find(|c| c.name == "category")
        .and_then(|c| c.reason.clone());
    assert!(
        matches!(
            reason.as_deref(),
            Some("Phone Cases ≠ Laptop Stands" | "Laptop Accessories ≠ Laptop Stands")
        ),
        "{reason:?}"
    );

    // Selection and scores.
    let rank = store
        .step(step("rank_and_select").id)
        .expect("q")
        .expect("step");
    assert_eq!(rank.selection.len(), 1);
    assert_eq!(rank.selection[0].candidate_id, winner);
    assert!(rank.selection[0].reason.starts_with("highest score "));
    let top = store
        .evaluations(
            rank.id,
            &EvaluationQuery {
                sort: xray::store::EvaluationSort::ScoreDesc,
                limit: Some(1),
                ..Default::default()
            },
        )
        .expect("q");
    assert_eq!(top.items[0].candidate_id, winner);
    assert!(top.items[0].selected);

    // The failed run: the judge's error, and the > 90% elimination query finds its filter.
    let failed_run = runs
        .items
        .iter()
        .find(|r| r.status == Status::Error && r.name == "competitor_selection")
        .expect("failed");
    assert_eq!(
        failed_run.error.as_deref(),
        Some("judge timed out after 30s")
    );
    let failed_detail = store.execution(failed_run.id).expect("q").expect("exists");
    let judge = failed_detail
        .steps
        .iter()
        .find(|s| s.name == "relevance_evaluation")
        .expect("judge");
    assert_eq!(judge.status, Status::Error);
    assert_eq!(judge.error.as_deref(), Some("judge timed out after 30s"));
    assert!(failed_detail
        .steps
        .iter()
        .all(|s| s.name != "rank_and_select"));
    let eliminated = store
        .find_steps(&StepQuery {
            kind: Some("filter".into()),
            min_elimination: Some(0.9),
            ..Default::default()
        })
        .expect("find");
    assert!(
        kept_strict * 10 < 2_400 && kept_ok * 10 > 2_400,
        "test data: one run over 90%, one under"
    );
    assert_eq!(eliminated.items.len(), 1);
    assert_eq!(eliminated.items[0].execution_id, failed_run.id);
    assert_eq!(eliminated.items[0].execution_name, "competitor_selection");

    // The panicking root step: its own execution, failed, with the panic message.
    let panic_run = runs
        .items
        .iter()
        .find(|r| r.name == "flaky_enrichment")
        .expect("panic run");
    let panic_detail = store.execution(panic_run.id).expect("q").expect("exists");
    assert_eq!(panic_detail.steps.len(), 1);
    assert_eq!(
        panic_detail.steps[0].error.as_deref(),
        Some("panicked: enrichment service returned garbage for B00001")
    );
    assert_eq!(panic_run.error, panic_detail.steps[0].error);

    // Where did the winner go in every run?
    let lineage = store
        .candidate_lineage(&winner, &LineageQuery::default())
        .expect("lineage");
    let steps_seen: Vec<&str> = lineage.items.iter().map(|l| l.step_name.as_str()).collect();
    assert_eq!(
        lineage
            .items
            .iter()
            .filter(|l| l.execution_id == ok_run.id)
            .count(),
        3,
        "{steps_seen:?}"
    );
    assert!(lineage
        .items
        .iter()
        .any(|l| l.step_name == "rank_and_select" && l.selected));
    assert!(
        lineage
            .items
            .iter()
            .any(|l| l.execution_id == failed_run.id),
        "seen by the strict filter too"
    );

    // "Why was X rejected?": a stand kept by the lenient filter and rejected by the strict one.
    let x = products
        .iter()
        .find(|p| {
            p.category == "Laptop Stands"
                && (15.0..=60.0).contains(&p.price)
                && (2.0..4.8).contains(&p.rating)
        })
        .expect("test data has such a product");
    let lineage = store
        .candidate_lineage(&x.asin, &LineageQuery::default())
        .expect("lineage");
    let verdict = |run| {
        lineage
            .items
            .iter()
            .find(|l| l.execution_id == run && l.step_name == "apply_filters")
            .expect("judged")
    };
    assert!(verdict(ok_run.id).passed);
    let strict = verdict(failed_run.id);
    assert!(!strict.passed);
    let rating_check = strict
        .checks
        .iter()
        .find(|c| c.name == "rating")
        .expect("rating");
    assert_eq!(
        rating_check.reason.as_deref(),
        Some(format!("{} < 4.8 minimum", x.rating).as_str())
    );
}
