//! The web dashboard at `/ui/`: server-rendered pages over the control
//! plane. Every page reads what `/api/v1` answers the signed-in key (the API
//! router is called in process, as that key), so a page shows exactly what
//! the key may see through the API and adds no data path of its own; pages
//! follow the event feed (`/api/v1/events`) to update without a reload.
//!
//! Access: on a grid with keys, a browser signs in by pasting an API key and
//! keeps it in an `HttpOnly`, `SameSite=Strict` cookie (read by
//! [`crate::auth::identify`]); every state-changing form repeats a second
//! cookie's random value (see [`gridiron_domain::dashboard`]), and the front
//! door refuses requests from other origins.

mod access;
mod admin;
mod assets;
mod layout;
mod nodes;
mod overview;
mod queue;
mod sessions;
#[cfg(test)]
pub(crate) mod tests;

use crate::auth::Caller;
use crate::backend::Backend;
use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, Request, Response, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Extension, Router};
use gridiron_domain::dashboard::{self as rules, CSRF_COOKIE, CSRF_FIELD};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use tower::ServiceExt;

pub(crate) use layout::Nav;

/// The shared state of every handler: the role serving the routes.
type Role = Arc<dyn Backend>;

/// Largest form a dashboard page posts.
const MAX_FORM_BYTES: usize = 64 * 1024;
/// Largest API answer a page reads (a page of sessions, a session's detail).
const MAX_API_BYTES: usize = 16 * 1024 * 1024;

/// The API router, bound to the role, that pages call in process.
#[derive(Clone)]
pub(crate) struct ApiHandle(pub(crate) Router);

/// The dashboard's routes; `api` is the role's `/api/v1` router, already
/// given its state, which the pages call.
pub fn router(api: Router) -> Router<Role> {
    Router::new()
        .route(
            "/ui",
            get(|v: Viewer| async move { Redirect::to(&v.url("/")) }),
        )
        .route("/ui/", get(overview::page))
        .route("/ui/login", get(access::form).post(access::sign_in))
        .route("/ui/logout", post(access::sign_out))
        .route("/ui/assets/{name}", get(assets::serve))
        .route("/ui/events", get(events))
        .route("/ui/sessions", get(sessions::list))
        .route("/ui/sessions/{id}", get(sessions::page))
        .route("/ui/sessions/{id}/end", post(sessions::end))
        .route("/ui/sessions/{id}/live", get(sessions::live))
        .route(
            "/ui/sessions/{id}/artifacts/{*name}",
            get(sessions::artifact),
        )
        .route("/ui/queue", get(queue::page))
        .route("/ui/queue/{id}/cancel", post(queue::cancel))
        .route("/ui/nodes", get(nodes::page))
        .route("/ui/nodes/{id}/drain", post(nodes::drain))
        .route("/ui/keys", get(admin::keys).post(admin::create_key))
        .route("/ui/keys/{name}/revoke", post(admin::revoke_key))
        .route(
            "/ui/webhooks",
            get(admin::webhooks).post(admin::create_webhook),
        )
        .route("/ui/webhooks/{id}", get(admin::webhook))
        .route("/ui/webhooks/{id}/delete", post(admin::delete_webhook))
        .route("/ui/{*rest}", get(not_found))
        .layer(Extension(ApiHandle(api)))
}

/// Who looks at a page, and how to answer them: the caller the front door
/// identified, the path prefix of the grid's public URL, the browser's
/// form token, and the API to read from.
pub(crate) struct Viewer {
    /// The signed-in key (or, on a grid without keys, anyone).
    pub caller: Caller,
    /// The grid's path prefix behind a reverse proxy (`""` at the root).
    pub prefix: String,
    /// The value forms must repeat (see [`rules::csrf_ok`]).
    pub csrf: String,
    /// The browser had no form token yet: the answer sets it.
    new_csrf: bool,
    /// The browser asked for the live part of the page only.
    pub fragment: bool,
    /// The grid is reached over HTTPS (cookies are `Secure`).
    secure: bool,
    /// `Host`, passed on to the API (it builds URLs from it).
    host: Option<HeaderValue>,
    /// The grid has no keys: nobody signs in.
    pub open: bool,
    api: Router,
}

/// A page's failure to read or change something, as the page shows it.
#[derive(Debug)]
pub(crate) struct Shown {
    /// The API's status.
    pub status: StatusCode,
    /// The API's `detail` (or `title`).
    pub message: String,
}

impl Viewer {
    /// Reads who asks; `Err` is the sign-in page's address for a stranger.
    fn of(parts: &Parts, role: &Role) -> Result<Viewer, Redirect> {
        let viewer = Viewer::unchecked(parts, role);
        if viewer.signed_in() {
            Ok(viewer)
        } else {
            // The browser's address: under the proxy's prefix.
            let here = parts.uri.path_and_query().map_or("/ui/", |p| p.as_str());
            let next = format!("{}{here}", viewer.prefix);
            let next: String = serde_urlencoded::to_string([("next", next)]).unwrap_or_default();
            Err(Redirect::to(&format!("{}/ui/login?{next}", viewer.prefix)))
        }
    }

    /// Reads who asks, signed in or not.
    fn unchecked(parts: &Parts, role: &Role) -> Viewer {
        let caller = crate::routes::caller_of(&parts.extensions);
        let prefix = rules::path_prefix(role.front().public_url.as_deref());
        let cookies = parts
            .headers
            .get(header::COOKIE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let given = rules::cookie(cookies, CSRF_COOKIE).map(str::to_string);
        let forwarded_https = parts
            .headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
        let secure = forwarded_https
            || role
                .front()
                .public_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://"));
        let api = parts
            .extensions
            .get::<ApiHandle>()
            .map(|h| h.0.clone())
            .unwrap_or_default();
        Viewer {
            open: caller.admin && caller.key.is_none(),
            new_csrf: given.is_none(),
            csrf: given.unwrap_or_else(new_token),
            fragment: parts.headers.contains_key("x-gridiron-fragment"),
            host: parts.headers.get(header::HOST).cloned(),
            caller,
            prefix,
            secure,
            api,
        }
    }

    /// Whether the caller may see anything: a key, or an open grid.
    pub fn signed_in(&self) -> bool {
        self.caller.key.is_some() || self.caller.admin
    }

    /// Whether the caller may see and steer everything.
    pub fn admin(&self) -> bool {
        self.caller.admin
    }

    /// The address of dashboard page `path` (`/sessions`), under the prefix.
    pub fn url(&self, path: &str) -> String {
        format!("{}/ui{path}", self.prefix)
    }

    /// Calls the API as the viewer: `path_and_query` under `/api/v1`.
    pub async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
        headers: &[(header::HeaderName, HeaderValue)],
    ) -> Response<Body> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("/api/v1{path_and_query}"));
        if let Some(host) = &self.host {
            req = req.header(header::HOST, host);
        }
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let body = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let mut req = match req.body(body) {
            Ok(r) => r,
            Err(e) => {
                return (StatusCode::BAD_REQUEST, format!("bad address: {e}")).into_response()
            }
        };
        req.extensions_mut().insert(self.caller.clone());
        match self.api.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        }
    }

    /// `GET` of an API resource as JSON.
    pub async fn get(&self, path_and_query: &str) -> Result<Value, Shown> {
        self.send(Method::GET, path_and_query, None).await
    }

    /// A state-changing API call; its JSON answer (`null` for none).
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> Result<Value, Shown> {
        let r = self.call(method, path_and_query, body, &[]).await;
        read_json(r).await
    }

    /// Reads a posted form, refusing it unless it repeats the browser's form
    /// token (a page of another site cannot).
    pub async fn form(&self, body: Body) -> Result<HashMap<String, String>, Response<Body>> {
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| {
                (StatusCode::PAYLOAD_TOO_LARGE, "the form is too large").into_response()
            })?;
        let fields: HashMap<String, String> =
            serde_urlencoded::from_bytes(&bytes).map_err(|e| {
                (StatusCode::BAD_REQUEST, format!("malformed form: {e}")).into_response()
            })?;
        let cookie = (!self.new_csrf).then_some(self.csrf.as_str());
        if rules::csrf_ok(cookie, fields.get(CSRF_FIELD).map(String::as_str)) {
            Ok(fields)
        } else {
            tracing::warn!("refused a dashboard form without its form token");
            Err(layout::refusal(
                self,
                StatusCode::FORBIDDEN,
                "This form did not come from this dashboard (its form token is missing or wrong). Reload the page and try again.",
            ))
        }
    }

    /// Adds what every answer to this viewer carries: the form token cookie
    /// if the browser had none, and no caching of pages that show a key's data.
    pub fn finish(&self, mut r: Response<Body>) -> Response<Body> {
        if self.new_csrf {
            self.set_cookie(&mut r, CSRF_COOKIE, &self.csrf, None);
        }
        let h = r.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert("x-frame-options", HeaderValue::from_static("DENY"));
        h.insert(
            "content-security-policy",
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data: blob:; media-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'",
            ),
        );
        r
    }

    /// Adds a dashboard cookie (`max_age` 0 forgets it) to answer `r`.
    pub fn set_cookie(
        &self,
        r: &mut Response<Body>,
        name: &str,
        value: &str,
        max_age: Option<u64>,
    ) {
        let c = rules::set_cookie(name, value, &self.url(""), self.secure, max_age);
        if let Ok(v) = HeaderValue::from_str(&c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }

    /// A redirect after a form, to dashboard page `path`.
    pub fn back_to(&self, path: &str) -> Response<Body> {
        self.finish(Redirect::to(&self.url(path)).into_response())
    }

    /// Carries out a one-button form: checks its form token, makes the API
    /// call, then sends the browser `back`; an API failure gets the page
    /// `failed` makes of it.
    pub async fn press(
        &self,
        body: Body,
        (method, api_path): (Method, &str),
        back: &str,
        failed: impl FnOnce(Shown) -> Response<Body>,
    ) -> Response<Body> {
        if let Err(refused) = self.form(body).await {
            return refused;
        }
        match self.send(method, api_path, None).await {
            Ok(_) => self.back_to(back),
            Err(e) => failed(e),
        }
    }
}

impl FromRequestParts<Role> for Viewer {
    type Rejection = Redirect;

    async fn from_request_parts(parts: &mut Parts, role: &Role) -> Result<Self, Self::Rejection> {
        Viewer::of(parts, role)
    }
}

/// The first value of parameter `name` in a page's query, if any.
pub(crate) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or("")).ok()?;
    pairs.into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// The items of an API list answer (`{"items": [...]}`) that read as `T`;
/// malformed ones are skipped.
pub(crate) fn items<T: serde::de::DeserializeOwned>(answer: &Value) -> Vec<T> {
    answer["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|i| T::deserialize(i).ok()).collect())
        .unwrap_or_default()
}

/// A random token (128 bits, hex).
fn new_token() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // No randomness: a value no form can guess is still one nobody knows.
        b = *uuid::Uuid::new_v4().as_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The JSON of an API answer (`null` for none), or what the page shows of
/// its problem.
async fn read_json(r: Response<Body>) -> Result<Value, Shown> {
    if !r.status().is_success() {
        return Err(problem(r).await);
    }
    let bytes = read_body(r).await?;
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes).map_err(not_json)
}

/// What the page shows of a failed API answer: the problem's text, else its status.
pub(crate) async fn problem(r: Response<Body>) -> Shown {
    let status = r.status();
    let bytes = match read_body(r).await {
        Ok(b) => b,
        Err(e) => return e,
    };
    if bytes.is_empty() {
        return Shown {
            status,
            message: status.canonical_reason().unwrap_or("error").to_string(),
        };
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(value) => Shown {
            status,
            message: value["detail"]
                .as_str()
                .or(value["title"].as_str())
                .unwrap_or("the API refused")
                .to_string(),
        },
        Err(e) => not_json(e),
    }
}

async fn read_body(r: Response<Body>) -> Result<bytes::Bytes, Shown> {
    axum::body::to_bytes(r.into_body(), MAX_API_BYTES)
        .await
        .map_err(|e| Shown {
            status: StatusCode::BAD_GATEWAY,
            message: format!("the API's answer could not be read: {e}"),
        })
}

fn not_json(e: serde_json::Error) -> Shown {
    Shown {
        status: StatusCode::BAD_GATEWAY,
        message: format!("the API answered something else than JSON: {e}"),
    }
}

/// `GET /ui/events`: the event feed for the pages' script, as the viewer may
/// see it (the API's SSE stream, passed through).
async fn events(v: Viewer, req: Request<Body>) -> Response<Body> {
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let pass: Vec<_> = req
        .headers()
        .get("last-event-id")
        .map(|id| (header::HeaderName::from_static("last-event-id"), id.clone()))
        .into_iter()
        .collect();
    v.call(Method::GET, &format!("/events{query}"), None, &pass)
        .await
}

/// The page a browser gets for a dashboard request another site's page
/// made (the front door refuses it before any handler): a page, not JSON.
pub(crate) fn cross_site_refusal() -> Response<Body> {
    let page = maud::html! {
        (maud::DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="color-scheme" content="light dark";
                title { "Refused · Gridiron" }
            }
            body style="font-family: system-ui, sans-serif; margin: 2rem; max-width: 40rem" {
                h1 { "Refused" }
                p { "A page of another site tried to send this request to the Gridiron dashboard, and the grid refused it. Nothing was changed." }
                p { "If you meant to do this, open the dashboard itself and try again there." }
            }
        }
    };
    layout::html_response(StatusCode::FORBIDDEN, page)
}

async fn not_found(v: Viewer) -> Response<Body> {
    layout::refusal(
        &v,
        StatusCode::NOT_FOUND,
        "There is no such page on this dashboard.",
    )
}
