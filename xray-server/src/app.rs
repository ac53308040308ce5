//! One request, start to finish: the middleware in order, then the handler.
//!
//! [`App::handle`] is the whole server as a function from a request to a response; the accept
//! loop ([`crate::Server`]) only feeds it. The order of the middleware is the one the
//! [`middleware`](crate::middleware) table gives.

use crate::api;
use crate::config::Config;
use crate::encoding;
use crate::error::ApiError;
use crate::http::Response;
use crate::live::LiveHub;
use crate::metrics::Metrics;
use crate::middleware::rate_limit::{Limiter, Outcome};
use crate::middleware::{auth, cors, headers};
use crate::params::Params;
use crate::routes::{self, Matched, RouteId};
use crate::static_files;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH, RETRY_AFTER};
use hyper::{HeaderMap, Method, Request};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use xray::store::Store;

/// How much of an oversized body is read and discarded so the client can read the 413.
const DRAIN_BYTES: usize = 32 * 1024 * 1024;
/// How long an oversized body is drained at most.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// Everything a request may need, shared by all connections.
pub struct App {
    /// The store the API reads and writes.
    pub store: Arc<dyn Store>,
    /// Settings.
    pub config: Config,
    /// Metrics.
    pub metrics: Metrics,
    /// The live tail's broadcast.
    pub live: LiveHub,
    limiter: Option<Limiter>,
    /// Batch ids whose recorder counts were added recently (a retried batch adds them once).
    pub(crate) counted_batches: std::sync::Mutex<api::records::RecentBatches>,
    /// Store calls running at once ([`Config::query_concurrency`]); the rest wait their turn.
    queries: Arc<tokio::sync::Semaphore>,
}

/// A validated API call, ready for its handler.
pub struct Call {
    /// The route and its path parameters.
    pub matched: Matched,
    /// The query parameters.
    pub params: Params,
    /// The request headers.
    pub headers: HeaderMap,
    /// The request body (empty for routes without one).
    pub body: Bytes,
    /// The request itself, for the WebSocket upgrade (routes without a body only).
    pub request: Option<Request<Incoming>>,
}

impl App {
    /// The shared state for `store` with `config`.
    pub fn new(store: Arc<dyn Store>, config: Config) -> App {
        let limiter = Limiter::new(config.rate_limit_per_minute, config.rate_limit_burst());
        let live = LiveHub::new(config.live_buffer);
        App {
            store,
            metrics: Metrics::default(),
            live,
            limiter,
            counted_batches: Default::default(),
            queries: Arc::new(tokio::sync::Semaphore::new(config.query_concurrency.max(1))),
            config,
        }
    }

    /// Runs `query` against the store on the blocking pool (SQLite calls block), once fewer
    /// than [`Config::query_concurrency`] other calls are running.
    pub async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        query: impl FnOnce(&dyn Store) -> Result<T, xray::store::StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.queued(query).await?.map_err(ApiError::from)
    }

    /// Runs `work` on the blocking pool once fewer than [`Config::query_concurrency`] other
    /// store calls are running.
    ///
    /// Without the bound, every request beyond the store's pooled connections took a blocking
    /// thread and opened a connection of its own: 200 concurrent clients meant about 200 of
    /// each, a p99 latency of 11.6 s and 650 MiB of RSS (tests/load.rs, RELIABILITY.md).
    /// Waiting for a permit costs a task, not a thread.
    pub async fn queued<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&dyn Store) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = Arc::clone(&self.queries)
            .acquire_owned()
            .await
            .map_err(|_| ApiError::internal("the server is shutting down"))?;
        // The permit goes with the work: a client that leaves does not stop the query.
        self.run_blocking(move |store| {
            let result = work(store);
            drop(permit);
            result
        })
        .await
    }

    /// Runs `query` on the blocking pool at once, without waiting for a permit: for the live
    /// tail, which must not queue behind API clients.
    pub async fn blocking_now<T: Send + 'static>(
        self: &Arc<Self>,
        query: impl FnOnce(&dyn Store) -> Result<T, xray::store::StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.run_blocking(query).await?.map_err(ApiError::from)
    }

    async fn run_blocking<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&dyn Store) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let app = Arc::clone(self);
        tokio::task::spawn_blocking(move || work(app.store.as_ref()))
            .await
            .map_err(|e| ApiError::internal(format!("a query failed: {e}")))
    }

    /// Forgets idle rate-limit buckets (called by the housekeeping task).
    pub fn forget_idle_clients(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.forget_idle();
        }
    }

    /// Answers one request from `peer`.
    pub async fn handle(self: Arc<Self>, request: Request<Incoming>, peer: SocketAddr) -> Response {
        let started = Instant::now();
        let method = request.method().clone();
        let is_api = request.uri().path().starts_with("/api/");
        // 0. The head's size. hyper's read buffer cap (`MAX_HEAD_BYTES`) is checked between
        // reads, so a head of up to about twice it can get through; this makes it exact.
        if head_bytes(&request) > crate::MAX_HEAD_BYTES {
            let response = ApiError::head_too_large(crate::MAX_HEAD_BYTES).into_response();
            return self.finish(response, "head_too_large", &method, started);
        }
        // 1. CORS.
        let allowed_origin =
            match cors::decide(&method, request.headers(), &self.config.cors_origins) {
                cors::Decision::SameOrigin => None,
                cors::Decision::Allowed(origin) => Some(origin),
                cors::Decision::Respond(response) => {
                    return self.finish(response, "cors", &method, started);
                }
            };
        let (mut response, route) = if is_api {
            self.api(request, peer).await
        } else {
            (static_files::serve(&request), "static")
        };
        if let Some(origin) = allowed_origin {
            cors::allow(response.headers_mut(), origin);
        }
        self.finish(response, route, &method, started)
    }

    fn finish(
        &self,
        mut response: Response,
        route: &str,
        method: &Method,
        started: Instant,
    ) -> Response {
        // 2. Security headers, on everything (errors and refusals included).
        headers::apply(response.headers_mut());
        self.metrics.request(
            route,
            method.as_str(),
            response.status().as_u16(),
            started.elapsed().as_secs_f64(),
        );
        response
    }

    async fn api(
        self: &Arc<Self>,
        request: Request<Incoming>,
        peer: SocketAddr,
    ) -> (Response, &'static str) {
        // 3. Rate limit.
        let mut limit_headers = Vec::new();
        if let Some(limiter) = &self.limiter {
            match limiter.check(peer.ip()) {
                Outcome::Allowed { limit, remaining } => {
                    limit_headers.push(("x-ratelimit-limit", limit.to_string()));
                    limit_headers.push(("x-ratelimit-remaining", remaining.to_string()));
                }
                Outcome::Refused {
                    limit,
                    retry_after_s,
                } => {
                    let mut response = ApiError::rate_limited(retry_after_s).into_response();
                    let h = response.headers_mut();
                    put(h, "x-ratelimit-limit", &limit.to_string());
                    put(h, "x-ratelimit-remaining", "0");
                    if let Ok(v) = HeaderValue::from_str(&retry_after_s.to_string()) {
                        h.insert(RETRY_AFTER, v);
                    }
                    return (response, "rate_limited");
                }
            }
        }
        let (mut response, route) = match self.validate_and_run(request).await {
            Ok((response, route)) => (response, route),
            Err((e, route)) => (e.into_response(), route),
        };
        for (name, value) in limit_headers {
            put(response.headers_mut(), name, &value);
        }
        (response, route)
    }

    async fn validate_and_run(
        self: &Arc<Self>,
        request: Request<Incoming>,
    ) -> Result<(Response, &'static str), (ApiError, &'static str)> {
        // 4. Validation: route, method, parameters.
        let path = request.uri().path().to_owned();
        let segments =
            routes::segments(&path).ok_or_else(|| (ApiError::no_route(&path), "unmatched"))?;
        let matched = routes::find(request.method(), &segments)
            .map_err(|e| (e.into_api(request.method(), &path), "unmatched"))?;
        let route = matched.route.pattern;
        let params = Params::parse(
            request.uri().query(),
            matched.route.params,
            matched.route.repeatable,
        )
        .map_err(|e| (e, route))?;
        // 5. Body cap.
        let headers = request.headers().clone();
        let (body, request) = if matched.route.has_body {
            let body = self.read_body(request).await.map_err(|e| (e, route))?;
            (body, None)
        } else {
            (Bytes::new(), Some(request))
        };
        // 6. Auth.
        if let (Some(token), true) = (&self.config.token, matched.route.needs_token) {
            if !auth::authorized(&headers, token) {
                return Err((ApiError::unauthorized(), route));
            }
        }
        // Decoded only once the caller is known to be allowed, and capped after decoding.
        let body = if matched.route.has_body {
            encoding::decode(&headers, body, self.config.max_body_bytes).map_err(|e| (e, route))?
        } else {
            body
        };
        let id = matched.route.id;
        let call = Call {
            matched,
            params,
            headers,
            body,
            request,
        };
        let response = self.dispatch(id, call).await.map_err(|e| (e, route))?;
        Ok((response, route))
    }

    /// Reads the body up to the cap. Past the cap it keeps reading and discarding (up to
    /// [`DRAIN_BYTES`] more, within [`DRAIN_TIME`]) so the client, still sending, can read the
    /// 413 instead of a reset connection.
    async fn read_body(&self, request: Request<Incoming>) -> Result<Bytes, ApiError> {
        let cap = self.config.max_body_bytes;
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let mut body = request.into_body();
        if declared.is_some_and(|n| n > (cap + DRAIN_BYTES) as u64) {
            return Err(ApiError::too_large(cap));
        }
        let mut kept = Vec::new();
        let mut seen = 0usize;
        let drained = tokio::time::timeout(DRAIN_TIME, async {
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| {
                    ApiError::invalid_body(None, format!("the body could not be read: {e}"))
                })?;
                if let Some(data) = frame.data_ref() {
                    seen += data.len();
                    if seen <= cap {
                        kept.extend_from_slice(data);
                    } else if seen > cap + DRAIN_BYTES {
                        break;
                    }
                }
            }
            Ok::<(), ApiError>(())
        })
        .await;
        match drained {
            Ok(Ok(())) if seen <= cap => Ok(Bytes::from(kept)),
            Ok(Err(e)) => Err(e),
            _ => Err(ApiError::too_large(cap)),
        }
    }

    async fn dispatch(self: &Arc<Self>, id: RouteId, call: Call) -> Result<Response, ApiError> {
        match id {
            RouteId::ListExecutions => api::executions::list(self, call).await,
            RouteId::DeleteExecutions => api::executions::delete(self, call).await,
            RouteId::GetExecution => api::executions::get(self, call).await,
            RouteId::PatchExecution => api::executions::patch(self, call).await,
            RouteId::ExportExecution => api::export::export(self, call).await,
            RouteId::FindSteps => api::steps::find(self, call).await,
            RouteId::GetStep => api::steps::get(self, call).await,
            RouteId::StepEvaluations => api::steps::evaluations(self, call).await,
            RouteId::StepCheckValues => api::steps::check_values(self, call).await,
            RouteId::Candidate => api::candidates::lineage(self, call).await,
            RouteId::Stats => api::stats::stats(self, call).await,
            RouteId::Compare => api::compare::compare(self, call).await,
            RouteId::StepOnlyIn => api::compare::only_in(self, call).await,
            RouteId::StepVerdictChanges => api::compare::verdict_changes(self, call).await,
            RouteId::Ingest => api::export::ingest(self, call).await,
            RouteId::IngestRecords => api::records::ingest(self, call).await,
            RouteId::Live => crate::live::upgrade(self, call),
            RouteId::OpenApi => Ok(api::meta::openapi()),
            RouteId::Health => api::meta::health(self).await,
            RouteId::Metrics => api::meta::metrics(self).await,
        }
    }
}

/// The size of the request line and headers as sent (give or take the spaces around values).
fn head_bytes(request: &Request<Incoming>) -> usize {
    let line = request.method().as_str().len() + request.uri().to_string().len() + 11;
    request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum::<usize>()
        + line
}

fn put(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), v);
    }
}
