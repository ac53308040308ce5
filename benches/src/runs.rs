//! Runs of the latency benchmarks' database, record by record: a four-step pipeline
//! (`keyword_generation`, `candidate_search`, `apply_filters` judging
//! [`EVALUATIONS_PER_FILTER`] candidates on price and rating, `rank_and_select`), one run in
//! twenty failed. `server_latency` fills its databases with them; `pg_ingest` times how fast a
//! store takes many of these small runs.

use crate::SplitMix64;
use uuid::Uuid;
use xray::model::{
    Check, Evaluation, ExecutionEnd, ExecutionStart, Json, Record, Selection, Status, StepRecord,
};

/// Candidates the filter step of each run judges.
pub const EVALUATIONS_PER_FILTER: usize = 50;

fn step(execution_id: Uuid, name: &str, kind: &str, at: i64) -> StepRecord {
    StepRecord {
        id: Uuid::now_v7(),
        execution_id,
        parent_id: None,
        name: name.into(),
        kind: Some(kind.into()),
        started_at: at,
        ended_at: Some(at + 1_000),
        status: Status::Ok,
        error: None,
        input: Some(Json::from(
            serde_json::json!({"title": "Aluminium laptop stand", "n": at % 97}),
        )),
        output: None,
        filters: None,
        selection: vec![],
        reasoning: None,
        metadata: Json::from(serde_json::json!({})),
        candidates_in: None,
        candidates_out: None,
        summary: None,
        evaluations: vec![],
        logs: vec![],
        logs_dropped: 0,
    }
}

/// The records of one run starting at `at` (µs): its start, its four steps' ends, its end; and
/// its id.
pub fn run_records(rng: &mut SplitMix64, at: i64) -> (Vec<Record>, Uuid) {
    let id = Uuid::now_v7();
    let mut records = vec![Record::ExecutionStarted(ExecutionStart {
        id,
        name: [
            "competitor_selection",
            "listing_optimization",
            "product_categorization",
        ][rng.below(3) as usize]
            .into(),
        started_at: at,
        tags: vec!["bench".into()],
        metadata: Json::from(serde_json::json!({})),
        service: Some("bench".into()),
        host: None,
        pid: None,
    })];
    records.push(Record::StepFinished(Box::new(step(
        id,
        "keyword_generation",
        "llm",
        at,
    ))));
    let mut search = step(id, "candidate_search", "search", at + 1_000);
    search.candidates_out = Some(EVALUATIONS_PER_FILTER as u64);
    records.push(Record::StepFinished(Box::new(search)));
    let mut filter = step(id, "apply_filters", "filter", at + 2_000);
    let min_rating = 3.0 + rng.below(15) as f64 / 10.0;
    filter.evaluations = (0..EVALUATIONS_PER_FILTER)
        .map(|_| {
            let rating = 1.0 + rng.below(40) as f64 / 10.0;
            let price = 5.0 + rng.below(10_000) as f64 / 100.0;
            let price_ok = (15.0..=60.0).contains(&price);
            let rating_ok = rating >= min_rating;
            Evaluation {
                candidate_id: format!("B{:07}", rng.below(1_000_000)),
                label: Some(format!("Product {}", rng.below(100_000))),
                passed: price_ok && rating_ok,
                score: None,
                selected: false,
                checks: vec![
                    Check {
                        name: "price".into(),
                        passed: price_ok,
                        reason: (!price_ok).then(|| format!("${price:.2} outside $15.00–$60.00")),
                        observed: Some(price.into()),
                        threshold: None,
                        op: Some("range".into()),
                    },
                    Check {
                        name: "rating".into(),
                        passed: rating_ok,
                        reason: (!rating_ok).then(|| format!("{rating} < {min_rating} minimum")),
                        observed: Some(rating.into()),
                        threshold: Some(min_rating.into()),
                        op: Some("min".into()),
                    },
                ],
                metrics: vec![],
                snapshot: None,
            }
        })
        .collect();
    let kept = filter.evaluations.iter().filter(|e| e.passed).count() as u64;
    filter.candidates_in = Some(EVALUATIONS_PER_FILTER as u64);
    filter.candidates_out = Some(kept);
    let winner = filter
        .evaluations
        .iter()
        .find(|e| e.passed)
        .map(|e| e.candidate_id.clone());
    records.push(Record::StepFinished(Box::new(filter)));
    let mut rank = step(id, "rank_and_select", "rank", at + 3_000);
    if let Some(w) = &winner {
        rank.selection = vec![Selection {
            candidate_id: w.clone(),
            reason: "highest score".into(),
        }];
    }
    records.push(Record::StepFinished(Box::new(rank)));
    records.push(Record::ExecutionFinished(ExecutionEnd {
        id,
        completed_at: at + 4_000,
        status: if rng.below(20) == 0 {
            Status::Error
        } else {
            Status::Ok
        },
        error: None,
        metadata: None,
        input: None,
        output: None,
        dropped_records: 0,
    }));
    (records, id)
}
