//! The Gridiron grid: the W3C router and proxy, the session manager, slots
//! and queue, and the timeouts that end sessions.
//!
//! [`serve`] runs the HTTP side on a bound listener until a shutdown future
//! resolves; [`Manager`] owns every session.

pub mod api;
pub mod artifacts;
pub mod auth;
#[cfg(test)]
mod auth_tests;
pub mod backend;
pub mod cluster;
pub mod config;
pub mod devtools;
pub mod driver_client;
pub mod events;
mod files;
mod http;
mod local_session;
mod manager;
pub mod metrics;
mod proxy;
mod routes;
mod session;
mod slots;
mod standalone;
mod store_retry;
pub mod tasks;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod timeline;
pub mod timing;
pub mod tls;
mod tunnel;
mod ui;
pub mod webhooks;

pub use backend::Backend;
pub use config::GridConfig;
pub use manager::{recover, recover_processes, Manager};
pub use routes::router;
pub use session::{Session, SessionKind};
pub use tunnel::Target;

use axum::http::Request;
use hyper::body::Incoming;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Serves the grid on `listener` until `shutdown` resolves, then ends every
/// session, stops every process it started, and returns.
pub async fn serve(
    listener: TcpListener,
    manager: Arc<Manager>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(manager.clone());
    let limits = manager.config.serve_limits();
    serve_app_with(
        listener,
        app,
        async move {
            shutdown.await;
            tracing::info!("shutting down: ending sessions");
            manager.shutdown().await;
        },
        limits,
    )
    .await
}

/// Limits of the HTTP server, which keep slow or numerous clients from
/// exhausting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// How long a client may take to send a request's headers (a connection
    /// that dribbles them, or idles between keep-alive requests, is closed).
    pub header_read_timeout: Duration,
    /// Client connections served at once; further ones wait to be accepted.
    pub max_connections: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            header_read_timeout: config::DEFAULT_HEADER_READ_TIMEOUT,
            max_connections: config::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Serves `app` on `listener` until `stop` has run to its end (it winds the
/// role down), then gives in-flight requests a short grace period.
pub async fn serve_app(
    listener: TcpListener,
    app: axum::Router,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_app_with(listener, app, stop, ServeLimits::default()).await
}

/// [`serve_app`] within `limits`.
pub async fn serve_app_with(
    listener: TcpListener,
    app: axum::Router,
    stop: impl Future<Output = ()> + Send + 'static,
    limits: ServeLimits,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| tune_tcp(tcp));
    serve_on(listener, app, stop, limits).await
}

/// Like [`serve_app_with`], but over TLS with `tls` (a node serving `https://`).
pub async fn serve_app_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: axum::Router,
    stop: impl Future<Output = ()> + Send + 'static,
    limits: ServeLimits,
) -> std::io::Result<()> {
    let listener = tls::TlsListener::new(listener, tls, tune_tcp)?;
    serve_on(listener, app, stop, limits).await
}

/// Socket options of every accepted connection.
fn tune_tcp(tcp: &tokio::net::TcpStream) {
    // Small request/response pairs: never wait for Nagle.
    let _ = tcp.set_nodelay(true);
    // A client machine that vanishes without closing its sockets is noticed
    // (and its commands and tunnels dropped) within about a minute.
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(timing::KEEPALIVE_IDLE)
        .with_interval(timing::KEEPALIVE_INTERVAL)
        .with_retries(timing::KEEPALIVE_RETRIES);
    let _ = socket2::SockRef::from(tcp).set_tcp_keepalive(&keepalive);
}

/// Serves connections from `listener` until `stop` has run.
///
/// Connections are driven here rather than by `axum::serve`, which gives
/// hyper no timer: without one, a header read timeout never fires and a
/// client that sends a byte now and then holds its connection for ever.
async fn serve_on<L>(
    mut listener: L,
    app: axum::Router,
    stop: impl Future<Output = ()> + Send + 'static,
    limits: ServeLimits,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
{
    let (stopped_tx, stopped_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        stop.await;
        let _ = stopped_tx.send(true);
    });
    let stopped = move || {
        let mut rx = stopped_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    // Connections still open after the grace period are dropped with it.
    let (abort_tx, abort_rx) = tokio::sync::watch::channel(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        // Over the cap, new clients wait in the kernel's backlog, not here.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = stopped() => break,
        };
        // The listener waits out failed accepts itself (a client that gave
        // up, running out of file descriptors).
        let io = tokio::select! {
            (io, _) = listener.accept() => io,
            _ = stopped() => break,
        };
        let router = app.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            tower_service::Service::call(&mut router.clone(), req.map(axum::body::Body::new))
        });
        let conn = http
            .serve_connection(hyper_util::rt::TokioIo::new(io), service)
            .with_upgrades();
        let stop = stopped();
        let mut abort = abort_rx.clone();
        connections.spawn(async move {
            let _permit = permit;
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = stop => conn.as_mut().graceful_shutdown(),
            }
            tokio::select! {
                _ = conn => {}
                _ = abort.wait_for(|a| *a) => {}
            }
        });
    }
    connections.close();
    // Sessions are gone by now; in-flight requests only get a short grace period.
    let _ = tokio::time::timeout(timing::SERVE_GRACE, connections.wait()).await;
    let _ = abort_tx.send(true);
    Ok(())
}
