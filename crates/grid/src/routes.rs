//! The public HTTP surface, the same for every role: W3C WebDriver at `/`
//! and `/wd/hub`, `/status`, and CDP (`/cdp`, `/json/*`). What differs
//! between a standalone grid, a node and a hub lives behind [`Backend`].

use crate::auth::{self, Caller};
use crate::backend::{Backend, Located};
use crate::http::{self, GridErrorResponse};
use crate::local_session;
use crate::proxy;
use crate::tunnel;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, Method, Request, Response, StatusCode};
use axum::routing::{any, get, post};
use axum::Router;
use gridiron_domain::cross_site::{check_json_content_type, check_origin};
use gridiron_domain::public_url::RequestAddress;
use gridiron_domain::EndReason;
use gridiron_domain::{ErrorCode, GridError, Origin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The shared state of every handler: the role serving the routes.
type Role = Arc<dyn Backend>;

/// The router of a grid, node or hub: W3C routes at `/` and `/wd/hub`, CDP
/// discovery at `/json/*`, W3C errors for unknown routes and methods; every
/// request authenticated first (see [`crate::auth`]).
pub fn router(backend: Arc<dyn Backend>) -> Router {
    let keyring = backend.keyring();
    // Built once (its OpenAPI document too): served, and called by the dashboard.
    let api = crate::api::router();
    let w3c = Router::new()
        .route("/status", get(status).fallback(unknown_method))
        .route("/session", post(new_session).fallback(unknown_method))
        .route("/session/{id}", any(session_command))
        .route("/session/{id}/{*rest}", any(session_command));
    let cdp = Router::new()
        .route("/cdp", get(cdp_session).fallback(unknown_method))
        .route("/json/version", get(json_version))
        .route("/json/version/", get(json_version))
        .route("/json/list", get(json_list))
        .route("/json/list/", get(json_list))
        .route("/json", get(json_list));
    Router::new()
        .merge(w3c.clone())
        .merge(cdp)
        .merge(crate::metrics::routes::router())
        .nest("/wd/hub", w3c)
        .merge(api.clone())
        .merge(crate::ui::router(api.with_state(backend.clone())))
        .fallback(unknown_command)
        .with_state(backend.clone())
        // One layer, not two: every request pays for each layer it passes.
        .layer(axum::middleware::from_fn_with_state(
            Front { backend, keyring },
            front_door,
        ))
}

/// What the front door needs: the role (its allowed origins) and its keys.
#[derive(Clone)]
struct Front {
    backend: Role,
    keyring: Arc<auth::Keyring>,
}

/// Every request's way in: who calls (see [`crate::auth`]), then whether a
/// web page made the request (see [`refuse_cross_site`]).
async fn front_door(
    State(front): State<Front>,
    mut req: Request<Body>,
    next: axum::middleware::Next,
) -> Response<Body> {
    if let Some(refusal) = auth::identify(&front.keyring, &mut req).await {
        return refusal;
    }
    if let Some(refusal) = refuse_cross_site(&front.backend, &req) {
        let path = req.uri().path();
        return if crate::api::is_api(path) {
            crate::api::problem::from_w3c(refusal).await
        } else if gridiron_domain::dashboard::is_dashboard(path) {
            crate::ui::cross_site_refusal()
        } else {
            refusal
        };
    }
    next.run(req).await
}

/// Who sent `req`, as the authentication layer found; without its mark
/// (which cannot happen behind [`router`]), the least trusted caller.
pub(crate) fn caller<B>(req: &Request<B>) -> Caller {
    caller_of(req.extensions())
}

/// [`caller`], from a request's extensions.
pub(crate) fn caller_of(extensions: &axum::http::Extensions) -> Caller {
    extensions
        .get::<Caller>()
        .cloned()
        .unwrap_or_else(Caller::anonymous)
}

/// Where session `id` runs, as `caller` may know it: a session of another
/// key is unknown to a user key, exactly as an id that never existed.
pub(crate) async fn locate_for(b: &Role, id: &str, caller: &Caller) -> Result<Located, GridError> {
    let located = b.locate(id).await?;
    let owner = match &located {
        Located::Local { session, .. } => session.owner.as_deref(),
        Located::Remote(remote) => remote.owner(),
        // Someone else's ended session is no business of this caller's:
        // not even that it existed.
        Located::NotRunning(why) => why.owner(),
    };
    if caller.may_use(owner) {
        Ok(located)
    } else {
        Err(GridError::invalid_session(format!("no such session: {id}")))
    }
}

/// The `/status` value as `caller` may see it: a user key sees the details of
/// its own sessions only, anyone without a key none.
fn status_for(mut value: serde_json::Value, caller: &Caller) -> serde_json::Value {
    if caller.admin {
        return value;
    }
    let nodes = value.get_mut("nodes").and_then(|n| n.as_array_mut());
    for node in nodes.into_iter().flatten() {
        let slots = node.get_mut("slots").and_then(|s| s.as_array_mut());
        for slot in slots.into_iter().flatten() {
            let Some(session) = slot.get_mut("session").filter(|s| s.is_object()) else {
                continue;
            };
            let owner = session.get("owner").and_then(|o| o.as_str());
            if !caller.may_use(owner) {
                // The slot is busy; whose and with what is not this caller's business.
                *session = serde_json::json!({"browserName": session["browserName"].clone()});
            }
        }
    }
    value
}

/// Refuses requests that web pages made: a browser sends `Origin` with every
/// cross-site request and websocket, and WebDriver, Puppeteer and Playwright
/// clients send none. Unless the operator allowed the origin, such a request
/// never reaches a route (a page in a grid session must not start sessions,
/// or tunnel into other sessions' browsers).
fn refuse_cross_site(b: &Role, req: &Request<Body>) -> Option<Response<Body>> {
    // Clients send no Origin: the common case costs one header lookup.
    let origin = req.headers().get(header::ORIGIN)?;
    let origin = String::from_utf8_lossy(origin.as_bytes());
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok());
    let refusal = check_origin(Some(&origin), host, &b.front().allowed_origins).err()?;
    tracing::warn!(
        origin = %refusal.origin,
        path = %req.uri().path(),
        "refused a cross-site request"
    );
    let e = GridError::new(ErrorCode::UnknownError, Origin::Client, refusal.message());
    Some(http::json(StatusCode::FORBIDDEN, &e.to_json()))
}

async fn status(State(b): State<Role>, req: Request<Body>) -> Response<Body> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let caller = caller(&req);
    http::ok(status_for(
        b.status(&format!("http://{host}")).await,
        &caller,
    ))
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
    State(b): State<Role>,
    req: Request<Body>,
) -> Result<Response<Body>, GridErrorResponse> {
    let front = b.front();
    let who = caller(&req);
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    check_json_content_type(content_type.as_deref())?;
    let (parts, body) = proxy::read_body(req, front.max_new_session_bytes)
        .await
        .map_err(|e| new_session_too_large(e, front.max_new_session_bytes))?;
    let base = request_base(front.public_url.as_deref(), &parts);
    let value = b.new_session(body, base, who).await?;
    Ok(http::json(StatusCode::OK, &value))
}

/// Names the new-session limit (not the command one) in a too-large error.
fn new_session_too_large(e: GridError, limit: usize) -> GridError {
    if e == proxy::body_too_large(limit) {
        GridError::invalid_argument(format!(
            "new session request body is larger than the grid's limit of {limit} bytes \
             (--max-new-session-bytes, at most --max-body-bytes)"
        ))
    } else {
        e
    }
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

async fn session_command(State(b): State<Role>, mut req: Request<Body>) -> Response<Body> {
    // A clone of the URI shares its bytes: the path stays borrowable while `req` moves.
    let uri = req.uri().clone();
    let path = uri.path();
    let Some((id, rest)) = session_path(path) else {
        return unknown_command().await;
    };
    let who = caller(&req);
    match locate_for(&b, id, &who).await {
        Err(e) => http::error(&e),
        Ok(Located::Local { manager, session }) => {
            local_session::serve(manager, session, req, rest).await
        }
        Ok(Located::Remote(remote)) if tunnel::is_upgrade(&req) => {
            let pq = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| path.to_string());
            let target = remote.tunnel_target(&mut req, &pq);
            let open = b.metrics().tunnel();
            tunnel::open(b.tasks(), req, &target, open, || {}).await
        }
        Ok(Located::Remote(remote)) => remote.forward(req).await,
        Ok(Located::NotRunning(why)) => {
            if rest.is_empty()
                && req.method() == Method::DELETE
                && matches!(why, crate::backend::NotRunning::Ended(..))
            {
                // Deleting a session that already ended (its browser closed with its last
                // window, or it timed out) is what the client wanted anyway.
                return http::ok(serde_json::Value::Null);
            }
            http::error(&why.error(id))
        }
    }
}

/// Owns a CDP-only session for its client: when the tunnel goes, so does the
/// browser, wherever it runs. The reason recorded says how the tunnel ended.
struct CdpOwner {
    backend: Role,
    id: String,
    /// Set once the client got its websocket: from then on, its end is a quit.
    connected: Arc<AtomicBool>,
}

impl Drop for CdpOwner {
    fn drop(&mut self) {
        // Dropped before the upgrade: the browser never reached its client.
        let reason = if self.connected.load(Ordering::SeqCst) {
            EndReason::Quit
        } else {
            EndReason::FailedToStart
        };
        let (b, id) = (self.backend.clone(), std::mem::take(&mut self.id));
        self.backend
            .tasks()
            .spawn(async move { b.end_session(&id, reason).await });
    }
}

/// `GET /cdp?browser=chromium&headless=false&--window-size=800,600&idleTimeout=60`:
/// a fresh browser for a CDP client, tunnelled; it ends when the client disconnects.
async fn cdp_session(
    State(b): State<Role>,
    RawQuery(query): RawQuery,
    req: Request<Body>,
) -> Response<Body> {
    if !tunnel::is_upgrade(&req) {
        return http::error(&GridError::invalid_argument(
            "connect a CDP client (Puppeteer, Playwright) with a websocket to this URL",
        ));
    }
    let query = query.unwrap_or_default();
    let who = caller(&req);
    let limit = b.front().max_new_session_bytes;
    if query.len() > limit {
        return http::error(&GridError::invalid_argument(format!(
            "the /cdp query is larger than the grid's limit of {limit} bytes for new-session \
             requests (--max-new-session-bytes, at most --max-body-bytes)"
        )));
    }
    let request = match parse_cdp_query(&query) {
        Ok(r) => r,
        Err(e) => return http::error(&e),
    };
    let (parts, body) = req.into_parts();
    let base = request_base(b.front().public_url.as_deref(), &parts);
    let mut req = Request::from_parts(parts, body);
    let id = match b.clone().new_cdp_session(request, query, base, who).await {
        Ok(id) => id,
        Err(e) => return http::error(&e),
    };
    // From here the owner ends the session however this request ends.
    let connected = Arc::new(AtomicBool::new(false));
    let owner = CdpOwner {
        backend: b.clone(),
        id: id.clone(),
        connected: connected.clone(),
    };
    let owner = (owner, b.metrics().tunnel());
    let resp = match b.locate(&id).await {
        Ok(Located::Local { session, .. }) => {
            let target = session.driver_url.clone();
            tunnel::open(b.tasks(), req, &target, owner, move || session.touch()).await
        }
        Ok(Located::Remote(remote)) => {
            let target = remote.tunnel_target(&mut req, &format!("/session/{id}/se/cdp"));
            tunnel::open(b.tasks(), req, &target, owner, || {}).await
        }
        _ => http::error(&GridError::not_created(
            Origin::Grid,
            "the browser started for this client is gone",
        )),
    };
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        connected.store(true, Ordering::SeqCst);
    }
    resp
}

/// Parses a `/cdp` query string.
pub(crate) fn parse_cdp_query(query: &str) -> Result<gridiron_domain::cdp::CdpRequest, GridError> {
    let params: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|e| GridError::invalid_argument(format!("malformed query string: {e}")))?;
    gridiron_domain::cdp::parse_query(&params)
}

/// `GET /json/version`: lets `connectOverCDP("http://grid:4444")` find the websocket,
/// which starts a fresh browser per connection.
async fn json_version(State(b): State<Role>, req: Request<Body>) -> Response<Body> {
    let (parts, _) = req.into_parts();
    let public_base = request_base(b.front().public_url.as_deref(), &parts);
    let base = gridiron_domain::public_url::websocket_base(&public_base);
    let query = parts
        .uri
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let version = b.chromium_version().await.unwrap_or_default();
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
