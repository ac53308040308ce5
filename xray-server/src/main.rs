//! `xray-server`: the command line over the `xray_server` library.

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use xray::store::{SqliteStore, Store};
use xray_server::{Config, Server};

/// Exit code: the database is missing, not an X-Ray database, or unusable.
const EXIT_DATABASE: u8 = 3;
/// Exit code: the address cannot be bound, or the runtime cannot start.
const EXIT_SERVE: u8 = 1;

/// Serve an X-Ray database: the API under /api/v1, live updates, and the viewer at /.
///
/// The instrumented program and the server can run side by side on the same file: the
/// program writes, the server reads (SQLite WAL).
///
/// Exit codes: 0 after Ctrl-C or SIGTERM, 1 when the address cannot be bound, 2 for bad
/// arguments, 3 when the database is missing or is not an X-Ray database.
#[derive(Parser, Debug)]
#[command(name = "xray-server", version, about, long_about)]
struct Cli {
    /// The SQLite file your program records into (created by `xray::layer().sqlite(..)`), or a
    /// PostgreSQL URL (postgres://user:password@host:5432/database) shared by several servers.
    #[arg(long, env = "XRAY_DB", default_value = xray_server::DEFAULT_DB)]
    db: String,

    /// The address to listen on. The default is loopback only; use 0.0.0.0:7777 (with --token)
    /// to serve others.
    #[arg(long, env = "XRAY_ADDR", default_value = xray_server::DEFAULT_ADDR)]
    addr: SocketAddr,

    /// Require `Authorization: Bearer <TOKEN>` on every API call (all but /api/v1/health).
    /// The viewer asks for it once.
    #[arg(long, env = "XRAY_TOKEN", hide_env_values = true)]
    token: Option<String>,

    /// Allow browser pages on this origin to call the API (e.g. https://tools.example.com).
    /// Repeat for several. The viewer served by this server needs none.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    cors_origins: Vec<String>,

    /// Requests per minute per client address (0: no limit).
    #[arg(long, value_name = "PER_MINUTE", default_value_t = xray_server::DEFAULT_RATE_LIMIT_PER_MINUTE)]
    rate_limit: u32,

    /// Delete executions older than this, in the background (e.g. 7d, 12h, 30min).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    retain: Option<Duration>,

    /// The largest request body accepted, in bytes (ingest batches).
    #[arg(long, value_name = "BYTES", default_value_t = xray_server::DEFAULT_MAX_BODY_BYTES)]
    max_body: usize,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| format!("{e} (try 7d, 12h or 30min)"))?;
    if d.is_zero() {
        return Err("must be longer than 0".into());
    }
    Ok(d)
}

/// Opens `db`: a PostgreSQL URL, else an SQLite file that must exist.
fn open_store(db: &str) -> Result<Arc<dyn Store>, String> {
    if db.starts_with("postgres://") || db.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        return xray::store::PostgresStore::open(db)
            .map(|store| Arc::new(store) as Arc<dyn Store>)
            .map_err(|e| e.to_string());
        #[cfg(not(feature = "postgres"))]
        return Err("this xray-server was built without the `postgres` feature".into());
    }
    let path = PathBuf::from(db);
    if !path.exists() {
        return Err(format!(
            "no database at {}.\n  Run your instrumented program first (it creates the file), or pass --db <path> (env XRAY_DB).",
            path.display()
        ));
    }
    SqliteStore::open(&path)
        .map(|store| Arc::new(store) as Arc<dyn Store>)
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let store = match open_store(&cli.db) {
        Ok(store) => store,
        Err(message) => {
            eprintln!("xray-server: {message}");
            return ExitCode::from(EXIT_DATABASE);
        }
    };
    let config = Config {
        addr: cli.addr,
        token: cli.token.filter(|t| !t.is_empty()),
        cors_origins: cli.cors_origins,
        rate_limit_per_minute: cli.rate_limit,
        retain: cli.retain,
        max_body_bytes: cli.max_body,
        ..Config::default()
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("xray-server: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_SERVE);
        }
    };
    runtime.block_on(async move {
        let protected = config.token.is_some();
        match Server::new(store, config).bind().await {
            Ok(server) => {
                println!(
                    "X-Ray viewer at http://{}/ (database {}{})",
                    server.local_addr(),
                    xray::store::redact_password(&cli.db),
                    if protected { ", token required" } else { "" }
                );
                server.wait().await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("xray-server: cannot listen on {}: {e}", cli.addr);
                ExitCode::from(EXIT_SERVE)
            }
        }
    })
}
