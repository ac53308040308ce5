//! Bounded fuzzing of what a client controls, against a real server over a real SQLite file:
//! query parameters and path segments on every route, pagination cursors, and ingest JSON.
//! Nothing a client sends may panic the server or be answered with a 5xx; every refusal is a
//! 4xx in the error shape, and a 400 on a query names the parameter.
//!
//! `cargo test -p xray-server --test hostile_input` runs the counts below (a few seconds);
//! `PROPTEST_CASES=<n>` runs n cases per property instead (RELIABILITY.md has the counts run).
//! Each test prints what it ran.

#[path = "support/documents.rs"]
mod documents;
mod support;

use documents::{any_i64, cases, document, into_document, json_value, runner, text};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;
use support::*;
use xray::store::Cursor;

/// A keep-alive client that returns every status instead of failing on 4xx/5xx.
struct Client {
    agent: ureq::Agent,
    base: String,
}

impl Client {
    fn new(server: &Server) -> Client {
        Client {
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(30))
                .build(),
            base: server.base.clone(),
        }
    }

    fn send(&self, method: &str, target: &str, body: Option<&[u8]>) -> Result<Reply, String> {
        let request = self
            .agent
            .request(method, &format!("{}{target}", self.base));
        let result = match body {
            Some(b) => request
                .set("Content-Type", "application/json")
                .send_bytes(b),
            None => request.call(),
        };
        let response = match result {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(format!("{method} {target}: no answer: {e}")),
        };
        let status = response.status();
        let body = response.into_string().map_err(|e| e.to_string())?;
        Ok(Reply {
            status,
            headers: Vec::new(),
            body,
        })
    }
}

/// Checks the answer to a hostile request: no 5xx, refusals in the error shape, and (for a
/// query) a 400 that names the parameter. Counts statuses in `seen`.
fn judge(
    reply: &Reply,
    what: &str,
    query: bool,
    seen: &Mutex<BTreeMap<u16, usize>>,
) -> Result<(), TestCaseError> {
    *seen
        .lock()
        .expect("not poisoned")
        .entry(reply.status)
        .or_default() += 1;
    let short: String = reply.body.chars().take(300).collect();
    prop_assert!(reply.status < 500, "{what}: {} {short}", reply.status);
    if reply.status >= 400 {
        let body: Value = serde_json::from_str(&reply.body)
            .map_err(|e| TestCaseError::fail(format!("{what}: not JSON ({e}): {short}")))?;
        let error = &body["error"];
        prop_assert!(
            error["code"].is_string() && error["message"].is_string(),
            "{what}: not the error shape: {short}"
        );
        if query && reply.status == 400 {
            prop_assert!(
                error["field"].is_string(),
                "{what}: names no field: {short}"
            );
        }
    }
    Ok(())
}

fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A cursor's text: one this server could have made for any list, key and tiebreak, or any hex.
fn cursor_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (
            prop_oneof![Just('e'), Just('s'), Just('v'), Just('l'), Just('c'), any::<char>()],
            any_i64(),
            text(),
        )
            .prop_map(|(list, key, tiebreak)| Cursor::new(list, key, tiebreak).encode()),
        1 => "[0-9a-fA-F]{0,40}",
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| {
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        }),
    ]
}

/// Values a client might send, or an attacker would.
fn hostile_value(ids: Vec<String>) -> impl Strategy<Value = String> {
    let edges = [
        "",
        "-0",
        "+1",
        "0",
        "-1",
        "1e309",
        "-1e309",
        "NaN",
        "inf",
        "-inf",
        "0x10",
        "1.5",
        "0.999999999999999999999",
        "1.0000000000000001",
        "true",
        "TRUE",
        "null",
        "[]",
        "{}",
        "18446744073709551616",
        "-9223372036854775809",
        "9223372036854775807",
        "-9223372036854775808",
        "99999999999999999999999999999999999999",
        "9999-12-31T23:59:59Z",
        "0000-01-01T00:00:00Z",
        "1970-01-01T00:00:00+99:99",
        "2026-02-30T00:00:00Z",
        "2026-11-25T10:00:00.999999999999Z",
        "+275760-09-13T00:00:00Z",
        "2026-11-25 10:00:00",
        "running",
        "ok",
        "error",
        "lost",
        "score",
        "index",
        "json",
        "csv",
        "00000000-0000-0000-0000-000000000000",
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
        "\u{0}",
        "%00",
        "' OR 1=1 --",
        "\"; DROP TABLE executions; --",
        "../../etc/passwd",
    ];
    prop_oneof![
        4 => text(),
        2 => proptest::sample::select(edges.to_vec()).prop_map(String::from),
        2 => any_i64().prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_map(|f| f.to_string()),
        2 => proptest::sample::select(ids),
        1 => any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string()),
        2 => cursor_text(),
        1 => (190usize..215).prop_map(|n| "q".repeat(n)),
        1 => (8000usize..8400).prop_map(|n| "x".repeat(n)),
    ]
}

/// Query fragments that are not well-formed `key=value` pairs.
fn raw_fragment() -> impl Strategy<Value = String> {
    proptest::sample::select(vec![
        "%",
        "%zz",
        "%ff%fe",
        "%c3%28",
        "&&",
        "=",
        "==x",
        "a=%00",
        "limit",
        "limit=",
        "tag&tag",
        "%6c%69%6d%69%74=0",
        "+",
        "%2B",
        ";",
    ])
    .prop_map(String::from)
}

/// A GET request on any route: its path parameters and query from hostile values.
fn request(ids: Vec<String>) -> impl Strategy<Value = String> {
    let routes: Vec<&'static xray_server::routes::Route> = xray_server::routes::ROUTES
        .iter()
        .filter(|r| r.method == hyper::Method::GET)
        .collect();
    let value = hostile_value(ids.clone());
    let key = prop_oneof![
        6 => proptest::sample::select(
            xray_server::routes::ROUTES.iter().flat_map(|r| r.params.iter().copied()).collect::<Vec<_>>()
        ).prop_map(String::from),
        1 => text(),
    ];
    (
        proptest::sample::select(routes),
        prop::collection::vec(hostile_value(ids), 2),
        prop::collection::vec((key, value), 0..5),
        proptest::option::weighted(0.15, raw_fragment()),
    )
        .prop_map(|(route, segments, pairs, raw)| {
            let mut segments = segments.into_iter();
            let path: Vec<String> = route
                .pattern
                .split('/')
                .map(|part| match part.starts_with('{') {
                    true => segment(&segments.next().unwrap_or_default()),
                    false => part.to_owned(),
                })
                .collect();
            let mut query: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                .collect();
            query.extend(raw);
            format!("{}?{}", path.join("/"), query.join("&"))
        })
}

/// A server over two recorded runs, with no rate limit (the fuzz is one client), and the ids a
/// request can name: runs, steps, candidates.
fn recorded_server() -> (Recorded, Server, Vec<String>) {
    let recorded = record(&[3.5, 3.8]);
    let server = serve(&recorded.path, |c| c.rate_limit_per_minute = 0);
    let mut ids = execution_ids(&server);
    for run in ids.clone() {
        ids.push(step_id(&server, &run, "apply_filters"));
        ids.push(step_id(&server, &run, "rank_and_select"));
    }
    ids.extend(["B00001", "B00042", "B02399"].map(String::from));
    (recorded, server, ids)
}

fn report(what: &str, seen: Mutex<BTreeMap<u16, usize>>) {
    let seen = seen.into_inner().expect("not poisoned");
    let total: usize = seen.values().sum();
    eprintln!("{what}: {total} requests, by status {seen:?}");
}

#[test]
fn query_parameters_and_path_segments_never_get_a_5xx() {
    let (_recorded, server, ids) = recorded_server();
    let client = Client::new(&server);
    let seen = Mutex::new(BTreeMap::new());
    let result = runner(cases(1500)).run(&request(ids), |target| {
        let reply = client
            .send("GET", &target, None)
            .map_err(TestCaseError::fail)?;
        judge(&reply, &target, true, &seen)
    });
    report("query and path fuzz", seen);
    if let Err(e) = result {
        panic!("{e}");
    }
    assert_eq!(server.get("/api/v1/health").status, 200);
}

#[test]
fn cursors_decode_or_are_refused_and_never_panic() {
    // The decoder itself: any text for any list is decoded or refused; a cursor of a list, with
    // any key and tiebreak, decodes to itself.
    let decoded = std::sync::atomic::AtomicUsize::new(0);
    let result = runner(cases(20_000)).run(
        &(
            prop_oneof![cursor_text(), text()],
            any::<char>(),
            // The lists' letters (`|` separates a cursor's parts: no list uses it).
            proptest::sample::select(vec!['e', 's', 'v', 'l', 'c']),
            any_i64(),
            text(),
        ),
        |(hostile, list, tag, key, tiebreak)| {
            if Cursor::decode(&hostile, list).is_ok() {
                decoded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            let cursor = Cursor::new(tag, key, tiebreak.clone());
            prop_assert_eq!(Cursor::decode(&cursor.encode(), tag).ok(), Some(cursor));
            Ok(())
        },
    );
    eprintln!(
        "cursor decoder: {} cases, {} hostile texts decoded",
        cases(20_000),
        decoded.into_inner()
    );
    if let Err(e) = result {
        panic!("{e}");
    }

    // Through every paginated route: a page, or a 400 naming `cursor`.
    let (_recorded, server, ids) = recorded_server();
    let client = Client::new(&server);
    let step = &ids[2];
    let lists = vec![
        "/api/v1/executions?limit=1&cursor=".to_owned(),
        "/api/v1/steps?limit=1&cursor=".to_owned(),
        format!("/api/v1/steps/{step}/evaluations?limit=1&cursor="),
        format!("/api/v1/steps/{step}/evaluations?sort=score&limit=1&cursor="),
        "/api/v1/candidates/B00001?limit=1&cursor=".to_owned(),
    ];
    let seen = Mutex::new(BTreeMap::new());
    let result = runner(cases(1000)).run(
        &(proptest::sample::select(lists), cursor_text()),
        |(list, cursor)| {
            let target = format!("{list}{}", encode(&cursor));
            let reply = client
                .send("GET", &target, None)
                .map_err(TestCaseError::fail)?;
            judge(&reply, &target, true, &seen)?;
            prop_assert!(
                reply.status == 200
                    || (reply.status == 400 && reply.error_field().as_deref() == Some("cursor")),
                "{target}: {} {}",
                reply.status,
                reply.body
            );
            Ok(())
        },
    );
    report("cursors through the API", seen);
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// How a valid document is broken: the `n`th node (pre-order) replaced, removed, or given an
/// unknown key.
#[derive(Clone, Debug)]
enum Mutation {
    Replace(usize, Value),
    Remove(usize),
    AddKey(usize, String, Value),
}

fn mutate(value: &mut Value, mutation: &Mutation) {
    fn walk(value: &mut Value, target: usize, seen: &mut usize, m: &Mutation) -> bool {
        if *seen == target {
            match m {
                Mutation::Replace(_, v) => *value = v.clone(),
                Mutation::AddKey(_, k, v) => match value {
                    Value::Object(map) => {
                        map.insert(k.clone(), v.clone());
                    }
                    other => *other = v.clone(),
                },
                Mutation::Remove(_) => return true,
            }
            return false;
        }
        *seen += 1;
        match value {
            Value::Object(map) => {
                let keys: Vec<String> = map.keys().cloned().collect();
                for k in keys {
                    if let Some(child) = map.get_mut(&k) {
                        if walk(child, target, seen, m) {
                            map.remove(&k);
                        }
                    }
                }
            }
            Value::Array(items) => {
                let mut i = 0;
                while i < items.len() {
                    if walk(&mut items[i], target, seen, m) {
                        items.remove(i);
                    } else {
                        i += 1;
                    }
                }
            }
            _ => {}
        }
        false
    }
    let (Mutation::Replace(n, _) | Mutation::Remove(n) | Mutation::AddKey(n, _, _)) = mutation;
    let mut seen = 0;
    let mut count = 0;
    count_nodes(value, &mut count);
    walk(value, n % count.max(1), &mut seen, mutation);
}

fn count_nodes(value: &Value, count: &mut usize) {
    *count += 1;
    match value {
        Value::Object(map) => map.values().for_each(|v| count_nodes(v, count)),
        Value::Array(items) => items.iter().for_each(|v| count_nodes(v, count)),
        _ => {}
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<usize>(), json_value()).prop_map(|(n, v)| Mutation::Replace(n, v)),
        1 => any::<usize>().prop_map(Mutation::Remove),
        1 => (any::<usize>(), text(), json_value()).prop_map(|(n, k, v)| Mutation::AddKey(n, k, v)),
    ]
}

/// An ingest body: a valid document with 0–3 mutations, any JSON value, or any bytes.
#[derive(Clone, Debug)]
enum Body {
    Mutated(Value, Vec<Mutation>),
    Json(Value),
    Bytes(Vec<u8>),
}

fn ingest_body() -> impl Strategy<Value = Body> {
    prop_oneof![
        8 => (document(), prop::collection::vec(mutation(), 0..4)).prop_map(|(shapes, m)| {
            let doc = serde_json::to_value(into_document(shapes)).expect("a document is JSON");
            Body::Mutated(doc, m)
        }),
        1 => json_value().prop_map(Body::Json),
        1 => prop::collection::vec(any::<u8>(), 0..200).prop_map(Body::Bytes),
    ]
}

/// Every read route on what an accepted document stored: none may fail on stored data.
fn read_back(
    client: &Client,
    doc: &Value,
    seen: &Mutex<BTreeMap<u16, usize>>,
) -> Result<(), TestCaseError> {
    let runs = doc["executions"].as_array().cloned().unwrap_or_default();
    for run in &runs {
        let id = run["id"].as_str().unwrap_or_default();
        let mut targets = vec![
            format!("/api/v1/executions/{id}"),
            format!("/api/v1/executions/{id}/export?format=csv"),
            format!("/api/v1/compare?a={id}&b={id}"),
        ];
        for step in run["steps"].as_array().into_iter().flatten() {
            let step_id = step["id"].as_str().unwrap_or_default();
            targets.push(format!("/api/v1/steps/{step_id}"));
            targets.push(format!("/api/v1/steps/{step_id}/evaluations?sort=score"));
            for e in step["evaluations"].as_array().into_iter().flatten().take(2) {
                let candidate = e["candidate_id"].as_str().unwrap_or_default();
                targets.push(format!("/api/v1/candidates/{}", segment(candidate)));
            }
        }
        for target in targets {
            let reply = client
                .send("GET", &target, None)
                .map_err(TestCaseError::fail)?;
            judge(&reply, &target, false, seen)?;
        }
    }
    Ok(())
}

#[test]
fn ingest_json_never_gets_a_5xx_and_what_it_stores_reads_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve(&dir.path().join("xray.db"), |c| {
        c.rate_limit_per_minute = 0;
        c.max_body_bytes = 256 * 1024;
    });
    let client = Client::new(&server);
    let (seen, reads) = (Mutex::new(BTreeMap::new()), Mutex::new(BTreeMap::new()));
    let result = runner(cases(400)).run(&ingest_body(), |body| {
        let (bytes, doc) = match body {
            Body::Mutated(mut doc, mutations) => {
                for m in &mutations {
                    mutate(&mut doc, m);
                }
                (serde_json::to_vec(&doc).expect("JSON"), doc)
            }
            Body::Json(v) => (serde_json::to_vec(&v).expect("JSON"), v),
            Body::Bytes(b) => (b, Value::Null),
        };
        let reply = client
            .send("POST", "/api/v1/ingest", Some(&bytes))
            .map_err(TestCaseError::fail)?;
        judge(&reply, "POST /api/v1/ingest", false, &seen)?;
        if reply.status == 200 {
            read_back(&client, &doc, &reads)?;
        }
        Ok(())
    });
    report("ingest fuzz", seen);
    report("reads of what it stored", reads);
    if let Err(e) = result {
        panic!("{e}");
    }
    for target in [
        "/api/v1/executions?limit=1000",
        "/api/v1/steps?limit=1000",
        "/api/v1/stats",
        "/api/v1/metrics",
    ] {
        let reply = server.get(target);
        assert_eq!(reply.status, 200, "{target} after the fuzz: {}", reply.body);
    }
    assert_live_tail_runs(&server);
}

/// A WebSocket client sees the next run ingested: the live tail is still running.
fn assert_live_tail_runs(server: &Server) {
    let id = uuid::Uuid::now_v7();
    let doc = serde_json::json!({"xray_export": 1, "executions": [
        {"id": id, "name": "after", "status": "ok", "started_at": 1, "completed_at": 2}
    ]});
    ingest_and_follow(server, &doc, &id.to_string());
}

/// Ingests `doc` while a WebSocket client follows, and waits for a message naming `wanted`.
fn ingest_and_follow(server: &Server, doc: &Value, wanted: &str) {
    use futures_util::StreamExt;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let url = format!("{}/api/v1/live", server.base.replace("http://", "ws://"));
        let (mut socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("the WebSocket opens");
        let reply = tokio::task::block_in_place(|| {
            server.call("POST", "/api/v1/ingest", &[], Some(&doc.to_string()))
        });
        assert_eq!(reply.status, 200, "{}", reply.body);
        let found = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(Ok(message)) = socket.next().await {
                if message.to_text().is_ok_and(|t| t.contains(wanted)) {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(
            found,
            Ok(true),
            "the live tail stopped: no message for {wanted}"
        );
    });
}

#[test]
fn a_run_with_extreme_times_is_stored_read_and_followed_live() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve(&dir.path().join("xray.db"), |_| {});
    let (run, step, other) = (
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
    );
    // Two steps whose evaluation totals add up past u64::MAX in the run's counts.
    let summary = serde_json::json!({"total": u64::MAX, "passed": 0, "failed": u64::MAX,
        "kept": 0, "sampled": true, "capture": "summary", "checks": []});
    let doc = serde_json::json!({"xray_export": 1, "executions": [{
        "id": run, "name": "edges", "status": "ok",
        // The run's row is the newest change the live tail reads: `now - completed_at`.
        "started_at": i64::MIN, "completed_at": i64::MIN + 1,
        "steps": [{
            "id": step, "execution_id": run, "name": "s", "started_at": i64::MIN,
            "ended_at": i64::MAX, "status": "ok", "selection": [], "metadata": {},
            "evaluations": [], "logs": [], "logs_dropped": 0, "summary": summary
        }, {
            "id": other, "execution_id": run, "name": "t", "started_at": 0,
            "status": "ok", "selection": [], "metadata": {},
            "evaluations": [], "logs": [], "logs_dropped": 0, "summary": summary
        }]
    }]});
    ingest_and_follow(&server, &doc, &run.to_string());
    for target in [
        format!("/api/v1/executions/{run}"),
        format!("/api/v1/steps/{step}"),
        "/api/v1/stats".to_owned(),
        "/api/v1/executions".to_owned(),
    ] {
        let reply = server.get(&target);
        assert_eq!(reply.status, 200, "{target}: {}", reply.body);
    }
    assert_eq!(
        server.json(&format!("/api/v1/steps/{step}"))["duration_us"],
        i64::MAX,
        "the duration saturates"
    );
    let counts = &server.json(&format!("/api/v1/executions/{run}"))["counts"];
    assert_eq!(
        counts["evaluations"],
        u64::MAX,
        "the count saturates: {counts}"
    );
    assert_live_tail_runs(&server);
}
