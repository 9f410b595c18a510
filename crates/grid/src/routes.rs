//! The public HTTP surface: W3C WebDriver at `/` and `/wd/hub`, and `/status`.

use crate::http::{self, GridErrorResponse};
use crate::manager::Manager;
use crate::proxy;
use crate::session::Session;
use crate::tunnel;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, Method, Request, Response, StatusCode};
use axum::routing::{any, get, post, MethodRouter};
use axum::Router;
use gridiron_domain::public_url::RequestAddress;
use gridiron_domain::EndReason;
use gridiron_domain::{ErrorCode, GridError, Origin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The grid's router, with its W3C routes mounted at `/` and `/wd/hub`.
pub fn router(m: Arc<Manager>) -> Router {
    shape(Endpoints {
        status: get(status),
        new_session: post(new_session),
        session: any(session_command),
        cdp: get(cdp_session),
        json_version: get(json_version),
    })
    .with_state(m)
}

/// The handlers behind the public routes of a grid or a hub.
pub(crate) struct Endpoints<S> {
    /// `GET /status`.
    pub status: MethodRouter<S>,
    /// `POST /session`.
    pub new_session: MethodRouter<S>,
    /// `/session/{id}` and everything under it.
    pub session: MethodRouter<S>,
    /// `GET /cdp` (websocket).
    pub cdp: MethodRouter<S>,
    /// `GET /json/version`.
    pub json_version: MethodRouter<S>,
}

/// Mounts `e` on the routes clients expect: W3C at `/` and `/wd/hub`, CDP
/// discovery at `/json/*`, W3C errors for unknown routes and methods.
pub(crate) fn shape<S: Clone + Send + Sync + 'static>(e: Endpoints<S>) -> Router<S> {
    let w3c = Router::new()
        .route("/status", e.status.fallback(unknown_method))
        .route("/session", e.new_session.fallback(unknown_method))
        .route("/session/{id}", e.session.clone())
        .route("/session/{id}/{*rest}", e.session);
    let cdp = Router::new()
        .route("/cdp", e.cdp.fallback(unknown_method))
        .route("/json/version", e.json_version.clone())
        .route("/json/version/", e.json_version)
        .route("/json/list", get(json_list))
        .route("/json/list/", get(json_list))
        .route("/json", get(json_list));
    Router::new()
        .merge(w3c.clone())
        .merge(cdp)
        .nest("/wd/hub", w3c)
        .fallback(unknown_command)
}

async fn status(State(m): State<Arc<Manager>>, req: Request<Body>) -> Response<Body> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    http::ok(m.status(&format!("http://{host}")))
}

/// The grid's public base URL as this request sees it.
fn public_base(m: &Manager, parts: &axum::http::request::Parts) -> String {
    request_base(m.config.public_url.as_deref(), parts)
}

/// The public base URL: `configured` if set, else from the request's headers.
pub(crate) fn request_base(configured: Option<&str>, parts: &axum::http::request::Parts) -> String {
    let h = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    gridiron_domain::public_url::public_base(
        configured,
        RequestAddress {
            host: h("host"),
            forwarded_host: h("x-forwarded-host"),
            forwarded_proto: h("x-forwarded-proto"),
            forwarded: h("forwarded"),
        },
    )
}

async fn new_session(
    State(m): State<Arc<Manager>>,
    req: Request<Body>,
) -> Result<Response<Body>, GridErrorResponse> {
    let (parts, body) = proxy::read_body(req, m.config.max_body_bytes).await?;
    let value = m.new_session(body, public_base(&m, &parts)).await?;
    Ok(http::json(StatusCode::OK, &value))
}

/// Splits `/[wd/hub/]session/{id}[/rest]` into the id and the raw rest (with its `/`).
pub(crate) fn session_path(path: &str) -> Option<(&str, &str)> {
    let p = path.strip_prefix("/wd/hub").unwrap_or(path);
    let p = p.strip_prefix("/session/")?;
    Some(match p.find('/') {
        Some(i) => (&p[..i], &p[i..]),
        None => (p, ""),
    })
}

async fn session_command(State(m): State<Arc<Manager>>, req: Request<Body>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let Some((id, rest)) = session_path(&path) else {
        return unknown_command().await;
    };
    let Some(session) = m.session(id) else {
        if rest.is_empty() && req.method() == Method::DELETE && m.has_ended(id).await {
            // Deleting a session that already ended (its browser closed with its last
            // window, or it timed out) is what the client wanted anyway.
            return http::ok(serde_json::Value::Null);
        }
        return http::error(&m.unknown_session(id).await);
    };
    match rest {
        "" if req.method() == Method::DELETE => proxy::quit(&m, session, req).await,
        // BiDi clients may use the URL the driver gave, which is the session's own path.
        "" | "/se/bidi" if tunnel::is_upgrade(&req) || rest == "/se/bidi" => {
            let Some(target) = session.bidi_url.clone() else {
                return http::error(&GridError::invalid_argument(
                    "this session has no BiDi websocket; ask for the capability webSocketUrl: true",
                ));
            };
            open_tunnel(&m, session, req, target).await
        }
        "/se/cdp" => {
            let Some(cdp_http) = session.cdp_http.clone() else {
                return http::error(&GridError::invalid_argument(
                    "CDP is only available for Chromium sessions",
                ));
            };
            match browser_websocket(&m, &cdp_http).await {
                Ok(target) => open_tunnel(&m, session, req, target).await,
                Err(e) => http::error(&e),
            }
        }
        _ => proxy::forward(&m, session, req, rest).await,
    }
}

/// Keeps a session busy (never idle) while a tunnel of it is open.
struct TunnelBusy(Arc<Session>);

impl TunnelBusy {
    fn new(session: Arc<Session>) -> Self {
        session.tunnel_opened();
        TunnelBusy(session)
    }
}

impl Drop for TunnelBusy {
    fn drop(&mut self) {
        self.0.tunnel_closed();
    }
}

/// Owns a CDP-only session for its client: when the tunnel goes, so does the browser.
/// Unlike tunnels of WebDriver sessions, it does not hold the session busy: the
/// tunnel is the whole session, so its idle timeout counts time without traffic.
struct CdpOwner {
    m: Arc<Manager>,
    session: Arc<Session>,
    /// Set once the client got its websocket; otherwise it left during the start.
    connected: Arc<AtomicBool>,
}

impl Drop for CdpOwner {
    fn drop(&mut self) {
        let reason = if self.connected.load(Ordering::SeqCst) {
            EndReason::Quit
        } else {
            EndReason::ClientGone
        };
        let (m, id) = (self.m.clone(), self.session.id.clone());
        tokio::spawn(async move { m.end(&id, reason).await });
    }
}

/// Tunnels a websocket for a session; an open tunnel of a WebDriver session
/// keeps the session from idling.
async fn open_tunnel(
    m: &Arc<Manager>,
    session: Arc<Session>,
    req: Request<Body>,
    target: String,
) -> Response<Body> {
    if !tunnel::is_upgrade(&req) {
        return http::error(&GridError::invalid_argument(
            "this endpoint needs a websocket upgrade (Upgrade: websocket)",
        ));
    }
    let s = session.clone();
    // A CDP-only session (reached through a hub) is its tunnel: as with `/cdp`,
    // only traffic keeps it from idling, not the open connection.
    let busy = (!session.is_cdp_only()).then(|| TunnelBusy::new(session.clone()));
    let resp = tunnel::open(req, &target, busy, move || s.touch()).await;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        m.end_if_browser_gone(&session, EndReason::DriverCrashed)
            .await;
    }
    resp
}

/// The browser-level DevTools websocket URL, from `/json/version` of the browser.
async fn browser_websocket(m: &Manager, cdp_http: &str) -> Result<String, GridError> {
    let (status, v) = m
        .get_json(&format!("{cdp_http}/json/version"))
        .await
        .map_err(GridError::from)?;
    v.get("webSocketDebuggerUrl")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            GridError::new(
                ErrorCode::UnknownError,
                Origin::Driver,
                format!(
                    "the browser's /json/version (status {status}) has no webSocketDebuggerUrl"
                ),
            )
        })
}

/// `GET /cdp?browser=chromium&headless=false&--window-size=800,600&idleTimeout=60`:
/// a fresh browser for a CDP client, tunnelled; it ends when the client disconnects.
async fn cdp_session(
    State(m): State<Arc<Manager>>,
    RawQuery(query): RawQuery,
    req: Request<Body>,
) -> Response<Body> {
    if !tunnel::is_upgrade(&req) {
        return http::error(&GridError::invalid_argument(
            "connect a CDP client (Puppeteer, Playwright) with a websocket to this URL",
        ));
    }
    let params: Vec<(String, String)> =
        match serde_urlencoded::from_str(query.as_deref().unwrap_or("")) {
            Ok(p) => p,
            Err(e) => {
                return http::error(&GridError::invalid_argument(format!(
                    "malformed query string: {e}"
                )))
            }
        };
    let request = match gridiron_domain::cdp::parse_query(&params) {
        Ok(r) => r,
        Err(e) => return http::error(&e),
    };
    let session = match m.new_cdp_session(request).await {
        Ok(s) => s,
        Err(e) => return http::error(&e),
    };
    let target = session.driver_url.clone();
    // From here the owner ends the session however this request ends.
    let connected = Arc::new(AtomicBool::new(false));
    let owner = CdpOwner {
        m: m.clone(),
        session: session.clone(),
        connected: connected.clone(),
    };
    let s = session.clone();
    let resp = tunnel::open(req, &target, owner, move || s.touch()).await;
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        connected.store(true, Ordering::SeqCst);
    } else {
        m.end(&session.id, EndReason::FailedToStart).await;
    }
    resp
}

/// `GET /json/version`: lets `connectOverCDP("http://grid:4444")` find the websocket,
/// which starts a fresh browser per connection.
async fn json_version(State(m): State<Arc<Manager>>, req: Request<Body>) -> Response<Body> {
    let (parts, _) = req.into_parts();
    version_document(&public_base(&m, &parts), &parts, m.chromium_version())
}

/// The `/json/version` document: the grid's `/cdp` websocket (keeping the
/// request's query, which carries the session's options) and the Chromium version.
pub(crate) fn version_document(
    public_base: &str,
    parts: &axum::http::request::Parts,
    chromium_version: Option<String>,
) -> Response<Body> {
    let base = gridiron_domain::public_url::websocket_base(public_base);
    let query = parts
        .uri
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let version = chromium_version.unwrap_or_default();
    http::json(
        StatusCode::OK,
        &serde_json::json!({
            "Browser": format!("Chrome/{version}"),
            "Protocol-Version": "1.3",
            "User-Agent": format!("Gridiron/{}", env!("CARGO_PKG_VERSION")),
            "webSocketDebuggerUrl": format!("{base}/cdp{query}"),
        }),
    )
}

/// `GET /json/list`: no page exists until a client connects.
async fn json_list() -> Response<Body> {
    http::json(StatusCode::OK, &serde_json::json!([]))
}

pub(crate) async fn unknown_command() -> Response<Body> {
    http::error(&GridError::new(
        ErrorCode::UnknownCommand,
        Origin::Client,
        "unknown command: no such route on this grid",
    ))
}

pub(crate) async fn unknown_method(req: Request<Body>) -> Response<Body> {
    http::error(&GridError::new(
        ErrorCode::UnknownMethod,
        Origin::Client,
        format!("{} is not supported on {}", req.method(), req.uri().path()),
    ))
}

#[cfg(test)]
mod tests {
    use super::session_path;

    #[test]
    fn session_paths() {
        assert_eq!(session_path("/session/abc"), Some(("abc", "")));
        assert_eq!(session_path("/session/abc/url"), Some(("abc", "/url")));
        assert_eq!(
            session_path("/wd/hub/session/abc/element/x%2Fy/click"),
            Some(("abc", "/element/x%2Fy/click"))
        );
        assert_eq!(session_path("/sessions"), None);
    }
}
