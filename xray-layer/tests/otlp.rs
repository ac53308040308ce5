//! OTLP export (feature `otlp`) against a real OTLP/HTTP receiver on a loopback port: the spans a
//! collector (Jaeger, Tempo, Phoenix) would get for a recorded run, decoded with the OpenTelemetry
//! project's own protobuf types, and what happens when the collector is down or overloaded.

use flate2::read::GzDecoder;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{status::StatusCode, Span};
use prost::Message;
use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing_subscriber::prelude::*;
use xray::store::ExecutionQuery;

/// One request as the receiver saw it.
#[derive(Clone)]
struct Received {
    headers: HashMap<String, String>,
    request: ExportTraceServiceRequest,
}

/// How a receiver answers its first requests.
#[derive(Clone, Copy)]
struct Failing {
    /// Requests answered with `status` before the receiver accepts.
    first: usize,
    status: u16,
    retry_after: Option<&'static str>,
}

const ACCEPT: Failing = Failing {
    first: 0,
    status: 200,
    retry_after: None,
};

/// An OTLP/HTTP traces receiver: answers the first requests as `failing` says, then `200`.
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
    attempts: Arc<AtomicUsize>,
    /// When each request arrived.
    arrivals: Arc<Mutex<Vec<Instant>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Receiver {
    fn start(failing: Failing) -> Receiver {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        let received = Arc::new(Mutex::new(Vec::new()));
        let attempts = Arc::new(AtomicUsize::new(0));
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let (r, a, t) = (
            Arc::clone(&received),
            Arc::clone(&attempts),
            Arc::clone(&arrivals),
        );
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (r, a, t) = (Arc::clone(&r), Arc::clone(&a), Arc::clone(&t));
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (r, a) = (Arc::clone(&r), Arc::clone(&a));
                        t.lock().expect("arrivals lock").push(Instant::now());
                        async move { Ok::<_, hyper::Error>(receive(req, r, a, failing).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver {
            url,
            received,
            attempts,
            arrivals,
            _runtime: runtime,
        }
    }

    fn spans(&self) -> Vec<Span> {
        let received = self.received.lock().expect("receiver lock");
        received
            .iter()
            .flat_map(|r| &r.request.resource_spans)
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| ss.spans.clone())
            .collect()
    }
}

async fn receive(
    req: Request<hyper::body::Incoming>,
    received: Arc<Mutex<Vec<Received>>>,
    attempts: Arc<AtomicUsize>,
    failing: Failing,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let headers: HashMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = match req.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return reply(400),
    };
    if path != "/v1/traces" {
        return reply(404);
    }
    if attempts.fetch_add(1, Ordering::SeqCst) < failing.first {
        let mut response = reply(failing.status);
        if let Some(after) = failing.retry_after {
            response.headers_mut().insert(
                "retry-after",
                hyper::header::HeaderValue::from_static(after),
            );
        }
        return response;
    }
    let mut bytes = Vec::new();
    if headers.get("content-encoding").map(String::as_str) == Some("gzip") {
        if GzDecoder::new(&body[..]).read_to_end(&mut bytes).is_err() {
            return reply(400);
        }
    } else {
        bytes = body.to_vec();
    }
    match ExportTraceServiceRequest::decode(bytes.as_slice()) {
        Ok(request) => {
            received
                .lock()
                .expect("receiver lock")
                .push(Received { headers, request });
            reply(200)
        }
        Err(_) => reply(400),
    }
}

fn reply(status: u16) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = hyper::StatusCode::from_u16(status).expect("a status");
    response
}

fn wait_until(timeout: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
    find(&span.attributes, key)
}

fn find<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn text(value: Option<&Value>) -> Option<&str> {
    match value {
        Some(Value::StringValue(s)) => Some(s),
        _ => None,
    }
}

fn int(value: Option<&Value>) -> Option<i64> {
    match value {
        Some(Value::IntValue(n)) => Some(*n),
        _ => None,
    }
}

fn texts(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::ArrayValue(array)) => array
            .values
            .iter()
            .filter_map(|v| match &v.value {
                Some(Value::StringValue(s)) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

// ---- the pipeline -------------------------------------------------------------------------

#[derive(Debug, serde::Serialize)]
struct Product {
    asin: String,
    price: f64,
}

#[xray::execution(name = "competitor_selection", tags("otlp"), skip_all)]
fn find_competitor(catalog: Vec<Product>) -> Option<String> {
    let keywords = keyword_generation("laptop stand");
    let found = candidate_search(&keywords, catalog);
    let kept = apply_filters(found);
    if let Err(e) = relevance_judge(kept.len()) {
        tracing::warn!("judge failed: {e}");
    }
    rank_and_select(kept)
}

#[xray::step(kind = "llm")]
fn keyword_generation(title: &str) -> Vec<String> {
    xray::reasoning("the title names the product");
    vec![title.to_owned(), "phone case".to_owned()]
}

#[xray::step(kind = "search", skip(catalog))]
fn candidate_search(keywords: &[String], catalog: Vec<Product>) -> Vec<Product> {
    xray::candidates(Some(catalog.len() as u64), Some(catalog.len() as u64));
    let _ = keywords;
    catalog
}

#[xray::step(kind = "filter", skip_all)]
fn apply_filters(candidates: Vec<Product>) -> Vec<Product> {
    let kept: Vec<Product> = candidates
        .into_iter()
        .filter(|c| {
            xray::evaluate(&c.asin)
                .check_min("price", c.price, 20.0)
                .passed()
        })
        .collect();
    price_sanity(kept.len());
    kept
}

#[xray::step(kind = "filter")]
fn price_sanity(kept: usize) -> bool {
    kept > 0
}

#[xray::step(kind = "llm")]
fn relevance_judge(candidates: usize) -> Result<usize, String> {
    let _ = candidates;
    Err("judge timed out after 30 s".to_owned())
}

#[xray::step(kind = "rank", skip_all)]
fn rank_and_select(kept: Vec<Product>) -> Option<String> {
    let best = kept.iter().max_by(|a, b| a.price.total_cmp(&b.price))?;
    xray::select(&best.asin, format!("highest price ({})", best.price));
    Some(best.asin.clone())
}

fn catalog() -> Vec<Product> {
    (0..100)
        .map(|i| Product {
            asin: format!("B{i:04}"),
            price: f64::from(i),
        })
        .collect()
}

#[test]
fn a_run_arrives_as_one_trace_of_nested_spans_with_the_step_summaries() {
    let receiver = Receiver::start(ACCEPT);
    // The default store (SQLite, whose rows the writer binds without building records) beside it.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (layer, guard, store) = xray::layer()
        .sqlite(dir.path().join("xray.db"))
        .service("otlp-test-service")
        .otlp(&receiver.url)
        .otlp_header("x-api-key", "k-123")
        .build_with_store()
        .expect("build");
    let selected =
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            find_competitor(catalog())
        });
    assert_eq!(selected.as_deref(), Some("B0099"));
    guard.flush();
    wait_until(Duration::from_secs(30), "7 spans exported", || {
        guard.stats().spans_exported == 7
    });
    let stats = guard.stats();
    drop(guard);

    // What X-Ray stored, to compare the spans with.
    let runs = store
        .list_executions(&ExecutionQuery::default())
        .expect("runs");
    assert_eq!(runs.items.len(), 1);
    let run = &runs.items[0];
    let steps = store
        .execution(run.id)
        .expect("the run")
        .expect("stored")
        .steps;
    assert_eq!(steps.len(), 6);

    let spans = receiver.spans();
    assert_eq!(spans.len(), 7, "one root span and six step spans");
    let received = receiver.received.lock().expect("lock").clone();
    for r in &received {
        assert_eq!(
            r.headers.get("x-api-key").map(String::as_str),
            Some("k-123")
        );
        assert_eq!(
            r.headers.get("content-type").map(String::as_str),
            Some("application/x-protobuf")
        );
        let resource = r.request.resource_spans[0]
            .resource
            .as_ref()
            .expect("resource");
        assert_eq!(
            text(find(&resource.attributes, "service.name")),
            Some("otlp-test-service")
        );
    }

    // One trace, whose id is the execution's.
    for span in &spans {
        assert_eq!(span.trace_id, run.id.as_bytes().to_vec(), "{}", span.name);
    }
    let root = spans
        .iter()
        .find(|s| s.parent_span_id.is_empty())
        .expect("a root span");
    assert_eq!(root.name, "competitor_selection");
    assert_eq!(text(attr(root, "openinference.span.kind")), Some("CHAIN"));
    assert_eq!(texts(attr(root, "xray.tags")), vec!["otlp".to_owned()]);
    assert_eq!(
        text(attr(root, "xray.execution.id")),
        Some(run.id.to_string().as_str())
    );
    assert_eq!(
        text(attr(root, "output.value")),
        Some("\"B0099\""),
        "the execution's return value"
    );

    let by_name: HashMap<&str, &Span> = spans.iter().map(|s| (s.name.as_str(), s)).collect();
    // Every stored step is a span: same times (µs → ns), parent the enclosing step or the root.
    for step in &steps {
        let span = by_name[step.name.as_str()];
        assert_eq!(span.span_id, step.id.as_bytes()[8..].to_vec());
        assert_eq!(span.start_time_unix_nano, step.started_at as u64 * 1_000);
        assert_eq!(
            span.end_time_unix_nano,
            step.ended_at.expect("ended") as u64 * 1_000
        );
        let parent = step.parent_id.unwrap_or(run.id);
        assert_eq!(
            span.parent_span_id,
            parent.as_bytes()[8..].to_vec(),
            "{}",
            step.name
        );
        assert_eq!(
            text(attr(span, "xray.step.id")),
            Some(step.id.to_string().as_str())
        );
    }
    assert_eq!(
        by_name["price_sanity"].parent_span_id, by_name["apply_filters"].span_id,
        "a nested step is a child of the step it ran in"
    );

    let kind = |name: &str| text(attr(by_name[name], "openinference.span.kind")).map(str::to_owned);
    assert_eq!(kind("keyword_generation").as_deref(), Some("LLM"));
    assert_eq!(kind("candidate_search").as_deref(), Some("RETRIEVER"));
    assert_eq!(kind("apply_filters").as_deref(), Some("CHAIN"));
    assert_eq!(kind("rank_and_select").as_deref(), Some("RERANKER"));
    assert_eq!(
        text(attr(by_name["apply_filters"], "xray.step.kind")),
        Some("filter")
    );

    // The funnel in the summaries: 100 in, the 80 priced ≥ 20 out, 20 failed the price check.
    let filters = by_name["apply_filters"];
    assert_eq!(int(attr(filters, "xray.candidates.in")), Some(100));
    assert_eq!(int(attr(filters, "xray.candidates.out")), Some(80));
    assert_eq!(int(attr(filters, "xray.evaluations.total")), Some(100));
    assert_eq!(int(attr(filters, "xray.evaluations.failed")), Some(20));
    let select = by_name["rank_and_select"];
    assert_eq!(
        texts(attr(select, "xray.selection.candidate_ids")),
        vec!["B0099"]
    );
    assert_eq!(
        texts(attr(select, "xray.selection.reasons")),
        vec!["highest price (99)"]
    );
    assert_eq!(
        text(attr(by_name["keyword_generation"], "xray.reasoning")),
        Some("the title names the product")
    );
    assert_eq!(
        text(attr(by_name["keyword_generation"], "input.value")),
        Some(r#"{"title":"laptop stand"}"#)
    );

    // The failed step is an error span with the error's text; the others are OK.
    let judge = by_name["relevance_judge"];
    let status = judge.status.as_ref().expect("a status");
    assert_eq!(status.code, StatusCode::Error as i32);
    assert_eq!(status.message, "judge timed out after 30 s");
    let ok = by_name["candidate_search"]
        .status
        .as_ref()
        .expect("a status");
    assert_eq!(ok.code, StatusCode::Ok as i32);

    assert_eq!(stats.spans_dropped, 0);
    assert_eq!(stats.spans_failed, 0);
}

#[test]
fn a_collector_that_answers_503_gets_every_span_once_it_recovers() {
    let receiver = Receiver::start(Failing {
        first: 2,
        status: 503,
        retry_after: None,
    });
    let (layer, guard) = xray::layer()
        .memory()
        .otlp(format!("{}/v1/traces", receiver.url))
        .build()
        .expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for _ in 0..3 {
            find_competitor(catalog());
        }
    });
    guard.flush();
    wait_until(Duration::from_secs(20), "21 spans exported", || {
        guard.stats().spans_exported == 21
    });
    let stats = guard.stats();
    drop(guard);
    let accepted = receiver.received.lock().expect("lock").len();
    assert_eq!(
        receiver.attempts.load(Ordering::SeqCst),
        accepted + 2,
        "two 503s, then every request accepted"
    );
    let spans = receiver.spans();
    assert_eq!(spans.len(), 21, "3 runs × (1 root + 6 steps), each once");
    let mut ids: Vec<_> = spans.iter().map(|s| s.span_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 21);
    assert_eq!((stats.spans_dropped, stats.spans_failed), (0, 0));
}

#[test]
fn an_unreachable_collector_costs_the_program_nothing_and_every_span_is_counted() {
    // A collector that hangs up on every connection without a word.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let port = listener.local_addr().expect("its address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            drop(stream);
        }
    });
    let (layer, guard, store) = xray::layer()
        .memory()
        .otlp(format!("http://127.0.0.1:{port}"))
        .build_with_store()
        .expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        find_competitor(catalog());
    });
    guard.flush();
    // The store has the whole run, whatever the collector does.
    let runs = store
        .list_executions(&ExecutionQuery::default())
        .expect("runs");
    assert_eq!(runs.items.len(), 1);
    let run = store
        .execution(runs.items[0].id)
        .expect("the run")
        .expect("stored");
    assert_eq!(run.steps.len(), 6);
    wait_until(Duration::from_secs(30), "7 spans counted as failed", || {
        guard.stats().spans_failed == 7
    });
    assert_eq!(guard.stats().spans_exported, 0);
}

#[test]
fn a_bad_endpoint_or_header_list_is_an_error_from_build() {
    match xray::layer().memory().otlp("localhost:4318").build() {
        Err(xray::Error::Otlp(why)) => assert!(why.contains("localhost:4318"), "{why}"),
        other => panic!("expected an OTLP error, got {:?}", other.map(|_| ())),
    }
    let bad_header = xray::layer()
        .memory()
        .otlp("http://127.0.0.1:4318")
        .otlp_header("authorization", "Bearer k\n-injected: 1")
        .build();
    match bad_header {
        Err(xray::Error::Otlp(why)) => {
            assert!(why.contains("authorization"), "{why}");
            assert!(!why.contains("Bearer"), "the value is not echoed: {why}");
        }
        other => panic!("expected an OTLP error, got {:?}", other.map(|_| ())),
    }
    let env = |var: &str| match var {
        "XRAY_DB" => Some(":memory:".to_owned()),
        "XRAY_OTLP_ENDPOINT" => Some("http://127.0.0.1:4318".to_owned()),
        "XRAY_OTLP_HEADERS" => Some("authorization Bearer secret".to_owned()),
        _ => None,
    };
    match xray::layer().with_env(env).build() {
        Err(xray::Error::Env { var, value, .. }) => {
            assert_eq!(var, "XRAY_OTLP_HEADERS");
            assert!(
                !value.contains("secret"),
                "the value is not echoed: {value}"
            );
        }
        other => panic!("expected an env error, got {:?}", other.map(|_| ())),
    }
}

/// Records one run of the pipeline (7 spans), waits until the collector has accepted all of
/// them, then drops the guard.
fn record_one_run_and_export(layer: xray::XRayLayer, guard: xray::XRayGuard) {
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        find_competitor(catalog());
    });
    guard.flush();
    wait_until(Duration::from_secs(30), "7 spans exported", || {
        guard.stats().spans_exported == 7
    });
    drop(guard);
}

#[test]
fn headers_from_the_environment_go_with_an_endpoint_set_in_code() {
    let receiver = Receiver::start(ACCEPT);
    // The key in the environment (percent-encoded, as OTEL_EXPORTER_OTLP_HEADERS has it), the
    // URL in code, in either order.
    let env = |var: &str| match var {
        "XRAY_DB" => Some(":memory:".to_owned()),
        "XRAY_OTLP_HEADERS" => Some("authorization=Basic%20a2V5,x-team=search".to_owned()),
        _ => None,
    };
    let (layer, guard) = xray::layer()
        .otlp(&receiver.url)
        .with_env(env)
        .otlp_header("x-extra", "1")
        .build()
        .expect("build");
    record_one_run_and_export(layer, guard);
    let received = receiver.received.lock().expect("lock").clone();
    assert!(!received.is_empty());
    for r in &received {
        assert_eq!(
            r.headers.get("authorization").map(String::as_str),
            Some("Basic a2V5")
        );
        assert_eq!(r.headers.get("x-team").map(String::as_str), Some("search"));
        assert_eq!(r.headers.get("x-extra").map(String::as_str), Some("1"));
    }
}

#[test]
fn a_throttling_collector_is_retried_no_sooner_than_its_retry_after() {
    let receiver = Receiver::start(Failing {
        first: 1,
        status: 429,
        retry_after: Some("1"),
    });
    let (layer, guard) = xray::layer()
        .memory()
        .otlp(&receiver.url)
        .build()
        .expect("build");
    record_one_run_and_export(layer, guard);
    let arrivals = receiver.arrivals.lock().expect("lock").clone();
    assert!(arrivals.len() >= 2, "a 429, then the retry");
    // Without Retry-After the first retry would come after 100 ms.
    let gap = arrivals[1] - arrivals[0];
    assert!(
        gap >= Duration::from_millis(950),
        "retried after {gap:?}, before the collector's Retry-After of 1 s"
    );
}
