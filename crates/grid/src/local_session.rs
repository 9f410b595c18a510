//! Serving a session that runs in this process: commands go to its driver,
//! websockets to its driver (BiDi) or browser (CDP).

use crate::http;
use crate::manager::Manager;
use crate::proxy;
use crate::session::Session;
use crate::tunnel;
use axum::body::Body;
use axum::http::{Method, Request, Response, StatusCode};
use gridiron_domain::{EndReason, ErrorCode, GridError, Origin};
use std::sync::Arc;

/// Why a hub ends a session it asks a node to delete (a request extension,
/// set only for authenticated hub requests); a plain `DELETE` is a quit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestedEnd(pub EndReason);

/// Serves one request for a local session; `rest` is the path after `/session/{id}`.
pub(crate) async fn serve(
    m: Arc<Manager>,
    session: Arc<Session>,
    req: Request<Body>,
    rest: &str,
) -> Response<Body> {
    match rest {
        "" if req.method() == Method::DELETE => {
            let reason = req
                .extensions()
                .get::<RequestedEnd>()
                .map_or(EndReason::Quit, |r| r.0);
            proxy::quit(&m, session, req, reason).await
        }
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
        // The live view, as a hub asks the node that runs the session for it.
        crate::api::live::NODE_PATH if req.method() == Method::GET => {
            crate::api::live::local(&m, &session).await
        }
        // geckodriver installs an add-on from a path on the host: code the
        // client did not send. Only the add-on itself (base64) may come.
        "/moz/addon/install" if req.method() == Method::POST => {
            let (parts, body) = match proxy::read_body(req, m.config.max_body_bytes).await {
                Ok(x) => x,
                Err(e) => return http::error(&e),
            };
            if let Err(e) = gridiron_domain::launch_policy::check_addon_install(&body) {
                return http::error(&e);
            }
            let req = Request::from_parts(parts, Body::from(body));
            proxy::forward(&m, session, req, rest).await
        }
        // Selenium's managed downloads and remote uploads: the grid's to serve.
        "/se/files" if !session.is_cdp_only() => crate::files::downloads(&m, session, req).await,
        "/se/file" if !session.is_cdp_only() => crate::files::upload(&m, session, req).await,
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

/// One of a session's websockets, counted under the grid's cap while it lives.
struct WebSocketPlace(Arc<Session>);

impl Drop for WebSocketPlace {
    fn drop(&mut self) {
        self.0.websocket_closed();
    }
}

/// Tunnels a websocket for a session; an open tunnel of a WebDriver session
/// keeps the session from idling. A session has at most
/// `--max-websockets-per-session` open at once: each holds a connection to
/// the browser, and a client (or a page) opening them in a loop would
/// otherwise exhaust the grid's and the browser's file descriptors.
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
    let cap = m.config.max_websockets_per_session;
    if !session.websocket_opening(cap) {
        return http::error(&GridError::new(
            ErrorCode::UnknownError,
            Origin::Client,
            format!(
                "session {} already has {cap} websockets open, the grid's limit \
                 (--max-websockets-per-session); close one first",
                session.id
            ),
        ));
    }
    let place = WebSocketPlace(session.clone());
    let s = session.clone();
    // A CDP-only session (reached through a hub) is its tunnel: as with `/cdp`,
    // only traffic keeps it from idling, not the open connection.
    let busy = (!session.is_cdp_only()).then(|| TunnelBusy::new(session.clone()));
    let open = m.metrics.tunnel();
    let resp = tunnel::open(&m.tasks, req, &target, (busy, place, open), move || {
        s.touch()
    })
    .await;
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
