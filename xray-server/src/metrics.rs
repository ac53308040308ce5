//! Prometheus metrics, served as text at `/api/v1/metrics`.
//!
//! | metric | type | what |
//! |---|---|---|
//! | `xray_http_requests_total{route,method,status}` | counter | API requests by route pattern (not raw path) |
//! | `xray_http_request_duration_seconds{route}` | histogram | time to answer |
//! | `xray_websocket_clients` | gauge | live WebSocket connections |
//! | `xray_live_lagged_total` | counter | `lagged` messages sent to clients that fell behind |
//! | `xray_ingest_lag_seconds` | gauge | age of the newest change when the live tail saw it |
//! | `xray_recorder_dropped_records` | gauge | records recorders dropped on a full queue or received after their step ended (from the database) |
//! | `xray_recorder_failed_records` | gauge | records recorders failed to write (from the database) |
//! | `xray_recorder_sampled_out_executions` | gauge | executions recorders' sampling left out, never recorded (from the database) |

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram>,
    /// Live WebSocket connections.
    pub websocket_clients: Gauge,
    /// `lagged` messages sent.
    pub live_lagged: Counter,
    /// Seconds between a change's own time and the live tail seeing it.
    pub ingest_lag: Gauge<f64, AtomicU64>,
    dropped: Gauge,
    failed: Gauge,
    sampled_out: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let durations = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 14))
        });
        let websocket_clients = Gauge::default();
        let live_lagged = Counter::default();
        let ingest_lag = Gauge::<f64, AtomicU64>::default();
        let dropped = Gauge::default();
        let failed = Gauge::default();
        let sampled_out = Gauge::default();
        registry.register(
            "xray_http_requests",
            "API requests by route, method and status",
            requests.clone(),
        );
        registry.register(
            "xray_http_request_duration_seconds",
            "Time to answer an API request",
            durations.clone(),
        );
        registry.register(
            "xray_websocket_clients",
            "Live WebSocket connections",
            websocket_clients.clone(),
        );
        registry.register(
            "xray_live_lagged",
            "Lagged messages sent to live clients that fell behind",
            live_lagged.clone(),
        );
        registry.register(
            "xray_ingest_lag_seconds",
            "Age of the newest change when the live tail saw it",
            ingest_lag.clone(),
        );
        registry.register(
            "xray_recorder_dropped_records",
            "Records recorders dropped on a full queue or received after their step ended",
            dropped.clone(),
        );
        registry.register(
            "xray_recorder_failed_records",
            "Records recorders failed to write",
            failed.clone(),
        );
        registry.register(
            "xray_recorder_sampled_out_executions",
            "Executions recorders' sampling left out (never recorded)",
            sampled_out.clone(),
        );
        Metrics {
            registry,
            requests,
            durations,
            websocket_clients,
            live_lagged,
            ingest_lag,
            dropped,
            failed,
            sampled_out,
        }
    }
}

impl Metrics {
    /// Counts one answered request.
    pub fn request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                method: method.to_owned(),
                status,
            })
            .inc();
        self.durations
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    /// The text exposition, with the recorder counts read from the database just now.
    pub fn render(&self, counts: xray::store::RecorderCounts) -> String {
        self.dropped
            .set(i64::try_from(counts.dropped).unwrap_or(i64::MAX));
        self.failed
            .set(i64::try_from(counts.failed).unwrap_or(i64::MAX));
        self.sampled_out
            .set(i64::try_from(counts.sampled_out).unwrap_or(i64::MAX));
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.push_str("# error: metrics could not be encoded\n");
        }
        out
    }
}
