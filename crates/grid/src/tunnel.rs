//! Websocket tunnels (CDP, BiDi): the client's upgrade request is passed to
//! the browser or driver, and once both sides have switched protocols the
//! bytes are copied in both directions without looking at frames.

use crate::http;
use crate::tasks::Tasks;
use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode, Uri};
use gridiron_domain::{ErrorCode, GridError, Origin};
use hyper_util::rt::TokioIo;

/// Whether a request asks for a websocket upgrade.
pub fn is_upgrade(req: &Request<Body>) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Where a tunnel goes: a `ws://` or `wss://` URL, and for `wss://` the TLS
/// settings to verify the other end with.
#[derive(Clone)]
pub struct Target {
    /// `ws://host:port/path` or `wss://host:port/path`.
    pub url: String,
    /// Needed for `wss://` URLs; unused for `ws://`.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

/// Anything a tunnel can be opened to: a URL (a local driver's or
/// browser's, always `ws://`) or a [`Target`].
pub trait IntoTarget {
    /// The target.
    fn into_target(self) -> Target;
}

impl IntoTarget for &str {
    fn into_target(self) -> Target {
        Target {
            url: self.to_string(),
            tls: None,
        }
    }
}

impl IntoTarget for &String {
    fn into_target(self) -> Target {
        self.as_str().into_target()
    }
}

impl IntoTarget for &Target {
    fn into_target(self) -> Target {
        self.clone()
    }
}

/// A connection to a tunnel's upstream: plain TCP or TLS over it.
enum Upstream {
    Plain(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>),
}

/// Connects to `authority` (`host:port`), over TLS if `tls` is given.
async fn connect(
    authority: &axum::http::uri::Authority,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
) -> Result<Upstream, String> {
    let tcp = tokio::net::TcpStream::connect(authority.as_str())
        .await
        .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let Some(cfg) = tls else {
        return Ok(Upstream::Plain(tcp));
    };
    let name = rustls::pki_types::ServerName::try_from(authority.host().to_string())
        .map_err(|e| format!("bad TLS server name: {e}"))?;
    let stream = tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake failed: {e}"))?;
    Ok(Upstream::Tls(Box::new(stream)))
}

fn upstream_error(message: String) -> Response<Body> {
    http::error(&GridError::new(
        ErrorCode::UnknownError,
        Origin::Driver,
        message,
    ))
}

/// Connects the client's websocket to `target` (`ws://127.0.0.1:PORT/path`,
/// or a `wss://` [`Target`]).
/// `guard` lives exactly as long as the tunnel: it is dropped when either side
/// closes, when the upgrade fails, when this future is cancelled, or when
/// `tasks` stop.
/// `activity` runs whenever bytes pass, in either direction.
pub async fn open(
    tasks: &Tasks,
    mut req: Request<Body>,
    target: impl IntoTarget,
    guard: impl Send + 'static,
    activity: impl Fn() + Send + Sync + 'static,
) -> Response<Body> {
    if !is_upgrade(&req) {
        return http::error(&GridError::invalid_argument(
            "this endpoint needs a websocket upgrade (Upgrade: websocket)",
        ));
    }
    let Target { url: target, tls } = target.into_target();
    let tls = match target.strip_prefix("wss://") {
        Some(_) => match tls {
            Some(cfg) => Some(cfg),
            None => return upstream_error(format!("no TLS settings to reach {target}")),
        },
        None => None,
    };
    let http_url = target
        .replacen("wss://", "https://", 1)
        .replacen("ws://", "http://", 1);
    let uri: Uri = match http_url.parse() {
        Ok(u) => u,
        Err(e) => return upstream_error(format!("bad upstream websocket URL {target}: {e}")),
    };
    let Some(authority) = uri.authority().cloned() else {
        return upstream_error(format!("upstream websocket URL has no host: {target}"));
    };
    let connecting = connect(&authority, tls);
    let stream = match tokio::time::timeout(crate::timing::TUNNEL_CONNECT_TIMEOUT, connecting).await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return upstream_error(format!("cannot reach {authority}: {e}")),
        Err(_) => return upstream_error(format!("cannot reach {authority}: timed out")),
    };
    let handshake = match stream {
        Upstream::Plain(s) => handshake(tasks, TokioIo::new(s)).await,
        Upstream::Tls(s) => handshake(tasks, TokioIo::new(s)).await,
    };
    let mut sender = match handshake {
        Ok(x) => x,
        Err(e) => return upstream_error(format!("handshake with {authority} failed: {e}")),
    };

    let mut up = Request::builder()
        .method("GET")
        .uri(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
        .body(Body::empty())
        .expect("valid request");
    for (k, v) in req.headers() {
        // Browsers refuse DevTools connections whose Host is not local, or that carry an Origin.
        if k != header::HOST && k != header::ORIGIN {
            up.headers_mut().append(k.clone(), v.clone());
        }
    }
    if let Ok(h) = HeaderValue::from_str(authority.as_str()) {
        up.headers_mut().insert(header::HOST, h);
    }
    let client_upgrade = hyper::upgrade::on(&mut req);
    let mut resp = match sender.send_request(up).await {
        Ok(r) => r,
        Err(e) => return upstream_error(format!("websocket request to {authority} failed: {e}")),
    };
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        return upstream_error(format!(
            "{authority} refused the websocket with status {}",
            resp.status()
        ));
    }
    let upstream_upgrade = hyper::upgrade::on(&mut resp);
    let mut out = Response::new(Body::empty());
    *out.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *out.headers_mut() = resp.headers().clone();
    // The grid stopping closes tunnels too.
    tasks.spawn_until_stopped(async move {
        if let (Ok(client), Ok(upstream)) = (client_upgrade.await, upstream_upgrade.await) {
            splice(client, upstream, &activity).await;
        }
        drop(guard);
    });
    out
}

/// An HTTP/1 handshake over `io`, its connection driven by `tasks`.
async fn handshake<T>(
    tasks: &Tasks,
    io: TokioIo<T>,
) -> Result<hyper::client::conn::http1::SendRequest<Body>, hyper::Error>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tasks.spawn_until_stopped(async move {
        let _ = conn.with_upgrades().await;
    });
    Ok(sender)
}

/// Either end of a tunnel.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// The bare TCP socket under an upgraded connection when hyper hands it back
/// (skipping its wrapper on every read and write), with the bytes hyper had
/// already read past the handshake, which belong to the other side.
fn unwrap_io(up: hyper::upgrade::Upgraded) -> (Box<dyn Io>, bytes::Bytes) {
    match up.downcast::<TokioIo<tokio::net::TcpStream>>() {
        Ok(parts) => (Box::new(parts.io.into_inner()), parts.read_buf),
        Err(up) => (Box::new(TokioIo::new(up)), bytes::Bytes::new()),
    }
}

/// Copies bytes both ways until either side closes (a websocket is over once
/// one end has gone), reporting activity as bytes pass.
async fn splice(
    client: hyper::upgrade::Upgraded,
    upstream: hyper::upgrade::Upgraded,
    activity: &(impl Fn() + Send + Sync),
) {
    use tokio::io::AsyncWriteExt;
    let (mut client, client_early) = unwrap_io(client);
    let (mut upstream, upstream_early) = unwrap_io(upstream);
    if upstream.write_all(&client_early).await.is_err()
        || client.write_all(&upstream_early).await.is_err()
    {
        return;
    }
    let (mut client_rx, mut client_tx) = tokio::io::split(client);
    let (mut upstream_rx, mut upstream_tx) = tokio::io::split(upstream);
    tokio::select! {
        _ = pump(&mut client_rx, &mut upstream_tx, activity) => {}
        _ = pump(&mut upstream_rx, &mut client_tx, activity) => {}
    }
}

/// Copies one direction until EOF or an error.
async fn pump(
    from: &mut (impl tokio::io::AsyncRead + Unpin),
    to: &mut (impl tokio::io::AsyncWrite + Unpin),
    activity: &(impl Fn() + Send + Sync),
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                activity();
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}
