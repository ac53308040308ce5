//! What the server's integration tests share: a competitor-selection pipeline recorded by the
//! real layer into a real SQLite file, a real server on an ephemeral loopback port, and a small
//! HTTP client that returns 4xx/5xx responses instead of failing on them.
#![allow(dead_code)]

pub mod verdicts;

use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::prelude::*;
use xray::store::SqliteStore;
use xray_server::{BackgroundServer, Config};

#[derive(Clone, Debug, Serialize)]
pub struct Product {
    pub asin: String,
    pub title: String,
    pub category: String,
    pub price: f64,
    pub rating: f64,
}

pub const CATEGORIES: [&str; 3] = ["Laptop Stands", "Phone Cases", "Laptop Accessories"];
pub const CATALOG_SIZE: usize = 2_400;
/// The price band every run's filter uses.
pub const PRICE_BAND: (f64, f64) = (15.0, 60.0);

/// A deterministic catalog: ratings 1.0–4.9, prices 5–104, three categories.
pub fn catalog() -> Vec<Product> {
    (0..CATALOG_SIZE)
        .map(|i| Product {
            asin: format!("B{i:05}"),
            title: format!("{} #{i}", CATEGORIES[i % 3]),
            category: CATEGORIES[i % 3].to_owned(),
            price: 5.0 + ((i * 37) % 100) as f64,
            rating: 1.0 + ((i * 13) % 40) as f64 / 10.0,
        })
        .collect()
}

/// Which products pass every filter check with `min_rating`, computed without X-Ray.
pub fn expected_kept(min_rating: f64) -> Vec<String> {
    catalog()
        .into_iter()
        .filter(|p| {
            (PRICE_BAND.0..=PRICE_BAND.1).contains(&p.price)
                && p.rating >= min_rating
                && p.category == "Laptop Stands"
        })
        .map(|p| p.asin)
        .collect()
}

/// How many products fail the rating check with `min_rating`.
pub fn expected_failed_rating(min_rating: f64) -> usize {
    catalog().iter().filter(|p| p.rating < min_rating).count()
}

#[xray::execution(name = "competitor_selection", tags("test"), skip(catalog))]
pub fn find_competitor(catalog: &[Product], min_rating: f64) -> Option<String> {
    let keywords = keyword_generation("Aluminium laptop stand");
    let candidates = candidate_search(&keywords, catalog);
    let kept = apply_filters(candidates, min_rating);
    rank_and_select(kept)
}

#[xray::step(kind = "llm")]
fn keyword_generation(title: &str) -> Vec<String> {
    xray::metadata("model", &"mock-llm-1");
    xray::reasoning("The title names the product type.");
    tracing::info!(tokens = 42, "generated keywords");
    title.to_lowercase().split(' ').map(String::from).collect()
}

#[xray::step(kind = "search", skip(catalog), output = false)]
fn candidate_search(keywords: &[String], catalog: &[Product]) -> Vec<Product> {
    let hits: Vec<Product> = catalog
        .iter()
        .filter(|_| !keywords.is_empty())
        .cloned()
        .collect();
    xray::candidates(None, Some(hits.len() as u64));
    hits
}

#[xray::step(kind = "filter", skip(candidates), output = false)]
fn apply_filters(candidates: Vec<Product>, min_rating: f64) -> Vec<Product> {
    let (lo, hi) = PRICE_BAND;
    xray::filters(&serde_json::json!({ "price": [lo, hi], "min_rating": min_rating }));
    candidates
        .into_iter()
        .filter(|c| {
            xray::evaluate(&c.asin)
                .label(&c.title)
                .check_range("price", c.price, lo..=hi)
                .check_min("rating", c.rating, min_rating)
                .check_in("category", &c.category, &["Laptop Stands"])
                .passed()
        })
        .collect()
}

#[xray::step(kind = "rank", skip_all)]
fn rank_and_select(candidates: Vec<Product>) -> Option<String> {
    let mut best: Option<(&Product, f64)> = None;
    for c in &candidates {
        let score = c.rating * 10.0 - c.price / 10.0;
        xray::evaluate(&c.asin)
            .label(&c.title)
            .score(score)
            .metric("price", c.price)
            .record();
        if best.is_none_or(|(_, s)| score > s) {
            best = Some((c, score));
        }
    }
    let (winner, score) = best?;
    xray::select(&winner.asin, format!("highest score {score:.1}"));
    Some(winner.asin.clone())
}

/// A database written by the real layer: one run per entry of `min_ratings`, in order.
pub struct Recorded {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub selected: Vec<Option<String>>,
}

/// Records one competitor-selection run per `min_ratings` entry into a fresh file.
pub fn record(min_ratings: &[f64]) -> Recorded {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("xray.db");
    let selected = record_into(&path, min_ratings);
    Recorded {
        dir,
        path,
        selected,
    }
}

/// Records runs into `path` (which may already hold some).
pub fn record_into(path: &Path, min_ratings: &[f64]) -> Vec<Option<String>> {
    let (layer, guard) = xray::layer()
        .sqlite(path)
        .flush_interval(Duration::from_millis(10))
        .build()
        .expect("build the layer");
    let subscriber = tracing_subscriber::registry().with(layer);
    let products = catalog();
    let selected = tracing::subscriber::with_default(subscriber, || {
        min_ratings
            .iter()
            .map(|&min| find_competitor(&products, min))
            .collect()
    });
    assert!(guard.flush(), "the writer flushed in time");
    assert_eq!(guard.stats().dropped, 0, "nothing dropped");
    assert_eq!(guard.stats().failed, 0, "nothing failed");
    selected
}

/// A server over the file at `path`, on an ephemeral loopback port.
pub fn serve(path: &Path, configure: impl FnOnce(&mut Config)) -> Server {
    let store = SqliteStore::open(path).expect("open the database");
    let mut config = Config {
        addr: "127.0.0.1:0".parse().expect("address"),
        ..Config::default()
    };
    configure(&mut config);
    let server = BackgroundServer::start(Arc::new(store), config).expect("start the server");
    Server {
        base: server.url(),
        inner: server,
    }
}

pub struct Server {
    pub base: String,
    pub inner: BackgroundServer,
}

/// A response, whatever its status.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `field` of a JSON error body.
    pub fn error_field(&self) -> Option<String> {
        self.json()["error"]["field"].as_str().map(String::from)
    }
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `method path` with `headers` and an optional body.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Reply {
        let mut request = ureq::request(method, &self.url(path)).timeout(Duration::from_secs(20));
        for (name, value) in headers {
            request = request.set(name, value);
        }
        let result = match body {
            Some(body) => request
                .set("Content-Type", "application/json")
                .send_string(body),
            None => request.call(),
        };
        let response = match result {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let status = response.status();
        let headers = response
            .headers_names()
            .into_iter()
            .filter_map(|n| response.header(&n).map(|v| (n.clone(), v.to_owned())))
            .collect();
        let body = response.into_string().expect("a text body");
        Reply {
            status,
            headers,
            body,
        }
    }

    pub fn get(&self, path: &str) -> Reply {
        self.call("GET", path, &[], None)
    }

    /// GET that must answer 200 with JSON.
    pub fn json(&self, path: &str) -> serde_json::Value {
        let reply = self.get(path);
        assert_eq!(reply.status, 200, "GET {path}: {}", reply.body);
        reply.json()
    }
}

/// The ids of every execution, newest first.
pub fn execution_ids(server: &Server) -> Vec<String> {
    server.json("/api/v1/executions?limit=1000")["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect()
}

/// The id of the step called `name` in execution `id`.
pub fn step_id(server: &Server, execution: &str, name: &str) -> String {
    let run = server.json(&format!("/api/v1/executions/{execution}"));
    run["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["name"] == name)
        .and_then(|s| s["id"].as_str())
        .unwrap_or_else(|| panic!("no step {name} in {execution}"))
        .to_owned()
}

/// Sends `target` verbatim as the request target (no client-side URL normalization, unlike
/// ureq, which resolves `..` and `%2e%2e` before sending) and returns the status and body.
pub fn raw_get(server: &Server, target: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(server.inner.local_addr()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}
