//! # xray-server
//!
//! Serves what X-Ray recorded: the HTTP API v1 under `/api/v1`, live updates over a WebSocket,
//! and the embedded viewer at `/`. It reads the same SQLite file the instrumented program writes
//! (WAL: both run side by side), through the engine-neutral [`Store`](xray::store::Store) trait,
//! so it never writes SQL of its own.
//!
//! The binary is a thin CLI over this library; tests and examples start a server in-process:
//!
//! ```
//! use std::sync::Arc;
//! use xray_server::{BackgroundServer, Config};
//!
//! let store = Arc::new(xray::store::MemoryStore::new());
//! let config = Config { addr: "127.0.0.1:0".parse()?, ..Config::default() };
//! let server = BackgroundServer::start(store, config)?;
//! let health: serde_json::Value = ureq::get(&format!("{}/api/v1/health", server.url()))
//!     .call()?
//!     .into_json()?;
//! assert_eq!(health["status"], "ok");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## The map
//!
//! | module | what it holds |
//! |---|---|
//! | [`Server`], [`RunningServer`], [`BackgroundServer`] | bind, serve, shut down |
//! | [`Config`] and `DEFAULT_*` | every setting with its default |
//! | [`app`] | one request start to finish: the middleware in order, then the handler |
//! | [`middleware`] | CORS, security headers, rate limit, auth (the order is in its table) |
//! | [`routes`] | the route table the OpenAPI document is checked against |
//! | [`params`] | query parameters, typed, errors naming the parameter |
//! | [`api`] | the handlers, one module per resource |
//! | [`live`] | the live tail and the WebSocket sessions |
//! | [`error`] | the JSON error shape and codes |
//! | [`metrics`] | Prometheus metrics |
//! | [`static_files`] | the embedded viewer |
//!
//! ## The API
//!
//! `GET /api/v1/openapi.json` describes every route. In short:
//!
//! | route | answers |
//! |---|---|
//! | `GET /executions` | runs, newest first, filtered by name, status, tag, time, step count, text, error; each with a one-line preview of its input and of its output |
//! | `GET /executions/{id}` | a run: step tree, counts, funnel with the loss per check |
//! | `PATCH /executions/{id}`, `DELETE /executions` | tags and notes; bulk delete |
//! | `GET /executions/{id}/export?format=json\|csv` | a run as one document, or its evaluations as CSV |
//! | `GET /steps/{id}` | a step: input, output, filters, selection, reasoning, logs, error, evaluation summary |
//! | `GET /steps/{id}/evaluations` | its candidates, by verdict, check, the value a check saw (`observed=`), text; sorted by score or by a metric (`sort=metric&metric=confidence`) |
//! | `GET /steps/{id}/check-values?check=` | the values one check saw, the most frequent first, each with how many passed and failed ("category: Phone Cases 1,405 passed") |
//! | `GET /steps` | steps across runs by kind, name, elimination ("> 90% eliminated") |
//! | `GET /candidates/{id}` | where a candidate went in every run |
//! | `GET /stats` | per step name: count, p50/p95, error rate, mean elimination |
//! | `GET /compare?a=&b=` | two runs step by step: differing inputs, outputs and filters, the candidates whose verdict changed and the checks that changed them, and the first of those only one run judged |
//! | `GET /steps/{id}/only-in?other=` | every candidate a step judged that the same step of another run did not, paged |
//! | `GET /steps/{id}/verdict-changes?other=&check=` | every candidate both judged differently (or those one check changed), with the reasons on both sides, paged |
//! | `POST /ingest` | runs from another process, in the export's shape |
//! | `POST /ingest/records` | batches of records from remote recorders (`xray::layer().remote(url)`), gzip accepted |
//! | `GET /live` | WebSocket of changes (see [`live`]) |
//! | `GET /health`, `GET /metrics` | liveness, and what recorders lost or sampled out; Prometheus text |

pub mod api;
pub mod app;
mod config;
pub mod encoding;
pub mod error;
pub mod http;
pub mod live;
pub mod metrics;
pub mod middleware;
pub mod params;
pub mod routes;
mod server;
pub mod static_files;

pub use config::{
    Config, DEFAULT_ADDR, DEFAULT_DB, DEFAULT_LIVE_BUFFER, DEFAULT_LIVE_POLL,
    DEFAULT_LIVE_SEND_TIMEOUT, DEFAULT_MAX_BODY_BYTES, DEFAULT_QUERY_CONCURRENCY,
    DEFAULT_RATE_LIMIT_PER_MINUTE,
};
pub use server::{BackgroundServer, RunningServer, Server, HEADER_READ_TIMEOUT, MAX_HEAD_BYTES};
