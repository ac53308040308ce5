//! Every API v1 endpoint against a real server, over runs the real layer recorded into a real
//! SQLite file. Expected values are computed from the catalog, not from X-Ray.

mod support;

use std::collections::BTreeSet;
use support::verdicts::verdict_run;
use support::*;

/// Three runs with minimum ratings 3.5, 3.8 and 4.8 (listed newest first: 4.8, 3.8, 3.5).
const MIN_RATINGS: [f64; 3] = [3.5, 3.8, 4.8];

fn setup() -> (Recorded, Server, Vec<String>) {
    let recorded = record(&MIN_RATINGS);
    let server = serve(&recorded.path, |_| {});
    let ids = execution_ids(&server);
    assert_eq!(ids.len(), 3);
    (recorded, server, ids)
}

fn items(value: &serde_json::Value) -> &Vec<serde_json::Value> {
    value["items"].as_array().expect("items")
}

#[test]
fn the_runs_list_filters_and_pages() {
    let (_db, server, ids) = setup();
    let first = server.json("/api/v1/executions?limit=2");
    assert_eq!(items(&first).len(), 2);
    assert_eq!(items(&first)[0]["id"], ids[0].as_str());
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let second = server.json(&format!("/api/v1/executions?limit=2&cursor={cursor}"));
    assert_eq!(items(&second).len(), 1);
    assert_eq!(items(&second)[0]["id"], ids[2].as_str());
    assert!(second["next_cursor"].is_null());

    let count = |query: &str| items(&server.json(&format!("/api/v1/executions?{query}"))).len();
    assert_eq!(count("name=competitor_selection"), 3);
    assert_eq!(count("name=listing_optimization"), 0);
    assert_eq!(count("status=ok"), 3);
    assert_eq!(count("status=error"), 0);
    assert_eq!(count("tag=test"), 3);
    assert_eq!(count("tag=test&tag=missing"), 0);
    assert_eq!(count("q=apply_filt"), 3, "a step's name is searched");
    assert_eq!(
        count(&format!("q={}", &ids[1][..18])),
        1,
        "the id is searched"
    );
    assert_eq!(count("min_steps=4&max_steps=4"), 3);
    assert_eq!(count("min_steps=5"), 0);
    assert_eq!(count("has_error=false"), 3);
    assert_eq!(count("has_error=true"), 0);
    assert_eq!(count("since=2999-01-01T00:00:00Z"), 0);
    assert_eq!(count("until=2999-01-01T00:00:00Z"), 3);
    let newest = server.json("/api/v1/executions?limit=1");
    let run = &items(&newest)[0];
    assert_eq!(run["step_count"], 4);
    assert_eq!(run["candidates_in"], CATALOG_SIZE);
}

#[test]
fn a_run_has_its_step_tree_counts_and_funnel() {
    let (db, server, ids) = setup();
    let run = server.json(&format!("/api/v1/executions/{}", ids[1]));
    assert_eq!(run["status"], "ok");
    assert_eq!(run["counts"]["steps"], 4);
    assert_eq!(run["counts"]["ok"], 4);
    let names: Vec<&str> = run["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        [
            "keyword_generation",
            "candidate_search",
            "apply_filters",
            "rank_and_select"
        ]
    );
    let kept = expected_kept(3.8).len() as u64;
    let filter = run["funnel"]
        .as_array()
        .expect("funnel")
        .iter()
        .find(|f| f["name"] == "apply_filters")
        .expect("the filter is in the funnel");
    assert_eq!(filter["candidates_in"], CATALOG_SIZE);
    assert_eq!(filter["candidates_out"], kept);
    let lost: u64 = filter["lost_to"]
        .as_array()
        .expect("lost_to")
        .iter()
        .map(|l| l["eliminated"].as_u64().expect("count"))
        .sum();
    assert_eq!(
        lost,
        CATALOG_SIZE as u64 - kept,
        "every eliminated candidate is attributed to one check"
    );
    let checks: BTreeSet<&str> = filter["lost_to"]
        .as_array()
        .expect("lost_to")
        .iter()
        .map(|l| l["check"].as_str().expect("check"))
        .collect();
    assert_eq!(checks, BTreeSet::from(["category", "price", "rating"]));
    // Each check also says how many failed it in all, which its reasons count: the rating's
    // one rule covers every candidate under the minimum, first to fail it or not.
    let rating = filter["lost_to"]
        .as_array()
        .expect("lost_to")
        .iter()
        .find(|l| l["check"] == "rating")
        .expect("rating");
    let failed = rating["failed"].as_u64().expect("failed");
    assert!(failed >= rating["eliminated"].as_u64().expect("eliminated"));
    assert_eq!(
        rating["top_reasons"],
        serde_json::json!([["< 3.8 minimum", failed]])
    );
    assert_eq!(
        run["output"].as_str(),
        db.selected[1].as_deref(),
        "the run's output is its selection"
    );
}

#[test]
fn a_step_has_everything_it_recorded() {
    let (db, server, ids) = setup();
    let keywords = server.json(&format!(
        "/api/v1/steps/{}",
        step_id(&server, &ids[1], "keyword_generation")
    ));
    assert_eq!(keywords["kind"], "llm");
    assert_eq!(keywords["input"]["title"], "Aluminium laptop stand");
    assert_eq!(
        keywords["output"],
        serde_json::json!(["aluminium", "laptop", "stand"])
    );
    assert_eq!(keywords["metadata"]["model"], "mock-llm-1");
    assert_eq!(keywords["reasoning"], "The title names the product type.");
    assert_eq!(keywords["logs"][0]["message"], "generated keywords");
    assert_eq!(keywords["execution_name"], "competitor_selection");
    assert!(keywords["duration_us"].as_i64().expect("duration") >= 0);
    assert!(keywords.get("evaluations").is_none());

    let filter = server.json(&format!(
        "/api/v1/steps/{}",
        step_id(&server, &ids[1], "apply_filters")
    ));
    assert_eq!(filter["filters"]["min_rating"], 3.8);
    let summary = &filter["summary"];
    assert_eq!(summary["total"], CATALOG_SIZE);
    assert_eq!(summary["sampled"], false);
    let rating = summary["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == "rating")
        .expect("rating check");
    assert_eq!(rating["failed"], expected_failed_rating(3.8));

    let rank = server.json(&format!(
        "/api/v1/steps/{}",
        step_id(&server, &ids[1], "rank_and_select")
    ));
    assert_eq!(
        rank["selection"][0]["candidate_id"].as_str(),
        db.selected[1].as_deref()
    );
    assert!(rank["selection"][0]["reason"]
        .as_str()
        .expect("reason")
        .starts_with("highest score"));
}

#[test]
fn a_check_the_step_never_made_is_a_400_naming_its_checks() {
    let (_db, server, ids) = setup();
    let step = step_id(&server, &ids[1], "apply_filters");
    let reply = server.get(&format!(
        "/api/v1/steps/{step}/evaluations?passed=false&check=ratng"
    ));
    assert_eq!(reply.status, 400, "{}", reply.body);
    let error = &reply.json()["error"];
    assert_eq!(error["field"], "check", "{error}");
    let message = error["message"].as_str().unwrap_or("");
    assert!(
        message.contains("\"ratng\"") && message.contains("rating") && message.contains("price"),
        "names the check asked for and the step's own: {message}"
    );
    // `check=` with no value (a form's "any check") is no filter, also when nothing matches.
    let reply = server.get(&format!("/api/v1/steps/{step}/evaluations?check=&limit=1"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(items(&reply.json()).len(), 1);
    let reply = server.get(&format!(
        "/api/v1/steps/{step}/evaluations?check=&q=no-such-candidate"
    ));
    assert_eq!(reply.status, 200, "{}", reply.body);
    // A check the step made is answered, even when no candidate failed it.
    let reply = server.get(&format!(
        "/api/v1/steps/{step}/evaluations?passed=false&check=price&q=no-such-candidate"
    ));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(items(&reply.json()).is_empty());
}

#[test]
fn the_candidates_that_failed_the_rating_check_page_through() {
    let (_db, server, ids) = setup();
    let step = step_id(&server, &ids[1], "apply_filters");
    let mut seen = 0;
    let mut cursor = String::new();
    loop {
        let page = server.json(&format!(
            "/api/v1/steps/{step}/evaluations?passed=false&check=rating&limit=300{cursor}"
        ));
        for e in items(&page) {
            let rating = e["checks"]
                .as_array()
                .expect("checks")
                .iter()
                .find(|c| c["name"] == "rating")
                .expect("a rating check");
            assert_eq!(rating["passed"], false);
            let reason = rating["reason"].as_str().expect("a reason");
            assert!(reason.contains("< 3.8"), "specific reason: {reason}");
            assert_eq!(e["passed"], false);
            seen += 1;
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(seen, expected_failed_rating(3.8));

    let passed = server.json(&format!(
        "/api/v1/steps/{step}/evaluations?passed=true&limit=1000"
    ));
    let passed: BTreeSet<String> = items(&passed)
        .iter()
        .map(|e| e["candidate_id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(passed, expected_kept(3.8).into_iter().collect());

    let found = server.json(&format!("/api/v1/steps/{step}/evaluations?q=B00012"));
    assert_eq!(items(&found).len(), 1);
    assert_eq!(items(&found)[0]["label"], "Laptop Stands #12");

    let rank = step_id(&server, &ids[1], "rank_and_select");
    let sorted = server.json(&format!(
        "/api/v1/steps/{rank}/evaluations?sort=score&limit=1000"
    ));
    let scores: Vec<f64> = items(&sorted)
        .iter()
        .map(|e| e["score"].as_f64().expect("score"))
        .collect();
    assert!(!scores.is_empty());
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "highest score first"
    );
    // By a metric: the cheapest first, every candidate once.
    let by_price = server.json(&format!(
        "/api/v1/steps/{rank}/evaluations?sort=metric_asc&metric=price&limit=1000"
    ));
    let prices: Vec<f64> = items(&by_price)
        .iter()
        .map(|e| {
            let metrics = e["metrics"].as_array().expect("metrics");
            assert_eq!(metrics[0][0], "price");
            metrics[0][1].as_f64().expect("a price")
        })
        .collect();
    assert_eq!(prices.len(), scores.len());
    assert!(prices.windows(2).all(|w| w[0] <= w[1]), "cheapest first");
    assert!(prices.first() < prices.last(), "prices differ: {prices:?}");
}

#[test]
fn the_steps_query_finds_every_run_whose_filter_eliminated_over_90_percent() {
    let (_db, server, ids) = setup();
    let found = server.json("/api/v1/steps?kind=filter&min_elimination=0.9");
    let found: BTreeSet<&str> = items(&found)
        .iter()
        .map(|s| s["execution_id"].as_str().expect("id"))
        .collect();
    let expected: BTreeSet<&str> = MIN_RATINGS
        .iter()
        .rev()
        .zip(&ids)
        .filter(|(min, _)| 1.0 - expected_kept(**min).len() as f64 / CATALOG_SIZE as f64 >= 0.9)
        .map(|(_, id)| id.as_str())
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(found, expected);
    let none = server.json("/api/v1/steps?kind=search&min_elimination=0.9");
    assert!(items(&none).is_empty(), "search eliminates nothing");
}

#[test]
fn a_candidates_lineage_shows_each_verdict_with_its_reasons() {
    let (_db, server, ids) = setup();
    // Kept at 3.5, rejected at 3.8 and 4.8.
    let at_35: BTreeSet<String> = expected_kept(3.5).into_iter().collect();
    let at_38: BTreeSet<String> = expected_kept(3.8).into_iter().collect();
    let flipped = at_35
        .difference(&at_38)
        .next()
        .expect("a flipped candidate");
    let lineage = server.json(&format!("/api/v1/candidates/{flipped}"));
    let filters: Vec<&serde_json::Value> = items(&lineage)
        .iter()
        .filter(|e| e["step_name"] == "apply_filters")
        .collect();
    assert_eq!(filters.len(), 3, "judged by the filter of every run");
    for entry in &filters {
        let run = entry["execution_id"].as_str().expect("id");
        let kept = run == ids[2];
        assert_eq!(entry["passed"], kept, "run {run}");
        if !kept {
            let rating = entry["checks"]
                .as_array()
                .expect("checks")
                .iter()
                .find(|c| c["name"] == "rating")
                .expect("rating");
            assert_eq!(rating["passed"], false);
        }
    }
    assert!(items(&lineage)
        .iter()
        .any(|e| e["step_name"] == "rank_and_select" && e["execution_id"] == ids[2].as_str()));
    let unknown = server.json("/api/v1/candidates/NOPE");
    assert!(items(&unknown).is_empty());
}

/// Every item of a paged list, following `next_cursor` from `first` (a URL that sets `limit`),
/// with `each` called on every page: pages of `limit` at most, `expected` items at most in all,
/// so a cursor that does not move on fails instead of looping.
fn every_page(
    server: &Server,
    first: &str,
    limit: usize,
    expected: usize,
    each: impl Fn(&serde_json::Value),
) -> Vec<serde_json::Value> {
    let (mut all, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let url = match &cursor {
            Some(c) => format!("{first}&cursor={c}"),
            None => first.to_owned(),
        };
        let page = server.json(&url);
        assert!(
            items(&page).len() <= limit,
            "{url}: a page of {limit} at most"
        );
        each(&page);
        all.extend(items(&page).iter().cloned());
        assert!(all.len() <= expected, "a page repeats: {url}");
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return all,
        }
    }
}

/// `url` is answered `status`, with an error naming `field`.
fn refused(server: &Server, url: &str, status: u16, field: &str) {
    let reply = server.get(url);
    assert_eq!(reply.status, status, "{url}: {}", reply.body);
    assert_eq!(
        reply.json()["error"]["field"],
        field,
        "{url}: {}",
        reply.body
    );
}

#[test]
fn compare_lists_the_candidates_whose_verdict_changed() {
    let (_db, server, ids) = setup();
    let (a, b) = (&ids[2], &ids[1]); // 3.5 then 3.8
    let cmp = server.json(&format!("/api/v1/compare?a={a}&b={b}"));
    let steps = cmp["steps"].as_array().expect("steps");
    let filter = steps
        .iter()
        .find(|s| s["name"] == "apply_filters")
        .expect("paired");
    assert_eq!(filter["input_differs"], true, "min_rating differs");
    assert_eq!(filter["inputs"][0]["min_rating"], 3.5);
    assert_eq!(filter["inputs"][1]["min_rating"], 3.8);
    // The rule itself, as the step's filters recorded it: the change that explains the verdicts.
    assert_eq!(filter["filters_differ"], true);
    assert_eq!(filter["filters"][0]["min_rating"], 3.5);
    assert_eq!(filter["filters"][1]["min_rating"], 3.8);
    let search = steps
        .iter()
        .find(|s| s["name"] == "candidate_search")
        .expect("paired");
    assert_eq!(search["filters_differ"], false, "{search}");
    assert!(search["filters"].is_null());
    let changed: BTreeSet<String> = filter["verdict_changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            assert_eq!(c["a"]["passed"], true);
            assert_eq!(c["b"]["passed"], false);
            let reason = c["b"]["checks"]
                .as_array()
                .expect("checks")
                .iter()
                .find(|k| k["name"] == "rating")
                .and_then(|k| k["reason"].as_str())
                .expect("the reason on b's side");
            assert!(reason.contains("< 3.8"), "{reason}");
            c["candidate_id"].as_str().expect("id").to_owned()
        })
        .collect();
    let expected: BTreeSet<String> = expected_kept(3.5)
        .into_iter()
        .filter(|c| !expected_kept(3.8).contains(c))
        .collect();
    assert_eq!(changed, expected);
    assert_eq!(filter["verdict_changes_total"], expected.len());
    // The same changes, page by page, from the step's own route (A's recorded order).
    let listed: Vec<&str> = filter["verdict_changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| c["candidate_id"].as_str().expect("id"))
        .collect();
    assert_eq!(filter["verdict_changes_cursor"], serde_json::Value::Null);
    let (step_a, step_b) = (
        filter["a"]["id"].as_str().expect("A's step"),
        filter["b"]["id"].as_str().expect("B's step"),
    );
    let paged: Vec<String> = every_page(
        &server,
        &format!("/api/v1/steps/{step_a}/verdict-changes?other={step_b}&limit=2"),
        2,
        listed.len(),
        |_| {},
    )
    .iter()
    .map(|c| c["candidate_id"].as_str().expect("id").to_owned())
    .collect();
    assert_eq!(paged, listed);
    // Which check changed them: the rating check, failed in B only, for every one; the
    // step's own route narrows the list to one check's changes.
    assert_eq!(
        filter["verdict_changes_by_check"],
        serde_json::json!([{ "check": "rating", "failed_in_a": 0, "failed_in_b": expected.len() }]),
    );
    let of_check = |check: &str| -> Vec<String> {
        every_page(
            &server,
            &format!("/api/v1/steps/{step_a}/verdict-changes?other={step_b}&check={check}&limit=3"),
            3,
            listed.len(),
            |_| {},
        )
        .iter()
        .map(|c| c["candidate_id"].as_str().expect("id").to_owned())
        .collect()
    };
    assert_eq!(of_check("rating"), listed);
    assert!(of_check("price").is_empty(), "the price check changed none");
    let misspelled = server.get(&format!(
        "/api/v1/steps/{step_a}/verdict-changes?other={step_b}&check=ratting"
    ));
    assert_eq!(misspelled.status, 400, "{}", misspelled.body);
    let error = misspelled.json()["error"].clone();
    assert_eq!(error["field"], "check");
    let message = error["message"].as_str().expect("a message");
    assert!(
        message.contains("\"ratting\"") && message.contains("rating") && message.contains("price"),
        "{message}"
    );
    for (url, status, field) in [
        (
            format!("/api/v1/steps/{step_a}/verdict-changes"),
            400,
            "other",
        ),
        (
            format!("/api/v1/steps/{step_a}/verdict-changes?other={step_b}&cursor=nope"),
            400,
            "cursor",
        ),
        (
            format!("/api/v1/steps/{}/verdict-changes?other={step_b}", ids[0]),
            404,
            "step",
        ),
    ] {
        refused(&server, &url, status, field);
    }
    let keywords = steps
        .iter()
        .find(|s| s["name"] == "keyword_generation")
        .expect("paired");
    assert_eq!(keywords["input_differs"], false);
    assert!(keywords["verdict_changes"]
        .as_array()
        .expect("list")
        .is_empty());
}

#[test]
fn the_candidates_only_one_run_judged_are_paged_past_the_comparison() {
    let (_db, server, ids) = setup();
    let (a, b) = (&ids[2], &ids[1]); // 3.5 then 3.8: A's ranking judged more candidates
    let cmp = server.json(&format!("/api/v1/compare?a={a}&b={b}"));
    let rank = cmp["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["name"] == "rank_and_select")
        .expect("paired");
    let only_a = &rank["only_a"];
    let total = only_a["total"].as_u64().expect("total");
    let expected: BTreeSet<String> = expected_kept(3.5)
        .into_iter()
        .filter(|c| !expected_kept(3.8).contains(c))
        .collect();
    assert_eq!(total, expected.len() as u64, "{only_a}");
    assert!(total > 2, "enough to page: {total}");
    let first: Vec<&str> = items(only_a)
        .iter()
        .map(|e| e["candidate_id"].as_str().expect("id"))
        .collect();
    // Every one of them, two at a time, from the step's own route.
    let (step_a, step_b) = (
        rank["a"]["id"].as_str().expect("A's step"),
        rank["b"]["id"].as_str().expect("B's step"),
    );
    let pages = every_page(
        &server,
        &format!("/api/v1/steps/{step_a}/only-in?other={step_b}&limit=2"),
        2,
        total as usize,
        |page| assert_eq!(page["total"], total, "the total on every page"),
    );
    let paged: Vec<String> = pages
        .iter()
        .map(|e| e["candidate_id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(paged.len() as u64, total);
    assert_eq!(paged.iter().cloned().collect::<BTreeSet<_>>(), expected);
    assert_eq!(
        &paged[..first.len()],
        &first[..],
        "the comparison's first ones are the first pages'"
    );
    assert_eq!(
        only_a["next_cursor"].is_string(),
        total > first.len() as u64,
        "a cursor exactly when the comparison did not list them all"
    );
    // Bad input: a 4xx naming the parameter.
    for (url, status, field) in [
        (format!("/api/v1/steps/{step_a}/only-in"), 400, "other"),
        (
            format!("/api/v1/steps/{step_a}/only-in?other={step_b}&cursor=nope"),
            400,
            "cursor",
        ),
        (
            format!("/api/v1/steps/{step_a}/only-in?other={step_b}&limit=0"),
            400,
            "limit",
        ),
        // A run's id where a step's belongs: refused, naming the run's step to give instead.
        (
            format!("/api/v1/steps/{step_a}/only-in?other={a}"),
            400,
            "other",
        ),
    ] {
        refused(&server, &url, status, field);
    }
}

#[test]
fn a_batch_carries_its_sampled_out_count_in_a_header_counted_once() {
    let (_db, server, _ids) = setup();
    let batch = r#"{"xray_records": 1, "batch": "b-1", "dropped": 1, "records": []}"#;
    let send = |headers: &[(&str, &str)]| {
        server.call("POST", "/api/v1/ingest/records", headers, Some(batch))
    };
    let reply = send(&[("X-XRay-Sampled-Out", "4")]);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let counts = || server.json("/api/v1/health")["recorder"].clone();
    assert_eq!(
        counts(),
        serde_json::json!({"dropped": 1, "failed": 0, "sampled_out": 4})
    );
    // The same batch again (its answer was lost): counted once.
    assert_eq!(send(&[("X-XRay-Sampled-Out", "4")]).status, 200);
    assert_eq!(counts()["sampled_out"], 4);
    // A header that is not a count: refused, naming it, and nothing counted.
    let reply = server.call(
        "POST",
        "/api/v1/ingest/records",
        &[("X-XRay-Sampled-Out", "many")],
        Some(r#"{"xray_records": 1, "batch": "b-2", "dropped": 5, "records": []}"#),
    );
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.json()["error"]["field"], "X-XRay-Sampled-Out");
    assert_eq!(
        counts(),
        serde_json::json!({"dropped": 1, "failed": 0, "sampled_out": 4})
    );
}

#[test]
fn stats_aggregate_per_step_name() {
    let (_db, server, _ids) = setup();
    let stats = server.json("/api/v1/stats");
    let names: BTreeSet<&str> = items(&stats)
        .iter()
        .map(|s| s["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "apply_filters",
            "candidate_search",
            "keyword_generation",
            "rank_and_select"
        ])
    );
    for s in items(&stats) {
        assert_eq!(s["count"], 3, "{s}");
        assert_eq!(s["error_rate"], 0.0);
        assert!(s["p95_us"].as_i64() >= s["p50_us"].as_i64());
    }
    let one = server.json("/api/v1/stats?name=apply_filters");
    assert_eq!(items(&one).len(), 1);
    let mean = items(&one)[0]["mean_elimination"].as_f64().expect("mean");
    let expected = MIN_RATINGS
        .iter()
        .map(|m| 1.0 - expected_kept(*m).len() as f64 / CATALOG_SIZE as f64)
        .sum::<f64>()
        / 3.0;
    assert!((mean - expected).abs() < 1e-9, "{mean} vs {expected}");
}

#[test]
fn an_exported_run_ingested_elsewhere_exports_identically() {
    let (_db, server, ids) = setup();
    let exported = server.get(&format!("/api/v1/executions/{}/export", ids[1]));
    assert_eq!(exported.status, 200);
    assert!(exported
        .header("content-disposition")
        .expect("a download")
        .contains(".json"));
    let document = exported.json();
    assert_eq!(document["xray_export"], 1);
    let filter = document["executions"][0]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["name"] == "apply_filters")
        .expect("filter");
    assert_eq!(
        filter["evaluations"].as_array().expect("rows").len(),
        CATALOG_SIZE
    );

    let other = tempfile::tempdir().expect("tempdir");
    let path = other.path().join("other.db");
    drop(xray::store::SqliteStore::open(&path).expect("create"));
    let target = serve(&path, |_| {});
    for _ in 0..2 {
        let reply = target.call("POST", "/api/v1/ingest", &[], Some(&exported.body));
        assert_eq!(reply.status, 200, "{}", reply.body);
        let rows = CATALOG_SIZE + expected_kept(3.8).len(); // the filter's and the ranking's
        assert_eq!(reply.json()["evaluations"], rows);
    }
    assert_eq!(execution_ids(&target), [ids[1].clone()], "idempotent by id");
    let again = target.get(&format!("/api/v1/executions/{}/export", ids[1]));
    assert_eq!(again.json(), document, "the same run, ids and all");

    let csv = server.get(&format!("/api/v1/executions/{}/export?format=csv", ids[1]));
    assert_eq!(csv.status, 200);
    assert!(csv
        .header("content-type")
        .expect("type")
        .starts_with("text/csv"));
    let lines: Vec<&str> = csv.body.lines().collect();
    assert!(lines[0].starts_with("execution_id,step_id,step_name"));
    assert_eq!(
        lines.len(),
        1 + CATALOG_SIZE + expected_kept(3.8).len(),
        "a row per evaluation"
    );
    let rejected = lines
        .iter()
        .find(|l| l.contains(",B00001,"))
        .expect("B00001 has a row");
    assert!(rejected.contains("false"), "{rejected}");
}

#[test]
fn tags_and_notes_are_editable_and_runs_deletable() {
    let (_db, server, ids) = setup();
    let path = format!("/api/v1/executions/{}", ids[0]);
    let reply = server.call(
        "PATCH",
        &path,
        &[],
        Some(r#"{"tags": ["phone-case-bug"], "notes": "selected a phone case"}"#),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["tags"], serde_json::json!(["phone-case-bug"]));
    let tagged = server.json("/api/v1/executions?tag=phone-case-bug");
    assert_eq!(items(&tagged).len(), 1);
    assert_eq!(items(&tagged)[0]["notes"], "selected a phone case");
    let by_notes = server.json("/api/v1/executions?q=phone%20case");
    assert_eq!(items(&by_notes).len(), 1, "notes are searched");

    // A body that is not JSON: a 400 that names no made-up field.
    let reply = server.call("PATCH", &path, &[], Some("{x"));
    assert_eq!(reply.status, 400, "{}", reply.body);
    let error = &reply.json()["error"];
    assert_eq!(error["code"], "invalid_body", "{error}");
    assert!(error["field"].is_null(), "{error}");
    // A field of the wrong type is named by its path.
    let reply = server.call("PATCH", &path, &[], Some(r#"{"tags": "one"}"#));
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.json()["error"]["field"], "tags", "{}", reply.body);
    // JSON that breaks off inside a part of the body names that part, and no more.
    let reply = server.call(
        "POST",
        "/api/v1/ingest/records",
        &[],
        Some(r#"{"xray_records": 1, "records": [{x}]}"#),
    );
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(
        reply.json()["error"]["field"],
        "records[0]",
        "{}",
        reply.body
    );

    let body = format!(r#"{{"ids": ["{}", "{}"]}}"#, ids[0], ids[1]);
    let reply = server.call("DELETE", "/api/v1/executions", &[], Some(&body));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["deleted"], 2);
    assert_eq!(server.get(&path).status, 404);
    assert_eq!(execution_ids(&server), [ids[2].clone()]);
}

#[test]
fn the_openapi_document_and_the_router_agree() {
    let (_db, server, _ids) = setup();
    let doc = server.json("/api/v1/openapi.json");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("operations") {
            let params: BTreeSet<String> = op["parameters"]
                .as_array()
                .expect("parameters")
                .iter()
                .filter(|p| p["in"] == "query")
                .map(|p| p["name"].as_str().expect("name").to_owned())
                .collect();
            documented.insert((method.to_uppercase(), path.clone(), params));
        }
    }
    let routed: BTreeSet<(String, String, BTreeSet<String>)> = xray_server::routes::ROUTES
        .iter()
        .map(|r| {
            (
                r.method.as_str().to_owned(),
                r.pattern.to_owned(),
                r.params.iter().map(|p| (*p).to_owned()).collect(),
            )
        })
        .collect();
    assert_eq!(
        documented, routed,
        "every route is documented with its parameters, and nothing else is"
    );
}

#[test]
fn health_and_metrics_report_the_server() {
    let (db, server, _ids) = setup();
    let health = server.json("/api/v1/health");
    assert_eq!(health["status"], "ok");
    assert!(health["latest_seq"].as_u64().expect("seq") > 0);
    assert_eq!(
        health["recorder"],
        serde_json::json!({"dropped": 0, "failed": 0, "sampled_out": 0}),
        "nothing was lost recording these runs, nor left out"
    );
    // A recorder that samples (another process, writing to the same file) reports the runs it
    // left out; the server reads them from the database on every request.
    xray::store::Store::add_recorder_counts(
        &xray::store::SqliteStore::open(&db.path).expect("a second writer"),
        &xray::store::RecorderCounts {
            sampled_out: 7,
            ..Default::default()
        },
    )
    .expect("the count is stored");
    assert_eq!(server.json("/api/v1/health")["recorder"]["sampled_out"], 7);
    server.get("/api/v1/executions?limit=nope");
    let metrics = server.get("/api/v1/metrics");
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.body.contains(
            r#"xray_http_requests_total{route="/api/v1/executions",method="GET",status="400"} 1"#
        ),
        "{}",
        metrics.body
    );
    assert!(metrics.body.contains("xray_recorder_dropped_records 0"));
    assert!(
        metrics
            .body
            .contains("xray_recorder_sampled_out_executions 7"),
        "{}",
        metrics.body
    );
    assert!(metrics.body.contains("xray_websocket_clients 0"));
}

/// A store of the program's own that answers what a comparison asks, but cannot count.
struct CannotCount(xray::store::SqliteStore);

impl xray::store::Store for CannotCount {
    fn write(&self, batch: &[xray::model::Record]) -> Result<(), xray::store::StoreError> {
        self.0.write(batch)
    }
    fn add_recorder_counts(
        &self,
        counts: &xray::store::RecorderCounts,
    ) -> Result<(), xray::store::StoreError> {
        self.0.add_recorder_counts(counts)
    }
    fn execution(
        &self,
        id: uuid::Uuid,
    ) -> Result<Option<xray::store::ExecutionDetail>, xray::store::StoreError> {
        self.0.execution(id)
    }
    fn step(
        &self,
        id: uuid::Uuid,
    ) -> Result<Option<xray::model::StepRecord>, xray::store::StoreError> {
        self.0.step(id)
    }
    fn verdict_changes(
        &self,
        a: uuid::Uuid,
        b: uuid::Uuid,
        query: &xray::store::LineageQuery,
    ) -> Result<xray::store::Page<xray::store::VerdictChange>, xray::store::StoreError> {
        self.0.verdict_changes(a, b, query)
    }
    fn candidates_only_in(
        &self,
        step: uuid::Uuid,
        other: uuid::Uuid,
        query: &xray::store::LineageQuery,
    ) -> Result<xray::store::OnlyIn, xray::store::StoreError> {
        self.0.candidates_only_in(step, other, query)
    }
}

#[test]
fn compare_counts_every_changed_verdict_or_says_it_cannot() {
    use tracing_subscriber::prelude::*;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("count.db");
    let (layer, guard) = xray::layer().sqlite(&path).build().expect("a layer");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        verdict_run(600, true);
        verdict_run(600, false);
    });
    assert!(guard.flush());
    drop(guard);
    let server = serve(&path, |_| {});
    let ids = execution_ids(&server);
    let (a, b) = (&ids[1], &ids[0]);
    let pair = |server: &Server| {
        let cmp = server.json(&format!("/api/v1/compare?a={a}&b={b}"));
        cmp["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .find(|s| s["name"] == "judge_all")
            .cloned()
            .expect("paired")
    };
    let counted = pair(&server);
    assert_eq!(counted["truncated"], true);
    assert_eq!(
        counted["verdict_changes"].as_array().map(Vec::len),
        Some(500)
    );
    assert_eq!(counted["verdict_changes_total"], 600);
    // Every change, not only the 500 listed, by the check B failed it on.
    assert_eq!(
        counted["verdict_changes_by_check"],
        serde_json::json!([
            { "check": "in stock", "failed_in_a": 0, "failed_in_b": 400 },
            { "check": "price", "failed_in_a": 0, "failed_in_b": 200 },
        ])
    );

    // A store that cannot count: the comparison still answers, the total unknown.
    let store = xray::store::SqliteStore::open(&path).expect("open the database");
    let config = xray_server::Config {
        addr: "127.0.0.1:0".parse().expect("address"),
        ..xray_server::Config::default()
    };
    let inner =
        xray_server::BackgroundServer::start(std::sync::Arc::new(CannotCount(store)), config)
            .expect("start the server");
    let own = Server {
        base: inner.url(),
        inner,
    };
    let unknown = pair(&own);
    assert_eq!(unknown["truncated"], true);
    assert!(unknown["verdict_changes_total"].is_null(), "{unknown}");
    assert_eq!(
        unknown["verdict_changes_by_check"],
        serde_json::json!([]),
        "nor broken down by check"
    );
    // Nor asked for one check's changes: it would list them all.
    let of_check = own.get(&format!(
        "/api/v1/steps/{}/verdict-changes?other={}&check=price",
        unknown["a"]["id"].as_str().expect("A's step"),
        unknown["b"]["id"].as_str().expect("B's step")
    ));
    assert_eq!(of_check.status, 501, "{}", of_check.body);
    assert!(
        of_check.body.contains("verdict_change_checks"),
        "{}",
        of_check.body
    );
}

/// The values one check saw, each with how many passed and failed it: the category check of
/// the filter step passed every laptop stand and failed every other category.
#[test]
fn a_checks_values_say_what_it_saw_and_how_each_fared() {
    let (_db, server, ids) = setup();
    let run = server.json(&format!("/api/v1/executions/{}", ids[0]));
    let filter = run["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["name"] == "apply_filters")
        .and_then(|s| s["id"].as_str())
        .expect("the filter step")
        .to_owned();
    let catalog = catalog();
    let mut expected: Vec<(String, u64, u64)> = CATEGORIES
        .iter()
        .map(|c| {
            let n = catalog.iter().filter(|p| p.category == *c).count() as u64;
            let passed = if *c == "Laptop Stands" { n } else { 0 };
            (c.to_string(), passed, n - passed)
        })
        .collect();
    expected.sort_by(|a, b| (b.1 + b.2).cmp(&(a.1 + a.2)).then(a.0.cmp(&b.0)));
    let values = server.json(&format!(
        "/api/v1/steps/{filter}/check-values?check=category"
    ));
    assert_eq!(values["evaluations"], catalog.len(), "{values}");
    assert_eq!(values["distinct"], 3, "{values}");
    let got: Vec<(String, u64, u64)> = values["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|v| {
            (
                v["observed"].as_str().expect("a category").to_owned(),
                v["passed"].as_u64().expect("passed"),
                v["failed"].as_u64().expect("failed"),
            )
        })
        .collect();
    assert_eq!(got, expected);
    let top = server.json(&format!(
        "/api/v1/steps/{filter}/check-values?check=category&limit=1"
    ));
    assert_eq!(top["values"].as_array().map(Vec::len), Some(1));
    assert_eq!(top["distinct"], 3);
    // Each value's counts lead to its rows: the candidates of that category that passed the
    // check, and those that failed it.
    for (category, passed, failed) in &expected {
        let q = category.replace(' ', "%20");
        for (verdict, count) in [("&passed=true", passed), ("", failed)] {
            let rows = every_page(
                &server,
                &format!(
                    "/api/v1/steps/{filter}/evaluations?check=category&observed={q}{verdict}&limit=500"
                ),
                500,
                *count as usize,
                |_| {},
            );
            assert_eq!(rows.len() as u64, *count, "{category}{verdict}");
            let want: BTreeSet<String> = catalog
                .iter()
                .filter(|p| p.category == *category)
                .map(|p| p.asin.clone())
                .collect();
            assert!(
                rows.iter()
                    .all(|r| want.contains(r["candidate_id"].as_str().unwrap_or(""))),
                "{category}{verdict}: only that category's candidates"
            );
        }
    }
    refused(
        &server,
        &format!("/api/v1/steps/{filter}/evaluations?observed=Phone%20Cases"),
        400,
        "observed",
    );

    // Bad input names the parameter; a misspelled check lists the step's checks.
    refused(
        &server,
        &format!("/api/v1/steps/{filter}/check-values"),
        400,
        "check",
    );
    let reply = server.get(&format!(
        "/api/v1/steps/{filter}/check-values?check=categroy"
    ));
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(
        reply.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| m.ends_with("its checks: price, rating, category")),
        "{}",
        reply.body
    );
    refused(
        &server,
        &format!("/api/v1/steps/{filter}/check-values?check=category&limit=0"),
        400,
        "limit",
    );
    refused(
        &server,
        "/api/v1/steps/01900000-0000-7000-8000-000000000000/check-values?check=category",
        404,
        "step",
    );
}
