//! The dashboard through the one front end of a standalone grid on the
//! stand-in provisioner: signing in and out, the cookies, form tokens and
//! who sees what. Pages are requested as a browser would (cookies, forms).

use crate::config::GridConfig;
use crate::manager::Manager;
use crate::testing::StandinProvisioner;
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use gridiron_domain::auth::Role;
use gridiron_store::MemoryStore;
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

/// A standalone grid's router, its store and manager.
pub(crate) struct Dash {
    pub router: Router,
    pub store: Arc<MemoryStore>,
    /// Its sessions' processes (and their directories).
    pub standin: Arc<StandinProvisioner>,
    _dir: tempfile::TempDir,
}

/// A page as the browser got it.
#[derive(Debug)]
pub(crate) struct Seen {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    /// Where a redirect goes.
    pub location: Option<String>,
    /// The `Set-Cookie` values.
    pub cookies: Vec<String>,
    pub body: String,
}

impl Seen {
    /// Whether the page's markup holds `needle`.
    pub fn has(&self, needle: &str) -> bool {
        self.body.contains(needle)
    }

    /// Where a redirect goes (`""`: nowhere).
    pub fn location(&self) -> &str {
        self.location.as_deref().unwrap_or("")
    }
}

/// The form token the test browser holds.
pub(crate) const CSRF: &str = "0123456789abcdef0123456789abcdef";

impl Dash {
    /// A grid of `slots` on the stand-in provisioner, with `public_url` if given.
    pub async fn start(slots: usize, public_url: Option<&str>) -> Dash {
        let dir = tempfile::tempdir().unwrap();
        let mut config = GridConfig::with_defaults(slots, dir.path().to_path_buf());
        config.prewarm = false;
        config.queue_timeout = Duration::from_secs(10);
        config.public_url = public_url.map(str::to_string);
        let store = Arc::new(MemoryStore::new());
        let standin = StandinProvisioner::new();
        let m = Manager::start(config, store.clone(), standin.clone());
        Dash {
            router: crate::router(m),
            store,
            standin,
            _dir: dir,
        }
    }

    /// Makes a key; returns its token.
    pub async fn key(&self, name: &str, role: Role) -> String {
        let token = format!("token-{name}-{}", uuid::Uuid::new_v4().simple());
        crate::testing::make_key(self.store.as_ref(), name, role, token).await
    }

    /// Sends `req` with the browser's cookies (the key's, if signed in, and the form token).
    pub async fn send(
        &self,
        req: axum::http::request::Builder,
        token: Option<&str>,
        body: Body,
    ) -> Seen {
        let mut cookie = format!("gridiron_csrf={CSRF}");
        if let Some(t) = token {
            cookie.push_str(&format!("; gridiron_key={t}"));
        }
        let req = req
            .header(header::HOST, "grid.test:4444")
            .header(header::COOKIE, cookie)
            .body(body)
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let h = &headers;
        let location = h
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let cookies = h
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Seen {
            status,
            headers,
            location,
            cookies,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// `GET path` as a browser signed in with `token` (or none).
    pub async fn get(&self, path: &str, token: Option<&str>) -> Seen {
        self.send(Request::builder().uri(path), token, Body::empty())
            .await
    }

    /// Posts `fields` as a form, as is, as a browser signed in with `token`
    /// (add `("csrf", CSRF)` to pass the form check).
    pub async fn post(&self, path: &str, token: Option<&str>, fields: &[(&str, &str)]) -> Seen {
        let body = serde_urlencoded::to_string(fields).unwrap();
        let req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        self.send(req, token, Body::from(body)).await
    }

    /// Posts a one-button form (the form token only) as `token`'s browser.
    pub async fn press(&self, path: &str, token: &str) -> Seen {
        self.post(path, Some(token), &[("csrf", CSRF)]).await
    }

    /// Signs in with `token` on the sign-in form, asking to go on to `next`.
    pub async fn sign_in(&self, token: &str, next: &str) -> Seen {
        self.post(
            "/ui/login",
            None,
            &[("csrf", CSRF), ("token", token), ("next", next)],
        )
        .await
    }

    /// Starts a session for `token`'s key through the W3C route, with grid
    /// options `options`; its id.
    pub async fn session(&self, token: &str, options: serde_json::Value) -> String {
        let caps =
            serde_json::json!({"capabilities": {"alwaysMatch": {"gridiron:options": options}}});
        let req = Request::builder()
            .method(Method::POST)
            .uri("/session")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::from(caps.to_string()))
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let id = v["value"]["sessionId"].as_str();
        id.unwrap_or_else(|| panic!("no session: {v}")).to_string()
    }
}

#[tokio::test]
async fn an_open_grid_needs_no_sign_in() {
    let d = Dash::start(1, None).await;
    let page = d.get("/ui/login", None).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{page:?}");
    assert_eq!(page.location(), "/ui/");
    let css = d.get("/ui/assets/gridiron.css", None).await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.has("prefers-color-scheme: dark"));
}

#[tokio::test]
async fn a_stranger_is_sent_to_sign_in_and_a_valid_key_signs_in() {
    let d = Dash::start(1, None).await;
    let token = d.key("root", Role::Admin).await;
    let page = d.get("/ui/sessions?state=running", None).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(
        page.location(),
        "/ui/login?next=%2Fui%2Fsessions%3Fstate%3Drunning"
    );
    let stale = d.get("/ui/sessions", Some("not-a-key")).await;
    assert!(stale.location().starts_with("/ui/login"), "{stale:?}");

    let form = d.get("/ui/login", None).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.has(r#"name="token""#) && form.has(r#"name="csrf""#));
    assert!(!form.has("Sessions</a>"), "no navigation for strangers");

    let wrong = d
        .post("/ui/login", None, &[("csrf", CSRF), ("token", "nope")])
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.has("not valid"));
    assert!(wrong
        .cookies
        .iter()
        .all(|c| !c.starts_with("gridiron_key=")));

    let ok = d.sign_in(&token, "/ui/sessions?state=running").await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert_eq!(ok.location(), "/ui/sessions?state=running");
    let cookie = ok
        .cookies
        .into_iter()
        .find(|c| c.starts_with("gridiron_key="))
        .expect("the key's cookie");
    assert_eq!(
        cookie,
        format!("gridiron_key={token}; Path=/ui; HttpOnly; SameSite=Strict")
    );
    // Elsewhere than the dashboard, the cookie is no credential.
    let api = d.get("/api/v1/sessions", Some(&token)).await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_sign_in_form_from_elsewhere_is_refused() {
    let d = Dash::start(1, None).await;
    let token = d.key("root", Role::Admin).await;
    for csrf in ["", "guessed"] {
        let r = d
            .post("/ui/login", None, &[("token", &token), ("csrf", csrf)])
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "csrf {csrf:?}");
        assert!(r.cookies.iter().all(|c| !c.starts_with("gridiron_key=")));
    }
    let from_elsewhere = d
        .send(
            Request::builder()
                .method(Method::POST)
                .uri("/ui/logout")
                .header(header::ORIGIN, "http://evil.example")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded"),
            Some(&token),
            Body::from(format!("csrf={CSRF}")),
        )
        .await;
    assert_eq!(from_elsewhere.status, StatusCode::FORBIDDEN);
    assert!(from_elsewhere.has("another site"), "a page, not JSON");
}

#[tokio::test]
async fn signing_out_forgets_the_key() {
    let d = Dash::start(1, None).await;
    let token = d.key("root", Role::Admin).await;
    let out = d.press("/ui/logout", &token).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location(), "/ui/login");
    assert!(out
        .cookies
        .iter()
        .any(|c| c.starts_with("gridiron_key=;") && c.contains("Max-Age=0")));
}

#[tokio::test]
async fn pages_live_under_the_public_urls_prefix() {
    let d = Dash::start(1, Some("https://ci.example/grid/")).await;
    let token = d.key("root", Role::Admin).await;
    let page = d.get("/ui/queue", None).await;
    assert!(
        page.location() == "/grid/ui/login?next=%2Fgrid%2Fui%2Fqueue",
        "{page:?}"
    );
    let ok = d.sign_in(&token, "/grid/ui/queue").await;
    assert_eq!(ok.location(), "/grid/ui/queue");
    let cookie = ok.cookies.join("\n");
    assert!(
        cookie.contains("Path=/grid/ui; HttpOnly; SameSite=Strict; Secure"),
        "{cookie}"
    );
}
