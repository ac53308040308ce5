//! Binding, the accept loop, background tasks and shutdown.

use crate::app::App;
use crate::config::Config;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use xray::store::Store;

/// How long a client may take to send a request's headers (slow-loris protection): the default
/// of [`Config::header_read_timeout`].
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request head (request line and headers) accepted, in bytes.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// How often retention and housekeeping run.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(60);
/// How long shutdown waits for open requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A server over a store, not yet listening.
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// use std::sync::Arc;
/// let store = Arc::new(xray::store::SqliteStore::open("xray.db").expect("database"));
/// let server = xray_server::Server::new(store, xray_server::Config::default()).bind().await?;
/// println!("X-Ray at http://{}", server.local_addr());
/// server.wait().await;
/// # Ok(()) }
/// ```
pub struct Server {
    store: Arc<dyn Store>,
    config: Config,
}

/// A listening server. Dropping it does not stop it; call [`RunningServer::shutdown`].
pub struct RunningServer {
    addr: SocketAddr,
    app: Arc<App>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Server {
    /// A server for `store` with `config`.
    pub fn new(store: Arc<dyn Store>, config: Config) -> Server {
        Server { store, config }
    }

    /// Binds [`Config::addr`] and starts serving, the live tail and housekeeping.
    pub async fn bind(self) -> std::io::Result<RunningServer> {
        let listener = TcpListener::bind(self.config.addr).await?;
        let addr = listener.local_addr()?;
        let app = Arc::new(App::new(self.store, self.config));
        let (stop, stop_rx) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(accept(listener, Arc::clone(&app), stop_rx.clone())),
            tokio::spawn(crate::live::tail(Arc::clone(&app), stop_rx.clone())),
            tokio::spawn(housekeeping(Arc::clone(&app), stop_rx)),
        ];
        Ok(RunningServer {
            addr,
            app,
            stop,
            tasks,
        })
    }
}

impl RunningServer {
    /// The address it listens on (the real port when [`Config::addr`] had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, closes live connections, lets open requests finish (up to 5 s).
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        self.app.live.close_all();
        for task in self.tasks {
            let _ = task.await;
        }
    }

    /// Serves until the process receives Ctrl-C (SIGINT) or SIGTERM, then shuts down.
    pub async fn wait(self) {
        shutdown_signal().await;
        self.shutdown().await;
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn accept(listener: TcpListener, app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: keep serving the open connections.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            _ = stop.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let app = Arc::clone(&app);
        let mut stop = stop.clone();
        let header_read_timeout = app.config.header_read_timeout;
        connections.spawn(async move {
            let service = service_fn(move |request| {
                let app = Arc::clone(&app);
                async move { Ok::<_, Infallible>(app.handle(request, peer).await) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .max_buf_size(MAX_HEAD_BYTES)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                _ = stop.changed() => {
                    connection.as_mut().graceful_shutdown();
                    match tokio::time::timeout(SHUTDOWN_GRACE, connection.as_mut()).await {
                        Ok(ended) => ended,
                        Err(_) => Ok(()),
                    }
                }
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Retention (`--retain`), idle rate-limit buckets, and the store's deferred upkeep (the
/// candidate index after ingest).
async fn housekeeping(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    loop {
        if let Some(retain) = app.config.retain {
            let cutoff =
                xray::model::now_us() - i64::try_from(retain.as_micros()).unwrap_or(i64::MAX / 2);
            match app
                .blocking(move |s| s.delete_executions_before(cutoff))
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "retention: deleted old executions"),
                Err(e) => tracing::warn!(error = %e.message, "retention failed"),
            }
        }
        app.forget_idle_clients();
        // Catch the candidate index up, a chunk at a time, while nothing else is asked.
        for _ in 0..50 {
            match app.blocking(|s| s.maintain()).await {
                Ok(true) => continue,
                Ok(false) => break,
                Err(e) => {
                    tracing::debug!(error = %e.message, "store upkeep failed");
                    break;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(HOUSEKEEPING_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}

/// A server running on its own thread with its own runtime, for programs that are not async
/// (the demo, tests). Dropping it shuts the server down.
pub struct BackgroundServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BackgroundServer {
    /// Starts a server for `store` with `config` on a new thread; returns once it listens.
    pub fn start(store: Arc<dyn Store>, config: Config) -> std::io::Result<BackgroundServer> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("xray-server")
            .enable_all()
            .build()?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("xray-server".into())
            .spawn(move || {
                runtime.block_on(async move {
                    match Server::new(store, config).bind().await {
                        Ok(server) => {
                            let _ = ready_tx.send(Ok(server.local_addr()));
                            let _ = stop_rx.await;
                            server.shutdown().await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                });
            })?;
        let addr = ready_rx
            .recv()
            .map_err(|_| std::io::Error::other("the server thread ended before listening"))??;
        Ok(BackgroundServer {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
