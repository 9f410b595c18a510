//! The Gridiron grid: the W3C router and proxy, the session manager, slots
//! and queue, and the timeouts that end sessions.
//!
//! [`serve`] runs the HTTP side on a bound listener until a shutdown future
//! resolves; [`Manager`] owns every session.

pub mod auth;
#[cfg(test)]
mod auth_tests;
pub mod backend;
pub mod cluster;
pub mod config;
pub mod driver_client;
mod http;
mod local_session;
mod manager;
mod proxy;
mod routes;
mod session;
mod slots;
mod standalone;
pub mod tasks;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod timing;
pub mod tls;
mod tunnel;

pub use backend::Backend;
pub use config::GridConfig;
pub use manager::{recover, recover_processes, Manager};
pub use routes::router;
pub use session::{Session, SessionKind};
pub use tunnel::Target;

use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Serves the grid on `listener` until `shutdown` resolves, then ends every
/// session, stops every process it started, and returns.
pub async fn serve(
    listener: TcpListener,
    manager: Arc<Manager>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(manager.clone());
    serve_app(listener, app, async move {
        shutdown.await;
        tracing::info!("shutting down: ending sessions");
        manager.shutdown().await;
    })
    .await
}

/// Serves `app` on `listener` until `stop` has run to its end (it winds the
/// role down), then gives in-flight requests a short grace period.
pub async fn serve_app(
    listener: TcpListener,
    app: axum::Router,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| tune_tcp(tcp));
    serve_on(listener, app, stop).await
}

/// Like [`serve_app`], but over TLS with `tls` (a node serving `https://`).
pub async fn serve_app_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: axum::Router,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tls::TlsListener::new(listener, tls, tune_tcp)?;
    serve_on(listener, app, stop).await
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

async fn serve_on<L>(
    listener: L,
    app: axum::Router,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
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
    let server = axum::serve(listener, app).with_graceful_shutdown(stopped());
    // Sessions are gone by now; in-flight requests only get a short grace period.
    tokio::select! {
        r = server => r,
        _ = async {
            stopped().await;
            tokio::time::sleep(timing::SERVE_GRACE).await;
        } => Ok(()),
    }
}
