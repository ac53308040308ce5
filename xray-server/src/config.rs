//! The server's settings, with documented defaults.

use std::net::SocketAddr;
use std::time::Duration;

/// Where the server listens unless told otherwise: loopback only.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7777";
/// The database file unless told otherwise.
pub const DEFAULT_DB: &str = "xray.db";
/// Requests per minute per client address. Sized for a person in the viewer: opening a run and
/// scrolling a 100,000-row candidate table fetches a few hundred pages in a minute, and the
/// burst ([`Config::rate_limit_burst`]) absorbs a page load's parallel requests.
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u32 = 1_200;
/// The largest request body (an ingest batch), in bytes: 16 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// How often the live tail looks for new rows. The figure bounds how late a WebSocket message
/// is after the writer's commit (half of it on average).
pub const DEFAULT_LIVE_POLL: Duration = Duration::from_millis(50);
/// A WebSocket client that has not accepted a message for this long is disconnected.
pub const DEFAULT_LIVE_SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Store calls (SQLite queries) the API runs at once; further requests wait their turn. The
/// store keeps 4 reader connections, so up to 4 queries run without opening a connection.
pub const DEFAULT_QUERY_CONCURRENCY: usize = 4;
/// Messages buffered per WebSocket client before it is told it `lagged` and skipped ahead.
pub const DEFAULT_LIVE_BUFFER: usize = 4_096;

/// How the server behaves. `Config::default()` is what `xray-server` runs with no flags.
#[derive(Clone, Debug)]
pub struct Config {
    /// The address to listen on (port 0 picks a free port; see
    /// [`RunningServer::local_addr`](crate::RunningServer::local_addr)).
    pub addr: SocketAddr,
    /// When set, every API call but `/api/v1/health` needs `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Origins allowed to call the API from a browser page served elsewhere (exact match, e.g.
    /// `https://tools.example.com`). The viewer served by this server needs none.
    pub cors_origins: Vec<String>,
    /// Requests per minute per client address; 0 turns the limit off.
    pub rate_limit_per_minute: u32,
    /// Executions that started longer ago than this are deleted in the background.
    pub retain: Option<Duration>,
    /// The largest request body accepted (413 beyond).
    pub max_body_bytes: usize,
    /// How often the live tail polls for new rows.
    pub live_poll: Duration,
    /// How long a WebSocket client may take to accept a message before it is disconnected.
    pub live_send_timeout: Duration,
    /// Messages buffered per WebSocket client before it is skipped ahead with a `lagged` message.
    pub live_buffer: usize,
    /// How long a client may take to send a request's headers before its connection is closed
    /// (slow-loris protection; also closes a connection that sends nothing).
    pub header_read_timeout: Duration,
    /// Store calls the API runs at once; the others wait (in order) without holding a thread.
    pub query_concurrency: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 7777)),
            token: None,
            cors_origins: Vec::new(),
            rate_limit_per_minute: DEFAULT_RATE_LIMIT_PER_MINUTE,
            retain: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            live_poll: DEFAULT_LIVE_POLL,
            live_send_timeout: DEFAULT_LIVE_SEND_TIMEOUT,
            live_buffer: DEFAULT_LIVE_BUFFER,
            header_read_timeout: crate::HEADER_READ_TIMEOUT,
            query_concurrency: DEFAULT_QUERY_CONCURRENCY,
        }
    }
}

impl Config {
    /// The burst the rate limiter allows: a tenth of a minute's requests, at least 10.
    pub fn rate_limit_burst(&self) -> u32 {
        (self.rate_limit_per_minute / 10).max(10)
    }
}
